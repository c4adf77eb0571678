"""Smoke test of ``bench/scale.py`` (how the cost grows with the tree) at tiny sizes, so
it cannot rot silently: the growth verdicts on made-up numbers, the in-process part on
10 and 20 workers, the OS-process part on one real ``supervision run`` of 3 children
(reload checked by pids), and the plots when matplotlib is installed (``.[bench]``).
The measurements themselves are not checked: speed is measured in bench/, never asserted."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import run  # noqa: E402
import scale  # noqa: E402


def test_growth_verdicts() -> None:
    sizes = [10, 100, 1000]
    linear = [1.0, 10.0, 100.0]
    assert [round(s, 6) for s in scale.slopes(sizes, linear)] == [1.0, 1.0]  # type: ignore[arg-type]
    text, ok = scale.verdict(sizes, linear, expected=1)
    assert ok and text.startswith("linear or better")
    text, ok = scale.verdict(sizes, [1.0, 10.0, 1000.0], expected=1)  # quadratic from 100 on
    assert not ok and "100→1,000" in text
    assert scale.verdict(sizes, [5.0, 5.0, 5.5], expected=0)[1]
    assert scale.verdict(sizes, [0.0, 0.0, 0.0], expected=0) == ("zero at every size", True)
    assert scale.verdict(sizes, [None, None, None], expected=1) == ("not measured", True)
    assert scale.output_for(10_000, 20_000) == "inherit" and scale.output_for(1_000, 20_000) == "prefix"


def test_workers_at_tiny_sizes() -> None:
    plan = scale.ScalePlan((), (10, 20), 1, 1, 0.0, 12)
    found = {"workers": scale.workers(plan)}
    rows = found["workers"]["rows"]
    assert [row["n"] for row in rows] == [10, 20]
    for row in rows:
        for who in ("supervision", "floor"):
            assert row[who]["restarts"] == 7 and 0 < row[who]["restart"] <= row[who]["restart_p95"]
            assert row[who]["start"] > 0
    text = scale.markdown(found)
    assert "| 10 | " in text and "| 20 | " in text and "workers (supervision): restart latency" in text


def test_processes_one_tiny_daemon_reload_restarts_exactly_one() -> None:
    plan = scale.ScalePlan((3,), (), 1, 1, 0.1, 0)
    workdir = Path(tempfile.mkdtemp(prefix="sv-scale-test-"))
    bench = run.Bench(run.Plan.make(True), None, workdir)  # no observer: /proc polling, as without root
    try:
        found = {"processes": scale.processes(bench, plan)}
    finally:
        for daemon in list(bench.live):
            bench.stop(daemon, timeout=10.0)
        shutil.rmtree(workdir, ignore_errors=True)
    row = found["processes"]["rows"][0]
    assert not row.get("failed"), bench.notes
    assert row["reload_checked"] is True, bench.notes  # one child restarted each way, by pids and by the reply
    assert row["rss"] > 0 and row["status_protocol"] > 0 and row["stop_daemon"] > 0
    assert bench.strays == 0 and not bench.forced
    assert "exactly one child restarted (pids) | yes |" in scale.markdown(found)


def test_plots_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    row = {
        "rss": 30e6,
        "threads": 3,
        "fds": 40,
        "idle_cpu": 0.0,
        "idle_wakeups": 0.0,
        "bringup": 0.01,
        "launch_to_all": 0.4,
        "status_protocol": 0.001,
        "status_cli": 0.1,
        "reload_protocol": 0.01,
        "reload_cli": 0.2,
        "stop_children": 0.01,
        "stop_daemon": 0.07,
        "output": "prefix",
    }
    processes = {"rows": [{**row, "n": n, "rss": 30e6 + 3000 * n} for n in (10, 100)]}
    worker = {"start": 1e-3, "bytes": 4096.0, "restart": 1.5e-5}
    workers = {"rows": [{"n": n, "supervision": worker, "floor": worker} for n in (10, 1000)]}
    written = scale.plot({"processes": processes, "workers": workers}, tmp_path)
    assert [path.name for path in written] == ["scale-processes.png", "scale-workers.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in written)
