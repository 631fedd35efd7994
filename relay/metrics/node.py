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
from relay.metrics.process import node_pids, process_families
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
        self._counts: dict[tuple[Any, tuple[str, ...]], float] = {}
        #: gauges set since the last flush: the latest value of each
        self._gauges: dict[Any, float] = {}
        self._histograms: dict[tuple[Any, tuple[str, ...]], list[Any]] = {}
        self._summaries: dict[tuple[Any, tuple[str, ...]], list[Any]] = {}
        self._sketch_counts: dict[tuple[str, tuple[str, ...], int], int] = {}
        self._command_entries: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._publication_entries: tuple[Any, ...] | None = None
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
        self.proxy_duration_summary = f("centrifugo_proxy_duration_seconds")
        self.proxy_duration_histogram = f("centrifugo_proxy_duration_seconds_histogram")
        self.proxy_errors = f("centrifugo_proxy_errors")
        self.proxy_inflight_requests = f("centrifugo_proxy_inflight_requests")
        self.consumer_processed = f("centrifugo_consumers_messages_processed_total")
        self.consumer_errors = f("centrifugo_consumers_errors_total")
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
            ["worker"],
            namespace="relay",
            registry=self.registry,
            multiprocess_mode="liveall",  # a dead worker's series goes with it
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

    # ---- updates: counted here, handed to prometheus-client by ``flush`` -----------------
    # A prometheus-client update takes a lock and writes a shared file in multiprocess
    # mode (several thousand instructions); the hot paths only add to plain dicts, and
    # ``flush`` (each second from ``tick``, and before every scrape) passes the totals on.

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels) if labels else metric
        return child

    def _add(self, metric: Any, labels: tuple[str, ...], n: float = 1) -> None:
        key = (metric, labels)
        counts = self._counts
        counts[key] = counts.get(key, 0) + n

    def _observe(self, histogram: Any, labels: tuple[str, ...], value: float, n: int = 1) -> None:
        key = (histogram, labels)
        entry = self._histograms.get(key)
        if entry is None:
            bounds = histogram._upper_bounds
            entry = self._histograms[key] = [[0] * len(bounds), 0.0, bounds]
        entry[0][bisect.bisect_left(entry[2], value)] += n
        entry[1] += value * n

    def _observe_summary(
        self, summary: Any, labels: tuple[str, ...], value: float, n: int = 1
    ) -> None:
        key = (summary, labels)
        entry = self._summaries.get(key)
        if entry is None:
            entry = self._summaries[key] = [0, 0.0]
        entry[0] += n
        entry[1] += value * n
        sketch_key = (summary._name, labels, bucket_of(value))
        self._sketch_counts[sketch_key] = self._sketch_counts.get(sketch_key, 0) + n

    def flush(self) -> None:
        """Pass what was counted since the last call on to prometheus-client.

        Entries are zeroed in place, not dropped, so the hot paths can keep references.
        """
        counts = self._counts
        for key, n in counts.items():
            if n:
                self._child(key[0], *key[1]).inc(n)
                counts[key] = 0
        if self._gauges:
            for gauge, value in self._gauges.items():
                gauge.set(value)
            self._gauges.clear()
        for (histogram, labels), entry in self._histograms.items():
            buckets = entry[0]
            if not any(buckets):
                continue
            child = self._child(histogram, *labels)
            for i, c in enumerate(buckets):
                if c:
                    child._buckets[i].inc(c)
                    buckets[i] = 0
            child._sum.inc(entry[1])
            entry[1] = 0.0
        for (summary, labels), entry in self._summaries.items():
            if entry[0]:
                child = self._child(summary, *labels)
                child._count.inc(entry[0])
                child._sum.inc(entry[1])
                entry[0], entry[1] = 0, 0.0
        sketches, self._sketch_counts = self._sketch_counts, {}
        slot = self._sketch_slot % SLOTS
        children = self._sketch_children[slot]
        for (summary_name, labels, bucket), n in sketches.items():
            if not n:
                continue
            series = (summary_name, series_key(labels), bucket)
            child = children.get(series)
            if child is None:
                child = self.sketch.labels(summary_name, series[1], str(slot), str(bucket))
                children[series] = child
            child.inc(n)

    def tick(self, now: float | None = None) -> None:
        """Flush, and age the summaries' windows: a slot entered again starts empty."""
        self.flush()
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
            self._add(self.messages_sent, (kind, ""), n)

    def message_received(self, kind: str, n: int = 1) -> None:
        self._add(self.messages_received, (kind, ""), n)

    def action(self, name: str) -> None:
        self._add(self.actions, (name, ""))

    def set_clients(self, clients: int, users: int) -> None:
        """Held until the next ``flush`` (a connect or disconnect pays a dict store, not
        two writes to prometheus-client's files with a ``getpid`` each)."""
        self._gauges[self.num_clients] = clients
        self._gauges[self.num_users] = users

    def set_subscriptions(self, subs: int, channels: int) -> None:
        self._gauges[self.num_subscriptions] = subs
        self._gauges[self.num_channels] = channels

    def set_nodes(self, nodes: int) -> None:
        self.num_nodes.set(nodes)

    def command(
        self,
        method: str,
        seconds: float,
        received: int = 0,
        sent: int = 0,
        transport: str = "websocket",
    ) -> None:
        """One client command: its duration, and the frames it came in and went out in
        (``received``/``sent`` bytes; 0 for none). The per-command hot path: one call."""
        entries = self._command_entries.get((method, transport))
        if entries is None:
            entries = self._command_entry(method, transport)
        counts = self._counts
        recv, recv_size, out, out_size, summary, histogram, name = entries
        counts[recv] += 1
        counts[recv_size] += received
        if sent:
            counts[out] += 1
            counts[out_size] += sent
        summary[0] += 1
        summary[1] += seconds
        histogram[0][bisect.bisect_left(histogram[2], seconds)] += 1
        histogram[1] += seconds
        key = (name, (method, ""), bucket_of(seconds))
        self._sketch_counts[key] = self._sketch_counts.get(key, 0) + 1

    def _command_entry(self, method: str, transport: str) -> tuple[Any, ...]:
        labels = (transport, method, "")
        keys = [
            (self.transport_received, labels),
            (self.transport_received_size, labels),
            (self.transport_sent, labels),
            (self.transport_sent_size, labels),
        ]
        for key in keys:
            self._counts.setdefault(key, 0)
        self._observe_summary(self.command_duration, (method, ""), 0.0, 0)
        self._observe(self.command_histogram, (method, ""), 0.0, 0)
        summary = self._summaries[(self.command_duration, (method, ""))]
        histogram = self._histograms[(self.command_histogram, (method, ""))]
        entries = (*keys, summary, histogram, self.command_duration._name)
        self._command_entries[(method, transport)] = entries
        return entries

    def reply_error(self, method: str, code: int) -> None:
        self._add(self.reply_errors, (method, str(code), ""))

    def server_unsubscribe(self, code: int) -> None:
        self._add(self.server_unsubscribes, (str(code), ""))

    def server_disconnect(self, code: int) -> None:
        self._add(self.server_disconnects, (str(code),))

    def close_sent(self, code: int, transport: str = "websocket") -> None:
        self._add(self.outgoing_close, (transport, str(code)))

    def recover(self, recovered: bool, with_publications: bool = False) -> None:
        labels = ("yes" if recovered else "no", "", "yes" if with_publications else "no")
        self._add(self.recovers, labels)

    def connection_accepted(self, transport: str, name: str, version: str) -> None:
        labels = (transport, "", *client_labels(name, version))
        self._add(self.connections_accepted, labels)
        self._add(self.connections_inflight, labels)

    def connection_closed(self, transport: str, name: str, version: str) -> None:
        labels = (transport, "", *client_labels(name, version))
        self._add(self.connections_inflight, labels, -1)

    def subscriptions_changed(self, name: str, delta: int) -> None:
        self._add(self.subscriptions_inflight, (client_labels(name, "")[0], ""), delta)

    def connection_refused(self) -> None:
        self._add(self.connection_limit, ())

    def frame_received(self, frame_type: str, size: int, transport: str = "websocket") -> None:
        labels = (transport, frame_type, "")
        self._add(self.transport_received, labels)
        if size:
            self._add(self.transport_received_size, labels, size)

    def frames_sent(self, frame_type: str, n: int, size: int, transport: str = "websocket") -> None:
        """``n`` messages of ``frame_type`` written, ``size`` bytes in all (before framing)."""
        labels = (transport, frame_type, "")
        self._add(self.transport_sent, labels, n)
        self._add(self.transport_sent_size, labels, size)

    def publication_delivered(
        self, n: int, size: int, seconds: float, others: dict[str, int] | None = None
    ) -> None:
        """A publication from the broker, queued to ``n`` local subscribers in ``seconds``,
        ``size`` bytes each (``messages_received_count``, the broadcast, ``push_publication``
        frames): the per-publication hot path, one call. ``others``: how many of the ``n``
        use a transport other than WebSocket, by name (their frames carry its label)."""
        entries = self._publication_entries
        if entries is None:
            entries = self._publication_entries = self._publication_entry()
        counts = self._counts
        counts[entries[0]] += 1
        if n:
            if others:
                for name, k in others.items():
                    self.frames_sent("push_publication", k, k * size, name)
                    n -= k
            counts[entries[1]] += n
            counts[entries[2]] += n * size
            histogram = entries[3]
            histogram[0][bisect.bisect_left(histogram[2], seconds)] += 1
            histogram[1] += seconds

    def publications_received(self, n: int) -> None:
        """``n`` publications from the broker with no subscriber here."""
        entries = self._publication_entries
        if entries is None:
            entries = self._publication_entries = self._publication_entry()
        self._counts[entries[0]] += n

    def _publication_entry(self) -> tuple[Any, ...]:
        keys = [
            (self.messages_received, ("publication", "")),
            (self.transport_sent, ("websocket", "push_publication", "")),
            (self.transport_sent_size, ("websocket", "push_publication", "")),
        ]
        for key in keys:
            self._counts.setdefault(key, 0)
        self._observe(self.broadcast_duration, ("publication", ""), 0.0, 0)
        return (*keys, self._histograms[(self.broadcast_duration, ("publication", ""))])

    def publish_suppressed_by(self, reason: str) -> None:
        self._add(self.publish_suppressed, (reason, ""))

    def survey(self, op: str, seconds: float) -> None:
        self._observe_summary(self.survey_duration, (op,), seconds)
        self._observe(self.survey_histogram, (op,), seconds)

    def ping_pong(self, seconds: float, transport: str = "websocket") -> None:
        self._observe(self.ping_pong_histogram, (transport,), seconds)

    def api_command(self, method: str, seconds: float, protocol: str = "http") -> None:
        labels = (protocol, method)
        self._observe_summary(self.api_duration, labels, seconds)
        self._observe(self.api_duration_histogram, labels, seconds)

    def api_commands(self, method: str, n: int, seconds: float, protocol: str = "http") -> None:
        """``n`` commands that ran as one group in ``seconds`` (a batch's publishes): ``n``
        observations of their mean duration."""
        labels = (protocol, method)
        self._observe_summary(self.api_duration, labels, seconds / n, n)
        self._observe(self.api_duration_histogram, labels, seconds / n, n)

    def api_error(self, method: str, error: str, protocol: str = "http") -> None:
        self._add(self.api_errors, (protocol, method, error))

    def proxy_duration(self, labels: tuple[str, str, str], seconds: float) -> None:
        """One proxy call took ``seconds`` (labels: protocol, type, name)."""
        self._observe_summary(self.proxy_duration_summary, labels, seconds)
        self._observe(self.proxy_duration_histogram, labels, seconds)

    def proxy_error(self, labels: tuple[str, str, str]) -> None:
        self._add(self.proxy_errors, labels)

    def consumer_started(self, name: str) -> None:
        """A consumer's two series exist from its start (Centrifugo's InitConsumerMetrics)."""
        self._child(self.consumer_processed, name)
        self._child(self.consumer_errors, name)

    def consumer_done(self, name: str, processed: int = 0, errors: int = 0) -> None:
        if processed:
            self._add(self.consumer_processed, (name,), processed)
        if errors:
            self._add(self.consumer_errors, (name,), errors)

    def proxy_inflight(self, labels: tuple[str, str, str], delta: int) -> None:
        self._child(self.proxy_inflight_requests, *labels).inc(delta)

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
        self.flush()
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
        """This process's metrics, or the sum over all workers in multiprocess mode (the
        others' as of their last flush, at most a second ago)."""
        self.flush()
        families = [*self._registry_for_reading().collect(), *process_families(node_pids())]
        return self._exposition.render(families)
