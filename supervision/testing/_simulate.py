"""A deterministic simulator: the real core, a virtual clock, no asyncio.

One :class:`~supervision._SupervisorCore` per running supervisor, composed
the way the asyncio runtime composes them, with every ``Start`` and ``Stop``
effect answered at once according to the schedule (which starts fail). Events
are the real ``sv.Event`` objects the core emits.

Time stands still during a step. Timers (restart retries, backoff delays) due
later fire while an ``Advance`` step moves time, each at its own time. A timer
due now (a retry without backoff) fires at the end of the step, as the
runtime's event loop runs it right away; with ``immediate_retries=False`` it
waits for the next ``Advance`` instead, so a schedule can act on the restarting
child in between (the stateful test explores both).

Where the runtime has something to wait for (a worker's readiness, a task's
cancellation), the simulator has an answer at once: a worker starts (or fails
to, by ``FailNextStart``) and stops immediately; a nested supervisor runs its
own core to completion. So a schedule runs in microseconds per step.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Iterable

from .._core import messages as core
from .._core.dynamic_machine import DynamicCore, make_core
from .._core.errors import NotFound, StartError, SupervisionError, SupervisorNotRunning
from .._core.events import Event, ExitReason
from .._core.machine import SupervisorCore
from .._core.paths import Path, format_path
from .._core.snapshot import PathStore
from .._core.spec import Supervisor
from .._core.status import ChildCounts, ChildInfo, Status
from ._clock import ManualClock
from ._schedule import (
    Advance,
    Crash,
    DeleteChild,
    Exit,
    FailNextStart,
    RestartChild,
    Scale,
    SimulatedCrash,
    SimulatedStartFailure,
    StartChild,
    StartDynamic,
    StartTree,
    Step,
    StopTree,
    TerminateChild,
)
from ._view import RootExit, TreeView


class _Timer:
    """A timer of one supervisor's core."""

    __slots__ = ("cancelled", "node", "token")

    def __init__(self, node: _Node, token: int) -> None:
        self.node = node
        self.token = token
        self.cancelled = False


class _Node:
    """One running incarnation of a supervisor: its core, its running nested
    supervisors and its timers."""

    __slots__ = ("core", "exit", "id", "nested", "parent", "started", "stopping", "timers", "token")

    def __init__(self, core_: SupervisorCore, parent: _Node | None, id: str, token: int) -> None:
        self.core = core_
        self.parent = parent
        self.id = id
        self.token = token
        self.nested: dict[str, _Node] = {}
        self.timers: dict[int, _Timer] = {}
        self.exit: core.Exit | None = None
        self.stopping = False  # its parent (or a Crash step) is stopping it
        self.started = False  # its start completed (Ready)


