"""The core checked against the reference model, step by step (hypothesis stateful).

``TreeMachine`` draws a tree of specs, starts it in the simulator (the real core)
and in the model, then applies the same schedule steps to both and checks after
every step that they agree (see ``supervision.testing.Lockstep``). Its size
follows the hypothesis profile (``BUDGETS`` below; profiles in ``tests/conftest.py``):
``ci`` by default, ``HYPOTHESIS_PROFILE=thorough`` for a long run.

The "bad models" below are deliberately wrong; the tests at the end show the
machine catches each one, so a green run means something. To see the minimal
failing example hypothesis finds for one of them::

    SHOW_BAD_MODEL=1 pytest tests/core/test_model_stateful.py -k PerChildIntensity
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

import supervision as sv
from supervision.testing import (
    Advance,
    Crash,
    Disagreement,
    Exit,
    FailNextStart,
    Lockstep,
    Simulator,
    StartTree,
    Step,
    check_against_model,
    describe_supervisor,
)
from supervision.testing import strategies as sst
from supervision.testing.model import GIVE_UP, LEAVE, RESTART, Kid, Model, Sup

# -- the machine ------------------------------------------------------------------


class TreeMachine(RuleBasedStateMachine):
    """Core and model, side by side, on a drawn tree and drawn steps.

    Steps are drawn as templates (``supervision.testing.strategies.episode_templates``)
    and resolved against the tree's paths: cheap to draw and to shrink. The
    ``Disagreement`` message shows the tree and the resolved steps. When the tree
    ends (the root gave up, or shut down), the machine starts the same spec
    again, so that no step is wasted on a stopped tree.
    """

    model: ClassVar[type[Model]] = Model

    def __init__(self) -> None:
        super().__init__()
        self.spec: sv.Supervisor | None = None
        self.pair: Lockstep | None = None
        self.paths: sst.Paths | None = None
        self.immediate_retries = True

    def begin(self, spec: sv.Supervisor, fail_start: tuple[int, int] | None, immediate_retries: bool) -> None:
        self.spec = spec
        self.paths = sst.Paths(spec)
        self.immediate_retries = immediate_retries
        self.pair = Lockstep(spec, model=self.model, immediate_retries=immediate_retries)
        if fail_start is not None:  # now and then the tree's own start fails
            self.pair.apply(FailNextStart(self.paths.path(*fail_start)))
        self.pair.start()

    @rule(template=sst.episode_templates(stop_tree=False))
    def step(self, template: tuple[Any, ...]) -> None:
        assert self.pair is not None and self.paths is not None and self.spec is not None
        if not self.pair.running:
            self.pair = Lockstep(self.spec, model=self.model, immediate_retries=self.immediate_retries)
            self.pair.start()
        live, running = self.live()
        for step in self.paths.episode(template, live=live, running=running):
            self.pair.apply(step)

    def live(self) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
        """The paths of the children in the running tree, and of those running."""
        assert self.pair is not None
        children = [
            ((*sup, id), status)
            for sup, kids in self.pair.simulator.view().supervisors.items()
            for id, status, _ in kids
        ]
        return [path for path, _ in children], [path for path, status in children if status == "running"]


def machine_with(model: type[Model], trees: st.SearchStrategy[sv.Supervisor]) -> type[TreeMachine]:
    """A ``TreeMachine`` that checks the core against ``model`` on ``trees``."""
    # One tree in ten fails to start: (which, index) names a declared child.
    fail_start = st.one_of(*[st.none()] * 9, st.tuples(st.integers(0, 3), st.integers(0, 63)))

    class Machine(TreeMachine):
        # Retries due now run at once (as in the runtime) or wait for time to pass,
        # so that steps can act on restarting children (and on their waiting groups).
        @initialize(spec=trees, fail_start=fail_start, wait_for_time=st.sampled_from([True, True, False]))
        def start_tree(self, spec: sv.Supervisor, fail_start: tuple[int, int] | None, wait_for_time: bool) -> None:
            self.begin(spec, fail_start, immediate_retries=not wait_for_time)

    Machine.model = model
    Machine.__name__ = Machine.__qualname__ = f"TreeMachineWith{model.__name__}"
    return Machine


# The stateful test's budget, by hypothesis profile (see tests/conftest.py): ``ci``
# keeps this file under a minute; ``thorough`` is a long search.
BUDGETS = {"ci": (400, 40), "thorough": (5_000, 100)}  # examples, steps per example
_examples, _steps = BUDGETS.get(os.environ.get("HYPOTHESIS_PROFILE", "ci"), (400, 40))
BUDGET = settings(settings(), max_examples=_examples, stateful_step_count=_steps)


# The core against the model, over built-in strategies.
TREES = sst.supervisors(min_children=1, root_intensity=2, custom_plans=())
TestCoreAgreesWithModel = machine_with(Model, TREES).TestCase
TestCoreAgreesWithModel.settings = BUDGET

# ... and over the custom plan() overrides of supervision.testing.strategies too.
TREES_WITH_CUSTOM_PLANS = sst.supervisors(min_children=1, root_intensity=2)
TestCoreAgreesWithModelCustomPlans = machine_with(Model, TREES_WITH_CUSTOM_PLANS).TestCase
TestCoreAgreesWithModelCustomPlans.settings = BUDGET


# ... and over trees sure to hold a dynamic supervisor or an instance group (the
# trees above hold some too, less often), with its children started, exited and scaled.
TREES_WITH_DYNAMIC = st.builds(
    lambda dynamic, rest, strategy: sv.Supervisor(
        [sv.child("z", dynamic), *rest.children],
        strategy=strategy,
        intensity=rest.intensity,
        period=rest.period,
        auto_shutdown=rest.auto_shutdown,
    ),
    sst.dynamic_supervisors(),
    # without children's own limits (the trees above have them): as this test was tuned
    sst.supervisors(max_depth=1, max_children=3, root_intensity=2, custom_plans=(), own_limits=False),
    st.sampled_from(list(sv.Strategy)),
)
TestCoreAgreesWithModelDynamic = machine_with(Model, TREES_WITH_DYNAMIC).TestCase
TestCoreAgreesWithModelDynamic.settings = BUDGET


def test_describe_supervisor_shows_the_whole_tree() -> None:
    async def work(ctx: sv.Context) -> None: ...

    spec = sv.Supervisor(
        [sv.child("a", work), sv.child("s", sv.Supervisor([sv.child("b", work, restart="temporary")]))],
        strategy="rest_for_one",
    )
    assert describe_supervisor(spec) == "rest_for_one(3/5s){a,s=one_for_one(3/5s){b[temporary]}}"


# -- bad models -----------------------------------------------------------------------


class PerChildIntensity(Model):
    """Wrong: restart intensity counted per child instead of per supervisor."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.per_child: dict[int, list[float]] = {}

    def count_restart(self, sup: Sup, kid: Kid) -> bool:
        history = self.per_child.setdefault(id(kid), [])
        history.append(self.now)
        return len([t for t in history if self.now - t <= sup.spec.period]) <= sup.spec.intensity


