"""The node's metrics: Centrifugo's families (``families.py``), relay's own, and updates.

Values live in prometheus-client, which adds them up over the workers in multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``, set by the front); ``exposition.py`` writes them as
Centrifugo's Go client does. ``channel_namespace`` is always "" as in Centrifugo OSS,
``accept_protocol`` "" and the client name/version labels ``unnamed``/``unversioned`` or
``unregistered``, as Centrifugo sets them. Each ``Metrics`` owns its registry, so several
nodes can live in one test process.
"""

from __future__ import annotations

import bisect
import os
import time
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.multiprocess import MultiProcessCollector

from relay.metrics.exposition import SKETCH_FAMILY, Exposition, series_key
from relay.metrics.families import FAMILIES, Family
from relay.metrics.sketch import SLOTS, bucket_of, slot_of

__all__ = ["Metrics", "client_labels"]

NS = "centrifugo"
#: gauges of the live workers are added up; these take the largest value instead
_MAX_GAUGES = {"centrifugo_node_build", "centrifugo_node_num_nodes"}


def client_labels(name: str, version: str) -> tuple[str, str]:
    """The ``client_name``/``client_version`` labels Centrifugo gives a connection."""
    return ("unregistered" if name else "unnamed", "unregistered" if version else "unversioned")


