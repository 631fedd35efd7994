"""Run one fuzz target under atheris: ``python -m fuzz TARGET [SECONDS] [libFuzzer flags]``.

The corpus lives in ``fuzz/corpus/TARGET`` (seeds committed). New inputs that atheris
finds go to a scratch copy, or, with ``RELAY_FUZZ_CORPUS=DIR``, to ``DIR/TARGET``, which
long runs keep between runs; never into the repository. A crash writes ``crash-*`` into
the current directory and exits non-zero.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import atheris  # type: ignore[import-untyped]

from fuzz import CORPUS


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python -m fuzz TARGET [SECONDS] [libFuzzer flags]")
    name = argv[1]
    seconds = int(argv[2]) if len(argv) > 2 and argv[2].isdigit() else 60
    extra = argv[3:] if len(argv) > 2 and argv[2].isdigit() else argv[2:]
    with atheris.instrument_imports(include=["relay", "fuzz"]):
        from fuzz.targets import TARGETS
    target = TARGETS[name]
    kept = os.environ.get("RELAY_FUZZ_CORPUS", "")
    scratch = os.path.join(kept, name) if kept else tempfile.mkdtemp(prefix=f"fuzz-{name}-")
    seeds = os.path.join(CORPUS, name)
    if os.path.isdir(seeds):
        shutil.copytree(seeds, scratch, dirs_exist_ok=True)
    args = [argv[0], f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048"]
    args += [*extra, scratch]
    atheris.Setup(args, target)
    try:
        atheris.Fuzz()
    finally:
        if not kept:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
