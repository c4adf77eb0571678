"""Smoke test of ``bench/dynamic.py`` (dynamic children against bare tasks, scaling
against circus), so it cannot rot: tiny sizes, supervision alone. A few seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_dynamic_benchmark_runs_and_reports_both_scenarios(tmp_path: Path) -> None:
    out = tmp_path / "dynamic.json"
    argv = [sys.executable, str(BENCH / "dynamic.py"), "-n", "300", "--instances", "3", "--repeat", "1"]
    done = subprocess.run(
        [*argv, "--no-circus", "--json", str(out)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["inproc"]["n"] == 300 and result["inproc"]["start_ratio"] > 0
    assert set(result["scaling"]) == {"count", "supervision"}
    assert result["scaling"]["supervision"]["up"] > 0 and result["scaling"]["supervision"]["down"] > 0
    assert "`start_child` x 300" in done.stdout and "| supervision |" in done.stdout
