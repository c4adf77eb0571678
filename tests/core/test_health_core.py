"""Health and watchdog failures in the pure core: counting, grace, stale reports,
the crash that follows and its intensity, and overlapping restarts (start, then
stop), all without asyncio or a clock."""

from __future__ import annotations

from typing import Any

import supervision as sv
from supervision._core.events import ExitReason, HealthChanged
from supervision._core.machine import SupervisorCore
from supervision._core.messages import (
    Emit,
    Exit,
    Exited,
    Fail,
    Init,
    OperatorRestart,
    Outcome,
    Probed,
    Reply,
    Start,
    StartDone,
    StartFailed,
    Stop,
    StopDone,
    Update,
    WatchdogExpired,
)


async def work(ctx: sv.Context) -> None: ...


async def ok() -> bool:
    return True


def run(core: SupervisorCore, effects: list[Any], now: float, log: list[str]) -> list[Any]:
    """Answer every Start with success and every Stop with a shutdown, logging them."""
    out = list(effects)
    while effects and isinstance(effects[-1], (Start, Stop)):
        last = effects[-1]
        if isinstance(last, Start):
            log.append(f"start {last.id} {last.token} overlaps={last.overlaps}")
            effects = core.handle(StartDone(last.id, last.token, 1), now)
        else:
            log.append(f"stop {last.id} {last.token}")
            effects = core.handle(StopDone(last.id, last.token, Outcome(ExitReason.SHUTDOWN)), now)
        out += effects
    return out


def started(spec: sv.Supervisor) -> tuple[SupervisorCore, list[str]]:
    core = SupervisorCore(spec)
    log: list[str] = []
    run(core, core.handle(Init(), 0.0), 0.0, log)
    return core, log


def fails(effects: list[Any]) -> list[Fail]:
    return [e for e in effects if isinstance(e, Fail)]


def health_events(effects: list[Any]) -> list[tuple[bool, str]]:
    return [
        (e.event.healthy, e.event.reason) for e in effects if isinstance(e, Emit) and isinstance(e.event, HealthChanged)
    ]


def test_failures_in_a_row_fail_the_child_and_its_exit_is_a_counted_crash() -> None:
    probe = sv.health.call(ok, every=1, failures=2)
    core, _ = started(sv.Supervisor([sv.child("w", work, health=probe)], intensity=1, period=100))
    token = core.children["w"].token
    out = core.handle(Probed("w", token, True, "fine"), 1.0)
    assert health_events(out) == [(True, "fine")]
    assert fails(out) == []
    assert fails(core.handle(Probed("w", token, False, "HTTP 500"), 2.0)) == []
    out = core.handle(Probed("w", token, False, "HTTP 503"), 3.0)
    assert health_events(out) == [(False, "HTTP 503")]
    (fail,) = fails(out)
    assert (fail.id, fail.token, fail.watchdog) == ("w", token, False)
    assert isinstance(fail.error, sv.HealthCheckFailed) and fail.error.reason == "HTTP 503"
    assert fails(core.handle(Probed("w", token, False, "again"), 4.0)) == []  # failed once is enough
    # The runtime stops it; its exit is a crash like any other: restarted, counted.
    log: list[str] = []
    out = run(core, core.handle(Exited("w", token, Outcome(ExitReason.CRASH, fail.error)), 5.0), 5.0, log)
    assert log == [f"start w {token + 1} overlaps=0"]
    new = core.children["w"].token
    assert core.children["w"].health.healthy is None  # a new incarnation: nothing known yet
    assert fails(core.handle(Probed("w", new, False, "down"), 6.0)) == []
    (fail,) = fails(core.handle(Probed("w", new, False, "down"), 7.0))
    out = core.handle(Exited("w", new, Outcome(ExitReason.CRASH, fail.error)), 9.0)
    assert isinstance(out[-1], Exit)  # the second crash within the period exceeds intensity 1
    assert isinstance(out[-1].error, sv.TooManyRestarts)
    assert isinstance(out[-1].error.__cause__, sv.HealthCheckFailed)