class OwnLimitIgnored(Model):
    """Wrong: a child's own restart limit is ignored (every restart counts against
    the supervisor's window, as without one)."""

    def restart_verdict(self, sup: Sup, kid: Kid, cause: BaseException | None) -> str:
        return RESTART if self.count_restart(sup, kid) else GIVE_UP


class OwnLimitLeavesPermanentToo(Model):
    """Wrong: a permanent child that exceeds its own limit stays terminated (it is
    restarted, counted against the supervisor's intensity)."""

    def restart_verdict(self, sup: Sup, kid: Kid, cause: BaseException | None) -> str:
        verdict = super().restart_verdict(sup, kid, cause)
        if verdict != GIVE_UP and kid.spec.intensity is not None and not kid.restarts:
            return LEAVE  # its window was just cleared: it gave up
        return verdict


class RestForOneRestartsTheOnesBefore(Model):
    """Wrong: rest_for_one restarts the failed child and the children *before* it."""

    def plan(self, sup: Sup, failed: str) -> set[str]:
        if type(sup.spec).plan is sv.Supervisor.plan and sup.spec.strategy is sv.Strategy.REST_FOR_ONE:
            ids = sup.ids()
            return set(ids[: ids.index(failed) + 1])
        return super().plan(sup, failed)


class TemporaryRestartedInGroup(Model):
    """Wrong: a temporary child caught in a group restart is started again."""

    def restarts_in_group(self, kid: Kid, failed: str) -> bool:
        return True


class TerminatedRestartedInGroup(Model):
    """Wrong (OTP's way, not ours): group restarts start terminated children too."""

    def in_group(self, kid: Kid, failed: str) -> bool:
        return True


