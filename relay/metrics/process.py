"""``process_*`` families as Go's process collector names them, for the whole node.

A relay node is a front and its workers; Centrifugo's node is one process. The node's
CPU time, memory and open descriptors are the sums over its processes; its start time
is the front's; the limits are the serving process's. Read from ``/proc`` at scrape
time (Linux only: elsewhere the families are left out).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

__all__ = ["node_pids", "process_families"]

_WORKER_FILE = re.compile(r"gauge_livesum_(\d+)\.db$")


def node_pids() -> list[int]:
    """This process, and with several workers the front and every live worker."""
    pids = {os.getpid()}
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if folder and os.path.isdir(folder):
        pids.add(os.getppid())
        for name in os.listdir(folder):
            match = _WORKER_FILE.match(name)
            if match:
                pids.add(int(match.group(1)))
    return sorted(pid for pid in pids if os.path.exists(f"/proc/{pid}/stat"))


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _limit(pid: int, name: str) -> float:
    try:
        with open(f"/proc/{pid}/limits") as fh:
            for line in fh:
                if line.startswith(name):
                    soft = line[len(name) :].split()[0]
                    return 2.0**64 - 1 if soft == "unlimited" else float(soft)
    except OSError:
        pass
    return 0.0


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _boot_time() -> float:
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def _network() -> tuple[float, float]:
    """Bytes received and sent over every interface of this network namespace."""
    received = sent = 0.0
    try:
        with open("/proc/self/net/dev") as fh:
            for line in list(fh)[2:]:
                fields = line.split(":", 1)[1].split()
                received += float(fields[0])
                sent += float(fields[8])
    except (OSError, IndexError, ValueError):
        pass
    return received, sent


def process_families(pids: Iterable[int]) -> list[Metric]:
    """The ``process_*`` families over ``pids``; the start is the earliest process's."""
    if not os.path.exists("/proc/self/stat"):
        return []
    ticks = float(os.sysconf("SC_CLK_TCK"))
    page = float(os.sysconf("SC_PAGE_SIZE"))
    cpu = rss = vsize = fds = 0.0
    starts: list[float] = []
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / ticks
        starts.append(int(fields[19]) / ticks)
        vsize += int(fields[20])
        rss += int(fields[21]) * page
        fds += _open_fds(pid)
    received, sent = _network()
    me = os.getpid()

    def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, value=value)

    return [
        CounterMetricFamily(
            "process_cpu_seconds", "Total user and system CPU time spent in seconds.", value=cpu
        ),
        gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            _limit(me, "Max open files"),
        ),
        CounterMetricFamily(
            "process_network_receive_bytes",
            "Number of bytes received by the process over the network.",
            value=received,
        ),
        CounterMetricFamily(
            "process_network_transmit_bytes",
            "Number of bytes sent by the process over the network.",
            value=sent,
        ),
        gauge("process_open_fds", "Number of open file descriptors.", fds),
        gauge("process_resident_memory_bytes", "Resident memory size in bytes.", rss),
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            _boot_time() + min(starts, default=0.0),
        ),
        gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", vsize),
        gauge(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            _limit(me, "Max address space"),
        ),
    ]
