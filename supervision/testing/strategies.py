"""Hypothesis strategies for trees of specs and for schedules.

>>> from hypothesis import given
>>> from supervision.testing import simulate, strategies as sst
>>> @given(sst.trees_and_schedules())
... def test_the_root_gives_up_at_most_once(case):
...     spec, schedule = case
...     events = simulate(spec, schedule)
...     assert sum(1 for e in events if type(e).__name__ == "SupervisorGaveUp" and e.path == ()) <= 1

- :func:`supervisors` draws a tree of ``Supervisor`` specs: depth, width, every
  built-in strategy and the custom ``plan()`` overrides below, every restart type,
  intensity and period, significant children with ``auto_shutdown``, backoff.
- :func:`steps` draws one schedule step naming the paths of a given spec (and of
  the dynamic children ``start_child`` may add); :func:`failing_crashes` draws a
  crash whose restarts fail; :func:`schedules` draws a list of both.
- :func:`trees_and_schedules` draws a tree and a schedule for it.

The workers in drawn specs are :func:`idle`: the simulator never runs them.
Times are multiples of 0.5 s, so restart windows are hit exactly at their edge.
Strategies are built once and cached: drawing is cheap, so a stateful test can
afford thousands of steps.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from hypothesis import strategies as st

from .._core.dynamic import DynamicSupervisor
from .._core.paths import Path
from .._core.spec import AutoShutdown, Backoff, ChildSpec, Restart, Strategy, Supervisor, child
from ._schedule import (
    Advance,
    Crash,
    DeleteChild,
    Exit,
    FailNextStart,
    RestartChild,
    Scale,
    StartChild,
    StartDynamic,
    Step,
    StopTree,
    TerminateChild,
)

__all__ = [
    "CUSTOM_PLANS",
    "Neighbours",
    "Paths",
    "UpToFailed",
    "WithFirst",
    "episode_templates",
    "episodes",
    "failing_crashes",
    "idle",
    "paths_of",
    "schedules",
    "static_paths",
    "steps",
    "supervisors",
    "trees_and_schedules",
]

IDS = "abcdefgh"
DYNAMIC_WORKER = "x"
DYNAMIC_SUPERVISOR = "y"
DYNAMIC_GRANDCHILDREN = ("p", "q")
PERIODS = (0.0, 1.0, 2.5, 5.0)
ADVANCES = (0.0, 0.5, 1.0, 2.5, 5.0)


async def idle(ctx: object) -> None:
    """The worker of drawn specs. The simulator never runs it."""


# -- custom strategies: plan() overrides ------------------------------------------


class Neighbours(Supervisor):
    """Restart the failed child and its neighbours in start order."""

    def plan(self, ids: tuple[str, ...], failed: str) -> Iterable[str]:
        i = ids.index(failed)
        return ids[max(0, i - 1) : i + 2]


class UpToFailed(Supervisor):
    """Restart the failed child and every child started before it (rest_for_one mirrored)."""

    def plan(self, ids: tuple[str, ...], failed: str) -> Iterable[str]:
        return ids[: ids.index(failed) + 1]


class WithFirst(Supervisor):
    """Restart the failed child and the first child (say, a shared connection)."""

    def plan(self, ids: tuple[str, ...], failed: str) -> Iterable[str]:
        return (ids[0], failed)


CUSTOM_PLANS: tuple[type[Supervisor], ...] = (Neighbours, UpToFailed, WithFirst)


# -- specs --------------------------------------------------------------------------

_RESTARTS = st.sampled_from([Restart.PERMANENT, Restart.TRANSIENT, Restart.TEMPORARY])
# Hypothesis shrinks integers towards 0: let 0 be the simple case everywhere, so
# that minimal examples are flat trees of workers without backoff.
_NESTED = st.integers(0, 2)  # 2: this child is a nested supervisor (where depth allows)
_DYNAMIC = st.integers(0, 2)  # 2: that nested supervisor is a dynamic one (or an instance group)
_SIGNIFICANT = st.booleans()
_INTENSITY = st.integers(0, 4)
_PERIOD = st.sampled_from(PERIODS)
_AUTO_SHUTDOWN = st.sampled_from([AutoShutdown.NEVER, AutoShutdown.NEVER, *AutoShutdown])
_WITH_BACKOFF = st.integers(0, 3)  # 3: with a backoff
_OWN_LIMIT = st.integers(0, 4)  # 4: the child has a restart limit of its own (and maybe a backoff)
_BACKOFF = st.builds(
    Backoff,
    initial=st.sampled_from([0.5, 1.0]),
    maximum=st.sampled_from([1.0, 2.0, 4.0]),
    factor=st.sampled_from([2.0, 1.0]),
    jitter=st.sampled_from([0.0, 0.0, 0.5]),
    reset_after=st.sampled_from([None, 1.0, 2.5]),
)


def supervisors(
    *,
    max_depth: int = 2,
    max_children: int = 4,
    min_children: int = 0,
    root_intensity: int = 0,
    custom_plans: Sequence[type[Supervisor]] = CUSTOM_PLANS,
    backoff: bool = True,
    own_limits: bool = True,
) -> st.SearchStrategy[Supervisor]:
    """A tree of supervisor specs, up to ``max_depth`` levels of nesting below the root.

    Every built-in strategy and each of ``custom_plans`` (``Supervisor`` subclasses
    that override ``plan``; pass your own), every restart type, intensity 0..4,
    periods on the half-second grid, ``auto_shutdown`` with significant children,
    and (if ``backoff``) sometimes a backoff; (if ``own_limits``) now and then a
    child with a restart limit of its own (``intensity``, ``period``, maybe a
    ``backoff``, on ``child``). The root has ``min_children`` to
    ``max_children`` children and an intensity of at least ``root_intensity``;
    nested supervisors have 0 to ``max_children`` children (at most 7).
    """
    if not 0 <= min_children <= max_children < len(IDS):
        raise ValueError(f"need 0 <= min_children <= max_children <= {len(IDS) - 1}")
    plans = tuple(custom_plans)
    return _supervisors(max_depth, max_children, min_children, root_intensity, plans, backoff, own_limits, 0)


@functools.cache
def _supervisors(
    max_depth: int,
    max_children: int,
    min_children: int,
    root_intensity: int,
    plans: tuple[type[Supervisor], ...],
    backoff: bool,
    own_limits: bool,
    depth: int,
) -> st.SearchStrategy[Supervisor]:
    kinds: list[Strategy | type[Supervisor]] = [*Strategy, *plans]
    kind_strategy = st.sampled_from(kinds)
    count = st.integers(min_children if depth == 0 else 0, max_children)
    ids = st.permutations(IDS[: max_children + 1])
    nested = None
    if depth < max_depth:
        nested = _supervisors(max_depth, max_children, 0, 0, plans, backoff, own_limits, depth + 1)
    intensity = _INTENSITY if depth > 0 or root_intensity == 0 else st.integers(root_intensity, max(root_intensity, 4))

    @st.composite
    def draw_supervisor(draw: st.DrawFn) -> Supervisor:
        kind = draw(kind_strategy)
        auto_shutdown = draw(_AUTO_SHUTDOWN)
        n = draw(count)
        children = []
        for id in draw(ids)[:n]:
            restart = draw(_RESTARTS)
            significant = auto_shutdown is not AutoShutdown.NEVER and restart is not Restart.PERMANENT
            significant = significant and draw(_SIGNIFICANT)
            start: Any = idle
            if nested is not None and draw(_NESTED) == 2:
                start = draw(_dynamic_supervisors(backoff)) if draw(_DYNAMIC) == 2 else draw(nested)
            limit = draw(_own_limit(backoff)) if own_limits else {}
            children.append(child(id, start, restart=restart, significant=significant, **limit))
        settings: dict[str, Any] = {
            "intensity": draw(intensity),
            "period": draw(_PERIOD),
            "auto_shutdown": auto_shutdown,
            "backoff": draw(_BACKOFF) if backoff and draw(_WITH_BACKOFF) == 3 else None,
        }
        if isinstance(kind, Strategy):
            return Supervisor(children, strategy=kind, **settings)
        return kind(children, **settings)

    return draw_supervisor()


@functools.cache
def _own_limit(backoff: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A child's own ``intensity``, ``period`` and ``backoff`` (now and then), as
    keywords of ``child``: most children have none."""

    @st.composite
    def draw_limit(draw: st.DrawFn) -> dict[str, Any]:
        if draw(_OWN_LIMIT) != 4:
            return {}
        return {
            "intensity": draw(_INTENSITY),
            "period": draw(_PERIOD),
            "backoff": draw(_BACKOFF) if backoff and draw(_WITH_BACKOFF) == 3 else None,
        }

    return draw_limit()


