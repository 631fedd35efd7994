"""The fuzz targets (fuzz/targets.py): their corpora replayed, and a short atheris run each.

``RELAY_FUZZ_SECONDS`` sets the length of each run (60 by default; 0 skips them); the
long runs are described in docs/fuzzing.md. Any crash input found is kept under
``fuzz/regressions/TARGET/`` and replayed here for good.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("RELAY_FUZZ_SECONDS", "60"))


def _inputs(kind: str) -> list[tuple[str, Path]]:
    return sorted(
        (target, path)
        for target in TARGETS
        for path in (ROOT / "fuzz" / kind / target).glob("*")
        if path.is_file()
    )


@pytest.mark.parametrize(
    ("target", "path"), _inputs("corpus") + _inputs("regressions"), ids=lambda v: str(v)[-24:]
)
def test_corpus_input_passes(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())


def test_every_target_has_seeds() -> None:
    assert {t for t, _ in _inputs("corpus")} == set(TARGETS)


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 120)
@pytest.mark.skipif(SECONDS == 0, reason="RELAY_FUZZ_SECONDS=0")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "fuzz", target, str(SECONDS)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=SECONDS + 90,
    )
    crashes = list(tmp_path.glob("crash-*")) + list(tmp_path.glob("timeout-*"))
    assert run.returncode == 0 and not crashes, run.stderr[-4000:]
