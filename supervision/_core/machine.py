"""The pure core: one supervisor's restart logic as a state machine.

Events go in, effects come out. The core does no I/O, never imports asyncio and
never reads a clock: the caller passes ``now`` with every input, and randomness
(backoff jitter) comes from an injected ``random.Random``. The asyncio runtime,
the simulator of ``supervision.testing`` and the tests all drive this one class.

How it works, in OTP's terms:

* The core is a process with a mailbox. Inputs that arrive while it is busy
  with a multi-step operation (a *job*: start all children, a group restart,
  stopping a child) wait in the mailbox and are handled in order afterwards,
  exactly as an OTP supervisor blocked in ``terminate_children`` leaves its
  ``'EXIT'`` messages queued.
* A job is a generator that yields one blocking effect at a time (``Start`` or
  ``Stop``) and receives its completion (``StartDone``/``StartFailed``/``StopDone``).
  Jobs read like the sequential code of ``supervisor.erl``.
* Every start attempt gets a fresh *token*. An exit that names an old token is
  stale (the child was restarted or stopped since) and is ignored, as OTP
  ignores an ``'EXIT'`` from a pid it no longer knows.
* Restart intensity is counted when a restart is decided: on an exit that calls
  for one, and on each failed (re)start that calls for a retry. A child with an
  ``intensity`` of its own counts its restarts in its own window instead, and
  only when it exceeds that does it reach the supervisor's (``_count_restart``).
* A child that failed to (re)start is ``RESTARTING`` and owns a retry timer.
  Children of the same group that were not started yet wait on that retry.
* A reload is the ``Update`` command: a job that applies a ``Plan`` (see
  ``diff``) to this supervisor and, through the ``UpdateSupervisor`` effect,
  to the nested supervisors it updates in place. Like a group restart, it stops
  right to left, then starts left to right.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from .diff import Plan, diff, same_child
from .errors import (
    AlreadyPresent,
    AlreadyStarted,
    ChildRestarting,
    ChildRunning,
    HealthCheckFailed,
    NotFound,
    SpecError,
    StartError,
    SupervisorNotRunning,
    TooManyRestarts,
    WatchdogTimeout,
)
from .events import (
    ChildExited,
    ChildStarted,
    ChildStartFailed,
    Event,
    ExitReason,
    HealthChanged,
    RestartScheduled,
    SupervisorGaveUp,
    SupervisorStopped,
)
from .health import HealthRecord
from .messages import (
    Adopt,
    Applied,
    CancelTimer,
    Command,
    DeleteChild,
    Effect,
    Emit,
    Exit,
    Exited,
    Fail,
    Forget,
    Init,
    Input,
    OperatorRestart,
    Outcome,
    Probed,
    Ready,
    Reply,
    RestartChild,
    SetTimer,
    Start,
    StartChild,
    StartDone,
    StartFailed,
    Stop,
    StopDone,
    StopSupervisor,
    TerminateChild,
    TimerFired,
    Update,
    UpdateDone,
    UpdateSupervisor,
    WatchdogExpired,
)
from .paths import Path
from .spec import AutoShutdown, ChildSpec, Restart, RestartMode, Strategy, Supervisor
from .status import Phase, Status

# -- inputs -------------------------------------------------------------------


# -- effects ------------------------------------------------------------------


Job: TypeAlias = Generator["Start | Adopt | Stop | UpdateSupervisor", Any, Any]


class _Steps(Protocol):
    """What runs a job: a generator, or a hand-written object with the same ``send``."""

    def send(self, value: Any, /) -> Start | Adopt | Stop | UpdateSupervisor | None: ...


@dataclass(slots=True)
class Child:
    """The core's record of one child."""

    spec: ChildSpec
    path: Path
    dynamic: bool = False
    status: Status = Status.TERMINATED
    token: int = 0
    since: float = 0.0  # when it last started running (backoff reset)
    backoff_n: int = 0  # consecutive restarts, for the backoff delay
    retry: int | None = None  # token of its pending retry timer
    # Its own restart window, if its spec has an intensity: () until the first
    # restart is counted (an empty deque is 600 bytes; most children never need one).
    restarts: deque[float] | tuple[()] = ()
    health: HealthRecord | None = None  # the running incarnation's probe results (with a probe or watchdog)

    def health_record(self) -> HealthRecord:
        """The running incarnation's health record, made on first use."""
        if self.health is None:
            self.health = HealthRecord()
        return self.health


class Verdict(enum.Enum):
    """What counting one more restart of a child decided."""

    RESTART = "restart"
    GIVE_UP = "give up"  # the supervisor's intensity is exceeded
    LEAVE = "leave"  # the child's own intensity is exceeded and it is not permanent: it stays terminated