def dynamic_supervisors(*, backoff: bool = True) -> st.SearchStrategy[DynamicSupervisor]:
    """A ``DynamicSupervisor`` of idle workers (every restart type, sometimes a
    ``max_children``, sometimes a backoff) or an instance group of 0 to 3 of them.
    :func:`supervisors` puts some in its trees; the schedules start their children
    (``StartDynamic``) and scale the groups (``Scale``)."""
    return _dynamic_supervisors(backoff)


@functools.cache
def _dynamic_supervisors(backoff: bool) -> st.SearchStrategy[DynamicSupervisor]:
    """A dynamic supervisor of idle workers (every restart type, sometimes a
    ``max_children``), or an instance group of 0 to 3 of them."""

    @st.composite
    def draw_dynamic(draw: st.DrawFn) -> DynamicSupervisor:
        template = child("t", idle, restart=draw(_RESTARTS))
        settings: dict[str, Any] = {
            "intensity": draw(_INTENSITY),
            "period": draw(_PERIOD),
            "backoff": draw(_BACKOFF) if backoff and draw(_WITH_BACKOFF) == 3 else None,
        }
        if draw(st.booleans()):
            return DynamicSupervisor(template, instances=draw(st.integers(0, 3)), **settings)
        return DynamicSupervisor(template, max_children=draw(st.sampled_from([None, 1, 2, 3])), **settings)

    return draw_dynamic()


