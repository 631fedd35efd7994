"""Every Prometheus metric, defined once, with Centrifugo's names and labels.

Source: centrifugal/centrifuge ``metrics.go``, centrifugo ``internal/metrics``;
spec/server-surface.md §8. ``channel_namespace`` is always "" as in Centrifugo OSS.
Each ``Metrics`` owns its registry, so several nodes can live in one test process.
"""

from __future__ import annotations

import bisect
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics"]

NS = "centrifugo"


class Metrics:
    """The node's metric families and the few calls that update them."""

    def __init__(self, version: str = "", registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.messages_sent = Counter(
            "messages_sent_count",
            "Messages sent.",
            ["type", "channel_namespace"],
            namespace=NS,
            subsystem="node",
            registry=r,
        )
        self.messages_received = Counter(
            "messages_received_count",
            "Messages received.",
            ["type", "channel_namespace"],
            namespace=NS,
            subsystem="node",
            registry=r,
        )
        self.num_clients = Gauge(
            "num_clients",
            "Connected clients.",
            namespace=NS,
            subsystem="node",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.num_users = Gauge(
            "num_users",
            "Unique users.",
            namespace=NS,
            subsystem="node",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.num_subscriptions = Gauge(
            "num_subscriptions",
            "Subscriptions.",
            namespace=NS,
            subsystem="node",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.num_channels = Gauge(
            "num_channels",
            "Channels with local subscribers.",
            namespace=NS,
            subsystem="node",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.build = Gauge(
            "build",
            "Node build info.",
            ["version"],
            namespace=NS,
            subsystem="node",
            registry=r,
            multiprocess_mode="max",
        )
        self.command_duration = Summary(
            "command_duration_seconds",
            "Client command duration.",
            ["method", "channel_namespace"],
            namespace=NS,
            subsystem="client",
            registry=r,
        )
        self.reply_errors = Counter(
            "num_reply_errors",
            "Reply errors.",
            ["method", "code", "channel_namespace"],
            namespace=NS,
            subsystem="client",
            registry=r,
        )
        self.server_unsubscribes = Counter(
            "num_server_unsubscribes",
            "Server unsubscribes.",
            ["code", "channel_namespace"],
            namespace=NS,
            subsystem="client",
            registry=r,
        )
        self.server_disconnects = Counter(
            "num_server_disconnects",
            "Server disconnects.",
            ["code"],
            namespace=NS,
            subsystem="client",
            registry=r,
        )
        self.recovers = Counter(
            "recover",
            "Recovery attempts.",
            ["recovered", "channel_namespace", "has_recovered_publications"],
            namespace=NS,
            subsystem="client",
            registry=r,
        )
        self.transport_received = Counter(
            "messages_received",
            "Transport frames received.",
            ["transport", "frame_type", "channel_namespace"],
            namespace=NS,
            subsystem="transport",
            registry=r,
        )
        self.transport_received_size = Counter(
            "messages_received_size",
            "Transport bytes received.",
            ["transport", "frame_type", "channel_namespace"],
            namespace=NS,
            subsystem="transport",
            registry=r,
        )
        self.api_duration = Summary(
            "command_duration_seconds",
            "Server API command duration.",
            ["protocol", "method"],
            namespace=NS,
            subsystem="api",
            registry=r,
        )
        self.api_duration_histogram = Histogram(
            "command_duration_seconds_histogram",
            "Server API command duration.",
            ["protocol", "method"],
            namespace=NS,
            subsystem="api",
            registry=r,
        )
        self.api_errors = Counter(
            "command_errors_total",
            "Server API errors.",
            ["protocol", "method", "error"],
            namespace=NS,
            subsystem="api",
            registry=r,
        )
        self.bus_events = Counter(
            "bus_messages",
            "Messages between this node's workers, by event.",
            ["event"],
            namespace="relay",
            registry=r,
        )
        self._bus_seen: dict[str, int] = {}
        for event in ("sent", "received", "backlogged", "stale", "gaps"):
            self.bus_events.labels(event)
        self.worker_connections = Gauge(
            "worker_connections",
            "Open client connections of each worker process.",
            namespace="relay",
            registry=r,
            multiprocess_mode="all",
        )
        if version:
            self.build.labels(version=version).set(1)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    # ---- updates ------------------------------------------------------------------------
    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: the hot paths call these per message
        (prometheus-client takes a lock and builds a key on every ``labels`` call)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def message_sent(self, kind: str, n: int = 1) -> None:
        if n:
            self._child(self.messages_sent, kind, "").inc(n)

    def message_received(self, kind: str, n: int = 1) -> None:
        self._child(self.messages_received, kind, "").inc(n)

    def set_clients(self, clients: int, users: int) -> None:
        self.num_clients.set(clients)
        self.num_users.set(users)

    def set_subscriptions(self, subs: int, channels: int) -> None:
        self.num_subscriptions.set(subs)
        self.num_channels.set(channels)

    def command(self, method: str, seconds: float) -> None:
        self._child(self.command_duration, method, "").observe(seconds)

    def reply_error(self, method: str, code: int) -> None:
        self.reply_errors.labels(method, str(code), "").inc()

    def server_unsubscribe(self, code: int) -> None:
        self.server_unsubscribes.labels(str(code), "").inc()

    def server_disconnect(self, code: int) -> None:
        self.server_disconnects.labels(str(code)).inc()

    def recover(self, recovered: bool) -> None:
        self.recovers.labels("yes" if recovered else "no", "", "").inc()

    def frame_received(self, size: int, transport: str = "websocket") -> None:
        self._child(self.transport_received, transport, "command", "").inc()
        self._child(self.transport_received_size, transport, "command", "").inc(size)

    def api_command(self, method: str, seconds: float, protocol: str = "http") -> None:
        self._child(self.api_duration, protocol, method).observe(seconds)
        self._child(self.api_duration_histogram, protocol, method).observe(seconds)

    def api_commands(self, method: str, n: int, seconds: float, protocol: str = "http") -> None:
        """``n`` commands that ran as one group in ``seconds`` (a batch's publishes).

        Counts ``n`` observations of the mean duration in O(1), instead of ``n`` calls.
        """
        summary = self.api_duration.labels(protocol, method)
        summary._count.inc(n)
        summary._sum.inc(seconds)
        histogram = self.api_duration_histogram.labels(protocol, method)
        mean = seconds / n
        index = bisect.bisect_left(histogram._upper_bounds, mean)
        histogram._buckets[index].inc(n)
        histogram._sum.inc(seconds)

    def api_error(self, method: str, error: str, protocol: str = "http") -> None:
        self.api_errors.labels(protocol, method, error).inc()

    def bus_counters(self, counters: dict[str, int]) -> None:
        """Copy the bus's running totals (sent, backlogged, stale, gaps, ...) as increments."""
        for event, total in counters.items():
            delta = total - self._bus_seen.get(event, 0)
            if delta:
                self.bus_events.labels(event).inc(delta)
                self._bus_seen[event] = total

    def snapshot(self) -> dict[str, float]:
        """``centrifugo_*`` series flattened as the ``info`` API's ``metrics.items``.

        Keys look like ``centrifugo.client.command_duration_seconds.count.method.connect``
        (FZambia/eagle's flattening); labels with empty values are dropped. Values are
        totals since start (Centrifugo reports counter deltas over the aggregate interval).
        """
        items: dict[str, float] = {}
        for family in self._registry_for_reading().collect():
            if not family.name.startswith(NS + "_"):
                continue
            base = NS + "." + family.name[len(NS) + 1 :].replace("_", ".", 1)
            for sample in family.samples:
                suffix = sample.name[len(family.name) :].lstrip("_")
                if suffix == "created":
                    continue
                if suffix == "total":
                    suffix = ""
                key = base + (f".{suffix}" if suffix else "")
                for label, value in sample.labels.items():
                    if value:
                        key += f".{label}.{value}"
                items[key] = sample.value
        return items

    def _registry_for_reading(self) -> CollectorRegistry:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return registry
        return self.registry

    def exposition(self) -> bytes:
        """This process's metrics, or the sum over all workers in multiprocess mode."""
        return generate_latest(self._registry_for_reading())
