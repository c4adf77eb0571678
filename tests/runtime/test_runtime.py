"""The runtime API beyond the OTP suite: contexts, snapshots, readiness, backoff,
events, handles, and cleanup after every kind of ending."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from pyrsistent import pmap, pvector

import supervision as sv
from supervision.testing import ManualClock, crash
from tests.helpers import Died, Puppet, forever, is_, next_event, statuses


async def counter(ctx: sv.Context) -> None:
    ctx.save(ctx.state.set("n", ctx.state.get("n", 0) + 1))
    await asyncio.Event().wait()


# -- the worker's context ------------------------------------------------------


async def test_context_identity_and_current() -> None:
    seen: list[tuple[str, tuple[str, ...], int, bool]] = []

    async def worker(ctx: sv.Context) -> None:
        seen.append((ctx.id, ctx.path, ctx.starts, sv.current() is ctx))
        await asyncio.Event().wait()

    with pytest.raises(LookupError):
        sv.current()
    tree = await sv.start(sv.Supervisor([sv.child("db", sv.Supervisor([sv.child("pool", worker)]))]))
    events = tree.events()
    await asyncio.sleep(0)
    crash(tree, "db/pool")
    await next_event(events, is_(sv.ChildStarted, "db/pool", starts=2))
    await asyncio.sleep(0)
    assert seen == [("pool", ("db", "pool"), 1, True), ("pool", ("db", "pool"), 2, True)]
    with pytest.raises(LookupError):
        sv.current()
    await tree.stop()


async def test_snapshots_survive_restarts_of_the_child_and_its_supervisors() -> None:
    spec = sv.Supervisor(
        [sv.child("db", sv.Supervisor([sv.child("count", counter, state=pmap({"n": 10}))]))],
        intensity=10,
    )
    tree = await sv.start(spec)
    events = tree.events()
    assert tree.state("db/count") == pmap({"n": 10})  # before its first save: the spec's state
    await asyncio.sleep(0)
    assert tree.state("db/count") == pmap({"n": 11})
    assert tree.at("db").state("count") == pmap({"n": 11})
    crash(tree, "db/count")
    await next_event(events, is_(sv.ChildStarted, "db/count", starts=2))
    await asyncio.sleep(0)
    assert tree.state("db/count")["n"] == 12
    crash(tree, "db")  # the supervisor itself: its children come back with their snapshots
    await next_event(events, is_(sv.ChildStarted, "db", starts=2))
    await asyncio.sleep(0)
    assert tree.state("db/count")["n"] == 13
    assert tree.at("db").which_children()[0].starts == 3  # starts belong to the path too
    with pytest.raises(sv.NotFound):
        tree.state("db/nope")
    with pytest.raises(sv.NotFound):
        tree.state("")
    await tree.stop()


async def test_save_accepts_only_immutable_plain_data() -> None:
    errors: list[str] = []

    async def worker(ctx: sv.Context) -> None:
        ok = [pmap({"a": pvector([1, 2.5, None, b"x", (True, frozenset({"s"}))])}), (1, 2), "text", 3, None]
        for value in ok:
            ctx.save(value)
        for bad in ({"a": 1}, [1], {1}, pmap({"k": [1]}), (1, [2]), object()):
            try:
                ctx.save(bad)
            except TypeError as exc:
                errors.append(type(bad).__name__ + ":" + str(exc)[:40])
        ctx.ready()
        await asyncio.Event().wait()

    tree = await sv.start(sv.Supervisor([sv.child("w", worker, ready=True)]))
    assert len(errors) == 6
    assert tree.state("w") is None  # the last valid save won; the bad ones changed nothing
    await tree.stop()


# -- readiness --------------------------------------------------------------------


async def test_ready_true_waits_for_ctx_ready_before_starting_the_next() -> None:
    order: list[str] = []

    async def slow(ctx: sv.Context) -> None:
        await asyncio.sleep(0.02)
        order.append("slow ready")
        ctx.ready()
        await asyncio.Event().wait()

    async def fast(ctx: sv.Context) -> None:
        order.append("fast started")
        await asyncio.Event().wait()

    tree = await sv.start(sv.Supervisor([sv.child("slow", slow, ready=True), sv.child("fast", fast)]))
    await asyncio.sleep(0)
    assert order == ["slow ready", "fast started"]
    await tree.stop()


async def test_ready_timeout_is_a_start_failure_and_the_task_is_stopped() -> None:
    async def never_ready(ctx: sv.Context) -> None:
        await asyncio.Event().wait()

    with pytest.raises(sv.StartError) as info:
        await sv.start(sv.Supervisor([sv.child("w", never_ready, ready=True, ready_timeout=0.02)]))
    assert info.value.path == ("w",)
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_exit_before_ready_is_a_start_failure() -> None:
    async def quits(ctx: sv.Context) -> None:
        return

    with pytest.raises(sv.StartError) as info:
        await sv.start(sv.Supervisor([sv.child("w", quits, ready=True)]))
    assert "before it was ready" in str(info.value.__cause__)


async def test_ready_then_crash_at_once_is_a_start_then_a_crash() -> None:
    second = asyncio.Event()

    async def flaky(ctx: sv.Context) -> None:
        ctx.ready()
        if ctx.starts == 1:
            raise Died("right after ready")
        second.set()
        await asyncio.Event().wait()

    tree = await sv.start(sv.Supervisor([sv.child("w", flaky, ready=True)]))
    await asyncio.wait_for(second.wait(), 5)
    assert tree.which_children()[0].starts == 2
    assert tree.which_children()[0].status == "running"
    await tree.stop()


async def test_nested_start_error_keeps_the_deepest_path() -> None:
    puppet = Puppet()
    puppet.fail_starts["a/b/c"] = 1
    inner = sv.Supervisor([sv.child("c", puppet, ready=True)])
    with pytest.raises(sv.StartError) as info:
        await sv.start(sv.Supervisor([sv.child("a", sv.Supervisor([sv.child("b", inner)]))]))
    assert info.value.path == ("a", "b", "c")
    assert isinstance(info.value.__cause__, Died)


# -- dynamic children and admin failures --------------------------------------------


async def test_failed_start_child_is_not_added_and_failed_restart_child_stays_terminated() -> None:
    puppet = Puppet()
    tree = await sv.start(sv.Supervisor([sv.child("a", puppet, ready=True)]))
    puppet.fail_starts["b"] = 1
    with pytest.raises(sv.StartError) as info:
        await tree.start_child(sv.child("b", puppet, ready=True))
    assert info.value.path == ("b",)
    assert statuses(tree) == {"a": "running"}
    await tree.terminate_child("a")
    puppet.fail_starts["a"] = 1
    with pytest.raises(sv.StartError):
        await tree.restart_child("a")
    assert statuses(tree) == {"a": "terminated"}
    await tree.restart_child("a")
    assert statuses(tree) == {"a": "running"}
    await tree.stop()


async def test_start_child_of_a_significant_child_needs_auto_shutdown() -> None:
    tree = await sv.start(sv.Supervisor([]))
    with pytest.raises(sv.SpecError):
        await tree.start_child(sv.child("s", forever, restart="transient", significant=True))
    await tree.stop()


async def test_handles_resolve_their_path_on_every_call() -> None:
    tree = await sv.start(sv.Supervisor([sv.child("db", sv.Supervisor([sv.child("pool", forever)]))]))
    db = tree.at("db")
    pool_handle = tree.at("db/pool")
    events = tree.events()
    crash(tree, "db")
    await next_event(events, is_(sv.ChildStarted, "db", starts=2))
    assert [c.id for c in db.which_children()] == ["pool"]  # the same handle, a new incarnation
    with pytest.raises(sv.NotFound):
        pool_handle.which_children()  # a worker is not a supervisor
    await tree.terminate_child("db")
    with pytest.raises(sv.SupervisorNotRunning):
        db.which_children()
    await tree.stop()


# -- escalation ------------------------------------------------------------------------


@pytest.mark.parametrize(("restart", "restarted"), [("permanent", True), ("transient", False), ("temporary", False)])
async def test_a_nested_supervisor_that_gives_up_exits_with_shutdown(restart: str, restarted: bool) -> None:
    inner = sv.Supervisor([sv.child("w", forever)], intensity=0)
    tree = await sv.start(sv.Supervisor([sv.child("sub", inner, restart=restart), sv.child("other", forever)]))
    events = tree.events()
    crash(tree, "sub/w")
    gave_up = await next_event(events, is_(sv.SupervisorGaveUp, "sub"))
    following = await next_event(events, lambda e: e.path == ("sub",))
    assert isinstance(following, sv.ChildExited) and following.reason == "shutdown"
    assert following.error is gave_up.error  # type: ignore[attr-defined]
    assert isinstance(following.error, sv.TooManyRestarts) and following.error.path == ("sub",)
    assert isinstance(following.error.__cause__, Exception)
    if restarted:
        await next_event(events, is_(sv.ChildStarted, "sub", starts=2))
        assert statuses(tree) == {"sub": "running", "other": "running"}
    else:
        await asyncio.sleep(0)
        expected = {"other": "running"} if restart == "temporary" else {"sub": "terminated", "other": "running"}
        assert statuses(tree) == expected
    await tree.stop()


async def test_escalation_to_the_root_makes_wait_raise() -> None:
    inner = sv.Supervisor([sv.child("w", forever)], intensity=0)
    tree = await sv.start(sv.Supervisor([sv.child("sub", inner)], intensity=0))
    crash(tree, "sub/w")
    with pytest.raises(sv.TooManyRestarts) as info:
        await tree.wait()
    assert info.value.path == ()
    assert isinstance(info.value.__cause__, sv.TooManyRestarts) and info.value.__cause__.path == ("sub",)
    assert tree.stopped


async def test_a_broken_custom_plan_crashes_its_supervisor() -> None:
    class Broken(sv.Supervisor):
        def plan(self, ids: tuple[str, ...], failed: str) -> tuple[str, ...]:
            return ("ghost",)

    tree = await sv.start(Broken([sv.child("a", forever), sv.child("b", forever)]))
    crash(tree, "a")
    with pytest.raises(ValueError, match="ghost"):
        await tree.wait()


# -- backoff -----------------------------------------------------------------------------


async def test_backoff_delays_grow_and_reset_after_a_long_run() -> None:
    clock = ManualClock()
    backoff = sv.Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.0, reset_after=5.0)
    tree = await sv.start(sv.Supervisor([sv.child("w", forever)], intensity=100, backoff=backoff), clock=clock)
    events = tree.events()
    delays = []
    for _ in range(6):
        crash(tree, "w")
        scheduled = await next_event(events, is_(sv.RestartScheduled, "w"))
        delays.append(scheduled.delay)  # type: ignore[attr-defined]
        assert statuses(tree) == {"w": "restarting"}
        assert tree.count_children() == (1, 0, 0, 1)
        clock.advance(scheduled.delay)  # type: ignore[attr-defined]
        await next_event(events, is_(sv.ChildStarted, "w"))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    clock.advance(5.0)  # ran long enough: the next restart counts as the first again
    crash(tree, "w")
    scheduled = await next_event(events, is_(sv.RestartScheduled, "w"))
    assert scheduled.delay == 0.1  # type: ignore[attr-defined]
    await tree.stop()
    assert clock.pending == 0


def test_backoff_jitter_comes_from_the_injected_rng() -> None:
    def run_once(seed: int) -> list[float]:
        async def main() -> list[float]:
            clock = ManualClock()
            backoff = sv.Backoff(initial=1.0, maximum=10.0, jitter=0.5)
            spec = sv.Supervisor([sv.child("w", forever)], intensity=100, backoff=backoff)
            tree = await sv.start(spec, clock=clock, rng=random.Random(seed))
            events = tree.events()
            delays = []
            for _ in range(3):
                crash(tree, "w")
                scheduled = await next_event(events, is_(sv.RestartScheduled))
                delays.append(scheduled.delay)  # type: ignore[attr-defined]
                clock.advance(scheduled.delay)  # type: ignore[attr-defined]
                await next_event(events, is_(sv.ChildStarted))
            await tree.stop()
            return delays

        return asyncio.run(main())

    first, again = run_once(7), run_once(7)
    assert first == again
    for n, delay in enumerate(first, start=1):
        base = min(10.0, 2.0 ** (n - 1))
        assert base * 0.5 <= delay <= min(10.0, base * 1.5)


def test_backoff_spec_validation() -> None:
    for bad in (
        {"initial": -1},
        {"factor": 0.5},
        {"jitter": 2},
        {"initial": 5, "maximum": 1},
        {"reset_after": -1},
    ):
        with pytest.raises(sv.SpecError):
            sv.Backoff(**bad)  # type: ignore[arg-type]
    with pytest.raises(sv.SpecError):
        sv.Supervisor([], backoff="fast")  # type: ignore[arg-type]


async def test_terminate_child_cancels_pending_backoff_retry() -> None:
    clock = ManualClock()
    tree = await sv.start(sv.Supervisor([sv.child("w", forever)], backoff=sv.Backoff(initial=1, jitter=0)), clock=clock)
    events = tree.events()
    crash(tree, "w")
    await next_event(events, is_(sv.RestartScheduled))
    await tree.terminate_child("w")
    clock.advance(100)
    await asyncio.sleep(0)
    assert statuses(tree) == {"w": "terminated"}
    assert clock.pending == 0
    await tree.stop()


# -- events ---------------------------------------------------------------------------


async def test_events_cover_the_subtree_and_end_when_the_tree_stops() -> None:
    tree = await sv.start(
        sv.Supervisor([sv.child("a", forever), sv.child("sub", sv.Supervisor([sv.child("b", forever)]))])
    )
    everything, sub_only = tree.events(), tree.at("sub").events()
    crash(tree, "sub/b")
    crash(tree, "a")
    await tree.stop()
    all_paths = {e.path for e in [e async for e in everything]}
    sub_paths = {e.path for e in [e async for e in sub_only]}
    assert all_paths == {("a",), ("sub", "b"), ("sub",), ()}
    assert sub_paths == {("sub", "b"), ("sub",)}
    late = tree.events()  # subscribed after the end: ends at once
    assert [e async for e in late] == []


async def test_a_slow_reader_never_blocks_the_tree(caplog: pytest.LogCaptureFixture) -> None:
    tree = await sv.start(sv.Supervisor([sv.child("w", forever)], intensity=1000, period=1))
    slow = tree.events(maxsize=5)
    fast = tree.events()
    with caplog.at_level(logging.WARNING, logger="supervision"):
        for n in range(2, 22):
            crash(tree, "w")
            await next_event(fast, is_(sv.ChildStarted, starts=n))
    assert slow.dropped == 35  # 20 crashes × (exited + started) = 40 events, 5 kept
    assert any("dropped" in r.getMessage() for r in caplog.records)
    await slow.aclose()
    await tree.stop()


async def test_events_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="supervision"):
        tree = await sv.start(sv.Supervisor([sv.child("w", forever)]))
        events = tree.events()
        crash(tree, "w", Died("boom"))
        await next_event(events, is_(sv.ChildStarted, starts=2))
        await tree.stop()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("ERROR", "w: ChildExited reason=crash, error=Died('boom')") in messages
    assert ("INFO", "w: ChildStarted starts=2") in messages
    crashed = next(r for r in caplog.records if r.levelname == "ERROR")
    assert crashed.exc_info is not None and crashed.exc_info[0] is Died


# -- ending ---------------------------------------------------------------------------


async def test_context_manager_stops_the_tree_even_on_error() -> None:
    puppet = Puppet()
    with pytest.raises(RuntimeError):
        async with sv.start(sv.Supervisor([sv.child("a", puppet), sv.child("b", puppet)])) as tree:
            await asyncio.sleep(0)
            assert puppet.running == {"a", "b"}
            raise RuntimeError("user code failed")
    assert tree.stopped and puppet.running == set()
    assert puppet.stops() == ["b", "a"]


async def test_auto_shutdown_of_the_root_ends_wait_normally() -> None:
    async def job(ctx: sv.Context) -> None:
        await asyncio.sleep(0)

    spec = sv.Supervisor(
        [sv.child("job", job, restart="transient", significant=True), sv.child("helper", forever)],
        auto_shutdown="any_significant",
    )
    tree = await sv.start(spec)
    await tree.wait()
    assert tree.stopped


async def test_stop_while_restarting_and_concurrent_stops() -> None:
    clock = ManualClock()
    tree = await sv.start(sv.Supervisor([sv.child("w", forever)], backoff=sv.Backoff(initial=5, jitter=0)), clock=clock)
    events = tree.events()
    crash(tree, "w")
    await next_event(events, is_(sv.RestartScheduled))
    await asyncio.gather(tree.stop(), tree.stop())
    assert tree.stopped and clock.pending == 0
    with pytest.raises(sv.SupervisorNotRunning):
        await tree.start_child(sv.child("x", forever))


async def test_builder_and_string_targets(tmp_path: pytest.TempPathFactory) -> None:
    module = tmp_path / "mytree.py"  # type: ignore[operator]
    module.write_text(
        "import asyncio\nimport supervision as sv\n"
        "async def w(ctx):\n    await asyncio.Event().wait()\n"
        "def build():\n    return sv.Supervisor([sv.child('w', w)])\n"
        "def other():\n    return sv.Supervisor([sv.child('x', w)])\n"
        "def broken():\n    return 42\n"
    )
    for target, ids in ((str(module), ["w"]), (f"{module}:other", ["x"])):
        async with sv.start(target) as tree:
            assert [c.id for c in tree.which_children()] == ids
    for bad in (f"{module}:broken", f"{module}:missing", str(tmp_path / "nope.py"), "no_such_module_x:build"):  # type: ignore[operator]
        with pytest.raises(sv.StartError):
            await sv.start(bad)
    with pytest.raises(sv.StartError):
        await sv.start(42)  # type: ignore[arg-type]


async def test_a_restart_that_takes_over_a_retry_takes_its_waiting_children_along() -> None:
    """A custom plan can name a child whose retry others wait on: they join the restart."""

    class Plan(sv.Supervisor):
        def plan(self, ids: tuple[str, ...], failed: str) -> list[str]:
            return ["x", "b"] if failed == "x" else list(ids[ids.index(failed) :])

    clock = ManualClock()
    puppet = Puppet()
    spec = Plan(
        [sv.child(i, puppet, ready=True) for i in ("x", "b", "c")],
        intensity=100,
        backoff=sv.Backoff(initial=1, maximum=4, jitter=0),
    )
    tree = await sv.start(spec, clock=clock)
    events = tree.events()
    puppet.fail_starts["b"] = 1
    puppet.exit("b", "crash")
    await next_event(events, is_(sv.RestartScheduled, "b"))
    clock.advance(1)  # b fails to restart: c waits on b's retry
    await next_event(events, is_(sv.RestartScheduled, "b"))
    assert statuses(tree) == {"x": "running", "b": "restarting", "c": "restarting"}
    puppet.exit("x", "crash")
    await next_event(events, is_(sv.RestartScheduled, "x"))
    clock.advance(1)  # x's restart names b, consuming b's retry: c must come along
    await next_event(events, is_(sv.ChildStarted, "c"))
    assert statuses(tree) == {"x": "running", "b": "running", "c": "running"}
    assert clock.pending == 0
    await tree.stop()


async def test_crash_needs_a_running_child() -> None:
    tree = await sv.start(sv.Supervisor([sv.child("w", forever)]))
    await tree.terminate_child("w")
    with pytest.raises(sv.NotFound):
        crash(tree, "w")
    with pytest.raises(sv.NotFound):
        crash(tree, "nope")
    await tree.stop()


async def test_a_crashed_root_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(sv.Supervisor):
        def plan(self, ids: tuple[str, ...], failed: str) -> tuple[str, ...]:
            return ("ghost",)

    tree = await sv.start(Broken([sv.child("a", forever)]))
    with caplog.at_level(logging.ERROR, logger="supervision"):
        crash(tree, "a")
        with pytest.raises(ValueError):
            await tree.wait()
    assert any("root supervisor crashed" in r.getMessage() for r in caplog.records)


async def test_events_subscribed_before_the_start_see_the_start_up() -> None:
    async def dies_at_once(ctx: sv.Context) -> None:
        if ctx.starts == 1:
            raise Died("at once")
        await asyncio.Event().wait()

    starting = sv.start(sv.Supervisor([sv.child("w", dies_at_once)]))
    events = starting.events()
    async with starting:
        first = await next_event(events, is_(sv.ChildStarted, "w"))
        crashed = await next_event(events, is_(sv.ChildExited, "w"))
        again = await next_event(events, is_(sv.ChildStarted, "w"))
    assert (first.starts, crashed.reason, again.starts) == (1, "crash", 2)  # type: ignore[attr-defined]

    failing = sv.start(lambda: 42)  # type: ignore[arg-type, return-value]
    events = failing.events()
    with pytest.raises(sv.StartError):
        await failing
    assert [e async for e in events] == []  # the stream ends with the failed start


async def test_events_from_the_starting_object_at_any_time() -> None:
    starting = sv.start(sv.Supervisor([sv.child("w", forever)]))
    async with starting as tree:
        late = starting.events()
        crash(tree, "w")
        await next_event(late, is_(sv.ChildStarted, "w", starts=2))
    assert [e async for e in starting.events()] == []  # after the stop: ends at once
