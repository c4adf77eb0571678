"""Re-exec during a crash storm: the OS children that run are kept (same pids), the
storm goes on in the new image, no fd is leaked, and SIGTERM stops it within 2 s."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli_helpers import Run

from .common import (
    STORM,
    assert_nothing_left,
    fd_count,
    kill_if_running,
    restarts,
    stop_timed,
    storm_tree,
    wait_storming,
)

pytestmark = pytest.mark.slow

KEPT = 4
SLEEPERS = ", ".join(f"sv.process('keep{i}', ['sleep', '1000'])" for i in range(KEPT))


def _kept(run: Run) -> dict[str, int]:
    return {path: node["pid"] for path, node in run.nodes().items() if path.startswith("keep")}


@pytest.mark.timeout(120)
def test_reexec_during_a_crash_storm_keeps_the_children_and_leaks_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path, storm_tree(tmp_path, STORM, extra=SLEEPERS))
    try:
        wait_storming(run, at_least=STORM * 5)
        kept = _kept(run)
        assert len(kept) == KEPT and all(kept.values())
        fds = fd_count(run.proc.pid)
        for _ in range(3):
            done = run.cli("reexec")
            assert re.fullmatch(r"re-executed: pid \d+, \d+ OS process\(es\) kept, in \d+ ms\n", done.stdout)
            assert _kept(run) == kept  # the same processes, never restarted
            assert all(node["restarts"] == 0 for path, node in run.nodes().items() if path.startswith("keep"))
            wait_storming(run, at_least=restarts(run) + STORM * 5)  # the storm goes on in the new image
        assert fd_count(run.proc.pid) <= fds + STORM  # no fd kept by an image for nothing
        before = run.pids()
        took = stop_timed(run, "SIGTERM")
        assert took < 2.0, f"stopped after {took:.2f}s"
        assert_nothing_left(run, before)
    finally:
        kill_if_running(run)
