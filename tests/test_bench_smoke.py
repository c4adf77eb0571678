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
                posix_spawn=0.0002,
                pidfd=0.0003,
                same_work=0.0004,
                supervision=0.0005,
                circus=0.01,
                circus_default=5.0,
                supervisord=1.0,
                supervisord_tuned=1.0,
            ).items()
        }
        for crasher in run.CRASHERS
    }
    keys = [*report.PROCESS_COLUMNS, *report.PEER_COLUMNS]
    hold = {"bringup": 0.5, "launch_to_all": 0.8, "stop_children": 0.1, "stop_daemon": 0.2}
    holds = {count: {key: [dict(hold)] for key in keys} for count in (100, 500)}
    holds[500]["supervision"] = [dict(hold, bringup=0.55)]
    holds[500]["sv_separate"] = [dict(hold, bringup=0.9, stop_children=0.3, stop_daemon=0.35)]
    idle = {key: {"idle_cpu": 0.0001, "idle_wakeups": 1.0, "rss": 20 * 2**20} for key in keys}
    idle["supervision"] = {"idle_cpu": 0.0, "idle_wakeups": 0.0, "rss": 20 * 2**20}
    results = {
        "process_rows": run.process_rows(respawn, holds, idle, 30.0),
        "inproc_rows": [
            {
                "id": "inproc/restart",
                "scenario": "crash→restart ×10",
                "n": 10,
                "floor": {"median": 1.0, "n": 1},
                "supervision": {"median": 1.5, "n": 1},
            },
            {
                "id": "inproc/start",
                "scenario": "start 10 idle workers",
                "n": 10,
                "floor": {"median": 1.0, "n": 1},
                "supervision": {"median": 2.0, "n": 1},
                "floor_bytes": 1000.0,
                "sv_bytes": 1400.0,
            },
        ],
        "other_rows": [{"scenario": "re-exec", "value": report.na("re-exec not implemented yet"), "note": "x"}],
        "meta": {"quick": True, "date": "today", "settings": {"circus": "check_delay=0.001"}, "samples": ["n = 2"]},
    }
    results["goals"] = run.goals(results)
    return results


def test_goals_on_fake_numbers() -> None:
    results = _fake_results()
    goals = {goal["name"]: goal for goal in results["goals"]}
    assert goals["respawn reaction, false: within 1.5× the asyncio+pidfd floor"]["met"] is False  # 0.5 / 0.3 ms
    assert goals["respawn reaction, false: within 1.15× the same-work floor"]["met"] is False  # 0.5 / 0.4 ms
    assert "missed by" in goals["respawn reaction, false: within 1.15× the same-work floor"]["why"]
    assert goals["in-process restart within 1.7× the bare-task floor (bench/inproc.py)"]["met"] is True
    start = goals["start 10 (the goal is set at 100,000) workers within 1.8× bare tasks"]
    assert start["met"] is False and "per start" in start["why"]
    assert goals["memory per worker (10 (the goal is set at 100,000) workers) within 1.5× a bare task's"]["met"] is True
    assert goals["bring-up of 500 (one instance group of 500) within 1.2× the floor"]["met"] is True  # 0.55 / 0.5
    separate = goals["bring-up of 500 (500 separate children) within 1.2× the floor"]
    assert separate["met"] is False and "missed by 1.50×" in separate["why"]
    assert not any("20×" in name or "1 000×" in name for name in goals)  # the retired peer goals
    # one verdict per scenario × peer × setting: supervision (0.55 s) loses the bring-up of 500 to every peer (0.5 s)
    verdicts = results["peer_verdicts"]
    scenarios = {**run.PEER_SCENARIOS, **run.PEER_EXTRA_SCENARIOS, **run.CPU_SCENARIOS}
    assert len(verdicts) == len(scenarios) * len(report.PEER_COLUMNS)
    lost = {(v["row"], v["peer"]) for v in verdicts if v["met"] is False}
    assert lost == {
        (row, peer) for row in ("bringup/500/bringup", *run.PEER_EXTRA_SCENARIOS) for peer in report.PEER_COLUMNS
    }
    idle = [v for v in verdicts if v["row"] == "idle/idle_cpu"]
    assert all(v["met"] and v["ratio"] == float("inf") for v in idle)  # supervision at 0, the peers above
    peers = goals["faster than circus and supervisord in every scenario, at their fastest and default settings"]
    total = len(run.PEER_SCENARIOS) * len(report.PEER_COLUMNS)
    assert peers["met"] is False and peers["measured"] == f"{total - 4} of {total} met"
    assert "supervision 550 ms (1.1 ms a child), circus 1 ms 500 ms (1 ms a child)" in peers["why"]
    cpu = goals["supervisor CPU per restart no more than each peer's, at both settings"]
    assert cpu["met"] is True and cpu["measured"] == "12 of 12 met"


def test_a_lost_peer_scenario_is_explained_from_the_numbers() -> None:
    results = _fake_results()
    rows = {row["id"]: row for row in results["process_rows"]}
    rows["stop/500/stop_daemon"]["values"]["circus"] = {"median": 0.15, "n": 1}  # faster than sv's 0.2 s
    verdicts = run.peer_verdicts(rows)
    lost = [v for v in verdicts if v["met"] is False and v["row"].startswith("stop/500/")]
    assert [(v["row"], v["peer"]) for v in lost] == [("stop/500/stop_daemon", "circus")]
    assert "supervision 200 ms, circus 1 ms 150 ms" in lost[0]["why"]
    assert "the last child was gone after 100 ms against 100 ms" in lost[0]["why"]


def test_markdown_report_on_fake_numbers() -> None:
    text = report.markdown(_fake_results())
    assert "| crash→respawn `/bin/false` | exit → exec of the next (reaction) |" in text
    assert "≤1.5× floor: **missed** (1.67×)" in text
    assert "n/a (re-exec not implemented yet)" in text
    assert "`sh -c 'exit 1'`" in text  # quotes survive, pipes would be escaped
    assert "orderly stop of 500: supervision as 500 separate children" in text
    assert "| idle, 100 children: CPU | **met** (∞) |" in text
    assert "≤1.8× floor: **missed** (2.00×); memory ≤1.5×: **met** (1.40×)" in text  # both goals of the start row
    for title in ("| scenario | metric | posix_spawn loop", "| scenario | metric | supervision | circus 1 ms"):
        header = next(line for line in text.splitlines() if line.startswith(title))
        body = text[text.index(header) :].split("\n\n")[0].splitlines()[2:]
        assert body and all(line.count(" | ") == header.count(" | ") for line in body)  # no stray column
