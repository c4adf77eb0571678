"""Operator actions on a running tree: signals to its processes, ``all``, dry runs."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest

import supervision as sv
from supervision._core.errors import NotAProcess
from supervision._service.operate import Signalled, parse_signal, select, signal_processes

# A process that records each SIGHUP and SIGUSR1 it gets in a file, and says when
# its handlers are in place.
CHILD = """
import os, signal, sys, time
log = sys.argv[1]
def note(number, frame):
    with open(log, "a") as file:
        file.write(signal.Signals(number).name + "\\n")
signal.signal(signal.SIGHUP, note)
signal.signal(signal.SIGUSR1, note)
open(log + ".ready", "w").close()
while True:
    time.sleep(1)
"""


async def work(ctx: sv.Context) -> None:
    await asyncio.Event().wait()


def process(id: str, log: Path) -> sv.ChildSpec:
    return sv.process(id, [sys.executable, "-c", CHILD, str(log)], shutdown=2.0)


async def wait_for(path: Path, text: str = "", timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return path.read_text()
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never had {text!r}")


@pytest.mark.timeout(60)
async def test_a_signal_reaches_the_process_and_only_it(tmp_path: Path) -> None:
    web, a, b = tmp_path / "web", tmp_path / "a", tmp_path / "b"
    spec = sv.Supervisor(
        [
            process("web", web),
            sv.child("w", work),
            sv.child("pool", sv.Supervisor([process("a", a), process("b", b)])),
        ]
    )
    async with sv.start(spec) as tree:
        for log in (web, a, b):
            await wait_for(Path(str(log) + ".ready"))
        pid = next(info.pid for info in tree.which_children() if info.id == "web")
        assert signal_processes(tree, ("web",), signal.SIGHUP) == [Signalled(("web",), pid)]
        assert await wait_for(web, "SIGHUP") == "SIGHUP\n"
        sent = signal_processes(tree, ("pool",), parse_signal("usr1"))
        assert [s.path for s in sent] == [("pool", "a"), ("pool", "b")]
        assert await wait_for(a, "SIGUSR1") == "SIGUSR1\n"
        assert await wait_for(b, "SIGUSR1") == "SIGUSR1\n"
        assert web.read_text() == "SIGHUP\n"  # the other processes got nothing
        sent = signal_processes(tree, (), signal.SIGHUP)
        assert [s.path for s in sent] == [("web",), ("pool", "a"), ("pool", "b")]
        await wait_for(b, "SIGHUP")
        # The processes handled them and kept running: same pid.
        assert next(info.pid for info in tree.which_children() if info.id == "web") == pid
        with pytest.raises(NotAProcess, match="w: a worker"):
            signal_processes(tree, ("w",), signal.SIGHUP)
        with pytest.raises(sv.NotFound):
            signal_processes(tree, ("nope",), signal.SIGHUP)
        await tree.terminate_child("web")
        with pytest.raises(NotAProcess, match="web: not running"):
            signal_processes(tree, ("web",), signal.SIGHUP)


def test_signal_names() -> None:
    assert parse_signal("HUP") == parse_signal("sighup") == parse_signal("1") == signal.SIGHUP
    assert parse_signal("usr2") == signal.SIGUSR2
    for bad in ("LOUD", "0", "999", ""):
        with pytest.raises(ValueError):
            parse_signal(bad)


def test_all_is_every_top_level_child_in_the_order_of_the_action() -> None:
    top = ["db", "web", "worker"]
    assert select(["all"], top, "start") == ["db", "web", "worker"]
    assert select(["all"], top, "stop") == ["worker", "web", "db"]
    assert select(["web", "db", "web"], top, "restart") == ["web", "db"]
    assert select(["db/pool", "all"], top, "stop") == ["db/pool", "worker", "web", "db"]
    with pytest.raises(ValueError):
        select([], top, "stop")


async def test_a_dry_run_of_the_running_tree() -> None:
    spec = sv.Supervisor([sv.child("a", work), sv.child("b", work)])
    async with sv.start(spec) as tree:
        await tree.terminate_child("b")
        plan = tree.plan_update(
            sv.Supervisor([sv.child("a", work, restart="transient"), sv.child("b", work, shutdown=1)])
        )
        assert plan.restarted == (("a",),)
        assert plan.updated == (("b",),)
        applied = await tree.update(
            sv.Supervisor([sv.child("a", work, restart="transient"), sv.child("b", work, shutdown=1)])
        )
        assert (applied.restarted, applied.updated) == (plan.restarted, plan.updated)
