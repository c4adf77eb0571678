"""A child's own restart limit (``intensity``/``period`` on ``sv.child`` and
``sv.process``), on the pure core through the simulator: it absorbs the child's
restarts, and how it composes with the supervisor's intensity when exceeded."""

from __future__ import annotations

from typing import Any

import pytest

import supervision as sv
from supervision.testing import Advance, Crash, FailNextStart, RestartChild, Simulator


async def work(ctx: sv.Context) -> None: ...


def gave_up(events: list[sv.Event]) -> list[str]:
    return ["/".join(e.path) or "/" for e in events if isinstance(e, sv.SupervisorGaveUp)]


def run(simulator: Simulator, steps: list[Any]) -> list[sv.Event]:
    """The events these steps caused (``Simulator.run`` returns them all)."""
    before = len(simulator.events)
    return simulator.run(steps)[before:]


def statuses(simulator: Simulator) -> dict[str, str]:
    return {c.id: c.status.value for c in simulator.which_children()}


def test_restarts_within_the_childs_own_limit_do_not_count_against_the_supervisor() -> None:
    spec = sv.Supervisor([sv.child("a", work, intensity=5, period=10), sv.child("b", work)], intensity=1, period=10)
    simulator = Simulator(spec)
    simulator.start()
    events = run(simulator, [Crash("a")] * 5)
    assert gave_up(events) == [] and simulator.running  # five restarts: the supervisor's 1 untouched
    assert simulator.starts[("a",)] == 6
    events = run(simulator, [Crash("b"), Crash("b")])  # b has no limit of its own: the supervisor's
    assert gave_up(events) == ["/"]


def test_a_transient_child_beyond_its_limit_stays_terminated_until_started() -> None:
    spec = sv.Supervisor([sv.child("a", work, restart="transient", intensity=2, period=10), sv.child("b", work)])
    simulator = Simulator(spec)
    simulator.start()
    events = run(simulator, [Crash("a"), Crash("a"), Crash("a")])
    assert gave_up(events) == ["a"]  # a gave up; the supervisor did not
    assert simulator.running and statuses(simulator) == {"a": "terminated", "b": "running"}
    run(simulator, [RestartChild("a")])  # the operator's start: a fresh window
    events = run(simulator, [Crash("a"), Crash("a")])
    assert gave_up(events) == [] and statuses(simulator)["a"] == "running"


def test_the_window_slides() -> None:
    spec = sv.Supervisor([sv.child("a", work, restart="transient", intensity=2, period=10)])
    simulator = Simulator(spec)
    simulator.start()
    events = run(simulator, [Crash("a"), Crash("a"), Advance(11), Crash("a"), Crash("a")])
    assert gave_up(events) == [] and statuses(simulator) == {"a": "running"}


@pytest.mark.parametrize(("intensity", "root_gives_up"), [(0, True), (1, False)])
def test_a_permanent_child_beyond_its_limit_escalates_to_the_supervisors_intensity(
    intensity: int, root_gives_up: bool
) -> None:
    spec = sv.Supervisor([sv.child("a", work, intensity=1, period=10)], intensity=intensity, period=10)
    simulator = Simulator(spec)
    simulator.start()
    events = run(simulator, [Crash("a"), Crash("a")])  # the second exceeds a's own limit
    assert gave_up(events) == (["a", "/"] if root_gives_up else ["a"])
    assert simulator.running is not root_gives_up
    if not root_gives_up:
        assert statuses(simulator) == {"a": "running"} and simulator.starts[("a",)] == 3


def test_failed_restarts_count_against_the_childs_own_limit() -> None:
    spec = sv.Supervisor(
        [sv.child("a", work, restart="transient", intensity=2, period=10), sv.child("b", work)],
        strategy="rest_for_one",
        intensity=0,
    )
    simulator = Simulator(spec)
    simulator.start()
    events = run(simulator, [FailNextStart("a", times=5), Crash("a")])
    # Crash: restart 1; two failed starts: retries 2 and 3, the last beyond a's limit.
    assert gave_up(events) == ["a"] and simulator.running
    # b, stopped by the rest_for_one restart and waiting on a's retry, starts all the same.
    assert statuses(simulator) == {"a": "terminated", "b": "running"}


def test_the_childs_own_backoff_replaces_the_supervisors() -> None:
    own = sv.Backoff(initial=2, maximum=2, factor=1, jitter=0)
    spec = sv.Supervisor(
        [sv.child("a", work, backoff=own), sv.child("b", work)],
        intensity=10,
        backoff=sv.Backoff(initial=7, maximum=7, factor=1, jitter=0),
    )
    simulator = Simulator(spec)
    simulator.start()
    delays = [
        e.delay for e in run(simulator, [Crash("a"), Advance(3), Crash("b")]) if isinstance(e, sv.RestartScheduled)
    ]
    assert delays == [2.0, 7.0]


@pytest.mark.parametrize(("field", "value"), [("intensity", -1), ("intensity", 1.5), ("period", -1.0), ("backoff", 3)])
def test_a_bad_limit_is_a_spec_error(field: str, value: object) -> None:
    with pytest.raises(sv.SpecError) as info:
        sv.child("a", work, **{field: value})  # type: ignore[arg-type]
    assert info.value.path == ("a",) and info.value.field == field


def test_the_reference_model_agrees_with_the_core_on_childrens_own_limits() -> None:
    """The rules above, as the reference model states them, on the cases this file
    holds the core to: absorbed restarts, a permanent child's escalation, a transient
    one left terminated (its group's waiting members started without it), its own
    backoff, and a nested child (the stateful test draws many more)."""
    from supervision.testing import Disagreement, check_against_model
    from supervision.testing.model import Model

    backoff = sv.Backoff(initial=1.0, maximum=4.0, factor=2.0, jitter=0.0)
    spec = sv.Supervisor(
        [
            sv.child("a", work, intensity=2, period=10),
            sv.child("b", work, restart="transient", intensity=1, period=10),
            sv.child("c", work, intensity=1, period=5, backoff=backoff),
            sv.child("db", sv.Supervisor([sv.child("x", work, intensity=1, period=10)], intensity=1, period=10)),
            sv.child("d", work),
        ],
        strategy="rest_for_one",
        intensity=3,
        period=10,
    )
    schedule = [
        Crash("a"),
        Crash("a"),
        Crash("a"),  # a gives up: restarted, counted against the root
        Crash(("db", "x")),
        Crash(("db", "x")),  # x gives up: db's intensity takes the restart
        FailNextStart("b"),
        Crash("b"),  # b's restart fails: its retry exceeds its limit, it stays terminated
        Crash("c"),
        Advance(1),
        Crash("c"),
        Advance(2),
        Advance(10),
        Crash("d"),
    ]
    check_against_model(spec, schedule)
    check_against_model(spec, schedule, immediate_retries=False)

    class IgnoresOwnLimits(Model):
        def restart_verdict(self, sup: Any, kid: Any, cause: BaseException | None) -> str:
            return "restart" if self.count_restart(sup, kid) else "give up"

    with pytest.raises(Disagreement):
        check_against_model(spec, schedule, model=IgnoresOwnLimits)
