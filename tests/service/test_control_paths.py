"""A path in a control request names a child: an empty or malformed one is a
``BadRequest``, never the root. Only a request without a path (``supervision
stop`` with no argument) means the whole tree."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import DEADLINE, Run, ping

APP = """
import asyncio
import supervision as sv

async def idle(ctx):
    await asyncio.Event().wait()

def build():
    return sv.Supervisor([
        sv.child("idle", idle),
        sv.child("db", sv.Supervisor([sv.process("pool", ["sleep", "1000"])])),
    ])
"""

BAD_PATHS = ["", "/", "//", "/db", "db/", "db//pool", "/db/pool/"]
COMMANDS = ["status", "restart", "stop", "start", "logs"]


@pytest.fixture
def run(tmp_path: Path) -> object:
    (tmp_path / "app.py").write_text(APP)
    running = Run(tmp_path, "app.py")
    running.wait_running()
    yield running
    running.close()


def exchange(path: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(DEADLINE)
        sock.connect(path)
        sock.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return [json.loads(line) for line in received.splitlines()]


def all_running(run: Run) -> bool:
    return {path: node["status"] for path, node in run.nodes().items()} == {
        "idle": "running",
        "db": "running",
        "db/pool": "running",
    }


def test_an_empty_or_malformed_path_is_a_bad_request_for_every_command(run: Run) -> None:
    requests = [
        {"v": 1, "id": i, "cmd": cmd, "path": path}
        for i, (cmd, path) in enumerate((cmd, path) for cmd in COMMANDS for path in BAD_PATHS)
    ]
    replies = exchange(run.control, requests)
    assert len(replies) == len(requests)
    for request, reply in zip(requests, replies, strict=True):
        assert reply["id"] == request["id"]
        assert reply["ok"] is False, (request, reply)
        assert reply["error"]["type"] == "BadRequest", (request, reply)
        assert "path" in reply["error"]["message"]
    assert ping(run.control) is not None
    assert all_running(run)  # nothing was stopped, the tree least of all


def test_stop_with_an_empty_path_stops_nothing(run: Run) -> None:
    done = run.cli("stop", "", expect=1)
    assert "empty" in done.stderr and "Traceback" not in done.stderr
    assert "stopped" not in done.stdout
    done = run.cli("stop", "/", expect=1)
    assert "malformed path '/'" in done.stderr and "Traceback" not in done.stderr
    for args in (("status", ""), ("restart", ""), ("start", ""), ("logs", ""), ("restart", "db//pool")):
        done = run.cli(*args, expect=1)
        assert "BadRequest" in done.stderr or "path" in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert run.proc.poll() is None
    assert all_running(run)


def test_good_paths_still_work_and_stop_without_a_path_stops_the_tree(run: Run) -> None:
    replies = exchange(
        run.control,
        [
            {"v": 1, "cmd": "status", "path": "db/pool"},
            {"v": 1, "cmd": "status", "path": None},  # null: no path
            {"v": 1, "cmd": "logs", "path": "db"},
            {"v": 1, "cmd": "stop", "path": "db/pool"},
            {"v": 1, "cmd": "start", "path": "db/pool"},
        ],
    )
    assert [reply["ok"] for reply in replies] == [True] * 5, replies
    assert [node["path"] for node in replies[1]["result"]["children"]] == ["idle", "db"]
    assert replies[3]["result"]["status"] == "terminated"
    done = run.cli("stop")
    assert done.stdout == "stopped\n"
    assert run.wait_exit() == 0
