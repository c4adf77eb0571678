"""The schedule vocabulary: what happens to a tree, step by step.

A *schedule* is a list of steps. :func:`supervision.testing.simulate` runs them
against the real core, and :class:`supervision.testing.model.Model` runs them
against the reference model; both read the same steps. Paths are tuples of ids
(``("db", "pool")``) or strings (``"db/pool"``).

>>> Crash("db/pool")
Crash('db/pool')
>>> [FailNextStart("web", times=2), Crash("web"), Advance(1.0)]
[FailNextStart('web', times=2), Crash('web'), Advance(1.0)]

What each step does, when the tree cannot do it:

- ``Crash``/``Exit`` of a child that is not running is skipped (nothing happens):
  a random schedule names children that may have gone.
- The commands (``TerminateChild``, ``RestartChild``, ``DeleteChild``,
  ``StartChild``) fail as the API calls do (``NotFound``, ``ChildRunning``, ...);
  the simulator records the error and goes on.
- Timers (restart retries, backoff delays) fire only while time advances: a
  retry due now waits for the next ``Advance`` (``Advance(0)`` fires it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .._core.dynamic import DynamicSupervisor
from .._core.events import ExitReason
from .._core.paths import Path, format_path
from .._core.spec import ChildSpec


class SimulatedCrash(Exception):
    """The default error of a :class:`Crash` step.

    >>> import supervision as sv
    >>> from supervision.testing import Crash, SimulatedCrash, simulate
    >>> async def w(ctx): ...
    >>> isinstance(simulate(sv.Supervisor([sv.child("w", w)]), [Crash("w")])[1].error, SimulatedCrash)
    True
    """


class SimulatedStartFailure(Exception):
    """The error of a start attempt failed by :class:`FailNextStart`.

    >>> import supervision as sv
    >>> from supervision.testing import FailNextStart, SimulatedStartFailure, Simulator
    >>> async def w(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("w", w)]))
    >>> sim.apply(FailNextStart("w"))
    >>> isinstance(sim.start().__cause__, SimulatedStartFailure)
    True
    """


def to_path(path: str | Path) -> Path:
    """``"db/pool"`` or ``("db", "pool")`` -> ``("db", "pool")``."""
    if isinstance(path, tuple):
        return path
    return tuple(part for part in path.split("/") if part)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, eq=True)
class Crash:
    """The running child at ``path`` exits with reason ``"crash"`` (``error``, or a
    ``SimulatedCrash``). A nested supervisor first stops its children in order.

    >>> import supervision as sv
    >>> from supervision.testing import Crash, format_event, simulate
    >>> async def w(ctx): ...
    >>> print(format_event(simulate(sv.Supervisor([sv.child("w", w)]), [Crash("w")])[1]))
    0 w ChildExited reason=crash error=SimulatedCrash
    """

    path: Path
    error: BaseException | None = field(default=None, compare=False)

    def __init__(self, path: str | Path, error: BaseException | None = None) -> None:
        _set(self, "path", to_path(path))
        _set(self, "error", error)

    def __repr__(self) -> str:
        return f"Crash({format_path(self.path)!r})"


@dataclass(frozen=True, eq=True)
class Exit:
    """The running child at ``path`` exits by itself with ``reason`` (``"normal"``,
    ``"shutdown"`` or ``"crash"``), as a worker that returns, raises
    ``sv.Shutdown`` or raises another exception.

    >>> import supervision as sv
    >>> from supervision.testing import Exit, Simulator
    >>> async def w(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("w", w, restart="transient")]))
    >>> sim.start(); sim.apply(Exit("w", "normal"))
    >>> [c.status.value for c in sim.which_children()]
    ['terminated']
    """

    path: Path
    reason: ExitReason = ExitReason.NORMAL
    error: BaseException | None = field(default=None, compare=False)

    def __init__(
        self, path: str | Path, reason: ExitReason | str = ExitReason.NORMAL, error: BaseException | None = None
    ) -> None:
        _set(self, "path", to_path(path))
        _set(self, "reason", ExitReason(reason))
        _set(self, "error", error)

    def __repr__(self) -> str:
        return f"Exit({format_path(self.path)!r}, {self.reason.value!r})"


@dataclass(frozen=True, eq=True)
class FailNextStart:
    """The next ``times`` start attempts of ``path`` fail (``SimulatedStartFailure``).

    On a nested supervisor's path the attempt fails before any of its children
    start. To fail the tree's own start, put it before a ``StartTree()`` step.

    >>> import supervision as sv
    >>> from supervision.testing import FailNextStart, StartTree, simulate
    >>> async def w(ctx): ...
    >>> events = simulate(sv.Supervisor([sv.child("w", w)]), [FailNextStart("w"), StartTree()])
    >>> [type(e).__name__ for e in events]
    ['ChildStartFailed']

    """

    path: Path
    times: int = 1

    def __init__(self, path: str | Path, times: int = 1) -> None:
        _set(self, "path", to_path(path))
        _set(self, "times", times)

    def __repr__(self) -> str:
        extra = f", times={self.times}" if self.times != 1 else ""
        return f"FailNextStart({format_path(self.path)!r}{extra})"


@dataclass(frozen=True, eq=True)
class Advance:
    """The clock moves ``seconds`` forward; due timers fire, each at its own time.

    >>> import supervision as sv
    >>> from supervision.testing import Advance, Crash, simulate
    >>> async def w(ctx): ...
    >>> spec = sv.Supervisor([sv.child("w", w)], intensity=1, period=5.0)
    >>> [type(e).__name__ for e in simulate(spec, [Crash("w"), Advance(5.1), Crash("w")])][-1]
    'ChildStarted'
    """

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("time does not go backwards")

    def __repr__(self) -> str:
        return f"Advance({self.seconds!r})"


@dataclass(frozen=True, eq=True)
class TerminateChild:
    """``terminate_child`` of the child at ``path`` (its supervisor is ``path[:-1]``).

    >>> import supervision as sv
    >>> from supervision.testing import Simulator, TerminateChild
    >>> async def w(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("db", sv.Supervisor([sv.child("pool", w)]))]))
    >>> sim.start(); sim.apply(TerminateChild("db/pool"))
    >>> [c.status.value for c in sim.which_children("db")]
    ['terminated']
    """

    path: Path

    def __init__(self, path: str | Path) -> None:
        _set(self, "path", to_path(path))

    def __repr__(self) -> str:
        return f"TerminateChild({format_path(self.path)!r})"


@dataclass(frozen=True, eq=True)
class RestartChild:
    """``restart_child`` of the terminated child at ``path``.

    >>> import supervision as sv
    >>> from supervision.testing import RestartChild, Simulator, TerminateChild
    >>> async def w(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("w", w)]))
    >>> sim.start(); sim.apply(TerminateChild("w")); sim.apply(RestartChild("w"))
    >>> [c.status.value for c in sim.which_children()], sim.starts[("w",)]
    (['running'], 2)
    """

    path: Path

    def __init__(self, path: str | Path) -> None:
        _set(self, "path", to_path(path))

    def __repr__(self) -> str:
        return f"RestartChild({format_path(self.path)!r})"


@dataclass(frozen=True, eq=True)
class DeleteChild:
    """``delete_child`` of the terminated child at ``path``.

    >>> import supervision as sv
    >>> from supervision.testing import DeleteChild, Simulator, TerminateChild
    >>> async def w(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("a", w), sv.child("b", w)]))
    >>> sim.start(); sim.apply(TerminateChild("b")); sim.apply(DeleteChild("b"))
    >>> [c.id for c in sim.which_children()]
    ['a']
    """

    path: Path

    def __init__(self, path: str | Path) -> None:
        _set(self, "path", to_path(path))

    def __repr__(self) -> str:
        return f"DeleteChild({format_path(self.path)!r})"


@dataclass(frozen=True, eq=True)
class StartChild:
    """``start_child(spec)`` on the supervisor at ``parent`` (``()`` is the root).

    >>> import supervision as sv
    >>> from supervision.testing import Simulator, StartChild
    >>> async def w(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("a", w)]))
    >>> sim.start(); sim.apply(StartChild((), sv.child("b", w)))
    >>> [c.id for c in sim.which_children()]
    ['a', 'b']
    """

    parent: Path
    spec: ChildSpec

    def __init__(self, parent: str | Path, spec: ChildSpec) -> None:
        _set(self, "parent", to_path(parent))
        _set(self, "spec", spec)

    def __repr__(self) -> str:
        return f"StartChild({format_path(self.parent)!r}, {describe_child(self.spec)})"


@dataclass(frozen=True, eq=True)
class StartDynamic:
    """``start_child(*args)`` on the dynamic supervisor at ``parent``: a child made
    from its template, with the next id (``TooManyChildren`` at ``max_children``).

    >>> import supervision as sv
    >>> from supervision.testing import Simulator, StartDynamic
    >>> async def conn(ctx, peer): ...
    >>> spec = sv.Supervisor([sv.child("conns", sv.DynamicSupervisor(conn, max_children=1))])
    >>> sim = Simulator(spec)
    >>> sim.start()
    >>> sim.apply(StartDynamic("conns", ("10.0.0.1",))), sim.apply(StartDynamic("conns", ("10.0.0.2",)))
    (None, TooManyChildren('conns: max_children=1 reached'))
    >>> [c.id for c in sim.which_children("conns")]
    ['1']
    """

    parent: Path
    args: tuple[Any, ...] = ()

    def __init__(self, parent: str | Path, args: tuple[Any, ...] = ()) -> None:
        _set(self, "parent", to_path(parent))
        _set(self, "args", tuple(args))

    def __repr__(self) -> str:
        more = f", {self.args!r}" if self.args else ""
        return f"StartDynamic({format_path(self.parent)!r}{more})"


@dataclass(frozen=True, eq=True)
class Scale:
    """``scale(count)`` on the instance group at ``path``: instances ``count`` and
    above stopped, the highest first; the missing ones below started in order.

    >>> import supervision as sv
    >>> from supervision.testing import Scale, Simulator
    >>> sim = Simulator(sv.Supervisor([sv.process("web", ["sleep", "{instance}"], instances=2)]))
    >>> sim.start()
    >>> sim.apply(Scale("web", 4))
    >>> [c.id for c in sim.which_children("web")]
    ['0', '1', '2', '3']
    """

    path: Path
    count: int

    def __init__(self, path: str | Path, count: int) -> None:
        _set(self, "path", to_path(path))
        _set(self, "count", count)

    def __repr__(self) -> str:
        return f"Scale({format_path(self.path)!r}, {self.count})"


@dataclass(frozen=True, eq=True)
class StartTree:
    """The tree starts here (children left to right). Without this step, a
    schedule starts the tree before its first step; with it, the steps before it
    (``FailNextStart``) can make the start fail.

    >>> [FailNextStart("db"), StartTree()]
    [FailNextStart('db'), StartTree()]
    """

    def __repr__(self) -> str:
        return "StartTree()"


@dataclass(frozen=True, eq=True)
class StopTree:
    """``tree.stop()``: the root stops its children right to left and exits.

    >>> import supervision as sv
    >>> from supervision.testing import Simulator, StopTree
    >>> async def w(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("w", w)]))
    >>> sim.start(); sim.apply(StopTree())
    >>> sim.running
    False
    """

    def __repr__(self) -> str:
        return "StopTree()"


Step: TypeAlias = (
    Crash
    | Exit
    | FailNextStart
    | Advance
    | TerminateChild
    | RestartChild
    | DeleteChild
    | StartChild
    | StartDynamic
    | Scale
    | StartTree
    | StopTree
)
"""One step of a schedule (a real union: ``isinstance(x, Step)`` works).

