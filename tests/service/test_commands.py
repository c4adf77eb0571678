"""The control commands carried out on a real running tree (no socket: the handler
itself), where the policy is the core's: ``restart`` is one core command."""

from __future__ import annotations

import os
from typing import Any

import pytest

import supervision as sv
from supervision._service.commands import Commands
from supervision._service.protocol import ServiceState
from supervision._service.recorder import OutputLog
from tests.helpers import forever


class Host:
    """The least a ``Commands`` needs of the run that serves it."""

    def __init__(self, tree: sv.Tree) -> None:
        self.name = "test"
        self.target = "test"
        self.state = ServiceState.RUNNING
        self.tree: sv.Tree | None = tree
        self.recorder = None
        self.output = OutputLog()
        self.observer = None  # no figures beyond the tree's own
        self.http_url = None

    def now(self) -> float:
        return 0.0

    def uptime(self) -> float:
        return 0.0

    def request_stop(self) -> None:
        raise AssertionError("not in these tests")

    async def reload(self) -> dict[str, Any]:
        raise AssertionError("not in these tests")

    async def reexec(self) -> dict[str, Any]:
        raise AssertionError("not in these tests")


async def test_restart_stops_and_starts_a_child_in_one_core_command() -> None:
    spec = sv.Supervisor([sv.child("web", forever), sv.child("db", sv.Supervisor([sv.child("pool", forever)]))])
    async with sv.start(spec) as tree:
        commands = Commands(Host(tree))
        events = tree.events()
        result = await commands({"cmd": "restart", "path": "db/pool"})
        assert result == {"path": "db/pool", "status": "running", "pid": None}
        exited = await anext(events)
        started = await anext(events)
        assert isinstance(exited, sv.ChildExited) and exited.path == ("db", "pool") and exited.reason == "shutdown"
        assert isinstance(started, sv.ChildStarted) and started.path == ("db", "pool") and started.starts == 2
        await events.aclose()


async def test_restart_of_a_temporary_child_is_a_clear_not_found_and_leaves_it_running() -> None:
    spec = sv.Supervisor([sv.child("job", forever, restart="temporary")])
    async with sv.start(spec) as tree:
        commands = Commands(Host(tree))
        with pytest.raises(sv.NotFound, match="job: a temporary child cannot be restarted"):
            await commands({"cmd": "restart", "path": "job"})
        assert [(c.id, c.status) for c in tree.which_children()] == [("job", "running")]


async def test_restart_of_an_unknown_path_is_not_found() -> None:
    async with sv.start(sv.Supervisor([sv.child("web", forever)])) as tree:
        commands = Commands(Host(tree))
        for path in ("nope", "web/deeper", "nope/web"):
            with pytest.raises(sv.NotFound):
                await commands({"cmd": "restart", "path": path})


async def test_stop_then_start_by_path() -> None:
    async with sv.start(sv.Supervisor([sv.child("web", forever)])) as tree:
        commands = Commands(Host(tree))
        assert await commands({"cmd": "stop", "path": "web"}) == {"path": "web", "status": "terminated", "pid": None}
        assert await commands({"cmd": "start", "path": "web"}) == {"path": "web", "status": "running", "pid": None}
        assert (await commands({"cmd": "ping"}))["pid"] == os.getpid()
