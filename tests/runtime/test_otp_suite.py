"""Ports of Erlang/OTP's supervisor_SUITE: same scenario, same expected outcome.

Where DESIGN.md deliberately departs from OTP (a terminated child stays
terminated through group restarts), the test says so. Intensity windows are
driven by an injected ManualClock, never by sleeping.
"""

from __future__ import annotations

import asyncio

import pytest
from pyrsistent import pmap

import supervision as sv
from supervision.testing import ManualClock, crash
from tests.helpers import Died, Puppet, forever, is_, next_event, statuses


def tree_of(*children: sv.ChildSpec, **settings: object) -> sv.Supervisor:
    return sv.Supervisor(list(children), **settings)  # type: ignore[arg-type]


# -- starting and stopping the supervisor -------------------------------------


async def test_sup_start_fail() -> None:
    """init/1 raises: start returns the error and nothing is left running."""

    def build() -> sv.Supervisor:
        raise RuntimeError("fail")

    with pytest.raises(sv.StartError) as info:
        await sv.start(build)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.path == ()


async def test_sup_start_fail_child_stops_started_ones_right_to_left() -> None:
    puppet = Puppet()
    puppet.fail_starts["c"] = 1
    spec = tree_of(
        sv.child("a", puppet, ready=True), sv.child("b", puppet, ready=True), sv.child("c", puppet, ready=True)
    )
    with pytest.raises(sv.StartError) as info:
        await sv.start(spec)
    assert info.value.path == ("c",)
    assert isinstance(info.value.__cause__, Died)
    assert puppet.starts() == ["a", "b", "c"]
    assert puppet.stops() == ["b", "a"]


async def test_sup_stop_infinity() -> None:
    """Children with shutdown=infinity are waited for, however long they take."""
    cleaned: list[str] = []

    async def slow_cleanup(ctx: sv.Context) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)
            cleaned.append(ctx.id)

    spec = tree_of(
        sv.child("child1", tree_of(sv.child("inner", slow_cleanup, shutdown=sv.INFINITY)), shutdown=sv.INFINITY),
        sv.child("child2", slow_cleanup, shutdown=sv.INFINITY),
    )
    tree = await sv.start(spec)
    events = tree.events()
    await asyncio.sleep(0)  # let the workers reach their first await
    await tree.stop()
    exits = [e async for e in events if isinstance(e, sv.ChildExited)]
    assert [(e.path, e.reason) for e in exits] == [
        (("child2",), "shutdown"),
        (("child1", "inner"), "shutdown"),
        (("child1",), "shutdown"),
    ]
    assert cleaned == ["child2", "inner"]


