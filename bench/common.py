"""Shared pieces of the suite: config, managed servers, /proc readings, tokens, results."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SECRET = "bench-secret"
API_KEY = "bench-api-key"
CENTRIFUGO_BIN = os.environ.get("CENTRIFUGO_BIN") or str(Path("~/go/bin/centrifugo").expanduser())

Metrics = dict[str, float]
CaseMetrics = dict[str, Metrics]  # case -> metric -> value


# ---- config and servers -------------------------------------------------------------------


def make_config(secret: str = SECRET, api_key: str = API_KEY) -> dict[str, Any]:
    """The one ``config.json`` both servers run with in managed mode."""
    allow_all = {
        "allow_subscribe_for_client": True,
        "allow_publish_for_client": True,
        "allow_presence_for_client": True,
        "allow_history_for_client": True,
    }
    return {
        "client": {"token": {"hmac_secret_key": secret}},
        "http_api": {"key": api_key},
        "health": {"enabled": True},
        "log": {"level": "error"},
        "channel": {
            "without_namespace": dict(allow_all),
            "namespaces": [
                {"name": "hist", "history_size": 100, "history_ttl": "300s", **allow_all},
                {
                    "name": "lat",
                    "presence": True,
                    "history_size": 100,
                    "history_ttl": "300s",
                    **allow_all,
                },
            ],
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    """One server under test, managed (``proc`` set) or reached by URL."""

    name: str
    ws_url: str
    api_url: str
    api_key: str = API_KEY
    secret: str = SECRET
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(8)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def write_config(workdir: str, secret: str = SECRET, api_key: str = API_KEY) -> str:
    path = os.path.join(workdir, "config.json")
    with open(path, "w") as f:
        json.dump(make_config(secret, api_key), f, indent=2)
    return path


def _wait_ready(target: Target, timeout: float = 30.0) -> None:
    health = target.api_url.rsplit("/api", 1)[0] + "/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.proc is not None and target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited early; see {target.log_path}")
        try:
            with urllib.request.urlopen(health, timeout=0.5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{target.name} not ready after {timeout}s; see {target.log_path}")


def start_server(kind: str, workers: int, config_path: str, workdir: str) -> Target:
    """Start ``relay`` (front + ``workers``) or ``centrifugo`` on a free port."""
    port = free_port()
    if kind == "relay":
        name = f"relay-w{workers}"
        cmd = [sys.executable, "-m", "relay", "--config", config_path]
        cmd += ["-p", str(port), "-a", "127.0.0.1", "--workers", str(workers)]
    else:
        name = "centrifugo"
        cmd = [CENTRIFUGO_BIN, "--config", config_path, "--http_server.port", str(port)]
    env = dict(os.environ, CENTRIFUGO_HTTP_SERVER_ADDRESS="127.0.0.1")
    log_path = os.path.join(workdir, f"{name}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"127.0.0.1:{port}"
    target = Target(
        name,
        f"ws://{base}/connection/websocket",
        f"http://{base}/api",
        pid=proc.pid,
        proc=proc,
        log_path=log_path,
    )
    try:
        _wait_ready(target)
    except Exception:
        target.stop()
        raise
    time.sleep(0.5)  # let every worker finish its start-up
    return target


class Servers:
    """Context manager: the targets of one run (managed ones are stopped on exit)."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self.targets: list[Target] = []
        self.workdir = tempfile.mkdtemp(prefix="relay-bench-")

    def __enter__(self) -> list[Target]:
        a = self.args
        if a.server:
            cfg = write_config(self.workdir, a.secret, a.api_key)
            kinds = ["relay", "centrifugo"] if a.server == "both" else [a.server]
            try:
                for kind in kinds:
                    for w in a.workers if kind == "relay" else [0]:
                        self.targets.append(start_server(kind, w, cfg, self.workdir))
            except Exception:
                self.__exit__()
                raise
        else:
            api = a.api or a.url.replace("ws", "http", 1).split("/connection")[0] + "/api"
            self.targets.append(
                Target(a.name, a.url, api, a.api_key, a.secret, pid=a.server_pid or None)
            )
        for t in self.targets:
            t.api_key, t.secret = a.api_key, a.secret
        return self.targets

    def __exit__(self, *exc: object) -> None:
        for t in self.targets:
            t.stop()


# ---- /proc readings ------------------------------------------------------------------------

_CLK = os.sysconf("SC_CLK_TCK")