def test_grace_and_stale_reports() -> None:
    probe = sv.health.call(ok, every=1, failures=1, grace=10)
    core, _ = started(sv.Supervisor([sv.child("w", work, health=probe)]))
    token = core.children["w"].token
    assert fails(core.handle(Probed("w", token, False, "warming up"), 9.9)) == []
    assert fails(core.handle(Probed("w", token + 99, False, "old"), 20.0)) == []  # another incarnation
    assert fails(core.handle(Probed("nobody", 1, False, "?"), 20.0)) == []
    assert len(fails(core.handle(Probed("w", token, False, "down"), 10.0))) == 1


def test_a_missed_watchdog_fails_the_child_once() -> None:
    core, _ = started(sv.Supervisor([sv.child("w", work, watchdog=2.0)]))
    token = core.children["w"].token
    (fail,) = fails(core.handle(WatchdogExpired("w", token, 2.0), 3.0))
    assert fail.watchdog and isinstance(fail.error, sv.WatchdogTimeout) and fail.error.period == 2.0
    assert fails(core.handle(WatchdogExpired("w", token, 2.0, triggered=True), 3.0)) == []


def test_an_operator_restart_overlaps_and_a_crash_does_not() -> None:
    spec = sv.Supervisor(
        [sv.child(id, work, restart_mode="overlap") for id in "abc"], strategy="rest_for_one", intensity=5
    )
    core, log = started(spec)
    log.clear()
    b = core.children["b"].token
    command = OperatorRestart("b")
    out = run(core, core.handle(command, 1.0), 1.0, log)
    assert log == [f"start b {core.children['b'].token} overlaps={b}", f"stop b {b}"]  # start, then stop
    assert any(isinstance(e, Reply) and e.command is command and e.error is None for e in out)
    log.clear()
    token = core.children["b"].token
    c = core.children["c"].token
    run(core, core.handle(Exited("b", token, Outcome(ExitReason.CRASH)), 2.0), 2.0, log)
    assert log[:1] == [f"stop c {c}"] and [line.split()[:2] for line in log[1:]] == [["start", "b"], ["start", "c"]]
    assert all("overlaps=0" in line for line in log if line.startswith("start"))


def test_an_overlapping_start_that_fails_keeps_the_old_incarnation() -> None:
    core, _ = started(sv.Supervisor([sv.child("w", work, restart_mode="overlap")]))
    old = core.children["w"].token
    command = OperatorRestart("w")
    start = core.handle(command, 1.0)[-1]
    assert isinstance(start, Start) and start.overlaps == old
    out = core.handle(StartFailed("w", start.token, 2, RuntimeError("broken")), 1.0)
    (reply,) = [e for e in out if isinstance(e, Reply)]
    assert isinstance(reply.error, sv.StartError)
    assert not any(isinstance(e, Stop) for e in out)
    child = core.children["w"]
    assert (child.token, str(child.status)) == (old, "running")
    # Its exits still count: the old incarnation is the child's again.
    log: list[str] = []
    run(core, core.handle(Exited("w", old, Outcome(ExitReason.CRASH)), 2.0), 2.0, log)
    assert log == [f"start w {start.token + 1} overlaps=0"]


def test_a_reload_overlaps_a_changed_child_only() -> None:
    def spec(version: str) -> sv.Supervisor:
        return sv.Supervisor(
            [
                sv.process("web", ["web", version], restart_mode="overlap"),
                sv.process("db", ["db", version]),
            ]
        )

    core, log = started(spec("1"))
    log.clear()
    web, db = core.children["web"].token, core.children["db"].token
    run(core, core.handle(Update(spec("2")), 1.0), 1.0, log)
    new_web, new_db = core.children["web"].token, core.children["db"].token
    assert log == [
        f"stop db {db}",  # stop_start: stopped first, right to left
        f"start web {new_web} overlaps={web}",  # overlap: started beside the old one...
        f"stop web {web}",  # ...which stops once the new one is ready
        f"start db {new_db} overlaps=0",
    ]
