"""The core's operator restart (``supervision restart PATH``): one command that stops a
child and starts it again, refusing a temporary child as OTP's ``restart_child`` does."""

from __future__ import annotations

import supervision as sv
from supervision._core.events import ChildExited, ChildStarted, ExitReason
from supervision._core.machine import SupervisorCore
from supervision._core.messages import (
    CancelTimer,
    Emit,
    Exited,
    Init,
    OperatorRestart,
    Outcome,
    Reply,
    SetTimer,
    Start,
    StartDone,
    Stop,
    StopDone,
)


async def work(ctx: sv.Context) -> None: ...


def started(core: SupervisorCore) -> SupervisorCore:
    effects = core.handle(Init(), 0.0)
    while effects and isinstance(effects[-1], Start):
        start = effects[-1]
        effects = core.handle(StartDone(start.id, start.token, 1), 0.0)
    return core


def test_a_running_child_is_stopped_then_started_and_no_restart_is_counted() -> None:
    core = started(SupervisorCore(sv.Supervisor([sv.child("a", work), sv.child("b", work)], intensity=0)))
    command = OperatorRestart("a")
    stop = core.handle(command, 1.0)[-1]
    assert isinstance(stop, Stop) and stop.id == "a"
    effects = core.handle(StopDone("a", stop.token, Outcome(ExitReason.SHUTDOWN)), 1.0)
    start = effects[-1]
    assert isinstance(start, Start) and start.id == "a"
    effects = core.handle(StartDone("a", start.token, 2), 1.0)
    replies = [e for e in effects if isinstance(e, Reply)]
    assert len(replies) == 1 and replies[0].command is command and replies[0].error is None
    events = [e.event for e in effects if isinstance(e, Emit)]
    assert [type(e) for e in events] == [ChildStarted]
    assert not core.restarts  # with intensity=0, a counted restart would have given up
    assert core.children["a"].status == "running" and core.children["b"].status == "running"


def test_a_temporary_child_is_refused_with_not_found_and_left_running() -> None:
    core = started(SupervisorCore(sv.Supervisor([sv.child("job", work, restart="temporary")])))
    command = OperatorRestart("job")
    effects = core.handle(command, 1.0)
    assert len(effects) == 1 and isinstance(effects[0], Reply)
    error = effects[0].error
    assert isinstance(error, sv.NotFound) and "temporary" in str(error) and "job" in str(error)
    assert core.children["job"].status == "running"


def test_an_unknown_child_is_not_found() -> None:
    core = started(SupervisorCore(sv.Supervisor([sv.child("a", work)])))
    (reply,) = core.handle(OperatorRestart("nope"), 1.0)
    assert isinstance(reply, Reply) and isinstance(reply.error, sv.NotFound)


def test_a_child_waiting_for_a_retry_starts_now_and_its_timer_is_cancelled() -> None:
    spec = sv.Supervisor([sv.child("a", work)], backoff=sv.Backoff(initial=10, maximum=10, jitter=0))
    core = started(SupervisorCore(spec))
    effects = core.handle(Exited("a", core.children["a"].token, Outcome(ExitReason.CRASH, RuntimeError())), 1.0)
    timer = next(e for e in effects if isinstance(e, SetTimer))
    assert core.children["a"].status == "restarting"
    effects = core.handle(OperatorRestart("a"), 2.0)
    assert any(isinstance(e, CancelTimer) and e.token == timer.token for e in effects)
    start = effects[-1]
    assert isinstance(start, Start) and start.id == "a"
    assert not any(isinstance(e, Emit) and isinstance(e.event, ChildExited) for e in effects)
