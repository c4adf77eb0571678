"""The dynamic supervisor's policy, in the pure core: ids, max_children, restart
types, intensity across children, concurrent stop, scaling and reload.

Driven through ``SupervisorCore.handle`` with every start and stop answered at
once, as the simulator does; no asyncio.
"""

from __future__ import annotations

from typing import Any

import pytest

import supervision as sv
from supervision._core.dynamic import DynamicSupervisor, instance_group, pack_args
from supervision._core.dynamic_machine import DynamicCore
from supervision._core.errors import TooManyChildren
from supervision._core.events import ChildExited, ChildStarted, ExitReason, SupervisorGaveUp
from supervision._core.messages import (
    AllStopped,
    Emit,
    Exited,
    Init,
    Outcome,
    Reply,
    Scale,
    Start,
    StartDone,
    StartDynamic,
    StartFailed,
    Stop,
    StopAll,
    StopDone,
    StopSupervisor,
    TerminateChild,
    Update,
)


async def conn(ctx: sv.Context, *args: Any, **kwargs: Any) -> None: ...


async def conn_v2(ctx: sv.Context, *args: Any, **kwargs: Any) -> int:
    return 2


class Driver:
    """Answers every effect at once; records the effects and events."""

    def __init__(self, spec: DynamicSupervisor, fail: set[str] | None = None) -> None:
        self.core = DynamicCore(spec)
        self.now = 0.0
        self.effects: list[Any] = []
        self.fail = fail if fail is not None else set()
        self.stop_alls: list[StopAll] = []

    def feed(self, message: Any) -> Reply | None:
        out = self.core.handle(message, self.now)
        reply = None
        while True:
            self.effects += out
            for effect in out:
                if isinstance(effect, Reply) and effect.command is message:
                    reply = effect
            last = out[-1] if out else None
            if isinstance(last, StopAll):
                self.stop_alls.append(last)
                outcomes = {stop.id: Outcome(ExitReason.SHUTDOWN) for stop in last.stops}
                answer: Any = AllStopped(last.id, last.token, Outcome(ExitReason.SHUTDOWN), outcomes)
            elif isinstance(last, Start):
                if last.id in self.fail:
                    answer = StartFailed(last.id, last.token, 1, RuntimeError("no"))
                else:
                    answer = StartDone(last.id, last.token, 1)
            elif isinstance(last, Stop):
                answer = StopDone(last.id, last.token, Outcome(ExitReason.SHUTDOWN))
            else:
                return reply
            out = self.core.handle(answer, self.now)

    def call(self, command: Any) -> Any:
        reply = self.feed(command)
        assert reply is not None
        if reply.error is not None:
            raise reply.error
        return reply.value

    def exit(self, id: str, reason: ExitReason = ExitReason.CRASH) -> None:
        child = self.core.children[id]
        self.feed(
            Exited(id, child.token, Outcome(reason, RuntimeError("boom") if reason is ExitReason.CRASH else None))
        )

    def events(self, kind: type) -> list[Any]:
        return [e.event for e in self.effects if isinstance(e, Emit) and isinstance(e.event, kind)]

    def statuses(self) -> dict[str, str]:
        return {id: child.status.value for id, child in self.core.children.items()}


def started(spec: DynamicSupervisor, **options: Any) -> Driver:
    driver = Driver(spec, **options)
    driver.call(Init())
    return driver


def test_it_starts_empty_and_each_start_child_gets_a_fresh_id() -> None:
    driver = started(DynamicSupervisor(conn))
    assert driver.core.children == {}
    ids = [driver.call(StartDynamic(pack_args((n,), {"peer": "x"}))) for n in range(3)]
    assert ids == ["1", "2", "3"]
    assert driver.core.children["2"].spec.start.args == (1,)
    driver.exit("2")  # temporary: removed
    assert driver.call(StartDynamic()) == "4"  # ids are never reused within an incarnation


def test_max_children_refuses_with_a_clear_error_and_frees_a_place_when_one_exits() -> None:
    driver = started(DynamicSupervisor(conn, max_children=2))
    driver.call(StartDynamic())
    driver.call(StartDynamic())
    with pytest.raises(TooManyChildren) as caught:
        driver.call(StartDynamic())
    assert caught.value.max_children == 2
    assert "max_children=2" in str(caught.value)
    driver.exit("1", ExitReason.NORMAL)
    assert driver.call(StartDynamic()) == "3"


@pytest.mark.parametrize(
    ("restart", "reason", "kept"),
    [
        ("temporary", ExitReason.CRASH, False),
        ("temporary", ExitReason.NORMAL, False),
        ("transient", ExitReason.CRASH, True),
        ("transient", ExitReason.NORMAL, False),
        ("permanent", ExitReason.NORMAL, True),
        ("permanent", ExitReason.CRASH, True),
    ],
)
def test_a_dynamic_child_exits_under_its_restart_type(restart: str, reason: ExitReason, kept: bool) -> None:
    driver = started(DynamicSupervisor(conn, restart=restart, intensity=10))
    driver.call(StartDynamic())
    driver.exit("1", reason)
    if kept:  # restarted, same id
        assert driver.statuses() == {"1": "running"}
        assert [e.path for e in driver.events(ChildStarted)] == [("1",), ("1",)]
    else:  # OTP's simple_one_for_one keeps no terminated child
        assert driver.statuses() == {}


