"""The state machine's inputs and effects, apart from the machine itself (as h11
keeps ``_events.py`` apart from ``_state.py``).

Inputs go into :meth:`SupervisorCore.handle <supervision._core.machine.SupervisorCore.handle>`:
an exit, the completion of an effect, a timer, or a command (which expects a
``Reply``). Effects come out: start or stop a child, emit an event, set or cancel a
timer, reply, forget a path, report the supervisor ready or finished. They are plain
values: the runtime executes them, the simulator answers them at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .diff import Plan
from .dynamic import NO_ARGS, Args
from .events import Event, ExitReason
from .paths import Path
from .spec import ChildSpec, Supervisor


@dataclass(slots=True)
class Outcome:
    """How one incarnation of a child ended."""

    reason: ExitReason
    error: BaseException | None = None
    exit_status: int | None = None
    signal: int | None = None


@dataclass(slots=True)
class Exited:
    """A running child exited by itself."""

    id: str
    token: int
    outcome: Outcome


@dataclass(slots=True)
class StartDone:
    """The ``Start`` effect with this token succeeded."""

    id: str
    token: int
    starts: int
    pid: int | None = None


@dataclass(slots=True)
class StartFailed:
    """The ``Start`` effect with this token failed."""

    id: str
    token: int
    starts: int
    error: BaseException


@dataclass(slots=True)
class StopDone:
    """The ``Stop`` effect with this token finished; the child is gone."""

    id: str
    token: int
    outcome: Outcome


@dataclass(slots=True)
class AllStopped(StopDone):
    """The ``StopAll`` with this token finished: each child's outcome, by id."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)


@dataclass(slots=True)
class TimerFired:
    token: int


class Command:
    """Base of the inputs that expect a ``Reply``. Compared by identity."""

    __slots__ = ()


@dataclass(eq=False, slots=True)
class Init(Command):
    """Start the children left to right (the supervisor's own start).

    After a re-exec, the new image's supervisors start from the state the old image
    handed over: the children in ``adopted`` are still running (their incarnation is
    taken over with an ``Adopt`` effect, not started), those in ``terminated`` stay
    terminated, those in ``removed`` are gone (deleted, or temporary and exited).
    None of these emits an event: nothing happened to them.
    """

    adopted: frozenset[str] = frozenset()
    terminated: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    restored: tuple[tuple[str, Args], ...] = ()
    """A dynamic supervisor's children before the re-exec, in start order, with
    their arguments: made again from its template (those in ``adopted`` adopted)."""


@dataclass(eq=False, slots=True)
class StopSupervisor(Command):
    """Orderly stop: children right to left, then exit."""


@dataclass(eq=False, slots=True)
class StartChild(Command):
    spec: ChildSpec


@dataclass(eq=False, slots=True)
class TerminateChild(Command):
    id: str


@dataclass(eq=False, slots=True)
class RestartChild(Command):
    id: str


@dataclass(eq=False, slots=True)
class DeleteChild(Command):
    id: str


@dataclass(eq=False, slots=True)
class OperatorRestart(Command):
    """An operator's restart (``supervision restart PATH``): stop the child if it
    runs (or cancel its pending retry), then start it again, in one job; not
    counted against the intensity. A temporary child is refused with ``NotFound``,
    as OTP's ``restart_child`` refuses one: its spec is gone once it stops."""

    id: str


@dataclass(eq=False, slots=True)
class StartDynamic(Command):
    """``start_child(*args, **kwargs)`` on a dynamic supervisor: a child made from
    its template with ``args``; the reply is its id."""

    args: Args = NO_ARGS


@dataclass(eq=False, slots=True)
class Scale(Command):
    """An instance group runs ``count`` instances; the reply is ``count``."""

    count: int


@dataclass(eq=False, slots=True)
class Update(Command):
    """Run the ``spec`` from now on, changing only what ``plan`` says (a reload).

    The reply is an :class:`Applied`. A ``plan`` computed against another spec
    than the one running (or None) is computed again.
    """

    spec: Supervisor
    plan: Plan | None = None


@dataclass(slots=True)
class UpdateDone:
    """The ``UpdateSupervisor`` effect with this token finished; ``applied`` is
    None if the nested supervisor was not running any more."""

    id: str
    token: int
    applied: Applied | None


@dataclass(slots=True)
class Applied:
    """What an update did, by path: the reply to ``Update``."""

    started: list[Path] = field(default_factory=list)
    stopped: list[Path] = field(default_factory=list)
    restarted: list[Path] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)

    def merge(self, other: Applied) -> None:
        self.started += other.started
        self.stopped += other.stopped
        self.restarted += other.restarted
        self.updated += other.updated


Completion: TypeAlias = "StartDone | StartFailed | StopDone | UpdateDone"


Input: TypeAlias = "Exited | TimerFired | Command | StartDone | StartFailed | StopDone | UpdateDone"


@dataclass(slots=True)
class Start:
    """Start an incarnation of a child; answer with ``StartDone``/``StartFailed``."""

    id: str
    token: int
    spec: ChildSpec
    path: Path = ()


@dataclass(slots=True)
class Adopt:
    """Take over the running incarnation of a child (re-exec: the OS process or the
    nested supervisor the old image ran); answer like ``Start``. Not a start: no
    start is counted and no ``ChildStarted`` is emitted."""

    id: str
    token: int
    spec: ChildSpec
    path: Path = ()


@dataclass(slots=True)
class Stop:
    """Stop the incarnation ``token`` of a child; answer with ``StopDone``."""

    id: str
    token: int
    spec: ChildSpec


@dataclass(slots=True)
class StopAll(Stop):
    """Stop all of ``stops`` at once (a dynamic supervisor's children); answer with
    one ``AllStopped`` with the same ``id`` and ``token`` once every one has finished."""

    stops: tuple[Stop, ...] = ()


@dataclass(slots=True)
class UpdateSupervisor:
    """Apply ``plan`` to the running nested supervisor ``id`` (incarnation
    ``token``), whose child spec is now ``spec``; answer with ``UpdateDone``."""

    id: str
    token: int
    spec: ChildSpec
    plan: Plan


@dataclass(slots=True)
class Emit:
    event: Event


@dataclass(slots=True)
class SetTimer:
    token: int
    at: float


@dataclass(slots=True)
class CancelTimer:
    token: int


@dataclass(slots=True)
class Reply:
    """The answer to a command: ``error`` is raised by the caller, else ``value``."""

    command: Command
    value: Any = None
    error: BaseException | None = None


@dataclass(slots=True)
class Forget:
    """The child's spec is gone: drop the snapshot and start count of its path
    (and, for a supervisor, of every path below it)."""

    id: str
    subtree: bool = False


@dataclass(slots=True)
class Ready:
    """All children started: the supervisor itself has started."""


@dataclass(slots=True)
class Exit:
    """The supervisor has finished; all its children are stopped.

    ``start_failed`` is True when it never got to start (``error`` is a ``StartError``).
    """

    reason: ExitReason
    error: BaseException | None = None
    start_failed: bool = False


Effect: TypeAlias = (
    "Start | Adopt | Stop | UpdateSupervisor | Emit | SetTimer | CancelTimer | Reply | Forget | Ready | Exit"
)