# Enum members as module constants for the hot paths (exit, restart, start): reading
# ``Status.RUNNING`` goes through the enum's metaclass, about 4x a global's cost.
_STARTING = Status.STARTING
_RUNNING = Status.RUNNING
_TERMINATED = Status.TERMINATED
_PERMANENT = Restart.PERMANENT
_TEMPORARY = Restart.TEMPORARY
_CRASH = ExitReason.CRASH
_RESTART = Verdict.RESTART
_GIVE_UP = Verdict.GIVE_UP
_ONE_FOR_ONE = Strategy.ONE_FOR_ONE
_STOPPED = Phase.STOPPED


@dataclass(slots=True)
class _Retry:
    id: str
    waiting: tuple[str, ...]  # group members not started yet, waiting on this retry
    at: float


def add_restart(restarts: deque[float], now: float, intensity: int, period: float) -> bool:
    """Record a restart at ``now``; False if that exceeds the intensity.

    Restarts older than ``period`` seconds are dropped first (one exactly
    ``period`` old still counts, as in OTP). ``intensity=0``: the first restart
    already exceeds the limit.
    """
    restarts.append(now)
    while now - restarts[0] > period:
        restarts.popleft()
    return len(restarts) <= intensity


_PLAN = Supervisor.plan  # the built-in strategies' plan(): one_for_one needs no call