class WindowExcludesItsEdge(Model):
    """Wrong: a restart exactly ``period`` old no longer counts."""

    def count_restart(self, sup: Sup, kid: Kid) -> bool:
        sup.restarts.append(self.now)
        return len([t for t in sup.restarts if self.now - t < sup.spec.period]) <= sup.spec.intensity


class DynamicKeepsEndedChildren(Model):
    """Wrong: a dynamic supervisor keeps the children that ended (as an ordinary one does)."""

    def removes_ended(self, sup: Sup) -> bool:
        return False


class MaxChildrenCountsRunningOnly(Model):
    """Wrong: max_children counts only the running children, not those restarting."""

    def has_room(self, sup: Sup, max_children: int | None) -> bool:
        running = [kid for kid in sup.kids if kid.status.value == "running"]
        return max_children is None or len(running) < max_children


BAD_MODELS = [
    OwnLimitIgnored,
    OwnLimitLeavesPermanentToo,
    PerChildIntensity,
    RestForOneRestartsTheOnesBefore,
    TemporaryRestartedInGroup,
    TerminatedRestartedInGroup,
    WindowExcludesItsEdge,
]


BAD_DYNAMIC_MODELS = [DynamicKeepsEndedChildren, MaxChildrenCountsRunningOnly]


@pytest.mark.parametrize("bad_model", BAD_MODELS + BAD_DYNAMIC_MODELS, ids=lambda m: m.__name__)
def test_the_machine_catches_a_bad_model(bad_model: type[Model], capsys: pytest.CaptureFixture[str]) -> None:
    machine = machine_with(bad_model, TREES_WITH_DYNAMIC if bad_model in BAD_DYNAMIC_MODELS else TREES)
    # The budget the real test has, derandomized: this is proof that a green
    # TestCoreAgreesWithModel would have caught the mistake.
    budget = settings(
        BUDGET,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no "explain": slow, says little here
        suppress_health_check=[HealthCheck.too_slow],
    )
    if os.environ.get("SHOW_BAD_MODEL"):
        run_state_machine_as_test(machine, settings=budget)  # fails, printing the minimal example
        return
    with pytest.raises(Disagreement) as info:
        run_state_machine_as_test(machine, settings=budget)
    # Hypothesis attaches the minimal failing example as notes; show it with -s.
    notes = "\n".join(getattr(info.value, "__notes__", []))
    print(f"\n{bad_model.__name__}: {bad_model.__doc__}\n{notes}\n{info.value}")
    assert "state.start_tree" in notes or "start_tree" in notes


# -- regressions found by the model ------------------------------------------------------


def test_waiting_children_are_not_lost_by_a_custom_plan() -> None:
    """Neighbours restarts a child and its neighbours. c's restart fails, so c
    owns a retry and d waits on it; then b crashes, and b's group {a, b, c} takes
    c's retry over: it must take d along, or d stays restarting for ever. (The
    core got this wrong before commit bb63cb1.)"""

    async def work(ctx: sv.Context) -> None: ...

    spec = sst.Neighbours([sv.child(id, work) for id in "abcd"], intensity=10)
    schedule: list[Step] = [StartTree(), FailNextStart("c"), Crash("c"), Crash("b"), Advance(0)]
    check_against_model(spec, schedule, immediate_retries=False)
    simulator = Simulator(spec, immediate_retries=False)
    simulator.run(schedule)
    assert [c.status.value for c in simulator.which_children()] == ["running"] * 4


def test_all_significant_waits_for_a_significant_child_that_is_restarting() -> None:
    """b exits normally while d, also significant, waits for its restart retry:
    "the last of them" has not exited yet, so the supervisor keeps running. (Random
    trees rarely hold two significant children with one of them restarting, so this
    case is pinned here.)"""

    async def work(ctx: sv.Context) -> None: ...

    children = [
        sv.child("a", work),
        sv.child("b", work, restart="transient", significant=True),
        sv.child("d", work, restart="transient", significant=True),
    ]
    spec = sv.Supervisor(children, auto_shutdown="all_significant", intensity=5)
    schedule: list[Step] = [StartTree(), FailNextStart("d"), Crash("d"), Exit("b", "normal")]
    check_against_model(spec, schedule, immediate_retries=False)
    simulator = Simulator(spec, immediate_retries=False)
    simulator.run(schedule)
    assert simulator.running
    assert [c.status.value for c in simulator.which_children()] == ["running", "terminated", "restarting"]
    simulator.run([Advance(0), Exit("d", "normal")])
    assert not simulator.running and simulator.exit is not None and simulator.exit.reason == "normal"
