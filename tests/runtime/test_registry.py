"""The registry: ``ctx.register(value, name=None)``, ``tree.whereis(key)``,
``await tree.wait_for(key)``.

A value belongs to the incarnation that registered it: visible once it has
started, gone as soon as it ends. The property test drives crashes, exits and
restarts by hypothesis schedules and checks, after every step, that ``whereis``
never returns a dead incarnation's value and that ``wait_for`` resolves to the
current one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supervision as sv
from supervision.testing import crash
from tests.helpers import WAIT, is_, next_event


@dataclass(frozen=True)
class Mailbox:
    """What a worker publishes: which incarnation it is."""

    path: tuple[str, ...]
    starts: int


async def publisher(ctx: sv.Context) -> None:
    ctx.register(Mailbox(ctx.path, ctx.starts))
    await asyncio.Event().wait()


async def test_whereis_and_wait_for_by_path() -> None:
    spec = sv.Supervisor([sv.child("a", publisher), sv.child("db", sv.Supervisor([sv.child("pool", publisher)]))])
    async with sv.start(spec) as tree:
        assert await asyncio.wait_for(tree.wait_for("db/pool"), WAIT) == Mailbox(("db", "pool"), 1)
        assert tree.whereis("a") == Mailbox(("a",), 1)
        assert tree.whereis(("db", "pool")) == Mailbox(("db", "pool"), 1)
        assert tree.whereis("db") is None  # a supervisor registers nothing
        assert tree.whereis("nobody") is None


async def test_the_value_goes_with_its_incarnation_and_wait_for_gets_the_next_one() -> None:
    async with sv.start(sv.Supervisor([sv.child("a", publisher)])) as tree:
        events = tree.events()
        await tree.wait_for("a")
        crash(tree, "a")
        assert tree.whereis("a") in (None, Mailbox(("a",), 1))
        await next_event(events, is_(sv.ChildExited, "a"))
        waiting = asyncio.ensure_future(tree.wait_for("a"))
        value = await asyncio.wait_for(waiting, WAIT)
        assert value == Mailbox(("a",), 2)
        await tree.terminate_child("a")
        assert tree.whereis("a") is None


async def test_explicit_names_are_unique_across_the_tree() -> None:
    second_tried: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def orders(ctx: sv.Context) -> None:
        ctx.register("the orders queue", name="orders")
        await asyncio.Event().wait()

    async def impostor(ctx: sv.Context) -> None:
        try:
            ctx.register("another", name="orders")
        except sv.AlreadyPresent as exc:
            second_tried.set_result(exc)
        else:
            second_tried.set_result(None)
        await asyncio.Event().wait()

    spec = sv.Supervisor([sv.child("a", orders), sv.child("sub", sv.Supervisor([sv.child("b", impostor)]))])
    async with sv.start(spec) as tree:
        error = await asyncio.wait_for(second_tried, WAIT)
        assert isinstance(error, sv.AlreadyPresent) and "orders" in str(error) and "a" in str(error)
        assert tree.whereis("orders") == "the orders queue"
        assert tree.whereis("a") is None  # registered by name only
        await tree.terminate_child("a")
        assert tree.whereis("orders") is None  # freed with its incarnation


async def test_a_ready_worker_is_found_only_once_it_is_ready() -> None:
    go = asyncio.Event()
    registered = asyncio.Event()

    async def slow(ctx: sv.Context) -> None:
        ctx.register("value")
        registered.set()
        await go.wait()
        ctx.ready()
        await asyncio.Event().wait()

    async with sv.start(sv.Supervisor()) as tree:
        starting = asyncio.ensure_future(tree.start_child(sv.child("s", slow, ready=True)))
        await asyncio.wait_for(registered.wait(), WAIT)
        waiting = asyncio.ensure_future(tree.wait_for("s"))
        await asyncio.sleep(0)
        assert tree.whereis("s") is None and not waiting.done()
        go.set()
        assert await asyncio.wait_for(waiting, WAIT) == "value"
        await starting


async def test_wait_for_fails_when_the_tree_stops() -> None:
    tree = await sv.start(sv.Supervisor([sv.child("a", publisher)]))
    waiting = asyncio.ensure_future(tree.wait_for("nobody"))
    await asyncio.sleep(0)
    await tree.stop()
    with pytest.raises(sv.SupervisorNotRunning):
        await waiting
    assert tree.whereis("a") is None


async def test_dynamic_children_are_found_by_path() -> None:
    async def conn(ctx: sv.Context, peer: str) -> None:
        ctx.register(peer)
        await asyncio.Event().wait()

    async with sv.start(sv.Supervisor([sv.child("pool", sv.DynamicSupervisor(conn))])) as tree:
        id = await tree.at("pool").start_child("10.0.0.1")
        assert await tree.wait_for(f"pool/{id}") == "10.0.0.1"
        await tree.at("pool").terminate_child(id)
        assert tree.whereis(f"pool/{id}") is None


# -- never stale: hypothesis schedules of crashes ---------------------------------------

PATHS = [("a",), ("b",), ("g", "c"), ("g", "d")]


def _tree() -> sv.Supervisor:
    group = sv.Supervisor(
        [sv.child("c", publisher), sv.child("d", publisher, restart="transient")],
        strategy="one_for_all",
        intensity=1000,
    )
    return sv.Supervisor(
        [sv.child("a", publisher), sv.child("b", publisher, ready=False), sv.child("g", group)],
        strategy="rest_for_one",
        intensity=1000,
    )


steps = st.lists(
    st.tuples(st.sampled_from(["crash", "crash-and-wait", "terminate", "restart", "yield"]), st.sampled_from(PATHS)),
    min_size=1,
    max_size=12,
)


async def _check(tree: sv.Tree, incarnations: dict[tuple[str, ...], int]) -> None:
    """whereis is None or the live incarnation's value; never an ended one's."""
    for path in PATHS:
        value = tree.whereis(path)
        assert value is None or value == Mailbox(path, incarnations[path]), (path, value, incarnations)


async def _run(schedule: list[tuple[str, tuple[str, ...]]]) -> None:
    incarnations: dict[tuple[str, ...], int] = {}
    ended: set[tuple[tuple[str, ...], int]] = set()

    async with sv.start(_tree()) as tree:
        events = tree.events()

        def observe(event: sv.Event) -> None:
            if isinstance(event, sv.ChildStarted) and event.path in PATHS:
                incarnations[event.path] = event.starts
            elif isinstance(event, sv.ChildExited) and event.path in PATHS:
                ended.add((event.path, incarnations[event.path]))

        tree._observe(observe)
        for path in PATHS:
            incarnations.setdefault(path, 1)
        for action, path in schedule:
            try:
                info = {c.id: c for c in tree.at(path[:-1]).which_children()}
            except (sv.SupervisorNotRunning, sv.NotFound):  # its supervisor is being restarted
                info = {}
            status = info[path[-1]].status.value if path[-1] in info else None
            if action.startswith("crash") and status == "running":
                crash(tree, path)
                value = tree.whereis(path)
                assert value is None or (path, value.starts) not in ended
                if action == "crash-and-wait":
                    value = await asyncio.wait_for(tree.wait_for(path), WAIT)
                    assert value == Mailbox(path, incarnations[path])
                    assert (path, value.starts) not in ended
            elif action == "terminate" and status in ("running", "restarting"):
                try:
                    await tree.at(path[:-1]).terminate_child(path[-1])
                except sv.SupervisorNotRunning:  # its supervisor was restarted meanwhile
                    pass
                else:
                    assert tree.whereis(path) is None
            elif action == "restart" and status == "terminated":
                try:
                    await tree.at(path[:-1]).restart_child(path[-1])
                except (sv.SupervisorNotRunning, sv.ChildRunning, sv.ChildRestarting):
                    pass
                else:
                    value = await asyncio.wait_for(tree.wait_for(path), WAIT)
                    assert value == Mailbox(path, incarnations[path])
            else:
                await asyncio.sleep(0)
            await _check(tree, incarnations)
            for path_ in PATHS:
                value = tree.whereis(path_)
                assert value is None or (path_, value.starts) not in ended
        del events


@settings(max_examples=40)
@given(steps)
def test_whereis_is_never_stale_and_wait_for_resolves_to_the_new_incarnation(
    schedule: list[tuple[str, tuple[str, ...]]],
) -> None:
    async def main() -> None:
        await _run(schedule)
        for _ in range(3):
            await asyncio.sleep(0)
        leaked = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        assert not leaked, leaked

    asyncio.run(main())
