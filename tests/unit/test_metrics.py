"""The metrics package: Centrifugo's families, its text format, mergeable quantiles."""

from __future__ import annotations

import math
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.metrics import Metrics
from relay.metrics.exposition import format_value
from relay.metrics.families import FAMILIES, NOT_EXPOSED
from relay.metrics.sketch import GAMMA, SLOT_SECONDS, bucket_of, quantiles, value_of

GO_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def parse(text: str) -> dict[str, tuple[str, str, list[str]]]:
    """family -> (type, help, sample lines) of a text exposition."""
    out: dict[str, tuple[str, str, list[str]]] = {}
    helps: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, text_ = line[7:].partition(" ")
            helps[name] = text_
        elif line.startswith("# TYPE "):
            current, _, kind = line[7:].partition(" ")
            out[current] = (kind, helps[current], [])
        else:
            out[current][2].append(line)
    return out


def busy_metrics() -> Metrics:
    m = Metrics(version="6.6.2 OSS")
    m.command("connect", 0.0002)
    m.command("publish", 0.0011)
    m.reply_error("subscribe", 103)
    m.server_disconnect(3001)
    m.server_unsubscribe(2500)
    m.close_sent(3001)
    m.recover(True, True)
    m.connection_accepted("websocket", "", "")
    m.subscriptions_changed("", 1)
    m.frame_received("connect", 120)
    m.frames_sent("push_publication", 3, 300)
    m.publication_delivered(3, 100, 0.00002)
    m.action("add_client")
    m.message_sent("publication")
    m.message_received("publication")
    m.connection_refused()
    m.publish_suppressed_by("idempotency")
    m.survey("channels", 0.001)
    m.ping_pong(0.0003)
    m.api_command("publish", 0.002)
    m.api_error("publish", "102")
    m.proxy_duration(("http", "connect", "default"), 0.003)
    m.proxy_error(("http", "connect", "default"))
    m.proxy_inflight(("http", "connect", "default"), 0)
    m.consumer_started("outbox")
    m.consumer_done("outbox", processed=2, errors=1)
    return m


def test_the_list_is_centrifugos_whole_list() -> None:
    """74 families in Centrifugo 6.9.1 (centrifuge metrics.go + centrifugo metrics.go)."""
    assert not FAMILIES.keys() & NOT_EXPOSED.keys()
    assert len(FAMILIES) + len(NOT_EXPOSED) == 74
    assert all(reason for reason in NOT_EXPOSED.values())


def test_every_family_is_exposed_as_centrifugo_declares_it() -> None:
    exposed = parse(busy_metrics().exposition().decode())
    for name, spec in FAMILIES.items():
        assert name in exposed, name
        kind, help_, samples = exposed[name]
        assert (kind, help_) == (spec.kind, spec.help), name
        for line in samples:
            labels = set(re.findall(r'(\w+)="', line)) - {"le", "quantile"}
            assert labels == set(spec.labels), (name, line)
    assert {n for n in exposed if n.startswith("centrifugo_")} == set(FAMILIES)


def test_counters_keep_their_names_and_have_no_created_series() -> None:
    text = busy_metrics().exposition().decode()
    assert (
        'centrifugo_node_messages_sent_count{channel_namespace="",type="publication"} 1\n' in text
    )
    assert "_count_total" not in text and "_created" not in text
    assert 'centrifugo_api_command_errors_total{error="102",method="publish",protocol="http"} 1'
    assert "# TYPE centrifugo_api_command_errors_total counter" in text
    assert 'relay_bus_messages_total{event="gaps"} 0\n' in text


def test_summaries_have_go_quantiles_and_histograms_go_buckets() -> None:
    text = busy_metrics().exposition().decode()
    base = 'centrifugo_client_command_duration_seconds{channel_namespace="",method="connect"'
    for q in ("0.5", "0.99", "0.999"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f'{base},quantile="{q}"}}'))
        assert abs(float(line.rsplit(" ", 1)[1]) - 0.0002) <= 0.0002 * 0.01
    les = re.findall(
        r'centrifugo_api_command_duration_seconds_histogram_bucket\{le="([^"]+)"', text
    )
    assert les == [format_value(b) for b in GO_DEFAULT_BUCKETS] + ["+Inf"]
    assert FAMILIES["centrifugo_api_command_duration_seconds_histogram"].buckets == (
        GO_DEFAULT_BUCKETS
    )


def test_a_summary_window_forgets_after_ten_minutes() -> None:
    m = Metrics()
    m.tick(1_000_000.0)
    m.command("history", 0.5)
    m.tick(1_000_000.0 + 5 * SLOT_SECONDS)  # every slot entered again since
    m.command("history", 0.001)
    text = m.exposition().decode()
    q = re.search(r'method="history",quantile="0.999"\} (\S+)', text)
    assert q is not None and float(q.group(1)) == pytest.approx(0.001, rel=0.01)
    assert (
        'centrifugo_client_command_duration_seconds_count{channel_namespace="",method="history"} 2'
    )


def test_an_empty_window_reports_nan() -> None:
    m = Metrics()
    m.tick(2_000_000.0)
    m.command("rpc", 0.1)
    m.tick(2_000_000.0 + 6 * SLOT_SECONDS)
    assert 'method="rpc",quantile="0.5"} NaN' in m.exposition().decode()


@given(st.lists(st.floats(1e-7, 100.0), min_size=1, max_size=300))
def test_sketch_quantiles_are_within_one_percent(values: list[float]) -> None:
    counts: dict[int, float] = {}
    for v in values:
        counts[bucket_of(v)] = counts.get(bucket_of(v), 0) + 1
    ordered = sorted(values)
    for q, got in quantiles(counts).items():
        exact = ordered[max(1, math.ceil(q * len(values))) - 1]
        assert abs(got - exact) <= exact * (GAMMA - 1) / (GAMMA + 1) + 1e-12


def test_sketches_merge_by_adding_counts() -> None:
    rng = random.Random(7)
    a = [rng.lognormvariate(-7, 1) for _ in range(500)]
    b = [rng.lognormvariate(-5, 1) for _ in range(500)]

    def sketch(values: list[float]) -> dict[int, float]:
        out: dict[int, float] = {}
        for v in values:
            out[bucket_of(v)] = out.get(bucket_of(v), 0) + 1
        return out

    merged = sketch(a)
    for k, v in sketch(b).items():
        merged[k] = merged.get(k, 0) + v
    assert quantiles(merged) == quantiles(sketch(a + b))
    assert value_of(bucket_of(0.0)) == 0.0


def test_process_families_as_go_names_them() -> None:
    exposed = parse(Metrics().exposition().decode())
    expected = {
        "process_cpu_seconds_total": "counter",
        "process_max_fds": "gauge",
        "process_network_receive_bytes_total": "counter",
        "process_network_transmit_bytes_total": "counter",
        "process_open_fds": "gauge",
        "process_resident_memory_bytes": "gauge",
        "process_start_time_seconds": "gauge",
        "process_virtual_memory_bytes": "gauge",
        "process_virtual_memory_max_bytes": "gauge",
    }
    assert {n: exposed[n][0] for n in expected} == expected
    assert float(exposed["process_resident_memory_bytes"][2][0].split()[1]) > 1e6
    assert float(exposed["process_open_fds"][2][0].split()[1]) >= 3