def proc_tree(root: int) -> list[int]:
    """``root`` and all its descendants (scan of /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK


def cpu_us_per(cpu_seconds: float, count: float) -> float:
    """Server CPU time per unit of work (µs): the column every load scenario reports."""
    return cpu_seconds * 1e6 / count if count else 0.0


def tree_cpu(root: int | None) -> float:
    return sum(proc_cpu(p) for p in proc_tree(root)) if root else 0.0


def proc_mem(pid: int) -> dict[str, float]:
    """RSS and PSS of one process in MiB, from smaps_rollup."""
    out = {"rss_mib": 0.0, "pss_mib": 0.0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    out["rss_mib"] = int(line.split()[1]) / 1024
                elif line.startswith("Pss:"):
                    out["pss_mib"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def tree_mem(root: int | None) -> dict[str, float]:
    total = {"rss_mib": 0.0, "pss_mib": 0.0, "processes": 0.0}
    for pid in proc_tree(root) if root else []:
        m = proc_mem(pid)
        total["rss_mib"] += m["rss_mib"]
        total["pss_mib"] += m["pss_mib"]
        total["processes"] += 1
    return total


def raise_nofile() -> tuple[int, int]:
    """Raise the soft fd limit to the hard one; return the new (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# ---- tokens --------------------------------------------------------------------------------


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_JWT_HEAD = _b64(b'{"alg":"HS256","typ":"JWT"}')


def make_token(secret: str, user: str, ttl: int = 3600) -> str:
    """An HS256 connection token for ``user``."""
    claims = json.dumps({"sub": user, "exp": int(time.time()) + ttl}, separators=(",", ":"))
    signing = _JWT_HEAD + b"." + _b64(claims.encode())
    sig = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return (signing + b"." + _b64(sig)).decode()


# ---- statistics ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return float(ordered[k])


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


# ---- machine info and results ----------------------------------------------------------------


def git_commit() -> str:
    """The checkout's HEAD commit, read from .git without running git."""
    git = REPO / ".git"
    try:
        if git.is_file():  # worktree: "gitdir: PATH"
            git = Path(git.read_text().split(":", 1)[1].strip())
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(None, 1)[1]
        common = git / "commondir"
        roots = [git] + ([git / common.read_text().strip()] if common.exists() else [])
        for root in roots:
            if (root / ref).exists():
                return (root / ref).read_text().strip()
            packed = root / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
    except OSError:
        pass
    return "unknown"


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=REPO)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unavailable"


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model
            )
    except OSError:
        pass
    try:
        from relay.fastpath import IMPLEMENTATION as fastpath
    except ImportError:
        fastpath = "unavailable"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "relay_commit": git_commit(),
        "relay_version": _version([sys.executable, "-m", "relay", "version"]),
        "relay_fastpath": fastpath,
        "centrifugo_version": _version([CENTRIFUGO_BIN, "version"]) + " (binary v6.9.1)",
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "loadavg": os.getloadavg(),
    }


def aggregate(runs: dict[str, list[CaseMetrics]]) -> dict[str, CaseMetrics]:
    """target -> repeats -> case -> metrics  ==>  target -> case -> metric medians."""
    out: dict[str, CaseMetrics] = {}
    for target, reps in runs.items():
        cases: dict[str, dict[str, list[float]]] = {}
        for rep in reps:
            for case, metrics in rep.items():
                for k, v in metrics.items():
                    cases.setdefault(case, {}).setdefault(k, []).append(v)
        out[target] = {c: {k: median(v) for k, v in m.items()} for c, m in cases.items()}
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def markdown_table(medians: dict[str, CaseMetrics]) -> str:
    """One row per (case, metric), one column per target, plus relay/centrifugo ratios."""
    targets = list(medians)
    relays = [t for t in targets if t.startswith("relay")]
    ratio_cols = [r for r in relays if "centrifugo" in targets]
    head = ["case", "metric", *targets] + [f"{r}/centrifugo" for r in ratio_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows: list[tuple[str, str]] = []
    for t in targets:
        for case, metrics in medians[t].items():
            for k in metrics:
                if (case, k) not in rows:
                    rows.append((case, k))
    rows.sort(key=lambda r: r[0] == "total")
    for case, k in rows:
        cells = [case, k]
        for t in targets:
            v = medians[t].get(case, {}).get(k)
            cells.append("-" if v is None else _fmt(v))
        for r in ratio_cols:
            a = medians[r].get(case, {}).get(k)
            b = medians["centrifugo"].get(case, {}).get(k)
            cells.append(f"{a / b:.2f}" if a is not None and b else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(
    scenario: str,
    label: str,
    args: Any,
    runs: dict[str, list[CaseMetrics]],
    medians: dict[str, CaseMetrics],
    table: str,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """``bench/results/<date>-<scenario>[-label].{md,json}`` (and ``--json`` if given)."""
    info = machine_info()
    stamp = _dt.datetime.now().strftime("%Y-%m-%d")
    stem = f"{stamp}-{scenario}" + (f"-{label}" if label else "")
    out_dir = Path(args.results_dir) if args.results_dir else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    options = {k: v for k, v in vars(args).items() if k not in ("api_key", "secret", "func")}
    payload = {
        "scenario": scenario,
        "label": label,
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": info,
        "options": options,
        "medians": medians,
        "runs": runs,
        **(extra or {}),
    }
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str))
    md = [
        f"# {scenario}" + (f" ({label})" if label else "") + f" — {payload['date']}",
        "",
        f"- machine: {info['nproc']} × {info['cpu_model']}, Python {info['python']}, "
        f"kernel {info['kernel']}, load avg at end "
        + ", ".join(f"{x:.2f}" for x in info["loadavg"]),
        f"- relay: {info['relay_version']} (commit {info['relay_commit']}, "
        f"fast path {info['relay_fastpath']}); centrifugo: {info['centrifugo_version']}",
        f"- options: `{' '.join(sys.argv[1:])}`; medians over {args.repeats} repeat(s)",
        "",
        table,
        "",
    ]
    md_path = out_dir / f"{stem}.md"
    md_path.write_text("\n".join(md))
    return md_path, json_path


def plot(path: str, medians: dict[str, CaseMetrics], metric_hint: str = "") -> bool:
    """A grouped bar chart of every metric (one panel per metric); False if no matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return False
    keys: list[tuple[str, str]] = []
    for cases in medians.values():
        for case, metrics in cases.items():
            for k in metrics:
                if (case, k) not in keys and (not metric_hint or metric_hint in k):
                    keys.append((case, k))
    if not keys:
        return False
    cols = 3
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    targets = list(medians)
    for ax, (case, k) in zip(axes.flat, keys, strict=False):
        vals = [medians[t].get(case, {}).get(k, 0.0) for t in targets]
        ax.bar(targets, vals, color=[f"C{i}" for i in range(len(targets))])
        ax.set_title(f"{case}: {k}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
