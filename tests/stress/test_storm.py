"""A crash storm: 40 process children that exit as soon as they start, restarted for
ever without backoff. The daemon must stay in control: it stops within 2 s on
SIGTERM, on SIGINT and on ``supervision stop``, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import Run, ping

from .common import STORM, assert_nothing_left, fd_count, kill_if_running, stop_timed, storm_tree, wait_storming

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("how", ["SIGTERM", "stop", "SIGINT"])
def test_a_storm_of_crashing_children_stops_within_2s(tmp_path: Path, how: str) -> None:
    run = Run(tmp_path, storm_tree(tmp_path))
    try:
        wait_storming(run, at_least=STORM * 5)
        fds = fd_count(run.proc.pid)
        assert ping(run.control) is not None  # the control socket answers during the storm
        wait_storming(run, at_least=STORM * 15)
        assert fd_count(run.proc.pid) <= fds + STORM  # fds flat: one pidfd and two pipes come and go
        before = run.pids()
        took = stop_timed(run, how)
        assert took < 2.0, f"{how}: stopped after {took:.2f}s"
        assert_nothing_left(run, before)
    finally:
        kill_if_running(run)
