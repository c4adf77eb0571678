"""The pure core without asyncio: the intensity window, backoff arithmetic, and
the mailbox rules (queued inputs while busy, stale exits ignored)."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import supervision as sv
from supervision._core.events import ExitReason
from supervision._core.machine import SupervisorCore, add_restart
from supervision._core.messages import (
    CancelTimer,
    Emit,
    Exit,
    Exited,
    Init,
    Outcome,
    Ready,
    Reply,
    SetTimer,
    Start,
    StartDone,
    StartFailed,
    Stop,
    StopDone,
    StopSupervisor,
    TerminateChild,
    TimerFired,
)

CRASH = Outcome(ExitReason.CRASH, RuntimeError("boom"))


async def work(ctx: sv.Context) -> None: ...


def started(core: SupervisorCore, now: float = 0.0) -> SupervisorCore:
    """Run Init to completion, answering every Start with success."""
    effects = core.handle(Init(), now)
    while effects and isinstance(effects[-1], Start):
        start = effects[-1]
        effects = core.handle(StartDone(start.id, start.token, 1), now)
    assert any(isinstance(e, Ready) for e in effects)
    return core


def blocking(effects: list[object]) -> Start | Stop | None:
    last = effects[-1] if effects else None
    return last if isinstance(last, (Start, Stop)) else None


@given(
    intensity=st.integers(0, 5),
    period=st.floats(0, 10, allow_nan=False),
    gaps=st.lists(st.floats(0, 4, allow_nan=False), min_size=1, max_size=30),
)
def test_add_restart_matches_the_definition(intensity: int, period: float, gaps: list[float]) -> None:
    """Give up when more than `intensity` restarts lie within `period` seconds, counting this one."""
    window: deque[float] = deque()
    times: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        times.append(now)
        ok = add_restart(window, now, intensity, period)
        in_window = [t for t in times if now - t <= period]
        assert ok == (len(in_window) <= intensity)
        if not ok:
            break


@given(
    n=st.integers(1, 200),
    initial=st.floats(0, 5, allow_nan=False),
    extra=st.floats(0, 100, allow_nan=False),
    factor=st.floats(1, 4, allow_nan=False),
    jitter=st.floats(0, 1, allow_nan=False),
    seed=st.integers(0, 2**32),
)
def test_backoff_delay_bounds(n: int, initial: float, extra: float, factor: float, jitter: float, seed: int) -> None:
    backoff = sv.Backoff(initial=initial, maximum=initial + extra, factor=factor, jitter=jitter)
    delay = backoff.delay(n, random.Random(seed))
    base = min(backoff.maximum, initial * factor ** (n - 1))
    assert 0 <= delay <= backoff.maximum
    assert delay >= base * (1 - jitter) - 1e-9
    assert delay <= base * (1 + jitter) + 1e-9


def test_inputs_wait_in_the_mailbox_while_a_job_runs() -> None:
    core = started(SupervisorCore(sv.Supervisor([sv.child("a", work), sv.child("b", work)], strategy="one_for_all")))
    a, b = core.children["a"], core.children["b"]
    effects = core.handle(Exited("a", a.token, CRASH), 1.0)
    stop_b = blocking(effects)
    assert isinstance(stop_b, Stop) and stop_b.id == "b"
    # b crashes too while the supervisor is stopping it: the exit waits in the mailbox
    assert core.handle(Exited("b", b.token, CRASH), 1.0) == []
    assert core.busy
    effects = core.handle(StopDone("b", b.token, CRASH), 1.0)  # it had already crashed
    exited = [e.event for e in effects if isinstance(e, Emit)]
    assert isinstance(exited[0], sv.ChildExited) and exited[0].reason == "crash"
    start_a = blocking(effects)
    assert isinstance(start_a, Start) and start_a.id == "a"
    start_b = blocking(core.handle(StartDone("a", start_a.token, 2), 1.0))
    assert isinstance(start_b, Start) and start_b.id == "b"
    effects = core.handle(StartDone("b", start_b.token, 2), 1.0)
    # the queued exit of b's old incarnation is stale now: ignored, no restart counted
    assert blocking(effects) is None
    assert len(core.restarts) == 1
    assert not core.busy


def test_a_completion_must_answer_the_pending_effect() -> None:
    core = SupervisorCore(sv.Supervisor([sv.child("a", work)]))
    start = blocking(core.handle(Init(), 0.0))
    assert start is not None
    with pytest.raises(RuntimeError):
        core.handle(StartDone("a", start.token + 1, 1), 0.0)


def test_start_failure_at_init_stops_the_started_ones_and_exits() -> None:
    core = SupervisorCore(sv.Supervisor([sv.child("a", work), sv.child("b", work)]))
    start_a = blocking(core.handle(Init(), 0.0))
    assert start_a is not None
    start_b = blocking(core.handle(StartDone("a", start_a.token, 1), 0.0))
    assert start_b is not None
    stop_a = blocking(core.handle(StartFailed("b", start_b.token, 1, OSError("nope")), 0.0))
    assert isinstance(stop_a, Stop) and stop_a.id == "a"
    effects = core.handle(StopDone("a", start_a.token, Outcome(ExitReason.SHUTDOWN)), 0.0)
    exit = effects[-2] if isinstance(effects[-1], Reply) else effects[-1]
    assert isinstance(exit, Exit) and exit.start_failed
    assert isinstance(exit.error, sv.StartError) and exit.error.path == ("b",)
    assert isinstance(exit.error.__cause__, OSError)


def test_retry_timers_are_set_and_cancelled() -> None:
    spec = sv.Supervisor([sv.child("a", work)], backoff=sv.Backoff(initial=2, jitter=0))
    core = started(SupervisorCore(spec))
    effects = core.handle(Exited("a", core.children["a"].token, CRASH), 10.0)
    timers = [e for e in effects if isinstance(e, SetTimer)]
    assert len(timers) == 1 and timers[0].at == 12.0
    assert core.children["a"].status == "restarting"
    effects = core.handle(TerminateChild("a"), 11.0)
    assert CancelTimer(timers[0].token) in effects
    assert core.handle(TimerFired(timers[0].token), 12.0) == []  # a cancelled timer that fires anyway: ignored


def test_after_exit_commands_are_answered_with_an_error() -> None:
    core = started(SupervisorCore(sv.Supervisor([])))
    command = StopSupervisor()
    effects = core.handle(command, 0.0)
    assert any(isinstance(e, Exit) for e in effects)
    late = TerminateChild("a")
    (reply,) = core.handle(late, 0.0)
    assert isinstance(reply, Reply) and isinstance(reply.error, sv.SupervisorNotRunning)


def test_unobserved_core_builds_no_events() -> None:
    core = SupervisorCore(sv.Supervisor([sv.child("a", work)], intensity=100))
    core.observed = False
    started(core)
    effects = core.handle(Exited("a", core.children["a"].token, CRASH), 1.0)
    start = blocking(effects)
    assert start is not None
    effects += core.handle(StartDone("a", start.token, 2), 1.0)
    assert not any(isinstance(e, Emit) for e in effects)


def _shape(effects: list[Any]) -> list[tuple[Any, ...]]:
    """What an effect list says, comparable across two cores (errors differ by identity)."""
    shaped: list[tuple[Any, ...]] = []
    for effect in effects:
        if isinstance(effect, Emit):
            event = effect.event
            shaped.append(
                (type(event).__name__, event.path, getattr(event, "reason", None), getattr(event, "starts", None))
            )
        else:
            shaped.append((type(effect).__name__, getattr(effect, "id", None), getattr(effect, "token", None)))
    return shaped


@given(
    strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    exits=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(list(ExitReason)), st.floats(0, 2)), max_size=25),
    intensity=st.integers(0, 6),
    observed=st.booleans(),
)
def test_handle_started_is_handle_of_a_start_done(
    strategy: str, exits: list[tuple[int, ExitReason, float]], intensity: int, observed: bool
) -> None:
    """``handle_started(starts, now)`` (the answer a runtime gives a start that
    completed at once) makes the same transitions and effects as
    ``handle(StartDone(id, token, starts), now)``, on restarts and starts alike."""
    spec = sv.Supervisor(
        [
            sv.child(id, work, restart=restart)
            for id, restart in (("a", "permanent"), ("b", "transient"), ("c", "permanent"))
        ],
        strategy=strategy,
        intensity=intensity,
        period=3.0,
    )
    cores = [SupervisorCore(spec), SupervisorCore(spec)]
    logs: list[list[tuple[Any, ...]]] = [[], []]
    error = RuntimeError("boom")

    def feed(n: int, message: Any, now: float) -> None:
        effects = cores[n].handle(message, now)
        while True:
            logs[n] += _shape(effects)
            start = effects[-1] if effects and isinstance(effects[-1], Start) else None
            stop = effects[-1] if effects and isinstance(effects[-1], Stop) else None
            if start is not None:
                if n == 0:
                    effects = cores[0].handle(StartDone(start.id, start.token, 7), now)
                else:
                    effects = cores[1].handle_started(7, now)
            elif stop is not None:
                effects = cores[n].handle(StopDone(stop.id, stop.token, Outcome(ExitReason.SHUTDOWN)), now)
            else:
                return

    now = 0.0
    for n in (0, 1):
        cores[n].observed = observed
        feed(n, Init(), now)
    for index, reason, gap in exits:
        now += gap
        id = "abc"[index]
        for n in (0, 1):
            child = cores[n].children.get(id)
            if child is not None:
                feed(n, Exited(id, child.token, Outcome(reason, error if reason is ExitReason.CRASH else None)), now)
    assert logs[0] == logs[1]
    assert [(c.status, c.token, c.since) for c in cores[0].children.values()] == [
        (c.status, c.token, c.since) for c in cores[1].children.values()
    ]
    assert cores[0].phase is cores[1].phase
