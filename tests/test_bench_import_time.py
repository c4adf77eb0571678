"""Smoke test of ``bench/import_time.py``, so that it cannot rot silently: one round of
each command against a real running tree, and the summary's arithmetic. The goals are
not asserted here (timings under the load of a test run say little): see the bench."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import import_time  # noqa: E402


def test_one_round_against_a_running_tree() -> None:
    measured = import_time.measure(rounds=1)
    assert set(measured["samples"]) == {"bare", "floor", "import", "runtime", "status"}
    assert all(len(values) == 1 and values[0] > 0 for values in measured["samples"].values())
    summary = import_time.summarise(measured)
    assert summary["ratio_to_floor"]["floor"] == 1.0
    assert set(summary["goals"]) == {"import", "status"}
    assert "status" in import_time.table(measured, summary)


def test_summary_on_made_up_numbers() -> None:
    measured = {
        "python": "python",
        "rounds": 3,
        "commands": {"bare": "", "floor": "", "import": "", "status": ""},
        "samples": {"bare": [0.01] * 3, "floor": [0.05, 0.06, 0.04], "import": [0.06] * 3, "status": [0.08] * 3},
    }
    summary = import_time.summarise(measured)
    assert summary["median_ms"]["floor"] == 50.0 and summary["min_ms"]["floor"] == 40.0
    assert summary["goals"]["import"] == {"ratio": 1.2, "goal": 1.3, "met": True}
    assert summary["goals"]["status"] == {"ratio": 1.6, "goal": 1.5, "met": False}
    assert "MISSED" in import_time.table(measured, summary)
