"""supervision.testing: the simulator, the schedule vocabulary, the model's
doctests, and the simulator checked against the asyncio runtime itself."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import inspect
import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supervision as sv
from supervision.testing import (
    Advance,
    Crash,
    DeleteChild,
    Exit,
    FailNextStart,
    ManualClock,
    RestartChild,
    Simulator,
    StartChild,
    StartTree,
    Step,
    StopTree,
    TerminateChild,
    check_against_model,
    crash,
    simulate,
)
from supervision.testing import strategies as sst


async def work(ctx: sv.Context) -> None: ...


def kinds(events: list[sv.Event]) -> list[tuple[str, str]]:
    return [(type(e).__name__, "/".join(e.path) or "/") for e in events]


def statuses(simulator: Simulator, path: str = "") -> dict[str, str]:
    return {c.id: c.status.value for c in simulator.which_children(path)}


@pytest.mark.parametrize(
    "module",
    [
        "supervision.testing._schedule",
        "supervision.testing._simulate",
        "supervision.testing._lockstep",
        "supervision.testing.model",
        "supervision.testing.strategies",
    ],
)
def test_doctests(module: str) -> None:
    # The public names say they live in supervision.testing, so doctest.testmod
    # would skip them: find the examples by the file they are written in.
    mod = importlib.import_module(module)
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner()
    objects: list[Any] = [mod]
    for obj in vars(mod).values():
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and inspect.getsourcefile(obj) == mod.__file__:
            objects.append(obj)
            objects.extend(m for m in vars(obj).values() if inspect.isfunction(m)) if inspect.isclass(obj) else None
    for obj in objects:
        for test in finder.find(obj, getattr(obj, "__qualname__", module), module=False, globs=dict(vars(mod))):
            runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


# -- the simulator ----------------------------------------------------------------------


def test_a_permanent_child_is_restarted_and_counted() -> None:
    spec = sv.Supervisor([sv.child("a", work), sv.child("b", work)])
    events = simulate(spec, [Crash("a")])
    assert kinds(events) == [
        ("ChildStarted", "a"),
        ("ChildStarted", "b"),
        ("ChildExited", "a"),
        ("ChildStarted", "a"),
    ]
    assert events[-1].starts == 2  # type: ignore[attr-defined]


def test_rest_for_one_stops_right_to_left_and_starts_left_to_right() -> None:
    spec = sv.Supervisor([sv.child(id, work) for id in "abcd"], strategy="rest_for_one")
    events = simulate(spec, [Crash("b")])[4:]
    assert kinds(events) == [
        ("ChildExited", "b"),
        ("ChildExited", "d"),
        ("ChildExited", "c"),
        ("ChildStarted", "b"),
        ("ChildStarted", "c"),
        ("ChildStarted", "d"),
    ]


def test_intensity_window_counts_a_restart_exactly_period_old() -> None:
    spec = sv.Supervisor([sv.child("a", work)], intensity=1, period=2.0)
    events = simulate(spec, [Crash("a"), Advance(2.0), Crash("a")])
    assert ("SupervisorGaveUp", "/") in kinds(events)
    events = simulate(spec, [Crash("a"), Advance(2.5), Crash("a")])
    assert ("SupervisorGaveUp", "/") not in kinds(events)


def test_leading_start_failures_fail_the_tree_start() -> None:
    spec = sv.Supervisor([sv.child("a", work), sv.child("b", work), sv.child("c", work)])
    events = simulate(spec, [FailNextStart("c"), StartTree(), Crash("a")])
    assert kinds(events) == [
        ("ChildStarted", "a"),
        ("ChildStarted", "b"),
        ("ChildStartFailed", "c"),
        ("ChildExited", "b"),
        ("ChildExited", "a"),
    ]
    simulator = Simulator(spec)
    simulator.apply(FailNextStart("c"))
    error = simulator.start()
    assert isinstance(error, sv.StartError) and error.path == ("c",)
    assert simulator.exit is not None and simulator.exit.start_failed


def test_a_failed_restart_is_retried_at_once_without_backoff() -> None:
    spec = sv.Supervisor([sv.child("a", work)], intensity=5)
    events = simulate(spec, [FailNextStart("a", times=2), Crash("a")])
    assert kinds(events[1:]) == [
        ("ChildExited", "a"),
        ("ChildStartFailed", "a"),
        ("RestartScheduled", "a"),
        ("ChildStartFailed", "a"),
        ("RestartScheduled", "a"),
        ("ChildStarted", "a"),
    ]
    assert {e.time for e in events} == {0.0}


def test_a_failed_restart_can_wait_restarting_until_time_passes() -> None:
    spec = sv.Supervisor([sv.child("a", work), sv.child("b", work)], intensity=5)
    simulator = Simulator(spec, immediate_retries=False)
    simulator.start()
    simulator.run([FailNextStart("a"), Crash("a")])
    assert statuses(simulator) == {"a": "restarting", "b": "running"}
    assert simulator.count_children() == sv.ChildCounts(specs=2, active=1, supervisors=0, workers=2)
    assert isinstance(simulator.apply(RestartChild("a")), sv.ChildRestarting)
    assert isinstance(simulator.apply(DeleteChild("a")), sv.ChildRestarting)
    assert isinstance(simulator.apply(StartChild((), sv.child("a", work))), sv.AlreadyPresent)
    simulator.apply(Advance(0))
    assert statuses(simulator) == {"a": "running", "b": "running"}
    assert simulator.starts[("a",)] == 3


def test_terminate_child_cancels_the_retries_and_holds() -> None:
    spec = sv.Supervisor([sv.child("a", work)], intensity=5)
    simulator = Simulator(spec, immediate_retries=False)
    simulator.start()
    simulator.run([FailNextStart("a"), Crash("a"), TerminateChild("a"), Advance(10)])
    assert statuses(simulator) == {"a": "terminated"}
    assert simulator.apply(TerminateChild("a")) is None  # terminating again does nothing
    assert simulator.apply(RestartChild("a")) is None
    assert statuses(simulator) == {"a": "running"}


def test_a_nested_supervisor_that_gives_up_escalates() -> None:
    inner = sv.Supervisor([sv.child("x", work)], intensity=0)
    spec = sv.Supervisor([sv.child("db", inner), sv.child("web", work)], strategy="one_for_all")
    events = simulate(spec, [Crash("db/x")])
    gave_up = next(i for i, e in enumerate(events) if isinstance(e, sv.SupervisorGaveUp))
    assert events[gave_up].path == ("db",)
    exited = events[gave_up + 1]
    assert isinstance(exited, sv.ChildExited) and exited.path == ("db",)
    assert exited.reason == "shutdown" and isinstance(exited.error, sv.TooManyRestarts)
    # the parent restarts the group: web stopped, then db (with x) and web started again
    assert kinds(events[gave_up + 2 :]) == [
        ("ChildExited", "web"),
        ("ChildStarted", "db/x"),
        ("ChildStarted", "db"),
        ("ChildStarted", "web"),
    ]


def test_dynamic_children_die_with_their_supervisors_incarnation() -> None:
    inner = sv.Supervisor([sv.child("x", work)])
    spec = sv.Supervisor([sv.child("db", inner)])
    simulator = Simulator(spec)
    simulator.start()
    assert simulator.apply(StartChild("db", sv.child("extra", work))) is None
    assert statuses(simulator, "db") == {"x": "running", "extra": "running"}
    simulator.apply(Crash("db"))
    assert statuses(simulator, "db") == {"x": "running"}
    assert ("db", "extra") not in simulator.starts
    assert simulator.starts[("db", "x")] == 2


def test_commands_fail_as_the_api_does() -> None:
    spec = sv.Supervisor([sv.child("a", work), sv.child("s", sv.Supervisor())])
    simulator = Simulator(spec)
    simulator.start()
    assert isinstance(simulator.apply(TerminateChild("nope")), sv.NotFound)
    assert isinstance(simulator.apply(DeleteChild("a")), sv.ChildRunning)
    assert isinstance(simulator.apply(StartChild((), sv.child("a", work))), sv.AlreadyStarted)
    assert isinstance(simulator.apply(StartChild("nope", sv.child("b", work))), sv.NotFound)
    simulator.apply(TerminateChild("s"))
    assert isinstance(simulator.apply(StartChild("s", sv.child("b", work))), sv.SupervisorNotRunning)
    simulator.apply(StopTree())
    assert not simulator.running
    assert isinstance(simulator.apply(TerminateChild("a")), sv.SupervisorNotRunning)


def test_exits_of_children_that_do_not_run_are_skipped() -> None:
    spec = sv.Supervisor([sv.child("a", work, restart="transient")])
    simulator = Simulator(spec)
    simulator.start()
    simulator.run([Exit("a", "normal"), Crash("a"), Crash("nope"), Crash("a/deeper")])
    assert statuses(simulator) == {"a": "terminated"}
    assert len(simulator.events) == 2


def test_backoff_delays_and_jitter_are_reproducible() -> None:
    spec = sv.Supervisor([sv.child("a", work)], intensity=10, backoff=sv.Backoff(initial=1, maximum=4, jitter=0.5))
    schedule: list[Step] = [Crash("a"), Advance(5), Crash("a"), Advance(5), Crash("a")]
    delays = [e.delay for e in simulate(spec, schedule) if isinstance(e, sv.RestartScheduled)]
    assert len(delays) == 3 and delays[0] != delays[1]
    assert delays == [e.delay for e in simulate(spec, schedule) if isinstance(e, sv.RestartScheduled)]
    other = simulate(spec, schedule, rng=random.Random(1))
    assert delays != [e.delay for e in other if isinstance(e, sv.RestartScheduled)]


def test_simulate_needs_no_event_loop() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert simulate(sv.Supervisor([sv.child("a", work)]), [Crash("a")] * 3)


async def test_simulate_ignores_a_running_event_loop() -> None:
    spec = sv.Supervisor([sv.child("a", work)], intensity=5)
    events = simulate(spec, [FailNextStart("a"), Crash("a")])
    assert isinstance(events[-1], sv.ChildStarted)


def test_the_clock_given_keeps_time_with_the_simulation() -> None:
    clock = ManualClock(start=100.0)
    spec = sv.Supervisor([sv.child("a", work)], backoff=sv.Backoff(initial=1.0, jitter=0.0))
    events = simulate(spec, [Crash("a"), Advance(2.5)], clock=clock)
    assert [e.time for e in events] == [100.0, 100.0, 100.0, 101.0]
    assert clock.now() == 102.5


def test_the_schedule_vocabulary_reads_well() -> None:
    assert Crash(("a", "b")) == Crash("a/b")
    assert repr([FailNextStart("a", times=2), Exit("a", "shutdown"), Advance(0.5)]) == (
        "[FailNextStart('a', times=2), Exit('a', 'shutdown'), Advance(0.5)]"
    )
    with pytest.raises(ValueError):
        Advance(-1)


@settings(max_examples=50)
@given(sst.trees_and_schedules(max_steps=20), st.booleans())
def test_drawn_trees_and_schedules_agree_with_the_model(
    case: tuple[sv.Supervisor, list[Step]], immediate_retries: bool
) -> None:
    spec, schedule = case
    check_against_model(spec, schedule, immediate_retries=immediate_retries)


# -- the simulator against the asyncio runtime ---------------------------------------------


class Flaky:
    """A ``ready=True`` worker whose next starts fail on demand (it raises before it
    is ready); otherwise it runs until stopped."""

    def __init__(self) -> None:
        self.fail: defaultdict[tuple[str, ...], int] = defaultdict(int)

    async def __call__(self, ctx: sv.Context) -> None:
        if self.fail[ctx.path] > 0:
            self.fail[ctx.path] -= 1
            raise RuntimeError("fails to start")
        ctx.ready()
        await asyncio.Event().wait()


def busy(runner: Any) -> bool:
    """Whether a supervisor of this subtree is in the middle of something."""
    if runner.core.busy:
        return True
    return any(busy(child) for id in runner.core.children if (child := runner.child_runner(id)) is not None)


async def settle(tree: sv.Tree) -> None:
    """Let the tree finish whatever the last step set off."""
    idle = 0
    for _ in range(10_000):
        await asyncio.sleep(0)
        idle = idle + 1 if not tree._runtime.operations and not busy(tree._root) else 0
        if idle >= 5:
            return
    raise AssertionError("the tree did not settle")


async def run_in_runtime(spec: sv.Supervisor, flaky: Flaky, schedule: list[Step]) -> list[Any]:
    clock = ManualClock()
    events: list[sv.Event] = []
    async with sv.start(spec, clock=clock, rng=random.Random(0)) as tree:
        stream = tree.events()
        for step in schedule:
            if isinstance(step, FailNextStart):
                flaky.fail[step.path] += step.times
            elif isinstance(step, Crash):
                crash(tree, step.path)
            elif isinstance(step, Advance):
                # Time stands still while the tree reacts, as in the simulator:
                # advance to each deadline in turn and let the tree settle there.
                target = clock.now() + step.seconds
                while (deadline := clock.next_deadline()) is not None and deadline <= target:
                    clock.advance(max(0.0, deadline - clock.now()))
                    await settle(tree)
                clock.advance(target - clock.now())
            elif isinstance(step, TerminateChild):
                await tree.at(step.path[:-1]).terminate_child(step.path[-1])
            elif isinstance(step, RestartChild):
                await tree.at(step.path[:-1]).restart_child(step.path[-1])
            await settle(tree)
        while stream._queue:
            events.append(stream._queue.popleft())
        await stream.aclose()
    return [(type(e).__name__, e.path, e.time, getattr(e, "reason", None)) for e in events]


def run_in_simulator(spec: sv.Supervisor, schedule: list[Step]) -> list[Any]:
    simulator = Simulator(spec)
    simulator.start()
    already = len(simulator.events)  # the runtime's stream subscribes after the start
    simulator.run(schedule)
    return [(type(e).__name__, e.path, e.time, getattr(e, "reason", None)) for e in simulator.events[already:]]


RUNTIME_SCENARIOS: list[tuple[str, dict[str, Any], list[Step]]] = [
    ("one_for_one crash", {"strategy": "one_for_one"}, [Crash("b"), Crash("a")]),
    ("one_for_all crash", {"strategy": "one_for_all"}, [Crash("b")]),
    ("rest_for_one crash", {"strategy": "rest_for_one"}, [Crash("b")]),
    (
        "failed restart, retried after time passes",
        {"strategy": "one_for_all", "intensity": 5},
        [FailNextStart("b"), Crash("a"), Advance(0.0)],
    ),
    ("give up", {"intensity": 1, "period": 5.0}, [Crash("a"), Advance(1.0), Crash("b")]),
    ("terminate holds through a group restart", {"strategy": "one_for_all"}, [TerminateChild("b"), Crash("a")]),
    (
        "backoff",
        {"intensity": 5, "backoff": sv.Backoff(initial=0.5, maximum=2.0, jitter=0.0)},
        [Crash("a"), Advance(0.25), Advance(0.5), Crash("a"), Advance(1.0)],
    ),
    ("nested give-up escalates", {"strategy": "one_for_all", "intensity": 3}, [Crash("s/x"), Crash("s/x")]),
]


@pytest.mark.parametrize(("name", "settings_", "schedule"), RUNTIME_SCENARIOS, ids=[s[0] for s in RUNTIME_SCENARIOS])
async def test_the_simulator_behaves_as_the_runtime(name: str, settings_: dict[str, Any], schedule: list[Step]) -> None:
    flaky = Flaky()
    inner = sv.Supervisor([sv.child("x", flaky, ready=True)], intensity=1)
    children = [sv.child("a", flaky, ready=True), sv.child("b", flaky, ready=True), sv.child("s", inner)]
    spec = sv.Supervisor(children, **settings_)
    assert await run_in_runtime(spec, flaky, schedule) == run_in_simulator(spec, schedule)