# -- schedules ------------------------------------------------------------------------


def paths_of(spec: Supervisor) -> tuple[list[Path], list[Path]]:
    """``(children, supervisors)``: every child path a schedule may name, and every
    supervisor path ``start_child`` may target, including the dynamic children
    ``x`` (a worker) and ``y`` (a supervisor of ``p`` and ``q``) it may add."""
    children: list[Path] = []
    sups: list[Path] = []

    def walk(path: Path, sup: Supervisor) -> None:
        sups.append(path)
        if isinstance(sup, DynamicSupervisor):  # the children start_child(*args) or scale may add
            children.extend((*path, str(n)) for n in range(5))
        for c in sup.children:
            children.append((*path, c.id))
            if isinstance(c.start, Supervisor):
                walk((*path, c.id), c.start)
        children.append((*path, DYNAMIC_WORKER))
        children.append((*path, DYNAMIC_SUPERVISOR))
        children.extend((*path, DYNAMIC_SUPERVISOR, g) for g in DYNAMIC_GRANDCHILDREN)
        sups.append((*path, DYNAMIC_SUPERVISOR))

    walk((), spec)
    return children, sups


def _dynamic_supervisors_of(spec: Supervisor, path: Path = ()) -> list[tuple[Path, DynamicSupervisor]]:
    found = [(path, spec)] if isinstance(spec, DynamicSupervisor) else []
    for c in spec.children:
        if isinstance(c.start, Supervisor):
            found += _dynamic_supervisors_of(c.start, (*path, c.id))
    return found


def static_paths(spec: Supervisor) -> list[Path]:
    """The paths of the children the spec declares, at every depth."""
    children, _ = paths_of(spec)
    return [p for p in children if DYNAMIC_WORKER not in p and DYNAMIC_SUPERVISOR not in p]


# A step is drawn as a template of small integers and choices, then resolved
# against the paths of one spec: the template strategy is built once.
_INDEX = st.integers(0, 63)  # a path, modulo the number of candidates
_WHICH = st.integers(0, 4)  # 4: a dynamic child's path, else a declared one
_TIMES = st.integers(1, 3)
_DYNAMIC_SPEC = st.tuples(
    st.integers(0, 9),  # 0-3: the worker x, 4-6: the supervisor y, 7-9: a taken id
    _RESTARTS,
    st.integers(0, 3),  # 3: significant (where allowed)
    st.sampled_from(list(Strategy)),
    st.integers(0, 2),
    _PERIOD,
    st.tuples(_RESTARTS, _RESTARTS),
)


def _templates(stop_tree: bool, commands: bool) -> st.SearchStrategy[tuple[Any, ...]]:
    crash = st.tuples(st.just("crash"), _WHICH, _INDEX)
    fail = st.tuples(st.just("fail"), _WHICH, _INDEX, _TIMES)
    advance = st.tuples(st.just("advance"), st.sampled_from(ADVANCES))
    options = [
        crash,
        crash,
        crash,
        st.tuples(st.just("exit"), _WHICH, _INDEX, st.sampled_from(["normal", "shutdown"])),
        fail,
        advance,
        advance,
        advance,
    ]
    if commands:
        options += [
            st.tuples(st.just("terminate"), _WHICH, _INDEX),
            st.tuples(st.just("restart"), _WHICH, _INDEX),
            st.tuples(st.just("delete"), _WHICH, _INDEX),
            st.tuples(st.just("start_child"), _INDEX, _DYNAMIC_SPEC),
            st.tuples(st.just("start_dynamic"), _INDEX, st.integers(0, 2)),
            st.tuples(st.just("start_dynamic"), _INDEX, st.integers(0, 2)),
            st.tuples(st.just("scale"), _INDEX, st.integers(0, 4)),
        ]
    if stop_tree:  # rare: it ends the run
        options.append(st.one_of(st.tuples(st.just("stop")), advance, advance, advance))
    return st.one_of(options)


