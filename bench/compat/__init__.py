"""Wire-compatibility harness: relay vs the real Centrifugo, side by side.

``python -m bench.compat`` starts both servers from one shared v6 config (or talks to
already running ones given ``--relay-url`` / ``--centrifugo-url``), plays the same
scripted WebSocket / HTTP exchanges against each, normalizes the recordings and writes a
markdown diff report to ``bench/compat/REPORT.md``.
"""
