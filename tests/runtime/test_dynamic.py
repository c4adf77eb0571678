"""Dynamic supervisors in the asyncio runtime: real workers and processes.

``sv.DynamicSupervisor(template, max_children=...)`` starts empty; each
``start_child(*args, **kwargs)`` makes a child from the template and returns its
id. The policy is tested in the pure core (``test_dynamic_core.py``); here, that
the runtime carries it out: 10 000 workers, real crashes, concurrent stop,
process templates, and reload.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import pytest

import supervision as sv
from supervision.testing import crash
from tests.helpers import WAIT, is_, next_event, statuses
from tests.process_helpers import alive, wait_gone


async def parked(ctx: sv.Context, *args: Any, **kwargs: Any) -> None:
    await asyncio.Event().wait()


async def test_10000_dynamic_workers_are_started_and_stopped() -> None:
    count = 10_000
    seen: list[tuple[str, int]] = []

    async def worker(ctx: sv.Context, n: int) -> None:
        seen.append((ctx.id, n))
        await asyncio.Event().wait()

    tree = await sv.start(sv.Supervisor([sv.child("pool", sv.DynamicSupervisor(worker))]))
    pool = tree.at("pool")
    ids = [await pool.start_child(n) for n in range(count)]
    assert ids == [str(n + 1) for n in range(count)]
    assert pool.count_children() == sv.ChildCounts(count, count, 0, count)
    await asyncio.sleep(0)
    assert sorted(n for _, n in seen) == list(range(count))
    assert all(int(id) == n + 1 for id, n in seen)
    for id in ids[: count // 2]:  # half stopped one by one (removed: nothing kept)
        await pool.terminate_child(id)
    assert pool.count_children().specs == count // 2
    await tree.stop()  # the rest stopped all at once
    assert tree.stopped
    assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


async def test_start_child_returns_the_id_and_passes_the_arguments() -> None:
    got: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    async def worker(ctx: sv.Context, a: int, *, b: str = "") -> None:
        got.put_nowait((ctx.path, a, b))
        await asyncio.Event().wait()

    async with sv.start(sv.Supervisor([sv.child("pool", sv.DynamicSupervisor(worker))])) as tree:
        pool = tree.at("pool")
        assert await pool.start_child(7, b="x") == "1"
        assert await asyncio.wait_for(got.get(), WAIT) == (("pool", "1"), 7, "x")
        info = pool.which_children()
        assert [(c.id, c.kind, c.status.value) for c in info] == [("1", "worker", "running")]


async def test_max_children_is_enforced_with_a_clear_error() -> None:
    spec = sv.DynamicSupervisor(parked, max_children=3)
    async with sv.start(spec) as tree:
        for _ in range(3):
            await tree.start_child()
        with pytest.raises(sv.TooManyChildren, match="max_children=3") as caught:
            await tree.start_child()
        assert caught.value.path == () and caught.value.max_children == 3
        await tree.terminate_child("2")
        assert await tree.start_child() == "4"
        with pytest.raises(sv.TooManyChildren):
            await tree.start_child()


async def test_max_children_must_be_a_count() -> None:
    with pytest.raises(sv.SpecError, match="max_children"):
        sv.DynamicSupervisor(parked, max_children=-1)
    with pytest.raises(sv.SpecError, match="template"):
        sv.DynamicSupervisor(lambda ctx: None)


@pytest.mark.parametrize(
    ("restart", "how", "restarted"),
    [
        ("temporary", "crash", False),
        ("transient", "crash", True),
        ("transient", "normal", False),
        ("permanent", "normal", True),
    ],
)
async def test_a_dynamic_child_that_exits_follows_its_restart_type(restart: str, how: str, restarted: bool) -> None:
    orders: dict[int, asyncio.Future[str]] = {}
    starts: list[int] = []

    async def worker(ctx: sv.Context) -> None:
        starts.append(ctx.starts)
        order = orders[ctx.starts] = asyncio.get_running_loop().create_future()
        if await order == "crash":
            raise RuntimeError("asked to crash")

    template = worker if restart == "temporary" else sv.child("conn", worker, restart=restart)
    spec = sv.Supervisor([sv.child("pool", sv.DynamicSupervisor(template))])
    async with sv.start(spec) as tree:
        events = tree.events()
        pool = tree.at("pool")
        await pool.start_child()
        await asyncio.sleep(0)
        orders[1].set_result(how)
        await next_event(events, is_(sv.ChildExited, "pool/1"))
        if restarted:
            await next_event(events, is_(sv.ChildStarted, "pool/1", starts=2))
            assert statuses(pool) == {"1": "running"}
        else:
            await asyncio.sleep(0)
            assert statuses(pool) == {}
            assert pool.count_children().specs == 0


async def test_intensity_counts_restarts_across_all_dynamic_children() -> None:
    template = sv.child("conn", parked, restart="permanent")
    spec = sv.Supervisor([sv.child("pool", sv.DynamicSupervisor(template, intensity=2, period=60.0))], intensity=5)
    async with sv.start(spec) as tree:
        events = tree.events()
        pool = tree.at("pool")
        for _ in range(3):
            await pool.start_child()
        for id in ("1", "2"):
            crash(tree, f"pool/{id}")
            await next_event(events, is_(sv.ChildStarted, f"pool/{id}", starts=2))
        crash(tree, "pool/3")  # a third restart in the window, by a third child: the pool gives up
        gave_up = await next_event(events, is_(sv.SupervisorGaveUp, "pool"))
        assert isinstance(gave_up.error, sv.TooManyRestarts)
        await next_event(events, is_(sv.ChildStarted, "pool", starts=2))  # its parent restarts it...
        assert tree.at("pool").which_children() == []  # ...empty, as OTP does


async def test_stopping_a_dynamic_supervisor_stops_its_children_concurrently() -> None:
    count = 20
    stopping: list[str] = []
    everyone_asked = asyncio.Event()

    async def slow_to_stop(ctx: sv.Context) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopping.append(ctx.id)
            if len(stopping) == count:
                everyone_asked.set()
            # Sequential stops would wait here for the shutdown timeout of each child.
            await asyncio.wait_for(everyone_asked.wait(), WAIT)
            raise

    spec = sv.Supervisor([sv.child("pool", sv.DynamicSupervisor(sv.child("c", slow_to_stop, shutdown=30.0)))])
    tree = await sv.start(spec)
    events = tree.events()
    for _ in range(count):
        await tree.at("pool").start_child()
    await asyncio.sleep(0)
    began = time.monotonic()
    await tree.stop()
    assert time.monotonic() - began < WAIT
    assert sorted(stopping, key=int) == [str(n) for n in range(1, count + 1)]
    assert not tree.abandoned
    exits = []
    async for event in events:
        if isinstance(event, sv.ChildExited) and len(event.path) == 2:
            exits.append(event.path[1])
    assert exits == [str(n) for n in range(count, 0, -1)]  # reported right to left all the same


async def test_a_process_template_appends_arguments_and_fills_placeholders(tmp_path: Any) -> None:
    script = "import os, sys, time; print(sys.argv[1:], os.environ['ROLE'], flush=True); time.sleep(100)"
    out = tmp_path / "{id}.log"
    template = sv.process("job", [sys.executable, "-c", script], env={"ROLE": "{role}"}, output=str(out))
    spec = sv.DynamicSupervisor(template, max_children=4)
    async with sv.start(spec) as tree:
        assert await tree.start_child("a", 1, role="reader") == "1"
        assert await tree.start_child("b", role="writer") == "2"
        pids = [info.pid for info in tree.which_children()]
        assert all(pid is not None and alive(pid) for pid in pids)
        for id, expected in (("1", "['a', '1'] reader"), ("2", "['b'] writer")):
            log = tmp_path / f"{id}.log"
            deadline = time.monotonic() + WAIT
            while (not log.exists() or not log.read_text().endswith("\n")) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert log.read_text().strip() == expected
        with pytest.raises(TypeError, match="strings and numbers"):
            await tree.start_child(object())
    assert all(wait_gone(pid) for pid in pids if pid is not None)


async def test_a_reload_restarts_dynamic_children_only_if_the_template_changed() -> None:
    seen: list[tuple[str, int]] = []

    async def v1(ctx: sv.Context, n: int) -> None:
        seen.append(("v1", n))
        await asyncio.Event().wait()

    async def v2(ctx: sv.Context, n: int) -> None:
        seen.append(("v2", n))
        await asyncio.Event().wait()

    async with sv.start(sv.Supervisor([sv.child("pool", sv.DynamicSupervisor(v1))])) as tree:
        await tree.at("pool").start_child(1)
        await tree.at("pool").start_child(2)
        await asyncio.sleep(0)
        applied = await tree.update(sv.Supervisor([sv.child("pool", sv.DynamicSupervisor(v1, max_children=9))]))
        assert applied.restarted == ()
        applied = await tree.update(sv.Supervisor([sv.child("pool", sv.DynamicSupervisor(v2))]))
        assert applied.restarted == (("pool", "1"), ("pool", "2"))
        await asyncio.sleep(0)
        assert seen == [("v1", 1), ("v1", 2), ("v2", 1), ("v2", 2)]
        assert statuses(tree.at("pool")) == {"1": "running", "2": "running"}


def test_the_children_of_a_dynamic_supervisor_are_documented_as_stopped_concurrently() -> None:
    doc = sv.DynamicSupervisor.__doc__ or ""
    assert "concurrently" in doc
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "..", "docs", "concepts.md")) as file:
        assert "simple_one_for_one" in file.read()