_FLAGS = [(stop_tree, commands) for stop_tree in (False, True) for commands in (False, True)]
_TEMPLATES = {flags: _templates(*flags) for flags in _FLAGS}
# A failing crash: the next starts of one child fail, then it (or, given a second
# index, another child) crashes; so restarts fail mid-group and leave the rest
# waiting. Then, maybe, while that restart is pending: the failing child is
# terminated, or another child crashes or exits normally.
_THEN = st.one_of(st.none(), st.tuples(st.just("terminate")), st.tuples(st.sampled_from(["crash", "exit"]), _INDEX))
_FAILING = st.tuples(st.just("failing"), _WHICH, _INDEX, _TIMES, st.one_of(st.none(), _INDEX), _THEN)
# An episode: a step (four times in five) or a failing crash.
_EPISODES = {flags: st.one_of(*[_TEMPLATES[flags]] * 4, _FAILING) for flags in _FLAGS}


class Paths:
    """The paths of one spec, and how a step template resolves against them.

    :func:`episode_templates` draws plain data (cheap to draw and to shrink, and
    independent of any spec); :meth:`episode` turns one into steps for this spec.

    Given the ``live`` child paths of a running tree and those of them that are
    ``running``, a template names one of those instead (crashes hit running
    children, commands existing ones), except one time in five, when it names
    any path the spec could have: a stateful test wastes fewer steps that way.
    """

    def __init__(self, spec: Supervisor) -> None:
        children, self.sups = paths_of(spec)
        self.static = [p for p in children if DYNAMIC_WORKER not in p and DYNAMIC_SUPERVISOR not in p]
        self.dynamic = [p for p in children if p not in self.static]
        self.taken = sorted({c.id for c in spec.children}) or [DYNAMIC_WORKER]
        dynamic = dict(_dynamic_supervisors_of(spec))
        self.dynamic_sups = [path for path, sup in dynamic.items() if sup.instances is None] or self.sups
        self.groups = [path for path, sup in dynamic.items() if sup.instances is not None] or self.sups

    def path(self, which: int, index: int, live: Sequence[Path] | None = None) -> Path:
        pool: Sequence[Path]
        if which == 4:
            pool = self.dynamic
        elif live:
            pool = live
        else:
            pool = self.static or self.dynamic
        return pool[index % len(pool)]

    def episode(
        self,
        template: tuple[Any, ...],
        *,
        live: Sequence[Path] | None = None,
        running: Sequence[Path] | None = None,
        commands: bool = True,
    ) -> list[Step]:
        """The steps of an episode: one step, or a failing crash (two or three)."""
        if template[0] == "failing":
            _, which, index, times, other, then = template
            path = self.path(min(which, 3), index, running)
            crashing = path if other is None else self.path(min(which, 3), other, running)
            steps: list[Step] = [FailNextStart(path, times), Crash(crashing)]
            if then is None:
                pass
            elif then[0] == "terminate":
                if commands:
                    steps.append(TerminateChild(path))
            else:
                next_path = self.path(1, then[1], running)
                steps.append(Crash(next_path) if then[0] == "crash" else Exit(next_path, "normal"))
            return steps
        return [self.step(template, live=live, running=running)]

    def step(
        self,
        template: tuple[Any, ...],
        *,
        live: Sequence[Path] | None = None,
        running: Sequence[Path] | None = None,
    ) -> Step:
        kind = template[0]
        if kind == "crash":
            return Crash(self.path(template[1], template[2], running))
        if kind == "exit":
            return Exit(self.path(template[1], template[2], running), template[3])
        if kind == "fail":
            return FailNextStart(self.path(template[1], template[2], live), template[3])
        if kind == "advance":
            return Advance(template[1])
        if kind == "terminate":
            return TerminateChild(self.path(template[1], template[2], live))
        if kind == "restart":
            return RestartChild(self.path(template[1], template[2], live))
        if kind == "delete":
            return DeleteChild(self.path(template[1], template[2], live))
        if kind == "start_child":
            return StartChild(self.sups[template[1] % len(self.sups)], self.dynamic_spec(template[2]))
        if kind == "start_dynamic":
            return StartDynamic(self.dynamic_sups[template[1] % len(self.dynamic_sups)], (template[2],) * template[2])
        if kind == "scale":
            return Scale(self.groups[template[1] % len(self.groups)], template[2])
        return StopTree()

    def dynamic_spec(self, template: tuple[Any, ...]) -> ChildSpec:
        """The worker ``x``, the supervisor ``y`` of ``p`` and ``q``, or a worker
        reusing an id that may exist already (``AlreadyPresent``/``AlreadyStarted``)."""
        choice, restart, significant_draw, strategy, intensity, period, grandchildren = template
        significant = restart is not Restart.PERMANENT and significant_draw == 3
        if choice >= 7:
            return child(self.taken[choice % len(self.taken)], idle, restart=restart, significant=significant)
        if choice >= 4:
            nested = Supervisor(
                [child(g, idle, restart=r) for g, r in zip(DYNAMIC_GRANDCHILDREN, grandchildren, strict=True)],
                strategy=strategy,
                intensity=intensity,
                period=period,
            )
            return child(DYNAMIC_SUPERVISOR, nested, restart=restart, significant=significant)
        return child(DYNAMIC_WORKER, idle, restart=restart, significant=significant)


