"""Smoke test of the benchmark suite's pieces (``bench/``), so they cannot rot silently.

The benchmarks themselves are not part of the test run (``python bench/run.py``); this
only checks the proc-connector observer on one short-lived child (root only) and the
report's statistics, goals and Markdown on made-up numbers. A few seconds at most.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import cnproc  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402


def _observer_or_skip() -> cnproc.Observer:
    ok, why = cnproc.available()
    if not ok:
        pytest.skip(why)
    return cnproc.Observer()


def test_observer_sees_fork_exec_exit_of_a_child_with_kernel_timestamps() -> None:
    with _observer_or_skip() as observer:
        before = time.monotonic_ns()
        child = subprocess.Popen(["/bin/sh", "-c", "exit 3"])
        child.wait()
        observer.settle()
        after = time.monotonic_ns()
        found = [proc for proc in observer.children(os.getpid()) if proc.pid == child.pid]
    assert len(found) == 1
    proc = found[0]
    assert proc.exec_ns is not None and proc.exit_ns is not None
    assert before <= proc.fork_ns <= proc.exec_ns <= proc.exit_ns <= after  # one clock: CLOCK_MONOTONIC
    assert os.WIFEXITED(proc.status) and os.WEXITSTATUS(proc.status) == 3


def test_observer_follows_grandchildren_and_ignores_others() -> None:
    with _observer_or_skip() as observer:
        child = subprocess.Popen(["/bin/sh", "-c", "/bin/true; /bin/true; exit 0"])
        child.wait()
        observer.settle()
        tree = observer.descendants(child.pid)
        alive = observer.alive(child.pid)
    assert len(tree) == 2 and all(proc.ppid == child.pid for proc in tree)
    assert not alive


def test_parse_ignores_truncated_datagrams() -> None:
    assert cnproc.parse(b"") == []
    assert cnproc.parse(b"\x00" * 10) == []


def test_statistics_and_ratios() -> None:
    found = report.cell([5.0, 1.0, 3.0, 2.0, 4.0])
    assert found["median"] == 3.0 and found["p95"] == 5.0 and found["n"] == 5
    assert report.cell([])["na"]
    assert report.ratio({"median": 3.0}, {"median": 1.5}) == 2.0
    assert report.ratio({"median": 3.0}, report.na("x")) is None
    assert report.ratio({"median": 3.0}, {"median": 0.0}) is None
    assert report.fmt_time(0.000_250) == "250 µs"
    assert report.fmt_time(0.0123) == "12.3 ms"
    assert report.fmt_time(1.5) == "1.5 s"
    assert report.fmt_cell({"median": 0.001, "p95": 0.002, "n": 9}, "s") == "1 ms / 2 ms"


def _fake_results() -> dict:
    def cells(**values: float) -> dict:
        return {key: report.cell([value, value * 1.1]) for key, value in values.items()}

    respawn = {
        crasher: {
            key: dict.fromkeys(run.RESPAWN_METRICS, cell)
            for key, cell in cells(
                posix_spawn=0.0002, pidfd=0.0003, same_work=0.0004, supervision=0.0005, circus=0.01, supervisord=1.0
            ).items()
        }
        for crasher in run.CRASHERS
    }
    hold = {"bringup": 0.5, "launch_to_all": 0.8, "stop_children": 0.1, "stop_daemon": 0.2}
    holds = {count: {key: [dict(hold)] for key in report.PROCESS_COLUMNS} for count in (100, 500)}
    holds[500]["supervision"] = [dict(hold, bringup=0.9)]
    idle = {key: {"idle_cpu": 0.0001, "idle_wakeups": 1.0, "rss": 20 * 2**20} for key in report.PROCESS_COLUMNS}
    results = {
        "process_rows": run.process_rows(respawn, holds, idle, 30.0),
        "inproc_rows": [
            {
                "id": "inproc/restart",
                "scenario": "crash→restart ×10",
                "n": 10,
                "floor": {"median": 1.0, "n": 1},
                "supervision": {"median": 1.5, "n": 1},
            }
        ],
        "other_rows": [{"scenario": "re-exec", "value": report.na("re-exec not implemented yet"), "note": "x"}],
        "meta": {"quick": True, "date": "today", "settings": {"circus": "check_delay=0.001"}, "samples": ["n = 2"]},
    }
    results["goals"] = run.goals(results)
    return results


def test_goals_on_fake_numbers() -> None:
    goals = {goal["name"]: goal for goal in _fake_results()["goals"]}
    assert goals["respawn reaction, false: within 1.5× the asyncio+pidfd floor"]["met"] is False  # 0.5 / 0.3 ms
    assert goals["respawn reaction, false: ≥ 20× faster than circus at its fastest"]["met"] is True  # 10 / 0.5 ms
    assert goals["respawn reaction, false: ≥ 1 000× faster than supervisord"]["met"] is True
    assert goals["bring-up of 500 within 1.3× the floor"]["met"] is False  # 0.9 / 0.5
    assert "missed by" in goals["bring-up of 500 within 1.3× the floor"]["why"]
    assert goals["idle CPU no higher than supervisord's"]["met"] is True
    assert goals["in-process restart within 2× the asyncio floor"]["met"] is True


def test_markdown_report_on_fake_numbers() -> None:
    text = report.markdown(_fake_results())
    assert "| crash→respawn `/bin/false` | exit → exec of the next (reaction) |" in text
    assert "≤1.5× floor: **missed** (1.67×)" in text
    assert "n/a (re-exec not implemented yet)" in text
    assert "`sh -c 'exit 1'`" in text  # quotes survive, pipes would be escaped
    header = next(line for line in text.splitlines() if line.startswith("| scenario | metric"))
    for line in text.splitlines():
        if line.startswith("| crash→respawn"):
            assert line.count(" | ") == header.count(" | ")  # no stray column
