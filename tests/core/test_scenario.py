"""``supervision simulate``: the scenario language, the timeline, and the
simulation checked against the asyncio runtime on a ManualClock."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from typing import Any

import pytest

import supervision as sv
from supervision._core.errors import ScenarioError
from supervision.testing import (
    Advance,
    Crash,
    Exit,
    FailNextStart,
    ManualClock,
    RestartChild,
    SimulatedStartFailure,
    Step,
    TerminateChild,
    crash,
)
from supervision.testing._scenario import describe, format_timeline, parse, run


async def work(ctx: sv.Context) -> None:
    await asyncio.Event().wait()


def tree(worker: Any = work, **settings: Any) -> sv.Supervisor:
    api = sv.Supervisor([sv.child("web", worker, ready=worker is not work)], intensity=1, period=10)
    children = [
        sv.child("db", worker, ready=worker is not work),
        sv.child("cache", worker, ready=worker is not work),
        sv.child("api", api),
    ]
    return sv.Supervisor(children, **{"strategy": "rest_for_one", "intensity": 3, "period": 5.0, **settings})


# -- the language ------------------------------------------------------------------------


def test_statements_read_as_written() -> None:
    statements = parse(
        "crash db x3 within 10s; wait 30s\ncrash api/web x2 every 500ms # comment\nfail cache x2", tree()
    )
    assert [(s.verb, s.path, s.times, s.spacing, s.seconds) for s in statements] == [
        ("crash", ("db",), 3, 5.0, 0.0),
        ("wait", (), 1, 0.0, 30.0),
        ("crash", ("api", "web"), 2, 0.5, 0.0),
        ("fail", ("cache",), 2, 0.0, 0.0),
    ]
    steps = [step for statement in statements for _, step in statement.steps()]
    assert steps == [
        Crash("db"), Advance(5.0), Crash("db"), Advance(5.0), Crash("db"),
        Advance(30.0),
        Crash("api/web"), Advance(0.5), Crash("api/web"),
        FailNextStart("cache", 2),
    ]  # fmt: skip
    assert [s.status for s in parse("exit db; exit db 3; exit db shutdown", tree())] == [0, 3, "shutdown"]
    assert [s.verb for s in parse("stop db; start db; restart cache; wait 2m", tree())] == [
        "stop",
        "start",
        "restart",
        "wait",
    ]


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("crash dbb", 1, 7, "no child 'dbb' in the tree (did you mean 'db'?)"),
        ("crash api/wbe", 1, 11, "no child 'wbe' under api (did you mean 'web'?)"),
        ("crash db/x", 1, 10, "db is not a supervisor"),
        ("crash db x3 within", 1, 19, "needs a duration after 'within'"),
        ("crash db within 10s", 1, 10, "'within' needs a count first"),
        ("wait 10 s", 1, 9, "unexpected 's' after 'wait 10'"),
        ("wait soon", 1, 6, "expected a duration like '10s'"),
        ("crash db; explode db", 1, 11, "unknown statement 'explode'"),
        ("wait 1s\ncrash db x0", 2, 10, "a count must be between"),
        ("crash db\n  wiat 5s", 2, 3, "(did you mean 'wait'?)"),
        ("exit db 300", 1, 9, "expected an exit status"),
        ("crash", 1, 6, "'crash' needs the path of a child"),
        ("  ;  # nothing", 1, 1, "an empty scenario"),
    ],
)
def test_errors_name_the_line_and_column(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse(text, tree())
    error = caught.value
    assert (error.line, error.column) == (line, column), str(error)
    assert message in error.message
    caret = error.excerpt().splitlines()[1]
    assert caret.index("^") == column + 1  # the excerpt is indented by two spaces


# -- the timeline ----------------------------------------------------------------------------


def test_the_timeline_shows_the_window_filling_and_who_gives_up() -> None:
    timeline = run(tree(), parse("crash db x3 within 2s; crash db", tree()))
    text = format_timeline(timeline)
    assert "restart window: 3 of 3 within 5s -- FULL until 5s: one more restart before then and it gives up" in text
    assert "2s  /        GIVES UP: more than 3 restarts within 5s" in text
    assert text.endswith("at 2s: the root gave up; `supervision run` exits with status 1")
    assert timeline.root == "gave up" and timeline.gave_up == [()]


def test_a_nested_supervisor_gives_up_and_its_parent_restarts_it() -> None:
    timeline = run(tree(), parse("crash api/web x2", tree()))
    text = format_timeline(timeline)
    assert "api      GIVES UP: more than 1 restarts within 10s" in text
    assert "api      exited: it gave up" in text
    assert "api      restarted (start 2)" in text
    assert timeline.root == "running" and timeline.gave_up == [("api",)]
    assert text.endswith("at 0s: the root is running; gave up on the way: api")


def test_waiting_empties_the_window() -> None:
    timeline = run(tree(), parse("crash db x3; wait 6s; crash db x3", tree()))
    assert timeline.root == "running"
    timeline = run(tree(), parse("crash db x3; wait 4s; crash db", tree()))
    assert timeline.root == "gave up"


def test_backoff_delays_and_failed_starts_show() -> None:
    spec = tree(backoff=sv.Backoff(initial=1.0, maximum=4.0, jitter=0.0), intensity=10)
    text = format_timeline(run(spec, parse("fail cache x2; crash cache; wait 10s", spec)))
    assert "cache    restart in 1s" in text
    assert "1s  cache    failed to start" in text
    assert "3s  cache    failed to start" in text  # then 2s more
    assert "7s  cache    restarted (start 4)" in text  # and 4s more


# -- the simulation against the runtime ---------------------------------------------------------


class Puppet:
    """A ``ready=True`` worker that fails to start or exits when the test says so."""

    def __init__(self) -> None:
        self.fail: defaultdict[tuple[str, ...], int] = defaultdict(int)
        self.exits: dict[tuple[str, ...], tuple[asyncio.Event, list[Any]]] = {}

    async def __call__(self, ctx: sv.Context) -> None:
        if self.fail[ctx.path] > 0:
            self.fail[ctx.path] -= 1
            raise SimulatedStartFailure("fails to start")
        ctx.ready()
        event, how = self.exits[ctx.path] = (asyncio.Event(), [])
        await event.wait()
        reason, error = how
        if reason == "normal":
            return
        if reason == "shutdown":
            raise sv.Shutdown()
        raise error

    def exit(self, path: tuple[str, ...], reason: str, error: BaseException | None) -> None:
        event, how = self.exits[path]
        how.extend((reason, error))
        event.set()


def busy(runner: Any) -> bool:
    if runner.core.busy:
        return True
    return any(busy(child) for id in runner.core.children if (child := runner.child_runner(id)) is not None)


async def settle(tree: sv.Tree) -> None:
    idle = 0
    for _ in range(10_000):
        await asyncio.sleep(0)
        idle = idle + 1 if not tree._runtime.operations and not busy(tree._root) else 0
        if idle >= 5:
            return
    raise AssertionError("the tree did not settle")


async def in_runtime(spec: sv.Supervisor, puppet: Puppet, steps: list[Step]) -> list[sv.Event]:
    clock = ManualClock()
    events: list[sv.Event] = []
    async with sv.start(spec, clock=clock, rng=random.Random(0)) as running:
        stream = running.events()
        for step in steps:
            if running.stopped:
                break
            if isinstance(step, FailNextStart):
                puppet.fail[step.path] += step.times
            elif isinstance(step, Crash):
                with contextlib.suppress(sv.NotFound):  # not running (restarting): the simulator skips it too
                    crash(running, step.path, step.error)  # the same error: the same timeline
            elif isinstance(step, Exit):
                puppet.exit(step.path, step.reason.value, step.error)
            elif isinstance(step, Advance):
                target = clock.now() + step.seconds
                while (deadline := clock.next_deadline()) is not None and deadline <= target:
                    clock.advance(max(0.0, deadline - clock.now()))
                    await settle(running)
                clock.advance(target - clock.now())
            elif isinstance(step, TerminateChild):
                await running.at(step.path[:-1]).terminate_child(step.path[-1])
            elif isinstance(step, RestartChild):
                await running.at(step.path[:-1]).restart_child(step.path[-1])
            await settle(running)
        while stream._queue:
            events.append(stream._queue.popleft())
        await stream.aclose()
        if running.stopped:
            with pytest.raises(sv.TooManyRestarts):
                await running.wait()
    return events


def key(event: sv.Event) -> tuple[Any, ...]:
    return (
        type(event).__name__,
        event.path,
        event.time,
        getattr(event, "reason", None),
        getattr(event, "starts", None),
    )


SCENARIOS = [
    "crash db x3 within 10s; wait 30s; crash cache",
    "crash api/web x2; wait 1s; exit cache 3; restart db; crash api/web x2 every 1s",
    "fail cache x2; crash cache; wait 10s; stop api; crash db x3 within 1s; start api; crash db",
]


@pytest.mark.parametrize("text", SCENARIOS)
async def test_simulate_tells_what_the_runtime_does(text: str) -> None:
    puppet = Puppet()
    spec = tree(puppet, backoff=sv.Backoff(initial=1.0, maximum=4.0, jitter=0.0))
    statements = parse(text, spec)
    timeline = run(spec, statements)
    started = next(n for n, e in enumerate(timeline.events) if e.path == ("api",))  # the runtime's stream
    simulated = timeline.events[started + 1 :]  # subscribes once the tree has started
    steps = [step for statement in statements for _, step in statement.steps()]
    actual = await in_runtime(spec, puppet, steps)
    assert [key(e) for e in actual] == [key(e) for e in simulated]
    assert [describe(e) for e in actual] == [describe(e) for e in simulated]
    assert len(actual) > 10


async def test_simulate_tells_when_the_runtime_gives_up() -> None:
    puppet = Puppet()
    spec = tree(puppet)
    statements = parse("crash db x2 within 1s; wait 1s; crash db x2", spec)
    timeline = run(spec, statements)
    assert timeline.root == "gave up"
    started = next(n for n, e in enumerate(timeline.events) if e.path == ("api",))
    steps = [step for statement in statements for _, step in statement.steps()]
    actual = await in_runtime(spec, puppet, steps)
    assert [key(e) for e in actual] == [key(e) for e in timeline.events[started + 1 :]]
    assert [e.path for e in actual if isinstance(e, sv.SupervisorGaveUp)] == [()]


def test_each_restart_counted_in_the_same_instant_shows_in_the_window() -> None:
    text = format_timeline(run(tree(), parse("crash db x3; wait 1m", tree())))
    windows = [line.strip() for line in text.splitlines() if "restart window" in line]
    assert windows == [
        "/        restart window: 1 of 3 within 5s",
        "/        restart window: 2 of 3 within 5s",
        "/        restart window: 3 of 3 within 5s -- FULL until 5s: one more restart before then and it gives up",
    ]  # and none for the wait, which only empties the window


async def test_simulate_tells_what_the_runtime_does_with_a_childs_own_limit() -> None:
    puppet = Puppet()
    spec = sv.Supervisor(
        [sv.child("a", puppet, ready=True, intensity=1, period=10), sv.child("b", puppet, ready=True)],
        intensity=2,
        period=5,
    )
    statements = parse("crash a x2; wait 1s; crash b; crash a x2", spec)
    timeline = run(spec, statements)
    assert timeline.gave_up == [("a",), ("a",), ()]
    text = format_timeline(timeline)
    assert "a     restart window: 1 of 1 within 10s -- FULL until 10s" in text
    steps = [step for statement in statements for _, step in statement.steps()]
    actual = await in_runtime(spec, puppet, steps)
    assert [key(e) for e in actual] == [key(e) for e in timeline.events[2:]]
