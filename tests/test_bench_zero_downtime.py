"""Smoke test of ``bench/zero_downtime.py`` (so it cannot rot silently), and zero
downtime itself, briefly: a real HTTP service behind a held socket, restarted and
reloaded with ``restart_mode="overlap"`` under a steady load, drops no request. The
peers (supervisord, circus) and the latency figures are the benchmark's business."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import zero_downtime  # noqa: E402


@pytest.mark.timeout(180)
def test_restarts_and_reloads_under_load_drop_no_request(tmp_path: Path) -> None:
    args = argparse.Namespace(rate=50.0, restarts=3, reloads=3, steady=0.5, tail=0.2, timeout=10.0)
    result = zero_downtime.run_contender(zero_downtime.CONTENDERS["supervision"], args)
    for phase in ("steady", "restarts", "reloads"):
        assert result[phase]["requests"] > 0, phase
        assert result[phase]["failed"] == 0, (phase, result[phase])
    assert result["all"]["failed"] == 0
    assert "| supervision | restarts |" in zero_downtime.table({"supervision": result})
