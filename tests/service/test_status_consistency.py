"""``status`` is one snapshot of the tree at one moment: right after a crash, the new
pid, the restart count, the last exit and the uptime all agree. A real ``supervision
run``, a child SIGKILLed right after each start, every reply checked."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.cli_helpers import DEADLINE, Run, request, wait_until, walk

APP = """
import sys
import supervision as sv

LOOP = "import time\\nwhile True: time.sleep(1)"

def build():
    return sv.Supervisor(
        [
            sv.process("web", [sys.executable, "-c", LOOP]),
            sv.child("db", sv.Supervisor([sv.process("pool", [sys.executable, "-c", LOOP])], intensity=1000)),
        ],
        intensity=1000, period=1,
    )
"""

ROUNDS = 15


def check(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every node of a status reply agrees with itself; the nodes by path."""
    nodes = dict(walk(status["children"]))
    for path, node in nodes.items():
        assert node["restarts"] == max(0, node["starts"] - 1), (path, node)
        if node["status"] == "running":
            assert node["uptime"] is not None, (path, node)
            if node["kind"] == "process":
                assert node["pid"] is not None, (path, node)
            if node["starts"] >= 2:
                # It was restarted, so it exited before: that exit is known, and the
                # running incarnation started after it.
                assert node["last_exit"] is not None, (path, node)
                assert node["uptime"] <= node["last_exit"]["ago"] + 0.002, (path, node)
        else:
            assert node["pid"] is None and node["uptime"] is None, (path, node)
    return nodes


def running(run: Run, path: str) -> dict[str, Any] | None:
    node = check(request(run.control, "status"))[path]
    return node if node["status"] == "running" else None


def test_status_right_after_a_crash_is_one_consistent_snapshot(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    run = Run(tmp_path, "app.py")
    try:
        run.wait_running()
        for path in ("web", "db/pool"):
            for round in range(ROUNDS):
                node = wait_until(lambda path=path: running(run, path), f"{path} running")
                assert node["starts"] == round + 1, node
                os.kill(node["pid"], signal.SIGKILL)
                deadline = time.monotonic() + DEADLINE
                while True:  # every reply until the next incarnation runs
                    now = check(request(run.control, "status"))[path]
                    if now["status"] == "running" and now["pid"] != node["pid"]:
                        break
                    assert time.monotonic() < deadline, now
                assert now["starts"] == round + 2 and now["restarts"] == round + 1, now
                assert now["last_exit"]["reason"] == "crash" and now["last_exit"]["signal"] == signal.SIGKILL, now
    finally:
        run.close()
