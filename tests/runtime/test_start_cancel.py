"""A start that is cancelled (a timeout around ``sv.start``, Ctrl-C while entering
``async with sv.start(...)``) stops what it started, right to left, and re-raises:
the same guarantee as a failed start. Real processes, checked in /proc."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import supervision as sv
from tests.process_helpers import PY, descendants, exists, free_port

SLEEP = [PY, "-c", "import time\nwhile True: time.sleep(1)"]
STOPPED: list[str] = []


async def logged(ctx: sv.Context) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        STOPPED.append(ctx.id)


async def never_ready(ctx: sv.Context) -> None:
    try:
        await asyncio.Event().wait()  # never calls ctx.ready()
    finally:
        STOPPED.append(ctx.id)


def spec(last: sv.ChildSpec) -> sv.Supervisor:
    return sv.Supervisor(
        [
            sv.child("w1", logged),
            sv.process("p1", SLEEP),
            sv.child("nested", sv.Supervisor([sv.child("w2", logged), sv.process("p2", SLEEP)])),
            last,
        ]
    )


LAST_CHILDREN = {
    "worker": lambda: sv.child("last", never_ready, ready=True, ready_timeout=60),
    "process": lambda: sv.process("last", SLEEP, ready=sv.ready.port(free_port()), ready_timeout=60),
    "nested": lambda: sv.child(
        "last", sv.Supervisor([sv.child("w3", logged), sv.child("late", never_ready, ready=True, ready_timeout=60)])
    ),
}


async def watch(events: sv.EventStream, seen: list[sv.Event], waiting_for: str, reached: asyncio.Event) -> None:
    async for event in events:  # ends when the tree has stopped
        seen.append(event)
        if isinstance(event, sv.ChildStarted) and "/".join(event.path) == waiting_for:
            reached.set()


def check_stopped_in_reverse(seen: list[sv.Event], before: set[int]) -> None:
    pids = [e.pid for e in seen if isinstance(e, sv.ChildStarted) and e.pid is not None]
    assert len(pids) == 2, seen
    assert not [pid for pid in pids if exists(pid)], "processes left running (or unreaped) after a cancelled start"
    assert set(descendants()) <= before, "a process (the one waiting for readiness?) was left behind"
    exited = [e.path for e in seen if isinstance(e, sv.ChildExited)]
    top = [path[0] for path in exited if len(path) == 1]
    assert top == ["nested", "p1", "w1"], exited  # right to left, after the one being started
    nested = [path[1] for path in exited if len(path) == 2 and path[0] == "nested"]
    assert nested == ["p2", "w2"], exited
    failed = [e for e in seen if isinstance(e, sv.ChildStartFailed)]
    assert failed and all(isinstance(e.error.__cause__, asyncio.CancelledError) for e in failed), failed


@pytest.mark.parametrize("last", list(LAST_CHILDREN))
async def test_a_start_that_times_out_stops_what_it_started(last: str) -> None:
    STOPPED.clear()
    before = set(descendants())
    starting = sv.start(spec(LAST_CHILDREN[last]()))
    seen: list[sv.Event] = []
    reached = asyncio.Event()
    watcher = asyncio.create_task(watch(starting.events(), seen, "nested", reached))
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as deadline:  # what asyncio.wait_for(sv.start(...), t) does
            reached_then_expire = asyncio.create_task(reached.wait())
            reached_then_expire.add_done_callback(lambda _: deadline.reschedule(loop.time()))
            tree = await starting
            raise AssertionError(f"started {tree}")
    await asyncio.wait_for(watcher, 30)
    check_stopped_in_reverse(seen, before)
    if last == "process":
        assert STOPPED == ["w2", "w1"]
    elif last == "worker":
        assert STOPPED == ["last", "w2", "w1"]  # the one waiting for readiness first
    else:
        assert STOPPED == ["late", "w3", "w2", "w1"]


async def test_wait_for_around_start_stops_what_it_started() -> None:
    STOPPED.clear()
    before = set(descendants())
    starting = sv.start(spec(LAST_CHILDREN["process"]()))
    seen: list[sv.Event] = []
    watcher = asyncio.create_task(watch(starting.events(), seen, "", asyncio.Event()))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(starting, 0.6)  # type: ignore[arg-type]
    await asyncio.wait_for(watcher, 30)
    pids = [e.pid for e in seen if isinstance(e, sv.ChildStarted) and e.pid is not None]
    assert not [pid for pid in pids if exists(pid)] and set(descendants()) <= before, seen
    assert all(not isinstance(e, sv.ChildStarted) or e.path[-1] != "last" for e in seen)


async def test_cancelling_the_task_entering_async_with_stops_what_it_started() -> None:
    STOPPED.clear()
    before = set(descendants())
    starting = sv.start(spec(LAST_CHILDREN["process"]()))
    seen: list[sv.Event] = []
    reached = asyncio.Event()
    watcher = asyncio.create_task(watch(starting.events(), seen, "nested", reached))
    entered: list[Any] = []

    async def main() -> None:  # what asyncio.run does on Ctrl-C: cancels this task
        async with starting as tree:
            entered.append(tree)

    task = asyncio.create_task(main())
    await asyncio.wait_for(reached.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert entered == []
    await asyncio.wait_for(watcher, 30)
    check_stopped_in_reverse(seen, before)
    assert STOPPED == ["w2", "w1"]
