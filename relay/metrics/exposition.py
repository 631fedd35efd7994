"""The Prometheus text format as Centrifugo's Go client writes it.

prometheus-client (Python) stores the values and adds them up over the workers; this
writer renders what it collected the way ``client_golang`` does for Centrifugo:

* a counter keeps the name it was declared with: ``centrifugo_node_messages_sent_count``,
  not ``..._count_total``; there are no ``_created`` series;
* a summary carries its ``quantile`` series (0.5, 0.99, 0.999), read from the merged
  sketches of ``sketch.py`` (NaN when its window holds no observation), then ``_sum``
  and ``_count``;
* families sorted by name, labels by label name, integral values without a fraction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from relay.metrics.sketch import OBJECTIVES, quantiles

__all__ = ["SKETCH_FAMILY", "Exposition", "format_value", "series_key"]

#: the hidden gauge family that holds every summary's sketch counts
SKETCH_FAMILY = "relay_summary_sketch"
_SEP = "\x1f"


def series_key(values: Iterable[str]) -> str:
    """One summary child's label values as the sketch family stores them."""
    return _SEP.join(values)


def format_value(value: float) -> str:
    """A sample value as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` mostly writes it."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


@dataclass
class Exposition:
    """How to render what the registry collected: the names and label orders it needs."""

    #: a counter family's collected name -> the name it is exposed under
    counter_names: dict[str, str] = field(default_factory=dict)
    #: a summary family's name -> its label names in declaration order
    summary_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def render(self, families: Iterable[Metric]) -> bytes:
        collected = list(families)
        sketches = _sketch_counts(collected)
        blocks: list[tuple[str, list[str]]] = []
        for family in collected:
            if family.name == SKETCH_FAMILY:
                continue
            name = self._exposed_name(family)
            lines = [f"# HELP {name} {_escape_help(family.documentation)}"]
            lines.append(f"# TYPE {name} {family.type}")
            if family.type == "summary":
                lines += self._summary_lines(family, sketches.get(family.name, {}))
            else:
                lines += _sample_lines(family, name)
            if len(lines) > 2:
                blocks.append((name, lines))
        blocks.sort(key=lambda block: block[0])
        text = "\n".join(line for _, lines in blocks for line in lines)
        return (text + "\n").encode("utf-8") if text else b""

    def _exposed_name(self, family: Metric) -> str:
        if family.type == "counter":
            return self.counter_names.get(family.name, family.name + "_total")
        return family.name

    def _summary_lines(self, family: Metric, sketches: dict[str, dict[int, float]]) -> list[str]:
        names = self.summary_labels.get(family.name, ())
        lines: list[str] = []
        children: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
        for sample in family.samples:
            suffix = sample.name[len(family.name) :]
            if suffix in ("_sum", "_count"):
                key = tuple(sorted(sample.labels.items()))
                children.setdefault(key, {})[suffix] = sample.value
        for key in sorted(children):
            labels = dict(key)
            counts = sketches.get(series_key(labels.get(n, "") for n in names), {})
            for q, value in quantiles(counts, OBJECTIVES).items():
                with_q = _labels({**labels, "quantile": format_value(q)})
                lines.append(f"{family.name}{with_q} {format_value(value)}")
            for suffix in ("_sum", "_count"):
                value = children[key].get(suffix, 0.0)
                lines.append(f"{family.name}{suffix}{_labels(labels)} {format_value(value)}")
        return lines


def _order(family: Metric) -> list[Any]:
    """Samples by label values as Go orders them; a histogram's buckets stay in order."""
    samples = [s for s in family.samples if not s.name.endswith("_created")]

    def key(sample: Any) -> tuple[tuple[tuple[str, str], ...], int]:
        labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
        return labels, _SUFFIX_RANK.get(sample.name[len(family.name) :], 0)

    return sorted(samples, key=key)  # stable: bucket order kept within a child


_SUFFIX_RANK = {"_bucket": 0, "_sum": 1, "_count": 2}


def _sample_lines(family: Metric, name: str) -> list[str]:
    lines = []
    for sample in _order(family):
        sample_name = sample.name
        if family.type == "counter":
            sample_name = name
        labels = sample.labels
        if "le" in labels:  # Go writes le="1", prometheus-client le="1.0"
            labels = {**labels, "le": format_value(float(labels["le"]))}
        lines.append(f"{sample_name}{_labels(labels)} {format_value(sample.value)}")
    return lines


def _sketch_counts(families: list[Metric]) -> dict[str, dict[str, dict[int, float]]]:
    """family -> series -> bucket -> count, summed over slots (and workers, collected)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for family in families:
        if family.name != SKETCH_FAMILY:
            continue
        for sample in family.samples:
            labels = sample.labels
            buckets = out.setdefault(labels["family"], {}).setdefault(labels["series"], {})
            bucket = int(labels["bucket"])
            buckets[bucket] = buckets.get(bucket, 0.0) + sample.value
    return out
