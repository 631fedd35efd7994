"""Prometheus metrics with Centrifugo's exact families (see ``node.py``)."""

from relay.metrics.node import Metrics

__all__ = ["Metrics"]