def test_intensity_counts_the_restarts_of_all_dynamic_children_together() -> None:
    driver = started(DynamicSupervisor(conn, restart="permanent", intensity=2, period=10.0))
    for _ in range(3):
        driver.call(StartDynamic())
    driver.exit("1")
    driver.exit("2")
    assert driver.core.phase.value == "running"
    driver.exit("3")  # the third restart within the period, by a third child
    gave_up = driver.events(SupervisorGaveUp)
    assert len(gave_up) == 1 and gave_up[0].path == ()
    assert driver.core.phase.value == "stopped"


def test_a_window_that_passes_forgets_old_restarts() -> None:
    driver = started(DynamicSupervisor(conn, restart="permanent", intensity=1, period=5.0))
    driver.call(StartDynamic())
    driver.call(StartDynamic())
    driver.exit("1")
    driver.now = 6.0
    driver.exit("2")
    assert driver.core.phase.value == "running"


def test_stopping_stops_all_children_in_one_concurrent_step_and_reports_them_right_to_left() -> None:
    driver = started(DynamicSupervisor(conn, restart="permanent"))
    for _ in range(4):
        driver.call(StartDynamic())
    driver.call(TerminateChild("2"))  # removed at once: nothing left of it
    assert list(driver.core.children) == ["1", "3", "4"]
    driver.call(StopSupervisor())
    assert len(driver.stop_alls) == 1
    assert [stop.id for stop in driver.stop_alls[0].stops] == ["4", "3", "1"]
    shutdowns = [e.path for e in driver.events(ChildExited) if e.reason is ExitReason.SHUTDOWN]
    assert shutdowns == [("2",), ("4",), ("3",), ("1",)]


def test_a_failed_start_child_is_not_kept() -> None:
    driver = started(DynamicSupervisor(conn), fail={"1"})
    with pytest.raises(sv.StartError):
        driver.call(StartDynamic())
    assert driver.core.children == {}
    assert driver.call(StartDynamic()) == "2"


def test_scale_stops_the_highest_first_and_starts_the_missing_in_order() -> None:
    group = instance_group(sv.process("web", ["sleep", "{instance}"]), 3).start
    driver = started(group)
    assert list(driver.core.children) == ["0", "1", "2"]
    assert driver.call(Scale(5)) == 5
    assert list(driver.core.children) == ["0", "1", "2", "3", "4"]
    assert driver.core.children["4"].spec.start.argv == ("sleep", "4")
    driver.effects.clear()
    driver.call(Scale(1))
    stopped = [e.id for e in driver.effects if isinstance(e, Stop)]
    assert stopped == ["4", "3", "2", "1"]
    assert list(driver.core.children) == ["0"]
    driver.effects.clear()
    driver.call(Scale(3))
    assert [e.id for e in driver.effects if isinstance(e, Start)] == ["1", "2"]
    with pytest.raises(sv.SupervisionError):
        driver.call(StartDynamic())


def test_a_reload_restarts_only_the_children_whose_template_changed() -> None:
    old = DynamicSupervisor(conn)
    driver = started(old)
    driver.call(StartDynamic(pack_args(("a",), {})))
    driver.call(StartDynamic(pack_args(("b",), {})))
    driver.effects.clear()
    same = DynamicSupervisor(conn, max_children=10)
    applied = driver.call(Update(same))
    assert applied.restarted == [] and not [e for e in driver.effects if isinstance(e, Stop)]
    applied = driver.call(Update(DynamicSupervisor(conn_v2, max_children=10)))
    assert applied.restarted == [("1",), ("2",)]
    assert driver.core.children["1"].spec.start.function is conn_v2
    assert driver.core.children["1"].spec.start.args == ("a",)


def test_a_changed_instance_group_is_reset_to_its_spec() -> None:
    spec = sv.process("web", ["sleep", "100"])
    driver = started(instance_group(spec, 2).start)
    driver.call(Scale(4))
    driver.call(Update(instance_group(spec, 3).start))  # 2 -> 3 in the code: the live 4 goes
    assert list(driver.core.children) == ["0", "1", "2"]
    driver.call(Scale(1))
    driver.call(Update(instance_group(spec, 2).start))
    assert list(driver.core.children) == ["0", "1"]


def test_a_reload_removes_the_children_the_new_template_cannot_make() -> None:
    driver = started(DynamicSupervisor(conn))
    driver.call(StartDynamic(pack_args((object(),), {})))  # fine for a worker...
    driver.call(StartDynamic(pack_args(("a",), {})))
    applied = driver.call(Update(DynamicSupervisor(["echo"])))  # ...not for an argv template
    assert applied.stopped == [("1",)]
    assert applied.restarted == [("2",)]  # a worker turned into a process
    assert driver.core.children["2"].spec.start.argv == ("echo", "a")
