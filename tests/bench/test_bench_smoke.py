"""Keep the benchmark suite runnable: every scenario at a tiny size against relay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_bench_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "smoke: 5 scenarios" in proc.stdout