def steps(spec: Supervisor, *, stop_tree: bool = True, commands: bool = True) -> st.SearchStrategy[Step]:
    """One schedule step naming the paths of ``spec``: crashes, normal and shutdown
    exits, start failures, clock advances, and (if ``commands``) terminate, restart,
    delete and start_child calls (and, if ``stop_tree``, rarely a stop of the whole
    tree). Mostly the children the spec declares; now and then one ``start_child``
    may add."""
    paths = Paths(spec)
    return _TEMPLATES[stop_tree, commands].map(lambda template: paths.step(template))


def episode_templates(*, stop_tree: bool = True, commands: bool = True) -> st.SearchStrategy[tuple[Any, ...]]:
    """Episodes as templates, for a stateful test: resolve with ``Paths(spec).episode``."""
    return _EPISODES[stop_tree, commands]


def failing_crashes(spec: Supervisor) -> st.SearchStrategy[list[Step]]:
    """``[FailNextStart(path, n), Crash(path)]`` for a declared child (or a crash of
    another child whose group restart includes the failing one), sometimes
    followed by a ``TerminateChild`` of the failing child or a crash or normal
    exit of another: restarts that fail, so retries, give-ups and waiting group
    members happen, and things happen to them."""
    paths = Paths(spec)
    return _FAILING.map(lambda template: paths.episode(template))


def episodes(spec: Supervisor, *, stop_tree: bool = True, commands: bool = True) -> st.SearchStrategy[list[Step]]:
    """A step (four times in five) or a failing crash: what a schedule is made of."""
    paths = Paths(spec)
    return _EPISODES[stop_tree, commands].map(lambda template: paths.episode(template, commands=commands))


def schedules(
    spec: Supervisor, *, max_steps: int = 30, stop_tree: bool = True, commands: bool = True
) -> st.SearchStrategy[list[Step]]:
    """A schedule for ``spec``: steps and failing crashes, up to ``max_steps`` episodes.
    ``commands=False`` leaves out the API calls (only faults and time).

    Half the schedules are long (at least a third of ``max_steps``), so that
    restarts pile up in their windows; a failing one still shrinks to a short one.
    """
    episode = episodes(spec, stop_tree=stop_tree, commands=commands)
    short = st.lists(episode, max_size=max_steps)  # first: where shrinking heads
    long = st.lists(episode, min_size=max_steps // 3, max_size=max_steps)
    return st.one_of(short, long).map(lambda groups: [step for group in groups for step in group])


@st.composite
def trees_and_schedules(
    draw: st.DrawFn,
    *,
    max_depth: int = 2,
    max_children: int = 4,
    max_steps: int = 30,
    custom_plans: Sequence[type[Supervisor]] = CUSTOM_PLANS,
    backoff: bool = True,
) -> tuple[Supervisor, list[Step]]:
    """A tree of specs (with at least one child) and a schedule for it."""
    spec = draw(
        supervisors(
            max_depth=max_depth, max_children=max_children, min_children=1, custom_plans=custom_plans, backoff=backoff
        )
    )
    return spec, draw(schedules(spec, max_steps=max_steps))