class Simulator:
    """Drive a tree through the real core, step by step, on a virtual clock.

    >>> import supervision as sv
    >>> async def work(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("a", work)], intensity=1))
    >>> sim.start()
    >>> sim.apply(Crash("a"))
    >>> [c.status.value for c in sim.which_children()]
    ['running']
    >>> sim.starts[("a",)]
    2

    ``apply`` returns the error a command step raised (as the API call would
    raise it), else None. ``events`` is the trace so far. ``clock`` is kept in
    step with the simulated time (its ``now()`` is the time of the last event);
    ``rng`` draws backoff jitter. See the module docstring for
    ``immediate_retries``.
    """

    def __init__(
        self,
        spec: Supervisor,
        *,
        clock: ManualClock | None = None,
        rng: random.Random | None = None,
        immediate_retries: bool = True,
    ) -> None:
        self.spec = spec
        self.clock = clock if clock is not None else ManualClock()
        self.rng = rng if rng is not None else random.Random(0)
        self.immediate_retries = immediate_retries
        self._now = self.clock.now()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self.events: list[Event] = []
        self.store = PathStore()
        self.root: _Node | None = None
        self._failures: dict[Path, int] = {}
        self._queue: deque[tuple[_Node, core.Input]] = deque()
        self._reply: core.Reply | None = None

    # -- observations -----------------------------------------------------------

    @property
    def now(self) -> float:
        return self._now

    @property
    def starts(self) -> dict[Path, int]:
        """Start attempts by path (what ``ChildInfo.starts`` reports)."""
        return self.store.starts

    @property
    def exit(self) -> core.Exit | None:
        """How the root finished (the core's ``Exit`` effect), or None while it runs."""
        return self.root.exit if self.root is not None else None

    @property
    def running(self) -> bool:
        return self.root is not None and self.root.exit is None

    @property
    def gave_up(self) -> list[Path]:
        """The paths of the supervisors that gave up, in order."""
        return [e.path for e in self.events if type(e).__name__ == "SupervisorGaveUp"]

    def which_children(self, path: str | Path = ()) -> list[ChildInfo]:
        """The children of the running supervisor at ``path``, as ``Tree.which_children``."""
        node = self._resolve(_to_path(path))
        result = []
        for id in node.core.order:
            child = node.core.children[id]
            starts = self.store.starts.get((*node.core.path, id), 0)
            result.append(ChildInfo(id, child.spec.kind, child.status, starts, None))
        return result

    def count_children(self, path: str | Path = ()) -> ChildCounts:
        children = self._resolve(_to_path(path)).core.children.values()
        supervisors = sum(1 for c in children if isinstance(c.spec.start, Supervisor))
        active = sum(1 for c in children if c.status is Status.RUNNING)
        return ChildCounts(len(children), active, supervisors, len(children) - supervisors)

    def view(self) -> TreeView:
        """The tree as comparable data (see :class:`supervision.testing.model.Model`)."""
        supervisors: dict[Path, tuple[tuple[str, str, str], ...]] = {}
        stack = [self.root] if self.running else []
        while stack:
            node = stack.pop()
            assert node is not None
            c = node.core
            supervisors[c.path] = tuple((id, c.children[id].status.value, c.children[id].spec.kind) for id in c.order)
            stack.extend(n for n in node.nested.values() if n.exit is None)
        exit = self.exit
        root_exit = None
        if exit is not None:
            error = type(exit.error).__name__ if exit.error is not None else None
            root_exit = RootExit(exit.reason.value, exit.start_failed, error)
        return TreeView(supervisors, dict(self.store.starts), tuple(self.gave_up), root_exit)

    # -- steps ------------------------------------------------------------------

    def start(self) -> StartError | None:
        """Start the tree (children left to right); the ``StartError`` if it failed."""
        if self.root is not None:
            raise RuntimeError("the tree was already started")
        self.root = _Node(make_core(self.spec, (), self.rng), None, "", 0)
        self._deliver(self.root, core.Init())
        self._settle()
        exit = self.root.exit
        if exit is not None and exit.start_failed:
            assert isinstance(exit.error, StartError)
            return exit.error
        return None

    def run(self, schedule: Iterable[Step]) -> list[Event]:
        """Apply every step; the events so far."""
        for step in schedule:
            self.apply(step)
        return self.events

    def apply(self, step: Step) -> BaseException | None:
        """Apply one step; the error a command raised, else None."""
        result = self._apply(step)
        self._settle()
        return result

    def _apply(self, step: Step) -> BaseException | None:
        if isinstance(step, StartTree):
            return self.start()
        if isinstance(step, FailNextStart):
            self._failures[step.path] = self._failures.get(step.path, 0) + step.times
            return None
        if isinstance(step, Advance):
            self._advance(step.seconds)
            return None
        if self.root is None:
            raise RuntimeError("start() the tree before applying this step")
        if isinstance(step, Crash):
            error = step.error if step.error is not None else SimulatedCrash(f"{format_path(step.path)} crashed")
            self._child_exits(step.path, ExitReason.CRASH, error)
            return None
        if isinstance(step, Exit):
            self._child_exits(step.path, step.reason, step.error)
            return None
        command: core.Command
        if isinstance(step, StopTree):
            if not self.running:
                return None
            return self._call(self.root, core.StopSupervisor())
        if isinstance(step, StartChild):
            target, command = step.parent, core.StartChild(step.spec)
        elif isinstance(step, (StartDynamic, Scale)):
            target = step.parent if isinstance(step, StartDynamic) else step.path
            try:
                node = self._resolve(target)
            except (NotFound, SupervisorNotRunning) as error:
                return error
            if not isinstance(node.core, DynamicCore):
                return SupervisionError(f"{format_path(target)}: not a dynamic supervisor")
            if isinstance(step, StartDynamic):
                return self._call(node, core.StartDynamic((step.args, ())))
            return self._call(node, core.Scale(step.count))
        elif isinstance(step, TerminateChild):
            target, command = step.path[:-1], core.TerminateChild(step.path[-1])
        elif isinstance(step, RestartChild):
            target, command = step.path[:-1], core.RestartChild(step.path[-1])
        elif isinstance(step, DeleteChild):
            target, command = step.path[:-1], core.DeleteChild(step.path[-1])
        else:
            raise TypeError(f"not a schedule step: {step!r}")
        try:
            node = self._resolve(target)
        except (NotFound, SupervisorNotRunning) as error:
            return error
        return self._call(node, command)

    def _call(self, node: _Node, command: core.Command) -> BaseException | None:
        self._reply = None
        self._deliver(node, command)
        reply = self._reply
        self._reply = None
        if reply is None or reply.command is not command:
            if node.exit is not None:  # it stopped before answering (as the runtime reports it)
                return SupervisorNotRunning.at(node.core.path, "supervisor stopped")
            raise AssertionError(f"no reply to {command!r}")
        return reply.error

    def _child_exits(self, path: Path, reason: ExitReason, error: BaseException | None) -> None:
        if not path:
            raise ValueError("a Crash or Exit step needs a child's path")
        try:
            node = self._resolve(path[:-1])
        except (NotFound, SupervisorNotRunning):
            return
        id = path[-1]
        child = node.core.children.get(id)
        if child is None or child.status is not Status.RUNNING:
            return  # not running: nothing to exit
        nested = node.nested.pop(id, None)
        if nested is not None:  # a supervisor stops its children first, as crash() makes it
            nested.stopping = True
            self._deliver(nested, core.StopSupervisor())
        self._deliver(node, core.Exited(id, child.token, core.Outcome(reason, error)))

    def _resolve(self, path: Path) -> _Node:
        node = self.root
        if node is None or node.exit is not None:
            raise SupervisorNotRunning("the tree is not running", path=())
        for depth, id in enumerate(path):
            nested = node.nested.get(id)
            if nested is None or nested.exit is not None:
                where = path[: depth + 1]
                if id in node.core.children:
                    raise SupervisorNotRunning.at(where, "supervisor is not running")
                raise NotFound.at(where, "no such supervisor")
            node = nested
        return node

    # -- the effect loop ----------------------------------------------------------

    def _deliver(self, node: _Node, message: core.Input) -> None:
        """Feed an input, then whatever it caused (a nested supervisor's exit
        reaches its parent after the nested one has finished, as in the runtime)."""
        self._feed(node, message)
        queue = self._queue
        while queue:
            target, next_message = queue.popleft()
            self._feed(target, next_message)

    def _feed(self, node: _Node, message: core.Input | None) -> None:
        now = self._now
        events = self.events
        while message is not None:
            effects = node.core.handle(message, now)
            message = None
            for effect in effects:
                kind = type(effect)
                if kind is core.Emit:
                    events.append(effect.event)  # type: ignore[union-attr]
                elif kind is core.Start:
                    message = self._start(node, effect)  # type: ignore[arg-type]
                elif kind is core.Stop:
                    message = self._stop(node, effect)  # type: ignore[arg-type]
                elif kind is core.StopAll:  # a dynamic supervisor's children, all at once
                    stops = effect.stops  # type: ignore[union-attr]
                    outcomes = {stop.id: self._stop(node, stop).outcome for stop in stops}
                    shutdown = core.Outcome(ExitReason.SHUTDOWN)
                    message = core.AllStopped(effect.id, effect.token, shutdown, outcomes)  # type: ignore[union-attr]
                elif kind is core.SetTimer:
                    self._set_timer(node, effect)  # type: ignore[arg-type]
                elif kind is core.CancelTimer:
                    timer = node.timers.pop(effect.token, None)  # type: ignore[union-attr]
                    if timer is not None:
                        timer.cancelled = True
                elif kind is core.Reply:
                    self._reply = effect  # type: ignore[assignment]
                elif kind is core.Forget:
                    self.store.forget((*node.core.path, effect.id), subtree=effect.subtree)  # type: ignore[union-attr]
                elif kind is core.Ready:
                    node.started = True
                elif kind is core.Exit:
                    self._exit(node, effect)  # type: ignore[arg-type]
                else:
                    raise AssertionError(f"unknown effect {effect!r}")

    def _start(self, node: _Node, effect: core.Start) -> core.StartDone | core.StartFailed:
        path = (*node.core.path, effect.id)
        starts = self.store.count_start(path)
        pending = self._failures.get(path, 0)
        if pending:
            self._failures[path] = pending - 1
            error = SimulatedStartFailure(f"{format_path(path)} failed to start")
            return core.StartFailed(effect.id, effect.token, starts, error)
        spec = effect.spec.start
        if isinstance(spec, Supervisor):
            nested = _Node(make_core(spec, path, self.rng), node, effect.id, effect.token)
            self._feed(nested, core.Init())
            if not nested.started:
                assert nested.exit is not None and nested.exit.error is not None
                return core.StartFailed(effect.id, effect.token, starts, nested.exit.error)
            node.nested[effect.id] = nested
        return core.StartDone(effect.id, effect.token, starts)

    def _stop(self, node: _Node, effect: core.Stop) -> core.StopDone:
        nested = node.nested.pop(effect.id, None)
        if nested is None:
            return core.StopDone(effect.id, effect.token, core.Outcome(ExitReason.SHUTDOWN))
        assert nested.token == effect.token
        nested.stopping = True
        if nested.exit is None:
            self._feed(nested, core.StopSupervisor())
        assert nested.exit is not None
        return core.StopDone(effect.id, effect.token, core.Outcome(nested.exit.reason, nested.exit.error))

    # -- time -----------------------------------------------------------------------

    def _set_timer(self, node: _Node, effect: core.SetTimer) -> None:
        timer = _Timer(node, effect.token)
        node.timers[effect.token] = timer
        heapq.heappush(self._timers, (effect.at, next(self._seq), timer))

    def _advance(self, seconds: float) -> None:
        """Move time forward, firing each due timer at its own time (and those
        due at the same time in the order they were set)."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        self._fire_due(target)
        self._move_clock(target)

    def _settle(self) -> None:
        if self.immediate_retries:
            self._fire_due(self._now)

    def _fire_due(self, until: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= until:
            when, _, timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            self._move_clock(max(self._now, when))
            node = timer.node
            if node.timers.pop(timer.token, None) is not None and node.exit is None:
                self._deliver(node, core.TimerFired(timer.token))

    def _move_clock(self, when: float) -> None:
        if when > self._now:
            self.clock.advance(when - self._now)  # the clock's own timers fire too
            self._now = when

    def _exit(self, node: _Node, effect: core.Exit) -> None:
        node.exit = effect
        for timer in node.timers.values():
            timer.cancelled = True
        node.timers.clear()
        parent = node.parent
        if parent is not None and node.started and not node.stopping:
            # It exited by itself (gave up, auto_shutdown): its parent hears of it.
            parent.nested.pop(node.id, None)
            outcome = core.Outcome(effect.reason, effect.error)
            self._queue.append((parent, core.Exited(node.id, node.token, outcome)))


def _to_path(path: str | Path) -> Path:
    if isinstance(path, tuple):
        return path
    return tuple(part for part in path.split("/") if part)


def simulate(
    spec: Supervisor,
    schedule: Iterable[Step],
    *,
    clock: ManualClock | None = None,
    rng: random.Random | None = None,
    immediate_retries: bool = True,
) -> list[Event]:
    """Run ``spec`` through the real core on a virtual clock; the trace of events.

    The tree starts before the first step, or at the ``StartTree()`` step if
    the schedule has one. If it fails to start, the trace ends there (its
    ``ChildStartFailed`` and the stops of the children already started). Once the
    tree has stopped, the remaining steps do nothing. ``rng`` draws backoff jitter (default: seeded
    with 0, so a simulation is reproducible). A retry due now runs at the end of
    the step that caused it (``immediate_retries=False``: at the next ``Advance``).

    >>> import supervision as sv
    >>> async def work(ctx): ...
    >>> spec = sv.Supervisor([sv.child("a", work)], intensity=1, period=5)
    >>> for event in simulate(spec, [Crash("a"), Advance(1), Crash("a")]):
    ...     print(event.time, "/".join(event.path) or "/", type(event).__name__)
    0.0 a ChildStarted
    0.0 a ChildExited
    0.0 a ChildStarted
    1.0 a ChildExited
    1.0 / SupervisorGaveUp
    """
    simulator = Simulator(spec, clock=clock, rng=rng, immediate_retries=immediate_retries)
    steps = list(schedule)
    if not any(isinstance(step, StartTree) for step in steps):
        steps.insert(0, StartTree())
    for step in steps:
        if isinstance(step, StartTree) or simulator.running or isinstance(step, (Advance, FailNextStart)):
            simulator.apply(step)
        if simulator.exit is not None and simulator.exit.start_failed:
            break
    return simulator.events