class Metrics:
    """The node's metric families and the calls that update them."""

    def __init__(self, version: str = "", registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._exposition = Exposition()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._sketch_slot = slot_of(time.time())
        self._sketch_children: list[dict[tuple[str, str, int], Any]] = [{} for _ in range(SLOTS)]
        self.sketch = Gauge(
            SKETCH_FAMILY,
            "Bucket counts of the summaries' quantile sketches (not exposed).",
            ["family", "series", "slot", "bucket"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        f = self._family
        self.messages_sent = f("centrifugo_node_messages_sent_count")
        self.messages_received = f("centrifugo_node_messages_received_count")
        self.actions = f("centrifugo_node_action_count")
        self.num_clients = f("centrifugo_node_num_clients")
        self.num_users = f("centrifugo_node_num_users")
        self.num_subscriptions = f("centrifugo_node_num_subscriptions")
        self.num_channels = f("centrifugo_node_num_channels")
        self.num_nodes = f("centrifugo_node_num_nodes")
        self.build = f("centrifugo_node_build")
        self.survey_duration = f("centrifugo_node_survey_duration_seconds")
        self.survey_histogram = f("centrifugo_node_survey_duration_seconds_histogram")
        self.broadcast_duration = f("centrifugo_node_broadcast_duration_seconds")
        self.connection_limit = f("centrifugo_node_client_connection_limit")
        self.tags_dropped = f("centrifugo_node_tags_filter_dropped_publications")
        self.command_duration = f("centrifugo_client_command_duration_seconds")
        self.command_histogram = f("centrifugo_client_command_duration_seconds_histogram")
        self.reply_errors = f("centrifugo_client_num_reply_errors")
        self.server_unsubscribes = f("centrifugo_client_num_server_unsubscribes")
        self.server_disconnects = f("centrifugo_client_num_server_disconnects")
        self.recovers = f("centrifugo_client_recover")
        self.ping_pong_histogram = f("centrifugo_client_ping_pong_duration_seconds")
        self.connections_accepted = f("centrifugo_client_connections_accepted")
        self.connections_inflight = f("centrifugo_client_connections_inflight")
        self.subscriptions_inflight = f("centrifugo_client_subscriptions_inflight")
        self.transport_sent = f("centrifugo_transport_messages_sent")
        self.transport_sent_size = f("centrifugo_transport_messages_sent_size")
        self.transport_received = f("centrifugo_transport_messages_received")
        self.transport_received_size = f("centrifugo_transport_messages_received_size")
        self.outgoing_close = f("centrifugo_transport_outgoing_close_count")
        self.publish_suppressed = f("centrifugo_broker_publish_suppressed_count")
        self.api_errors = f("centrifugo_api_command_errors_total")
        self.api_duration = f("centrifugo_api_command_duration_seconds")
        self.api_duration_histogram = f("centrifugo_api_command_duration_seconds_histogram")
        self.bus_events = Counter(
            "bus_messages_total",
            "Messages between this node's workers, by event.",
            ["event"],
            namespace="relay",
            registry=self.registry,
        )
        self._exposition.counter_names["relay_bus_messages"] = "relay_bus_messages_total"
        self._bus_seen: dict[str, int] = {}
        for event in ("sent", "received", "backlogged", "stale", "gaps"):
            self.bus_events.labels(event)
        self.worker_connections = Gauge(
            "worker_connections",
            "Open client connections of each worker process.",
            namespace="relay",
            registry=self.registry,
            multiprocess_mode="all",
        )
        for kind in ("publication", "join", "leave", "control"):  # present from the start
            self._child(self.messages_sent, kind, "")
            self._child(self.messages_received, kind, "")
        if version:
            self.build.labels(version=version).set(1)
        self.num_nodes.set(1)

    def _family(self, name: str) -> Any:
        spec: Family = FAMILIES[name]
        common: dict[str, Any] = {"registry": self.registry}
        if spec.kind == "counter":
            self._exposition.counter_names[name.removesuffix("_total")] = name
            return Counter(name, spec.help, spec.labels, **common)
        if spec.kind == "gauge":
            mode: Literal["max", "livesum"] = "max" if name in _MAX_GAUGES else "livesum"
            return Gauge(name, spec.help, spec.labels, multiprocess_mode=mode, **common)
        if spec.kind == "histogram":
            return Histogram(name, spec.help, spec.labels, buckets=spec.buckets, **common)
        self._exposition.summary_labels[name] = spec.labels
        return Summary(name, spec.help, spec.labels, **common)

    # ---- updates ------------------------------------------------------------------------
    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: the hot paths call these per message
        (prometheus-client takes a lock and builds a key on every ``labels`` call)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _observe_summary(self, summary: Any, labels: tuple[str, ...], seconds: float) -> None:
        self._child(summary, *labels).observe(seconds)
        slot = self._sketch_slot % SLOTS
        key = (summary._name, series_key(labels), bucket_of(seconds))
        children = self._sketch_children[slot]
        child = children.get(key)
        if child is None:
            child = children[key] = self.sketch.labels(key[0], key[1], str(slot), str(key[2]))
        child.inc()

    def tick(self, now: float | None = None) -> None:
        """Age the summaries' windows: a slot entered again starts empty (call each second)."""
        current = slot_of(time.time() if now is None else now)
        if current == self._sketch_slot:
            return
        for passed in range(min(current - self._sketch_slot, SLOTS)):
            slot = (current - passed) % SLOTS
            for child in self._sketch_children[slot].values():
                child.set(0)
            self._sketch_children[slot].clear()
        self._sketch_slot = current

    def message_sent(self, kind: str, n: int = 1) -> None:
        if n:
            self._child(self.messages_sent, kind, "").inc(n)

    def message_received(self, kind: str, n: int = 1) -> None:
        self._child(self.messages_received, kind, "").inc(n)

    def action(self, name: str) -> None:
        self._child(self.actions, name, "").inc()

    def set_clients(self, clients: int, users: int) -> None:
        self.num_clients.set(clients)
        self.num_users.set(users)

    def set_subscriptions(self, subs: int, channels: int) -> None:
        self.num_subscriptions.set(subs)
        self.num_channels.set(channels)

    def set_nodes(self, nodes: int) -> None:
        self.num_nodes.set(nodes)

    def command(self, method: str, seconds: float) -> None:
        self._observe_summary(self.command_duration, (method, ""), seconds)
        self._child(self.command_histogram, method, "").observe(seconds)

    def reply_error(self, method: str, code: int) -> None:
        self._child(self.reply_errors, method, str(code), "").inc()

    def server_unsubscribe(self, code: int) -> None:
        self._child(self.server_unsubscribes, str(code), "").inc()

    def server_disconnect(self, code: int) -> None:
        self._child(self.server_disconnects, str(code)).inc()

    def close_sent(self, code: int, transport: str = "websocket") -> None:
        self._child(self.outgoing_close, transport, str(code)).inc()

    def recover(self, recovered: bool, with_publications: bool = False) -> None:
        labels = ("yes" if recovered else "no", "", "yes" if with_publications else "no")
        self._child(self.recovers, *labels).inc()

    def connection_accepted(self, transport: str, name: str, version: str) -> None:
        labels = (transport, "", *client_labels(name, version))
        self._child(self.connections_accepted, *labels).inc()
        self._child(self.connections_inflight, *labels).inc()

    def connection_closed(self, transport: str, name: str, version: str) -> None:
        labels = (transport, "", *client_labels(name, version))
        self._child(self.connections_inflight, *labels).dec()

    def subscriptions_changed(self, name: str, delta: int) -> None:
        self._child(self.subscriptions_inflight, client_labels(name, "")[0], "").inc(delta)

    def connection_refused(self) -> None:
        self.connection_limit.inc()

    def frame_received(self, frame_type: str, size: int, transport: str = "websocket") -> None:
        self._child(self.transport_received, transport, frame_type, "").inc()
        self._child(self.transport_received_size, transport, frame_type, "").inc(size)

    def frames_sent(self, frame_type: str, n: int, size: int, transport: str = "websocket") -> None:
        """``n`` messages of ``frame_type`` written, ``size`` bytes in all (before framing)."""
        self._child(self.transport_sent, transport, frame_type, "").inc(n)
        self._child(self.transport_sent_size, transport, frame_type, "").inc(size)

    def broadcast(self, seconds: float) -> None:
        self._child(self.broadcast_duration, "publication", "").observe(seconds)

    def tags_filtered(self, n: int = 1) -> None:
        self._child(self.tags_dropped, "").inc(n)

    def publish_suppressed_by(self, reason: str) -> None:
        self._child(self.publish_suppressed, reason, "").inc()

    def survey(self, op: str, seconds: float) -> None:
        self._observe_summary(self.survey_duration, (op,), seconds)
        self._child(self.survey_histogram, op).observe(seconds)

    def ping_pong(self, seconds: float, transport: str = "websocket") -> None:
        self._child(self.ping_pong_histogram, transport).observe(seconds)

    def api_command(self, method: str, seconds: float, protocol: str = "http") -> None:
        self._observe_summary(self.api_duration, (protocol, method), seconds)
        self._child(self.api_duration_histogram, protocol, method).observe(seconds)

    def api_commands(self, method: str, n: int, seconds: float, protocol: str = "http") -> None:
        """``n`` commands that ran as one group in ``seconds`` (a batch's publishes).

        Counts ``n`` observations of the mean duration in O(1), instead of ``n`` calls.
        """
        mean = seconds / n
        summary = self._child(self.api_duration, protocol, method)
        summary._count.inc(n)
        summary._sum.inc(seconds)
        slot = self._sketch_slot % SLOTS
        key = (self.api_duration._name, series_key((protocol, method)), bucket_of(mean))
        child = self._sketch_children[slot].get(key)
        if child is None:
            child = self.sketch.labels(key[0], key[1], str(slot), str(key[2]))
            self._sketch_children[slot][key] = child
        child.inc(n)
        histogram = self._child(self.api_duration_histogram, protocol, method)
        index = bisect.bisect_left(histogram._upper_bounds, mean)
        histogram._buckets[index].inc(n)
        histogram._sum.inc(seconds)

    def api_error(self, method: str, error: str, protocol: str = "http") -> None:
        self._child(self.api_errors, protocol, method, error).inc()

    def bus_counters(self, counters: dict[str, int]) -> None:
        """Copy the bus's running totals (sent, backlogged, stale, gaps, ...) as increments."""
        for event, total in counters.items():
            delta = total - self._bus_seen.get(event, 0)
            if delta:
                self.bus_events.labels(event).inc(delta)
                self._bus_seen[event] = total

    # ---- reading ------------------------------------------------------------------------
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
        return self._exposition.render(self._registry_for_reading().collect())