class Stubborn:
    """A worker that ignores cancellation until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, ctx: sv.Context) -> None:
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                continue


async def test_sup_stop_timeout() -> None:
    """A child that does not stop within its shutdown is given up on, and the
    supervisor goes on: it is reported (event + log) and treated as killed."""
    stubborn = Stubborn()
    spec = tree_of(sv.child("child1", forever, shutdown=1.0), sv.child("child2", stubborn, shutdown=0.05))
    tree = await sv.start(spec)
    events = tree.events()
    await asyncio.sleep(0)
    await tree.stop()
    exits = {e.path: e for e in [e async for e in events] if isinstance(e, sv.ChildExited)}
    assert exits[("child1",)].reason == "shutdown" and exits[("child1",)].error is None
    timeout = exits[("child2",)].error
    assert isinstance(timeout, sv.ShutdownTimeout) and timeout.path == ("child2",)
    assert len(tree.abandoned) == 1
    stubborn.release.set()
    await asyncio.wait(tree.abandoned)


async def test_sup_stop_brutal_kill() -> None:
    stubborn = Stubborn()
    spec = tree_of(sv.child("child1", forever, shutdown=1.0), sv.child("child2", stubborn, shutdown=sv.BRUTAL_KILL))
    tree = await sv.start(spec)
    events = tree.events()
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await tree.stop()
    assert loop.time() - began < 0.5  # at once: no shutdown wait for child2
    exits = {e.path: e for e in [e async for e in events] if isinstance(e, sv.ChildExited)}
    assert exits[("child1",)].reason == "shutdown"
    assert isinstance(exits[("child2",)].error, sv.ShutdownTimeout)
    stubborn.release.set()
    await asyncio.wait(tree.abandoned)


async def test_brutal_kill_of_a_cooperative_worker_is_a_clean_shutdown() -> None:
    tree = await sv.start(tree_of(sv.child("w", forever, shutdown=sv.BRUTAL_KILL)))
    events = tree.events()
    await tree.terminate_child("w")
    exited = await next_event(events, is_(sv.ChildExited, "w"))
    assert exited.reason == "shutdown" and exited.error is None  # type: ignore[attr-defined]
    assert not tree.abandoned
    await tree.stop()


# -- child administration -----------------------------------------------------


async def test_child_adm() -> None:
    child1 = sv.child("child1", forever, shutdown=1.0)
    tree = await sv.start(tree_of(child1, intensity=2, period=3600))
    assert [(c.id, c.status, c.kind) for c in tree.which_children()] == [("child1", "running", "worker")]
    assert tree.count_children() == (1, 1, 0, 1)
    with pytest.raises(sv.AlreadyStarted):
        await tree.start_child(child1)
    with pytest.raises(sv.NotFound):
        await tree.terminate_child("hej")
    with pytest.raises(sv.NotFound):
        await tree.at("nosuchsup").terminate_child("child1")
    await tree.terminate_child("child1")
    assert statuses(tree) == {"child1": "terminated"}
    assert tree.count_children() == (1, 0, 0, 1)
    await tree.terminate_child("child1")  # idempotent
    with pytest.raises(sv.AlreadyPresent):
        await tree.start_child(child1)
    await tree.restart_child("child1")
    assert statuses(tree) == {"child1": "running"}
    assert tree.which_children()[0].starts == 2
    assert tree.count_children() == (1, 1, 0, 1)
    with pytest.raises(sv.ChildRunning):
        await tree.restart_child("child1")
    with pytest.raises(sv.NotFound):
        await tree.restart_child("child2")
    with pytest.raises(sv.ChildRunning):
        await tree.delete_child("child1")
    with pytest.raises(sv.NotFound):
        await tree.delete_child("hej")
    await tree.terminate_child("child1")
    await tree.delete_child("child1")
    with pytest.raises(sv.NotFound):
        await tree.restart_child("child1")
    assert tree.which_children() == []
    assert tree.count_children() == (0, 0, 0, 0)
    await tree.start_child(child1)
    assert tree.count_children() == (1, 1, 0, 1)
    assert tree.which_children()[0].starts == 1  # the path's count went with its spec
    await tree.stop()
    with pytest.raises(sv.SupervisionError):
        tree.which_children()
    await tree.stop()  # a second stop is a no-op


def test_child_specs() -> None:
    """Bad specs fail at construction, naming the path and the field."""

    def plain(ctx: object) -> None: ...

    cases: list[tuple[object, str]] = []

    def bad(field: str, make: object) -> None:
        cases.append((make, field))

    bad("start", lambda: sv.child("c", plain))
    bad("start", lambda: sv.child("c", lambda ctx: None))
    bad("start", lambda: sv.child("c", "mfa"))
    bad("restart", lambda: sv.child("c", forever, restart="prmanent"))
    bad("shutdown", lambda: sv.child("c", forever, shutdown=-10))
    bad("shutdown", lambda: sv.child("c", forever, shutdown="soon"))
    bad("ready_timeout", lambda: sv.child("c", forever, ready_timeout=-1))
    bad("id", lambda: sv.child("", forever))
    bad("id", lambda: sv.child("a/b", forever))
    bad("id", lambda: sv.child(3, forever))  # type: ignore[arg-type]
    bad("significant", lambda: sv.child("c", forever, significant=True))
    bad("strategy", lambda: sv.Supervisor([], strategy="one_for_none"))
    bad("intensity", lambda: sv.Supervisor([], intensity=-1))
    bad("period", lambda: sv.Supervisor([], period=-5))
    bad("auto_shutdown", lambda: sv.Supervisor([], auto_shutdown="sometimes"))
    bad("id", lambda: sv.Supervisor([sv.child("child", forever), sv.child("child", forever)]))
    bad(
        "significant",
        lambda: sv.Supervisor([sv.child("c", forever, restart="transient", significant=True)]),
    )
    bad("children[0]", lambda: sv.Supervisor(["not a spec"]))  # type: ignore[list-item]
    bad("state", lambda: sv.child("c", forever, state={"mutable": "dict"}))
    for make, field in cases:
        with pytest.raises(sv.SpecError) as info:
            make()  # type: ignore[operator]
        assert info.value.field == field, (field, info.value)
        assert field in str(info.value)
    with pytest.raises(sv.SpecError) as info:
        sv.child("c", forever, shutdown=-10)
    error = info.value
    assert error.path == ("c",) and str(error).startswith("c: shutdown:")
    assert isinstance(error, ValueError)
    # every valid combination passes
    for restart in ("permanent", "transient", "temporary"):
        for shutdown in (0, 1.0, sv.INFINITY, sv.BRUTAL_KILL):
            for start in (forever, sv.Supervisor()):
                spec = sv.child("c", start, restart=restart, shutdown=shutdown)
                assert spec.restart == restart and spec.shutdown == shutdown


async def test_start_child_rejects_non_specs() -> None:
    tree = await sv.start(tree_of())
    with pytest.raises(TypeError):
        await tree.start_child("hej")  # type: ignore[arg-type]
    await tree.stop()


# -- restart types by exit reasons --------------------------------------------


@pytest.mark.parametrize(
    ("restart", "how", "restarted", "kept"),
    [
        ("permanent", "normal", True, True),
        ("transient", "normal", False, True),
        ("temporary", "normal", False, False),
        ("permanent", "shutdown", True, True),
        ("transient", "shutdown", False, True),
        ("temporary", "shutdown", False, False),
        ("permanent", "crash", True, True),
        ("transient", "crash", True, True),
        ("temporary", "crash", False, False),
    ],
)
async def test_restart_type_by_exit_reason(restart: str, how: str, restarted: bool, kept: bool) -> None:
    """permanent_normal … temporary_abnormal, and *_shutdown with {shutdown, Info}."""
    puppet = Puppet()
    tree = await sv.start(tree_of(sv.child("child1", puppet, restart=restart, shutdown=1.0), intensity=2, period=3600))
    events = tree.events()
    await asyncio.sleep(0)
    puppet.exit("child1", how)
    exited = await next_event(events, is_(sv.ChildExited, "child1"))
    assert exited.reason == how  # type: ignore[attr-defined]
    if restarted:
        await next_event(events, is_(sv.ChildStarted, "child1", starts=2))
        assert statuses(tree) == {"child1": "running"}
        assert tree.count_children() == (1, 1, 0, 1)
    elif kept:
        assert statuses(tree) == {"child1": "terminated"}
        assert tree.count_children() == (1, 0, 0, 1)
        await tree.restart_child("child1")  # transient_shutdown: restart_child works again
        assert statuses(tree) == {"child1": "running"}
    else:
        assert tree.which_children() == []
        assert tree.count_children() == (0, 0, 0, 0)
        await tree.start_child(sv.child("child1", puppet, restart=restart))  # temporary_shutdown
        assert statuses(tree) == {"child1": "running"}
    await tree.stop()


async def test_permanent_shutdown_twice_within_intensity() -> None:
    puppet = Puppet()
    tree = await sv.start(tree_of(sv.child("child1", puppet), intensity=2, period=3600))
    events = tree.events()
    for n in (2, 3):
        await asyncio.sleep(0)
        puppet.exit("child1", "shutdown")
        await next_event(events, is_(sv.ChildStarted, "child1", starts=n))
    assert tree.count_children() == (1, 1, 0, 1)
    await tree.stop()


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_temporary_bystander(strategy: str) -> None:
    puppet = Puppet()
    spec = tree_of(
        sv.child("child1", puppet, shutdown=0.1),
        sv.child("child2", puppet, restart="temporary", shutdown=0.1),
        strategy=strategy,
        intensity=2,
        period=300,
    )
    tree = await sv.start(spec)
    events = tree.events()
    await asyncio.sleep(0)
    puppet.exit("child1", "normal")
    await next_event(events, is_(sv.ChildStarted, "child1", starts=2))
    assert [c.id for c in tree.which_children()] == ["child1"]
    assert puppet.starts() == ["child1", "child2", "child1"]
    assert not tree.stopped
    await tree.stop()


async def test_multiple_restarts() -> None:
    """intensity=1, period=1: restarts 2.1 s apart never exceed it."""
    clock = ManualClock()
    tree = await sv.start(
        tree_of(sv.child("child1", forever, shutdown=sv.BRUTAL_KILL), intensity=1, period=1), clock=clock
    )
    events = tree.events()
    crash(tree, "child1")
    await next_event(events, is_(sv.ChildStarted, "child1", starts=2))
    for n in (3, 4, 5):
        clock.advance(2.1)
        crash(tree, "child1")
        await next_event(events, is_(sv.ChildStarted, "child1", starts=n))
    await tree.terminate_child("child1")
    await tree.delete_child("child1")
    await tree.stop()


async def test_intensity_window_boundary() -> None:
    """A restart exactly `period` old still counts; one just older does not."""
    for age, gives_up in ((5.0, True), (5.001, False)):
        clock = ManualClock()
        tree = await sv.start(tree_of(sv.child("w", forever), intensity=1, period=5), clock=clock)
        events = tree.events()
        crash(tree, "w")
        await next_event(events, is_(sv.ChildStarted, "w", starts=2))
        clock.advance(age)
        crash(tree, "w")
        if gives_up:
            with pytest.raises(sv.TooManyRestarts):
                await tree.wait()
        else:
            await next_event(events, is_(sv.ChildStarted, "w", starts=3))
            await tree.stop()


async def test_intensity_zero_gives_up_at_first_restart() -> None:
    tree = await sv.start(tree_of(sv.child("w", forever), sv.child("t", forever, restart="transient"), intensity=0))
    events = tree.events()
    crash(tree, "t")
    with pytest.raises(sv.TooManyRestarts) as info:
        await tree.wait()
    assert info.value.path == ()
    kinds = [type(e).__name__ for e in [e async for e in events]]
    assert kinds == ["ChildExited", "SupervisorGaveUp", "ChildExited"]


# -- strategies ------------------------------------------------------------------


async def test_one_for_one() -> None:
    tree = await sv.start(tree_of(sv.child("child1", forever), sv.child("child2", forever), intensity=2, period=3600))
    events = tree.events()
    crash(tree, "child1")
    await next_event(events, is_(sv.ChildStarted, "child1", starts=2))
    assert [c.starts for c in tree.which_children()] == [2, 1]
    assert tree.count_children() == (2, 2, 0, 2)
    crash(tree, "child2")
    await next_event(events, is_(sv.ChildStarted, "child2", starts=2))
    crash(tree, "child1")
    with pytest.raises(sv.TooManyRestarts) as info:
        await tree.wait()
    assert info.value.path == ()
    assert info.value.__cause__ is not None


async def test_one_for_one_escalation() -> None:
    puppet = Puppet()
    spec = tree_of(
        sv.child("child1", puppet, ready=True), sv.child("child2", puppet, ready=True), intensity=4, period=3600
    )
    tree = await sv.start(spec)
    events = tree.events()
    puppet.fail_starts["child1"] = 100
    puppet.exit("child1", "crash")
    with pytest.raises(sv.TooManyRestarts):
        await tree.wait()
    trace = [e async for e in events]
    assert puppet.starts().count("child1") == 5  # the crash and 4 failed retries: 5 restarts > 4
    assert sum(isinstance(e, sv.ChildStartFailed) for e in trace) == 4
    assert isinstance(trace[-1], sv.ChildExited) and trace[-1].path == ("child2",)
    assert puppet.running == set()


async def test_one_for_all() -> None:
    tree = await sv.start(
        tree_of(
            sv.child("child1", forever), sv.child("child2", forever), strategy="one_for_all", intensity=2, period=3600
        )
    )
    events = tree.events()
    crash(tree, "child1")
    await next_event(events, is_(sv.ChildStarted, "child2", starts=2))
    assert [(c.id, c.starts, c.status) for c in tree.which_children()] == [
        ("child1", 2, "running"),
        ("child2", 2, "running"),
    ]
    assert tree.count_children() == (2, 2, 0, 2)
    crash(tree, "child1")
    await next_event(events, is_(sv.ChildStarted, "child2", starts=3))
    crash(tree, "child2")
    with pytest.raises(sv.TooManyRestarts):
        await tree.wait()


async def test_one_for_all_escalation() -> None:
    puppet = Puppet()
    spec = tree_of(
        sv.child("child1", puppet, ready=True),
        sv.child("child2", puppet, ready=True),
        strategy="one_for_all",
        intensity=4,
        period=3600,
    )
    tree = await sv.start(spec)
    puppet.fail_starts["child2"] = 100
    puppet.exit("child1", "crash")
    with pytest.raises(sv.TooManyRestarts):
        await tree.wait()
    # every retry stops and starts the whole group again
    assert puppet.starts() == ["child1", "child2"] + ["child1", "child2"] * 4
    assert puppet.running == set()


@pytest.mark.parametrize(
    ("strategy", "expected_starts"),
    [
        # the retry of child2 stops the child1 just restarted and starts both again
        ("one_for_all", ["child1", "child2", "child1", "child2", "child1", "child2"]),
        # the retry splits at child2: child1, just restarted, keeps running
        ("rest_for_one", ["child1", "child2", "child1", "child2", "child2"]),
    ],
)
async def test_other_child_fails_restart(strategy: str, expected_starts: list[str]) -> None:
    """one_for_all_other_child_fails_restart and rest_for_one_other_child_fails_restart."""
    puppet = Puppet()
    spec = tree_of(
        sv.child("child1", puppet, ready=True),
        sv.child("child2", puppet, ready=True),
        strategy=strategy,
        intensity=3,
        period=3600,
    )
    tree = await sv.start(spec)
    events = tree.events()
    puppet.fail_starts["child2"] = 1
    puppet.exit("child1", "crash")
    await next_event(events, is_(sv.ChildStarted, "child2"))
    assert puppet.starts() == expected_starts
    assert statuses(tree) == {"child1": "running", "child2": "running"}
    await tree.stop()


async def test_rest_for_one() -> None:
    tree = await sv.start(
        tree_of(
            sv.child("child1", forever),
            sv.child("child2", forever),
            sv.child("child3", forever),
            strategy="rest_for_one",
            intensity=2,
            period=3600,
        )
    )
    assert tree.count_children() == (3, 3, 0, 3)
    events = tree.events()
    crash(tree, "child2")
    await next_event(events, is_(sv.ChildStarted, "child3", starts=2))
    assert [c.starts for c in tree.which_children()] == [1, 2, 2]
    assert tree.count_children() == (3, 3, 0, 3)
    crash(tree, "child3")
    await next_event(events, is_(sv.ChildStarted, "child3", starts=3))
    crash(tree, "child2")
    with pytest.raises(sv.TooManyRestarts):
        await tree.wait()


async def test_rest_for_one_escalation() -> None:
    puppet = Puppet()
    spec = tree_of(
        sv.child("child1", puppet, ready=True),
        sv.child("child2", puppet, ready=True),
        strategy="rest_for_one",
        intensity=4,
        period=3600,
    )
    tree = await sv.start(spec)
    puppet.fail_starts["child2"] = 100
    puppet.exit("child1", "crash")
    with pytest.raises(sv.TooManyRestarts):
        await tree.wait()
    # the restart starts both (child2 fails: restart 2); 3 retries start child2 only (the last is restart 5 > 4)
    assert puppet.starts() == ["child1", "child2", "child1", "child2"] + ["child2"] * 3
    assert puppet.running == set()


async def test_order_of_children() -> None:
    puppet = Puppet()
    ids = ["ch7", "ch3", "ch10", "ch2", "ch5"]
    tree = await sv.start(
        tree_of(*[sv.child(i, puppet) for i in ids], strategy="rest_for_one", intensity=2, period=3600)
    )
    events = tree.events()
    await asyncio.sleep(0)
    assert puppet.starts() == ids
    puppet.exit("ch10", "crash")
    await next_event(events, is_(sv.ChildStarted, "ch5", starts=2))
    await asyncio.sleep(0)
    assert puppet.stops() == ["ch10", "ch5", "ch2"]
    assert puppet.starts()[5:] == ["ch10", "ch2", "ch5"]
    assert [c.starts for c in tree.which_children()] == [1, 1, 2, 2, 2]
    del puppet.log[:]
    await tree.stop()
    assert puppet.stops() == ["ch5", "ch2", "ch10", "ch3", "ch7"]


async def test_tree() -> None:
    """Nested supervisors: a child supervisor that gives up escalates to the top
    one_for_all supervisor. DESIGN departs from OTP here: supchild3, terminated
    by the operator, stays terminated through the group restart."""
    puppet = Puppet()
    child = sv.child
    top = tree_of(
        child("supchild1", tree_of(child("child1", puppet), child("child2", puppet), intensity=4, period=3600)),
        child("supchild2", tree_of(intensity=4, period=3600)),
        child("supchild3", tree_of(intensity=4, period=3600), restart="transient"),
        strategy="one_for_all",
        intensity=4,
        period=3600,
    )
    tree = await sv.start(top)
    events = tree.events()
    await tree.terminate_child("supchild3")
    assert tree.count_children() == (3, 2, 3, 0)
    sup1, sup2 = tree.at("supchild1"), tree.at("supchild2")
    assert [c.id for c in sup1.which_children()] == ["child1", "child2"]
    assert sup1.count_children() == (2, 2, 0, 2)
    assert sup2.count_children() == (0, 0, 0, 0)
    await sup2.start_child(child("child3", puppet, ready=True))
    await sup2.start_child(child("child4", puppet))
    assert sup1.count_children() == sup2.count_children() == (2, 2, 0, 2)
    puppet.exit("supchild2/child4", "crash")
    await next_event(events, is_(sv.ChildStarted, "supchild2/child4", starts=2))
    assert [(c.id, c.starts) for c in sup2.which_children()] == [("child3", 1), ("child4", 2)]
    assert [c.starts for c in sup1.which_children()] == [1, 1]
    puppet.fail_starts["supchild2/child3"] = 100
    puppet.exit("supchild2/child3", "crash")
    gave_up = await next_event(events, is_(sv.SupervisorGaveUp))
    assert gave_up.path == ("supchild2",)
    exited = await next_event(events, lambda e: e.path == ("supchild2",))
    assert isinstance(exited, sv.ChildExited) and exited.reason == "shutdown"
    assert isinstance(exited.error, sv.TooManyRestarts) and exited.error.path == ("supchild2",)
    await next_event(events, is_(sv.ChildStarted, "supchild2", starts=2))
    assert [(c.id, c.status, c.starts) for c in tree.which_children()] == [
        ("supchild1", "running", 2),
        ("supchild2", "running", 2),
        ("supchild3", "terminated", 1),
    ]
    assert tree.count_children() == (3, 2, 3, 0)
    assert sup1.count_children() == (2, 2, 0, 2)
    assert sup2.count_children() == (0, 0, 0, 0)  # dynamic children are not re-created
    with pytest.raises(sv.NotFound):
        tree.state("supchild2/child3")
    await tree.stop()


async def test_count_children() -> None:
    tree = await sv.start(tree_of(intensity=2, period=3600))
    for n in range(1000):
        await tree.start_child(sv.child(f"c{n}", forever, restart="temporary"))
    assert len(tree.which_children()) == 1000
    assert tree.count_children() == (1000, 1000, 0, 1000)
    assert tree.count_children() == tree.count_children()
    events = tree.events()
    for n in range(1000):
        crash(tree, f"c{n}")
    for _ in range(1000):
        await next_event(events, is_(sv.ChildExited))
    assert tree.count_children() == (0, 0, 0, 0)
    await tree.stop()


async def test_do_not_save_start_parameters_for_temporary_children() -> None:
    """A temporary child leaves nothing behind once it exits: no spec, no snapshot, no count."""
    big = tuple(range(10_000))

    async def saver(ctx: sv.Context) -> None:
        ctx.save(pmap({"big": big}))
        await asyncio.Event().wait()

    for restart, kept in (("permanent", 100), ("transient", 100), ("temporary", 0)):
        tree = await sv.start(tree_of(intensity=1000, period=3600))
        for n in range(100):
            await tree.start_child(sv.child(f"c{n}", saver, restart=restart, state=pmap({"big": big})))
        await asyncio.sleep(0)
        events = tree.events()
        for n in range(100):
            await tree.terminate_child(f"c{n}")
        assert len(tree.which_children()) == kept
        store = tree._runtime.store
        assert len(store.snapshots) == kept and len(store.starts) == kept
        await events.aclose()
        await tree.stop()


async def test_hanging_restart_loop() -> None:
    """While a child is in a restart loop, the supervisor answers every call."""
    clock = ManualClock()
    puppet = Puppet()
    child1 = sv.child("child1", puppet, ready=True, shutdown=sv.BRUTAL_KILL)
    spec = tree_of(child1, intensity=8, period=10, backoff=sv.Backoff(initial=2, maximum=2, jitter=0))
    tree = await sv.start(spec, clock=clock)
    events = tree.events()
    puppet.fail_starts["child1"] = 1000
    puppet.exit("child1", "crash")
    await next_event(events, is_(sv.RestartScheduled, "child1", delay=2))
    clock.advance(2)
    await next_event(events, is_(sv.ChildStartFailed, "child1"))
    await next_event(events, is_(sv.RestartScheduled, "child1"))
    with pytest.raises(sv.AlreadyPresent):
        await tree.start_child(child1)
    with pytest.raises(sv.ChildRestarting):
        await tree.restart_child("child1")
    with pytest.raises(sv.ChildRestarting):
        await tree.delete_child("child1")
    assert statuses(tree) == {"child1": "restarting"}
    assert tree.count_children() == (1, 0, 0, 1)
    await tree.terminate_child("child1")
    assert statuses(tree) == {"child1": "terminated"}
    attempts = len(puppet.starts())
    clock.advance(10)
    await asyncio.sleep(0)
    assert len(puppet.starts()) == attempts  # the loop stopped
    assert clock.pending == 0
    puppet.fail_starts["child1"] = 0
    await tree.restart_child("child1")
    assert statuses(tree) == {"child1": "running"}
    puppet.fail_starts["child1"] = 1000
    puppet.exit("child1", "crash")
    await next_event(events, is_(sv.RestartScheduled, "child1"))
    clock.advance(2)
    await next_event(events, is_(sv.RestartScheduled, "child1"))
    await tree.stop()  # does not hang
    assert tree.stopped and clock.pending == 0


# -- auto_shutdown ----------------------------------------------------------------


async def test_significant_temporary() -> None:
    puppet = Puppet()

    def children() -> list[sv.ChildSpec]:
        return [
            sv.child("child1", puppet, restart="temporary", significant=True),
            sv.child("child2", puppet, restart="temporary", significant=True),
            sv.child("child3", puppet, restart="temporary"),
        ]

    # any_significant: terminate_child does not trigger it; an exit by itself does
    tree = await sv.start(sv.Supervisor(children(), intensity=5, auto_shutdown="any_significant"))
    await tree.terminate_child("child1")
    await asyncio.sleep(0.01)
    assert not tree.stopped and set(statuses(tree)) == {"child2", "child3"}
    await tree.start_child(sv.child("child1", puppet, restart="temporary", significant=True))
    assert [c.id for c in tree.which_children()] == ["child2", "child3", "child1"]
    crash(tree, "child1")
    await tree.wait()  # auto-shutdown: a normal exit, no error
    assert tree.stopped and puppet.running == set()
    for how in ("crash", "normal"):
        tree = await sv.start(sv.Supervisor(children(), intensity=5, auto_shutdown="any_significant"))
        await asyncio.sleep(0)
        puppet.exit("child1", how)
        await tree.wait()
        assert puppet.running == set()
    # all_significant: only when the last significant child has exited
    tree = await sv.start(sv.Supervisor(children(), intensity=5, auto_shutdown="all_significant"))
    events = tree.events()
    await asyncio.sleep(0)
    puppet.exit("child1", "normal")
    await next_event(events, is_(sv.ChildExited, "child1"))
    await asyncio.sleep(0.01)
    assert not tree.stopped and statuses(tree) == {"child2": "running", "child3": "running"}
    puppet.exit("child2", "normal")
    await tree.wait()
    trace = [e async for e in events]
    assert isinstance(trace[-1], sv.SupervisorStopped) and trace[-1].path == ()
    assert puppet.running == set()


async def test_significant_transient() -> None:
    puppet = Puppet()

    def spec(mode: str) -> sv.Supervisor:
        return sv.Supervisor(
            [
                sv.child("child1", puppet, restart="transient", significant=True),
                sv.child("child2", puppet, restart="transient", significant=True),
                sv.child("child3", puppet, restart="transient"),
            ],
            intensity=5,
            auto_shutdown=mode,
        )

    tree = await sv.start(spec("any_significant"))
    events = tree.events()
    await tree.terminate_child("child1")
    assert not tree.stopped
    await tree.restart_child("child1")
    for n, how in ((3, "crash"), (4, "crash")):  # abnormal exits are restarted, no auto-shutdown
        await asyncio.sleep(0)
        puppet.exit("child1", how)
        await next_event(events, is_(sv.ChildStarted, "child1", starts=n))
        assert not tree.stopped
    assert [c.id for c in tree.which_children()] == ["child1", "child2", "child3"]
    await asyncio.sleep(0)
    puppet.exit("child1", "normal")
    await tree.wait()
    assert puppet.running == set()

    tree = await sv.start(spec("all_significant"))
    events = tree.events()
    await asyncio.sleep(0)
    puppet.exit("child1", "normal")
    await next_event(events, is_(sv.ChildExited, "child1"))
    assert not tree.stopped
    puppet.exit("child2", "shutdown")
    await tree.wait()
    assert puppet.running == set()


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
@pytest.mark.parametrize("mode", ["any_significant", "all_significant"])
async def test_significant_bystander(strategy: str, mode: str) -> None:
    """Significant children stopped as bystanders of a group restart never trigger auto-shutdown."""
    puppet = Puppet()
    spec = sv.Supervisor(
        [
            sv.child("child1", puppet, restart="transient", significant=True),
            sv.child("child2", puppet, restart="transient"),
            sv.child("child3", puppet, restart="transient", significant=True),
        ],
        strategy=strategy,
        intensity=5,
        auto_shutdown=mode,
    )
    tree = await sv.start(spec)
    events = tree.events()
    crash(tree, "child2")
    await next_event(events, is_(sv.ChildStarted, "child2", starts=2))
    await asyncio.sleep(0.01)
    expected = {"one_for_one": [1, 2, 1], "one_for_all": [2, 2, 2], "rest_for_one": [1, 2, 2]}[strategy]
    assert [c.starts for c in tree.which_children()] == expected
    assert not tree.stopped
    await tree.stop()
