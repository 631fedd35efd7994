"""Fail when any two modules of a package import each other, directly or through others.

Usage: python scripts/check_cycles.py relay bench   (TYPE_CHECKING imports count too)
"""

from __future__ import annotations

import sys

import grimp

sys.path.insert(0, ".")  # run from the repository root: relay and bench are found there


def cycles(package: str) -> list[list[str]]:
    graph = grimp.build_graph(package, include_external_packages=False)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def main() -> int:
    bad = 0
    for package in sys.argv[1:] or ["relay"]:
        for component in cycles(package):
            bad += 1
            print(f"import cycle in {package}: {' <-> '.join(component)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