class SupervisorCore:
    """The state machine of one supervisor. See the module docstring."""

    def __init__(self, spec: Supervisor, path: Path = (), rng: random.Random | None = None) -> None:
        self.spec = spec
        self.path = path
        self.rng = rng if rng is not None else random.Random()
        self.phase = Phase.NEW
        # Children in start order (dicts keep insertion order: O(1) append and removal).
        self.children: dict[str, Child] = {c.id: Child(c, (*path, c.id)) for c in spec.children}
        # Each child's place in start order, for sorting a group: built on first
        # use (a one_for_one supervisor never needs it), then kept up to date.
        self._rank_cache: dict[str, int] | None = None
        self._last_rank = len(self.children)
        self._ids: tuple[str, ...] | None = None  # cached start order, for plan()
        self.observed = True  # False: nobody listens, so events are not even built
        self.restarts: deque[float] = deque()
        self.now = 0.0
        self._tokens = 0
        self._mailbox: deque[Input] = deque()
        self._job: _Steps | None = None
        self._job_command: Command | None = None
        self._awaiting: Start | Adopt | Stop | UpdateSupervisor | None = None
        self._retries: dict[int, _Retry] = {}
        self._out: list[Effect] = []
        self._restart_one = _RestartOne(self, "")  # the job of every one_for_one restart from an exit, reused

    def restarts_within(self, now: float) -> int:
        """Restarts in the intensity window at ``now``: those the next restart
        would be counted with (``add_restart`` drops only older ones)."""
        period = self.spec.period
        return sum(1 for when in self.restarts if now - when <= period)

    # -- the one entry point --------------------------------------------------

    def handle(self, message: Input, now: float) -> list[Effect]:
        """Feed one input at time ``now``; return the effects to execute, in order.

        A ``Start``, ``Stop`` or ``UpdateSupervisor`` effect, if any, is the last
        one: the caller must answer it (with ``StartDone``/``StartFailed``,
        ``StopDone`` or ``UpdateDone``; a start that succeeded at once may be
        answered with ``handle_started``) before the core does anything else. Other
        inputs may be fed at any time; the core queues them while it is busy.
        """
        self.now = now
        out = self._out = []
        awaiting = self._awaiting
        if awaiting is not None and isinstance(message, (StartDone, StartFailed, StopDone, UpdateDone)):
            if message.id != awaiting.id or message.token != awaiting.token:
                raise RuntimeError(f"completion {message!r} does not answer {awaiting!r}")
            self._awaiting = None
            job = self._job
            if type(job) is _RestartOne and type(message) is StartDone:
                job.started(message.starts, message.pid)  # the end of a one_for_one restart: no send()
            else:
                self._advance(message)
        elif self._job is not None:
            self._mailbox.append(message)
        else:
            self._dispatch(message)
        while self._job is None and self._mailbox:
            self._dispatch(self._mailbox.popleft())
        return out

    def handle_started(self, starts: int, now: float) -> list[Effect]:
        """``handle(StartDone(id, token, starts), now)`` for the awaited ``Start``,
        without the message: what a runtime calls when the start completed at
        once (an asyncio worker's does). The same transition, the same effects."""
        awaiting = self._awaiting
        job = self._job
        if type(job) is not _RestartOne or type(awaiting) is not Start:
            if awaiting is None:
                raise RuntimeError("handle_started() while no start is awaited")
            return self.handle(StartDone(awaiting.id, awaiting.token, starts), now)
        self.now = now
        out = self._out = []
        self._awaiting = None
        job.started(starts, None)  # the end of a one_for_one restart
        while self._job is None and self._mailbox:
            self._dispatch(self._mailbox.popleft())
        return out

    @property
    def order(self) -> list[str]:
        """The children's ids in start order."""
        return list(self.children)

    def ids(self) -> tuple[str, ...]:
        """The children's ids in start order, as the tuple ``plan()`` gets."""
        if self._ids is None:
            self._ids = tuple(self.children)
        return self._ids

    def _append(self, spec: ChildSpec) -> Child:
        child = self.children[spec.id] = Child(spec, (*self.path, spec.id), dynamic=True)
        self._last_rank += 1
        if self._rank_cache is not None:
            self._rank_cache[spec.id] = self._last_rank
        self._ids = None
        return child

    @property
    def _rank(self) -> dict[str, int]:
        """Each child's place in start order (larger: later)."""
        rank = self._rank_cache
        if rank is None:
            rank = self._rank_cache = {id: n for n, id in enumerate(self.children)}
            self._last_rank = len(rank)
        return rank

    def _reorder(self, order: dict[str, Child]) -> None:
        """Install a new start order (a reload, an instance group renumbered)."""
        self.children = order
        self._rank_cache = None
        self._last_rank = len(order)
        self._ids = None

    @property
    def busy(self) -> bool:
        """True while a job is in progress (inputs are queued)."""
        return self._job is not None

    def next_token(self) -> int:
        self._tokens += 1
        return self._tokens

    # -- dispatch -------------------------------------------------------------

    def _dispatch(self, message: Input) -> None:
        if self.phase is _STOPPED:
            if isinstance(message, Command):
                error = SupervisorNotRunning.at(self.path, "supervisor is not running")
                self._out.append(Reply(message, error=error))
            return
        if isinstance(message, Exited):
            self._on_exited(message)
        elif isinstance(message, TimerFired):
            self._on_timer(message.token)
        elif isinstance(message, Probed):
            self._on_probed(message)
        elif isinstance(message, WatchdogExpired):
            self._on_watchdog(message)
        elif isinstance(message, Init):
            self._run(self._init_job(message), message)
        elif isinstance(message, StopSupervisor):
            self._run(self._shutdown_job(ExitReason.SHUTDOWN, None), message)
        elif isinstance(message, StartChild):
            self._start_child(message)
        elif isinstance(message, TerminateChild):
            self._terminate_child(message)
        elif isinstance(message, RestartChild):
            self._restart_child(message)
        elif isinstance(message, DeleteChild):
            self._delete_child(message)
        elif isinstance(message, OperatorRestart):
            self._operator_restart(message)
        elif isinstance(message, Update):
            self._update(message)
        else:
            raise RuntimeError(f"unexpected input {message!r} while idle")

    def _run(self, job: _Steps, command: Command | None = None) -> None:
        self._job = job
        self._job_command = command
        self._advance(None)

    def _advance(self, value: Any) -> None:
        assert self._job is not None
        try:
            effect = self._job.send(value)
        except StopIteration as stop:
            self._end_job(stop.value)
            return
        if effect is None:  # a hand-written job (``_RestartOne``) that ended, without raising StopIteration
            if self._job_command is None:  # _end_job(None), inline: the end of every one_for_one restart
                self._job = None
            else:
                self._end_job(None)
            return
        self._awaiting = effect
        self._out.append(effect)

    def _end_job(self, value: Any) -> None:
        command = self._job_command
        self._job = None
        self._job_command = None
        if command is not None:
            self._reply(command, value)

    def _reply(self, command: Command, value: Any) -> None:
        if isinstance(value, BaseException):
            self._out.append(Reply(command, error=value))
        else:
            self._out.append(Reply(command, value))

    def _emit(self, event: Event) -> None:
        self._out.append(Emit(event))

    def _child_path(self, id: str) -> Path:
        child = self.children.get(id)
        return child.path if child is not None else (*self.path, id)

    # -- starting and stopping one child --------------------------------------

    def _start(self, id: str, *, reload: bool = False) -> Generator[Start, Any, StartError | None]:
        """Start one child; the ``StartError`` if it failed, else None."""
        done = yield self._begin_start(id)
        return self._end_start(id, done, reload=reload)

    def _begin_start(self, id: str, overlaps: int = 0) -> Start:
        child = self.children[id]
        self._tokens = token = self._tokens + 1  # next_token(), inline: every start takes this path
        child.token = token
        child.status = _STARTING
        spec = child.spec
        if spec.health is not None or spec.watchdog is not None:
            child.health = HealthRecord()
        return Start(id, token, spec, child.path, overlaps)

    def _end_start(self, id: str, done: StartDone | StartFailed, *, reload: bool = False) -> StartError | None:
        child = self.children[id]
        if isinstance(done, StartDone):
            child.status = _RUNNING
            child.since = self.now
            if self.observed:
                self._emit(ChildStarted(path=child.path, time=self.now, starts=done.starts, pid=done.pid))
            return None
        child.status = _TERMINATED
        error = self._start_error(id, done.error)
        self._emit(ChildStartFailed(path=child.path, time=self.now, error=error, reload=reload))
        return error

    def _adopt(self, id: str) -> Generator[Adopt, Any, StartError | None]:
        """Take over a child that kept running across a re-exec: running again at
        once, without an event (it never stopped); a failure is a start failure."""
        child = self.children[id]
        child.token = self.next_token()
        child.status = Status.STARTING
        if child.spec.health is not None or child.spec.watchdog is not None:
            child.health = HealthRecord()
        done = yield Adopt(id, child.token, child.spec, child.path)
        if isinstance(done, StartDone):
            child.status = Status.RUNNING
            child.since = self.now
            return None
        return self._end_start(id, done)

    def _start_error(self, id: str, error: BaseException) -> StartError:
        if isinstance(error, StartError):
            return error  # a nested supervisor's child: keep the deepest path
        start_error = StartError(self._child_path(id))
        start_error.__cause__ = error
        return start_error

    def _stop(self, id: str) -> Generator[Stop, Any, None]:
        child = self.children[id]
        child.status = Status.STOPPING
        done: StopDone = yield Stop(id, child.token, child.spec)
        child.status = Status.TERMINATED
        self._emit_exit(id, done.outcome)

    def _emit_exit(self, id: str, outcome: Outcome) -> None:
        if not self.observed:
            return
        self._emit(
            ChildExited(
                path=self._child_path(id),
                time=self.now,
                reason=outcome.reason,
                error=outcome.error,
                exit_status=outcome.exit_status,
                signal=outcome.signal,
            )
        )

    def _remove(self, id: str) -> None:
        child = self.children.pop(id)
        if self._rank_cache is not None:
            del self._rank_cache[id]
        self._ids = None
        self._cancel_retry(child)
        self._forget(id, child.spec)

    def _forget(self, id: str, spec: ChildSpec) -> None:
        self._out.append(Forget(id, subtree=isinstance(spec.start, Supervisor)))

    # -- jobs -----------------------------------------------------------------

    def _init_job(self, init: Init) -> Job:
        self.phase = Phase.STARTING
        for id in init.removed:
            if id in self.children:
                self._remove(id)
        started: list[str] = []
        for id in list(self.children):
            if id in init.terminated:
                continue  # terminated before a re-exec: it stays so
            if id in init.adopted:
                error = yield from self._adopt(id)
            else:  # _start(id), without a generator per child
                done = yield self._begin_start(id)
                error = self._end_start(id, done)
            if error is not None:
                for done in reversed(started):
                    yield from self._stop(done)
                    if self.children[done].spec.restart is Restart.TEMPORARY:
                        self._forget(done, self.children[done].spec)
                self.phase = Phase.STOPPED
                self._out.append(Exit(ExitReason.SHUTDOWN, error, start_failed=True))
                return error
            started.append(id)
        self.phase = Phase.RUNNING
        self._out.append(Ready())
        return None

    def _shutdown_job(self, reason: ExitReason, error: BaseException | None, *, orderly: bool = True) -> Job:
        self.phase = Phase.STOPPING
        for id in reversed(list(self.children)):
            child = self.children[id]
            if child.status is Status.RUNNING:
                yield from self._stop(id)
            else:
                self._cancel_retry(child)
                child.status = Status.TERMINATED
        self._stopped(reason, error, orderly=orderly)
        return None

    def _stopped(self, reason: ExitReason, error: BaseException | None, *, orderly: bool) -> None:
        """The end of a shutdown, every child stopped: forget what does not outlive
        this incarnation (dynamic and temporary children), say so, and exit."""
        for id, child in self.children.items():
            if child.dynamic or child.spec.restart is Restart.TEMPORARY:
                self._forget(id, child.spec)
        self.phase = Phase.STOPPED
        if orderly:
            self._emit(SupervisorStopped(path=self.path, time=self.now))
        self._out.append(Exit(reason, error))

    def _give_up_job(self, cause: BaseException | None) -> Job:
        error = TooManyRestarts(self.path, self.spec.intensity, self.spec.period)
        error.__cause__ = cause
        self._emit(SupervisorGaveUp(path=self.path, time=self.now, error=error))
        yield from self._shutdown_job(ExitReason.SHUTDOWN, error, orderly=False)
        return None

    def _restart(self, failed: str, waiting: Iterable[str] = ()) -> _Steps:
        """The job that restarts ``failed`` and the children its supervisor's plan
        names with it."""
        spec = self.spec
        if not waiting and spec.strategy is Strategy.ONE_FOR_ONE and type(spec).plan is _PLAN:
            # one_for_one, the hot path: no plan() to call, no ids to list (O(1) in the number of children)
            return _RestartOne(self, failed)
        try:
            group = self._group(failed, waiting)
        except Exception as exc:  # a broken plan() crashes the supervisor, as in OTP
            return self._shutdown_job(ExitReason.CRASH, exc, orderly=False)
        if len(group) == 1:
            return _RestartOne(self, failed)  # one_for_one, the hot path: no generator
        return self._restart_job(failed, group)

    def _restart_job(self, failed: str, group: list[str]) -> Job:
        children = self.children
        for id in reversed(group):
            if children[id].status is Status.RUNNING:
                yield from self._stop(id)
        to_start: list[str] = []
        for id in group:
            child = children[id]
            self._cancel_retry(child)  # this restart is the retry it was waiting for
            if child.spec.restart is Restart.TEMPORARY and id != failed:
                self._remove(id)  # temporary bystanders are never restarted
                continue
            child.status = Status.RESTARTING
            to_start.append(id)
        for index, id in enumerate(to_start):
            error = yield from self._start(id)
            if error is not None:
                yield from self._retry_or_give_up(id, tuple(to_start[index + 1 :]), error)
                return None
        return None

    def _retry_or_give_up(self, id: str, waiting: tuple[str, ...], error: StartError) -> Job:
        """A restart of ``id`` failed: retry it (``waiting`` wait on that retry),
        unless the retry exceeds the intensity."""
        verdict = self._count_restart(id, error)
        if verdict is Verdict.GIVE_UP:
            yield from self._give_up_job(error)
            return None
        if verdict is Verdict.LEAVE:  # it stays terminated: start those that waited on its retry
            children = self.children
            for index, other in enumerate(waiting):
                if other in children and children[other].status is Status.RESTARTING:
                    failed = yield from self._start(other)
                    if failed is not None:
                        yield from self._retry_or_give_up(other, waiting[index + 1 :], failed)
                        return None
            return None
        self._schedule_retry(id, waiting)
        return None

    def _count_restart(self, id: str, cause: BaseException | None) -> Verdict:
        """Count one restart of ``id`` against the intensity, and say what follows.

        A child whose spec has an ``intensity`` of its own counts it in its own
        window, and the supervisor's is not touched: the child absorbs its
        restarts, as a nested supervisor with that one child would. When the
        child exceeds it, it gives up (``SupervisorGaveUp`` with its path): its
        window starts over and, like a nested supervisor that gave up, a
        permanent child is restarted all the same, this time counted against
        the supervisor's intensity; a transient or temporary one stays
        terminated. Any other child counts against the supervisor's intensity."""
        child = self.children[id]
        own = child.spec.intensity
        if own is None:  # the common case: the supervisor's window (add_restart, inline)
            now = self.now
            restarts = self.restarts
            restarts.append(now)
            period = self.spec.period
            while now - restarts[0] > period:
                restarts.popleft()
            return Verdict.RESTART if len(restarts) <= self.spec.intensity else Verdict.GIVE_UP
        if own is not None:
            if not isinstance(child.restarts, deque):
                child.restarts = deque()
            if add_restart(child.restarts, self.now, own, child.spec.period):
                return Verdict.RESTART
            child.restarts.clear()
            error = TooManyRestarts(child.path, own, child.spec.period)
            error.__cause__ = cause
            self._emit(SupervisorGaveUp(path=child.path, time=self.now, error=error))
            if child.spec.restart is not Restart.PERMANENT:
                return Verdict.LEAVE
        if not add_restart(self.restarts, self.now, self.spec.intensity, self.spec.period):
            return Verdict.GIVE_UP
        return Verdict.RESTART

    def _group(self, failed: str, waiting: Iterable[str]) -> list[str]:
        """The children a restart of ``failed`` cycles, in start order: those the
        plan names that are running or restarting (terminated ones stay so),
        the failed child itself, and the group members waiting on its retry
        (or on the retry of any other member)."""
        children = self.children
        named = self.spec.plan(self.ids(), failed)
        if not waiting and named == (failed,):
            return [failed]  # one_for_one: nothing to gather or sort
        planned = set(named)
        unknown = [id for id in planned if id not in children]
        if unknown:
            raise ValueError(f"{type(self.spec).__name__}.plan() named unknown children {sorted(unknown)}")
        planned.update(id for id in waiting if id in children)
        # A member's pending retry is consumed by this restart: whoever waited on
        # that retry joins the group, or it would wait for ever.
        pending = list(planned)
        while pending:
            retry = children[pending.pop()].retry
            if retry is not None:
                for id in self._retries[retry].waiting:
                    if id in children and id not in planned:
                        planned.add(id)
                        pending.append(id)
        alive = (Status.RUNNING, Status.RESTARTING)
        group = [id for id in planned if id != failed and children[id].status in alive]
        group.append(failed)
        group.sort(key=self._rank.__getitem__)
        return group

    # -- restarts ---------------------------------------------------------------

    def _on_exited(self, message: Exited) -> None:
        child = self.children.get(message.id)
        if child is None or child.token != message.token or child.status is not _RUNNING:
            return  # stale: that incarnation was already stopped or replaced
        child.status = _TERMINATED
        outcome = message.outcome
        if self.observed:
            self._emit_exit(message.id, outcome)
        spec = child.spec
        restart = spec.restart
        if restart is not _PERMANENT and (restart is _TEMPORARY or outcome.reason is not _CRASH):
            if restart is _TEMPORARY:
                self._remove(message.id)
            if spec.significant:
                self._check_auto_shutdown()
            return
        sup = self.spec
        if spec.intensity is None:  # _count_restart(), inline: the supervisor's window
            now = self.now
            restarts = self.restarts
            restarts.append(now)
            period = sup.period
            while now - restarts[0] > period:
                restarts.popleft()
            verdict = _RESTART if len(restarts) <= sup.intensity else _GIVE_UP
        else:
            verdict = self._count_restart(message.id, outcome.error)
        if verdict is not _RESTART:
            if verdict is _GIVE_UP:
                self._run(self._give_up_job(outcome.error))
            return
        backoff = spec.backoff or sup.backoff
        if backoff is not None:
            if self.now - child.since >= backoff.reset_time:
                child.backoff_n = 0
            self._schedule_retry(message.id, ())
            return
        if self.now >= child.since:
            child.backoff_n = 0
        if sup.strategy is _ONE_FOR_ONE and type(sup).plan is _PLAN:
            one = self._restart_one  # _restart(), inline: one_for_one (no job is running)
            one.id = message.id
            job: _Steps = one
        else:
            job = self._restart(message.id)
        if type(job) is _RestartOne:  # one_for_one: its first step at once (what _run would do)
            self._job = job
            self._job_command = None
            if child.retry is not None:
                self._cancel_retry(child)
            effect = self._begin_start(message.id)
            self._awaiting = effect
            self._out.append(effect)
        else:
            self._run(job)

    def _schedule_retry(self, id: str, waiting: tuple[str, ...]) -> None:
        child = self.children[id]
        child.status = Status.RESTARTING
        child.backoff_n += 1
        backoff = child.spec.backoff or self.spec.backoff
        delay = backoff.delay(child.backoff_n, self.rng) if backoff is not None else 0.0
        token = self.next_token()
        child.retry = token
        self._retries[token] = _Retry(id, waiting, self.now + delay)
        self._out.append(SetTimer(token, self.now + delay))
        self._emit(RestartScheduled(path=self._child_path(id), time=self.now, delay=delay))

    def _on_timer(self, token: int) -> None:
        retry = self._retries.pop(token, None)
        if retry is None:
            return
        child = self.children[retry.id]
        child.retry = None
        if child.status is Status.RESTARTING:
            self._run(self._restart(retry.id, retry.waiting))

    def _cancel_retry(self, child: Child, *, hand_off: bool = False) -> None:
        """Cancel the child's pending retry. With ``hand_off``, the group members
        that waited on it keep their place: the first of them takes the retry over."""
        if child.retry is None:
            return
        token = child.retry
        child.retry = None
        retry = self._retries.pop(token)
        self._out.append(CancelTimer(token))
        if not hand_off:
            return
        waiting = [id for id in retry.waiting if id in self.children and self.children[id].status is Status.RESTARTING]
        if waiting and self.children[waiting[0]].retry is None:
            heir = self.children[waiting[0]]
            heir.retry = self.next_token()
            self._retries[heir.retry] = _Retry(waiting[0], tuple(waiting[1:]), retry.at)
            self._out.append(SetTimer(heir.retry, retry.at))

    def _check_auto_shutdown(self) -> None:
        mode = self.spec.auto_shutdown
        if mode is AutoShutdown.NEVER:
            return
        if mode is AutoShutdown.ALL_SIGNIFICANT and any(
            c.spec.significant and c.status is not Status.TERMINATED for c in self.children.values()
        ):
            return
        self._run(self._shutdown_job(ExitReason.NORMAL, None))

    # -- liveness: health probes and watchdogs ------------------------------------

    def _running(self, id: str, token: int) -> Child | None:
        child = self.children.get(id)
        if child is None or child.token != token or child.status is not Status.RUNNING:
            return None  # stale: that incarnation was stopped or replaced
        return child

    def _on_probed(self, message: Probed) -> None:
        """A probe result: counted by the child's ``HealthRecord``; the ``failures``-th
        failure in a row fails the child (its exit is a crash like any other)."""
        child = self._running(message.id, message.token)
        probe = child.spec.health if child is not None else None
        if child is None or probe is None:
            return
        changed, fail = child.health_record().probed(
            message.healthy, now=self.now, ready_at=child.since, grace=probe.grace, failures=probe.failures
        )
        if changed is not None:
            self._emit(HealthChanged(path=child.path, time=self.now, healthy=changed, reason=message.reason))
        if fail:
            self._out.append(Fail(message.id, message.token, HealthCheckFailed(child.path, message.reason)))

    def _on_watchdog(self, message: WatchdogExpired) -> None:
        child = self._running(message.id, message.token)
        if child is None or not child.health_record().expired():
            return
        error = WatchdogTimeout(child.path, message.period, message.triggered)
        self._out.append(Fail(message.id, message.token, error, watchdog=True))

    # -- commands ---------------------------------------------------------------

    def _start_child(self, command: StartChild) -> None:
        spec = command.spec
        existing = self.children.get(spec.id)
        if self.phase is not Phase.RUNNING:
            self._reply(command, SupervisorNotRunning.at(self.path, "supervisor is not running"))
        elif existing is not None:
            cls = AlreadyStarted if existing.status is Status.RUNNING else AlreadyPresent
            self._reply(command, cls.at(self._child_path(spec.id), f"already {existing.status}"))
        elif spec.significant and self.spec.auto_shutdown is AutoShutdown.NEVER:
            self._reply(command, SpecError((spec.id,), "significant", "a significant child needs auto_shutdown"))
        else:
            self._append(spec)
            self._run(self._start_child_job(spec.id), command)

    def _start_child_job(self, id: str) -> Job:
        error = yield from self._start(id)
        if error is not None:
            self._remove(id)
        return error

    def _find(self, command: Command, id: str) -> Child | None:
        child = self.children.get(id)
        if child is None:
            self._reply(command, NotFound.at(self._child_path(id), "no such child"))
        return child

    def _terminate_child(self, command: TerminateChild) -> None:
        child = self._find(command, command.id)
        if child is not None:
            self._run(self._terminate_job(command.id), command)

    def _terminate_job(self, id: str) -> Job:
        yield from self._halt(id)
        if self.children[id].spec.restart is Restart.TEMPORARY:
            self._remove(id)
        return None

    def _halt(self, id: str) -> Generator[Stop, Any, None]:
        """An operator's stop: stop the child if it runs, else cancel its pending
        retry (whoever waited on that retry keeps its place)."""
        child = self.children[id]
        if child.status is Status.RUNNING:
            yield from self._stop(id)
        else:
            self._cancel_retry(child, hand_off=True)
            child.status = Status.TERMINATED

    def _terminated(self, command: Command, id: str) -> Child | None:
        """The child, if it is terminated; else reply with the error that says why not."""
        child = self._find(command, id)
        if child is None:
            return None
        if child.status is Status.RESTARTING:
            self._reply(command, ChildRestarting.at(child.path, "restarting"))
        elif child.status is not Status.TERMINATED:
            self._reply(command, ChildRunning.at(child.path, "running"))
        else:
            return child
        return None

    def _restart_child(self, command: RestartChild) -> None:
        if self._terminated(command, command.id) is not None:
            self._run(self._restart_child_job(command.id), command)

    def _restart_child_job(self, id: str) -> Job:
        return (yield from self._start(id))

    def _operator_restart(self, command: OperatorRestart) -> None:
        child = self._find(command, command.id)
        if child is None:
            return
        if child.spec.restart is Restart.TEMPORARY:
            message = "a temporary child cannot be restarted: it is removed when it stops"
            self._reply(command, NotFound.at(child.path, f"{message}"))
        else:
            self._run(self._operator_restart_job(command.id), command)

    def _operator_restart_job(self, id: str) -> Job:
        child = self.children[id]
        if child.status is Status.RUNNING and child.spec.restart_mode is RestartMode.OVERLAP:
            return (yield from self._overlap(id))
        yield from self._halt(id)
        return (yield from self._start(id))

    def _overlap(self, id: str, *, reload: bool = False) -> Generator[Start | Stop, Any, StartError | None]:
        """Replace the running child ``id`` without a gap: start a new incarnation
        while the old one runs; once the new one has started (is ready), stop the
        old one. If the new one fails to start, the old one keeps running (an
        operator's restart: nothing changed) or, in a reload (its spec is gone),
        is stopped too; the ``StartError`` is returned."""
        child = self.children[id]
        old_token, old_since, old_health = child.token, child.since, child.health
        done = yield self._begin_start(id, overlaps=old_token)
        error = self._end_start(id, done, reload=reload)
        if error is not None and not reload:
            child.token, child.status, child.since, child.health = old_token, Status.RUNNING, old_since, old_health
            return error
        stopped: StopDone = yield Stop(id, old_token, child.spec)
        self._emit_exit(id, stopped.outcome)
        return error

    def _delete_child(self, command: DeleteChild) -> None:
        if self._terminated(command, command.id) is not None:
            self._remove(command.id)
            self._reply(command, None)

    # -- reload -------------------------------------------------------------------

    def _update(self, command: Update) -> None:
        if self.phase is not Phase.RUNNING:
            self._reply(command, SupervisorNotRunning.at(self.path, "supervisor is not running"))
            return
        plan = command.plan
        if plan is None or plan.old is not self.spec or plan.new is not command.spec or plan.path != self.path:
            plan = diff(self.spec, command.spec, self.path)
        self._run(self._update_job(plan), command)

    def _update_job(self, plan: Plan) -> Job:
        """Apply a reload plan: removed children stopped right to left and
        forgotten, changed ones stopped right to left; then the new specs,
        settings and order installed; then, left to right, the changed and added
        children started and the nested supervisors updated. Unchanged children
        are not touched. A start that fails is a start failure like any other
        (counted against the intensity, retried), its event marked ``reload``."""
        applied = Applied()
        children = self.children
        rank = self._rank.__getitem__
        changed = {id for id in plan.changed if id in children}
        adopted = [id for id in plan.added if id in children]  # dynamic children the new spec now declares
        if adopted:
            specs = {spec.id: spec for spec in plan.new.children}
            changed.update(id for id in adopted if not same_child(children[id].spec, specs[id]))
        for id in sorted((id for id in plan.removed if id in children), key=rank, reverse=True):
            child = children[id]
            if child.status is Status.RUNNING:
                yield from self._stop(id)
            self._cancel_retry(child, hand_off=True)
            self._remove(id)
            applied.stopped.append(child.path)
        to_start: set[str] = set()
        overlapping = {spec.id for spec in plan.new.children if spec.restart_mode is RestartMode.OVERLAP}
        for id in sorted(changed, key=rank, reverse=True):
            child = children[id]
            if child.status is Status.RUNNING:
                if id not in overlapping:  # else stopped once its new incarnation has started
                    yield from self._stop(id)
                to_start.add(id)
            elif child.status is Status.RESTARTING and child.retry is not None:
                # The reload is the retry it waited for (and so is it for those waiting on it).
                waiting = self._retries[child.retry].waiting
                self._cancel_retry(child)
                to_start.add(id)
                to_start.update(w for w in waiting if w in children and children[w].status is Status.RESTARTING)
            else:  # terminated, or waiting on a sibling's retry: it only takes its new spec
                applied.updated.append(child.path)
        restarted = to_start & changed
        # The new specs, settings and order. Children of the old spec that are
        # gone (a temporary child that exited, a deleted one) stay gone; dynamic
        # children the new spec does not declare keep running, after the others.
        self.spec = plan.new
        if plan.added or plan.reordered:
            order: dict[str, Child] = {}
            for spec in plan.new.children:
                child_or_none = children.get(spec.id)
                if child_or_none is None:
                    if spec.id not in plan.added:
                        continue
                    child_or_none = Child(spec, (*self.path, spec.id))
                    to_start.add(spec.id)
                child_or_none.spec = spec
                child_or_none.dynamic = False
                order[spec.id] = child_or_none
            for id, child in children.items():
                order.setdefault(id, child)
            self._reorder(order)
            children = order
            rank = self._rank.__getitem__
        else:  # the same order: only the specs change (removed children are gone already)
            for spec in plan.new.children:
                existing = children.get(spec.id)
                if existing is not None:
                    existing.spec = spec
        if plan.settings:
            applied.updated.append(self.path)
        nested = [id for id in plan.nested if id in children]
        for id in sorted(to_start.union(nested), key=rank):
            child = children[id]
            if id in to_start:
                if id in restarted:
                    applied.restarted.append(child.path)
                elif id in plan.added:
                    applied.started.append(child.path)
                if id in overlapping and child.status is Status.RUNNING:
                    error = yield from self._overlap(id, reload=True)
                else:
                    error = yield from self._start(id, reload=True)
                if error is not None:
                    verdict = self._count_restart(id, error)
                    if verdict is Verdict.GIVE_UP:
                        yield from self._give_up_job(error)
                        return applied
                    if verdict is Verdict.RESTART:
                        self._schedule_retry(id, ())
            else:
                plan_of_child = plan.nested[id]
                if plan_of_child.respec or child.status is not Status.RUNNING:
                    applied.updated.append(child.path)  # not running: it starts with its new spec
                if child.status is Status.RUNNING and plan_of_child.inside:
                    done: UpdateDone = yield UpdateSupervisor(id, child.token, child.spec, plan_of_child)
                    if done.applied is not None:
                        applied.merge(done.applied)
        return applied