>>> from supervision.testing import Advance, Crash, Step
>>> schedule: list[Step] = [Crash("db"), Advance(1.0)]
"""
COMMANDS = (TerminateChild, RestartChild, DeleteChild, StartChild, StartDynamic, Scale, StopTree)


def describe_child(spec: ChildSpec) -> str:
    """A compact one-line description of a child spec, for failing examples."""
    from .._core.spec import Restart, Supervisor

    flags = []
    if spec.restart is not Restart.PERMANENT:
        flags.append(spec.restart.value)
    if spec.significant:
        flags.append("significant")
    start = spec.start
    if isinstance(start, Supervisor):
        return f"{spec.id}{'[' + ','.join(flags) + ']' if flags else ''}={describe_supervisor(start)}"
    return f"{spec.id}{'[' + ','.join(flags) + ']' if flags else ''}"


def describe_supervisor(spec: object) -> str:
    """A compact one-line description of a supervisor spec and its subtree.

    >>> import supervision as sv
    >>> async def w(ctx): ...
    >>> describe_supervisor(sv.Supervisor([sv.child("a", w, restart="transient")], intensity=1, period=2))
    'one_for_one(1/2s){a[transient]}'
    """
    from .._core.spec import AutoShutdown, Strategy, Supervisor

    assert isinstance(spec, Supervisor)
    strategy = spec.strategy
    name = strategy.value if isinstance(strategy, Strategy) else str(strategy)
    if type(spec).plan is not Supervisor.plan:
        name = type(spec).__name__
    settings = f"{spec.intensity}/{spec.period:g}s"
    if spec.auto_shutdown is not AutoShutdown.NEVER:
        settings += f",{spec.auto_shutdown}"
    if spec.backoff is not None:
        b = spec.backoff
        settings += f",backoff={b.initial:g}*{b.factor:g}^n<={b.maximum:g}"
        if b.jitter:
            settings += f"~{b.jitter:g}"
        if b.reset_after is not None:
            settings += f",reset={b.reset_after:g}"
    if isinstance(spec, DynamicSupervisor):  # its children come from the template
        name = "dynamic" if spec.instances is None else f"instances={spec.instances}"
        if spec.max_children is not None:
            settings += f",max={spec.max_children}"
        return f"{name}({settings}){{*{describe_child(spec.template.spec)}}}"
    children = ",".join(describe_child(c) for c in spec.children)
    return f"{name}({settings}){{{children}}}"
