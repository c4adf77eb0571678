"""Smoke test of bench/stores.py (restart latency, SQLite store against memory store),
so it cannot rot: a tiny run that must produce both measurements and their ratio.
The benchmark itself is run by hand (python bench/stores.py); see docs/performance.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "stores.py"


@pytest.mark.timeout(120)
def test_the_store_benchmark_measures_both_stores() -> None:
    argv = [sys.executable, str(BENCH), "--savers", "20", "--restarts", "5", "--repeat", "1", "--json"]
    result = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True, timeout=100).stdout)
    for kind in ("memory", "sqlite"):
        assert 0 < result[kind]["median"] <= result[kind]["p95"] < 5.0
        assert result[kind]["saves"] > 0
    assert result["ratio"] == pytest.approx(result["sqlite"]["median"] / result["memory"]["median"])