class _RestartOne:
    """The restart of a group of one (one_for_one): ``_restart_job``'s steps for a
    single child, as a plain object, because this is the path every crash of a
    one_for_one child takes and a generator per restart costs measurably more.
    """

    __slots__ = ("core", "id")

    def __init__(self, core: SupervisorCore, id: str) -> None:
        self.core = core
        self.id = id

    def send(self, done: StartDone | StartFailed | None, /) -> Start | Adopt | Stop | UpdateSupervisor | None:
        core = self.core
        if done is None:
            child = core.children[self.id]
            if child.retry is not None:
                core._cancel_retry(child)  # this restart is the retry it waited for
            return core._begin_start(self.id)
        error = core._end_start(self.id, done)
        if error is None:
            return None  # done (``_advance`` ends the job; cheaper than raising StopIteration)
        job = core._retry_or_give_up(self.id, (), error)
        core._job = job  # the rest, if any (giving up), is an ordinary job
        return job.send(None)

    def started(self, starts: int, pid: int | None) -> None:
        """The start succeeded: the job is over (``_end_start`` and ``_advance``'s
        ending, inline: every restart of a one_for_one child ends here)."""
        core = self.core
        child = core.children[self.id]
        child.status = _RUNNING
        child.since = now = core.now
        if core.observed:
            core._out.append(Emit(ChildStarted(path=child.path, time=now, starts=starts, pid=pid)))
        if core._job_command is None:
            core._job = None
        else:
            core._end_job(None)
