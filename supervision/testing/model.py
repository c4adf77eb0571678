"""A reference model of a supervision tree: DESIGN.md section 3, executable.

This module states the restart semantics as plainly as possible, for people
first and for the stateful test second (``tests/core/test_model_stateful.py`` checks
the real core against it after every step). It shares no restart logic with the
core: it is written from the rules, and each rule is quoted where it is applied.
It is slow on purpose (lists, linear scans, no incremental state) and that is fine.

The model reads the same schedule steps as the simulator
(:mod:`supervision.testing`) and answers the same questions: which children
each running supervisor has and in which status, how many times each path was
started, who gave up, how the root ended, and the events, in order.

What "the same" leaves open, and the model pins down as the core does:

* Time only moves with ``Advance``. A retry due "now" (no backoff) runs at the
  end of the step that caused it, or, with ``immediate_retries=False``, at the
  next ``Advance``. Timers due at the same time fire in the order they were set.
* A nested supervisor that exits by itself is heard of by its parent once it
  has finished stopping its own children.
* ``starting`` and ``stopping`` are never seen between steps: every start and
  stop is answered at once.

A child's own restart limit and backoff (``intensity``, ``period`` and
``backoff`` on a child spec, beyond OTP and DESIGN.md section 3) are modelled as
docs/concepts.md states them ("a child's own restart limit"): the child counts its
restarts in its own window and the supervisor's is not touched; when the child
exceeds it, it gives up (``SupervisorGaveUp`` with its path), its window starts
over, and a permanent child is restarted all the same, counted against the
supervisor's intensity, while a transient or temporary one stays terminated. Its
own backoff replaces the supervisor's for its delays.

Backoff jitter is drawn from ``rng`` in the order the restarts are scheduled,
so the model agrees with a simulator seeded alike.

The rules of DESIGN.md section 3, and where each is applied:

=========================================================  ==========================
start left to right; a failed start stops the others       :meth:`Model.start_supervisor`
  in reverse and the supervisor fails to start
stop right to left                                         :meth:`Model.stop_supervisor`
permanent / transient / temporary                          :meth:`Model.child_exited`
one_for_one, one_for_all, rest_for_one, custom plan()      :meth:`Model.plan`
stop the group right to left, start it left to right       :meth:`Model.restart`
terminated stays terminated (group restarts)               :meth:`Model.in_group`
temporary bystanders removed, never restarted              :meth:`Model.restarts_in_group`
intensity window (per supervisor; exactly period old       :meth:`Model.count_restart`
  still counts; intensity=0 gives up at once)
a child's own restart limit (docs/concepts.md)             :meth:`Model.restart_verdict`
give up: stop all, exit shutdown, parent decides           :meth:`Model.give_up`
failed restart: restarting, retried, each try counted      :meth:`Model.restart`,
                                                           :meth:`Model.schedule_retry`
backoff delay and its reset                                :meth:`Model.schedule_retry`,
                                                           :meth:`Model.child_exited`
auto_shutdown (any / all significant)                      :meth:`Model.auto_shutdown`
terminate / restart / delete / start_child                 :meth:`Model.terminate_child` ...
dynamic children die with their supervisor's incarnation   :meth:`Model.stop_supervisor`
starts counted per path, forgotten with the spec           :meth:`Model.start_kid`,
                                                           :meth:`Model.forget`
=========================================================  ==========================
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .._core.dynamic import DynamicSupervisor
from .._core.errors import (
    AlreadyPresent,
    AlreadyStarted,
    ChildRestarting,
    ChildRunning,
    NotFound,
    SpecError,
    StartError,
    SupervisionError,
    SupervisorNotRunning,
    TooManyChildren,
    TooManyRestarts,
)
from .._core.events import (
    ChildExited,
    ChildStarted,
    ChildStartFailed,
    Event,
    ExitReason,
    RestartScheduled,
    SupervisorGaveUp,
    SupervisorStopped,
)
from .._core.paths import Path, format_path
from .._core.spec import AutoShutdown, ChildSpec, Restart, Strategy, Supervisor
from .._core.status import Status
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

RUNNING, RESTARTING, TERMINATED = Status.RUNNING, Status.RESTARTING, Status.TERMINATED

# What the API calls raise (and the model returns from ``apply``).
API_ERRORS = (
    NotFound,
    SupervisorNotRunning,
    AlreadyPresent,
    AlreadyStarted,
    ChildRunning,
    ChildRestarting,
    SpecError,
    StartError,
    TooManyChildren,
    SupervisionError,  # start_child(*args) or scale on a supervisor that takes neither
)

__all__ = ["GIVE_UP", "LEAVE", "RESTART", "Kid", "Model", "Retry", "Sup"]

RESTART, GIVE_UP, LEAVE = "restart", "give up", "leave"
"""What :meth:`Model.restart_verdict` says of a child that is to restart."""


@dataclass(eq=False)
class Kid:
    """A child as its supervisor knows it."""

    spec: ChildSpec
    dynamic: bool  # added by start_child: lives as long as this incarnation of its supervisor
    status: Status = TERMINATED
    sup: Sup | None = None  # the running incarnation, when the child is a supervisor
    since: float = 0.0  # when it last started running (for the backoff reset)
    streak: int = 0  # consecutive restarts and retries (the backoff's n)
    retry: Retry | None = None  # its pending retry, if it owns one
    restarts: list[float] = field(default_factory=list)  # its own window, with an intensity of its own

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(eq=False)
class Sup:
    """One incarnation of a supervisor: a fresh one each time it (re)starts."""

    path: Path
    spec: Supervisor
    parent: Sup | None
    kids: list[Kid]  # in start order
    restarts: list[float] = field(default_factory=list)  # when each counted restart was decided
    alive: bool = True
    next_id: int = 1  # a dynamic supervisor: the id its next start_child(*args) gets

    @property
    def dynamic(self) -> bool:
        """A dynamic supervisor whose children come and go with start_child (not an instance group)."""
        return isinstance(self.spec, DynamicSupervisor) and self.spec.instances is None

    @property
    def group(self) -> bool:
        """An instance group: children 0 .. N-1, changed by scale."""
        return isinstance(self.spec, DynamicSupervisor) and self.spec.instances is not None

    def find(self, id: str) -> Kid | None:
        for kid in self.kids:
            if kid.id == id:
                return kid
        return None

    def ids(self) -> list[str]:
        return [kid.id for kid in self.kids]


@dataclass(eq=False)
class Retry:
    """A pending restart retry (or backoff delay) of one child; ``waiting`` are the
    members of its group restart that had not started yet: they start after it."""

    at: float
    seq: int  # timers due at the same time fire in the order they were set
    sup: Sup
    id: str
    waiting: list[str]


class Model:
    """The reference model of a whole tree. Drive it with :meth:`start` and :meth:`apply`.

    >>> import supervision as sv
    >>> async def work(ctx): ...
    >>> model = Model(sv.Supervisor([sv.child("a", work)], intensity=0))
    >>> model.start()
    >>> model.apply(Crash("a"))
    >>> model.gave_up
    [()]
    """

    def __init__(
        self,
        spec: Supervisor,
        *,
        rng: random.Random | None = None,
        now: float = 0.0,
        immediate_retries: bool = True,
    ) -> None:
        self.spec = spec
        self.rng = rng if rng is not None else random.Random(0)
        self.immediate_retries = immediate_retries
        self.now = now
        self.root: Sup | None = None
        self.root_exit: RootExit | None = None
        self.starts: dict[Path, int] = {}  # start attempts by path, failed ones included
        self.events: list[Event] = []
        self.gave_up: list[Path] = []
        self.failures: dict[Path, int] = {}  # start attempts still to fail (FailNextStart)
        self.retries: list[Retry] = []  # pending retries, of every supervisor
        self._seq = 0

    # == the schedule ===============================================================

    def start(self) -> StartError | None:
        """Start the tree; the ``StartError`` if it failed to start."""
        if self.root is not None or self.root_exit is not None:
            raise RuntimeError("the tree was already started")
        self.root, error = self.start_supervisor((), self.spec, parent=None)
        if error is not None:
            # "If one fails to start while the supervisor starts, the ones already
            # started are stopped in reverse order and the supervisor fails to start."
            self.root_exit = RootExit("shutdown", True, "StartError")
        return error

    def apply(self, step: Step) -> BaseException | None:
        """Apply one schedule step; the error a command raised, else None."""
        result = self.apply_step(step)
        if self.immediate_retries:
            self.advance(0.0)  # what is due now runs before the next step
        return result

    def apply_step(self, step: Step) -> BaseException | None:
        if isinstance(step, StartTree):
            return self.start()
        if self.root is None and self.root_exit is None and not isinstance(step, (FailNextStart, Advance)):
            raise RuntimeError("start() the tree before applying this step")
        if isinstance(step, FailNextStart):
            self.failures[step.path] = self.failures.get(step.path, 0) + step.times
        elif isinstance(step, Advance):
            self.advance(step.seconds)
        elif isinstance(step, Crash):
            error = step.error if step.error is not None else SimulatedCrash(f"{format_path(step.path)} crashed")
            self.exits_by_itself(step.path, ExitReason.CRASH, error)
        elif isinstance(step, Exit):
            self.exits_by_itself(step.path, step.reason, step.error)
        elif isinstance(step, StopTree):
            if self.root is not None and self.root.alive:
                self.stop_supervisor(self.root, orderly=True)
                self.supervisor_exited(self.root, ExitReason.SHUTDOWN, None)
        else:
            try:
                if isinstance(step, TerminateChild):
                    self.terminate_child(step.path)
                elif isinstance(step, RestartChild):
                    self.restart_child(step.path)
                elif isinstance(step, DeleteChild):
                    self.delete_child(step.path)
                elif isinstance(step, StartChild):
                    self.start_child(step.parent, step.spec)
                elif isinstance(step, StartDynamic):
                    self.start_dynamic(step.parent, step.args)
                elif isinstance(step, Scale):
                    self.scale(step.path, step.count)
                else:
                    raise TypeError(f"not a schedule step: {step!r}")
            except API_ERRORS as error:
                return error
        return None

    # == starting and stopping ========================================================

    def start_supervisor(
        self, path: Path, spec: Supervisor, parent: Sup | None
    ) -> tuple[Sup | None, StartError | None]:
        """A new incarnation of a supervisor, with the children of its spec only.

        "Children start one by one, left to right; each is started before the next
        begins. If one fails to start while the supervisor starts, the ones already
        started are stopped in reverse order and the supervisor fails to start."
        """
        sup = Sup(path, spec, parent, [Kid(child, dynamic=False) for child in spec.children])
        started: list[Kid] = []
        for kid in sup.kids:
            error = self.start_kid(sup, kid)
            if error is not None:
                for done in reversed(started):
                    self.stop_kid(sup, done)
                    if done.spec.restart is Restart.TEMPORARY:
                        self.forget((*path, done.id))  # "a temporary child's exit" drops its state
                sup.alive = False
                return None, error
            started.append(kid)
        return sup, None

    def start_kid(self, sup: Sup, kid: Kid) -> StartError | None:
        """One start attempt; the ``StartError`` if it failed (the child is then terminated).

        "``starts`` counts every start attempt of that path, failed ones included."
        """
        path = (*sup.path, kid.id)
        self.starts[path] = self.starts.get(path, 0) + 1
        if self.failures.get(path, 0) > 0:
            self.failures[path] -= 1
            error = StartError(path)
            error.__cause__ = SimulatedStartFailure(f"{format_path(path)} failed to start")
            return self.start_failed(kid, path, error)
        if isinstance(kid.spec.start, Supervisor):
            nested, nested_error = self.start_supervisor(path, kid.spec.start, parent=sup)
            if nested_error is not None:
                return self.start_failed(kid, path, nested_error)  # the deepest path names the culprit
            kid.sup = nested
        kid.status = RUNNING
        kid.since = self.now
        self.emit(ChildStarted(path=path, time=self.now, starts=self.starts[path]))
        return None

    def start_failed(self, kid: Kid, path: Path, error: StartError) -> StartError:
        kid.status = TERMINATED
        self.emit(ChildStartFailed(path=path, time=self.now, error=error))
        return error

    def stop_kid(self, sup: Sup, kid: Kid) -> None:
        """The supervisor stops a running child (a nested supervisor stops its own
        children first, in order). It exits with reason ``shutdown``."""
        assert kid.status is RUNNING
        if kid.sup is not None:
            self.stop_supervisor(kid.sup, orderly=True)
            kid.sup = None
        kid.status = TERMINATED
        self.emit(ChildExited(path=(*sup.path, kid.id), time=self.now, reason=ExitReason.SHUTDOWN))

    def stop_supervisor(self, sup: Sup, *, orderly: bool) -> None:
        """Stop a supervisor: "children stop right to left"; pending retries are
        cancelled. Then what lives only as long as this incarnation goes: "dynamic
        children live as long as their supervisor's incarnation", and temporary
        children are removed when they exit; their paths are forgotten."""
        for kid in reversed(sup.kids):
            if kid.status is RUNNING:
                self.stop_kid(sup, kid)
            else:
                self.cancel_retry(kid)
                kid.status = TERMINATED
        for kid in sup.kids:
            if kid.dynamic or kid.spec.restart is Restart.TEMPORARY:
                self.forget((*sup.path, kid.id))
        sup.alive = False
        if orderly:  # a give-up is not an orderly stop
            self.emit(SupervisorStopped(path=sup.path, time=self.now))

    def supervisor_exited(self, sup: Sup, reason: ExitReason, error: BaseException | None) -> None:
        """A supervisor that finished by itself: its parent reacts as to any child's
        exit; the root's exit ends the tree."""
        if sup.parent is None:
            self.root_exit = RootExit(reason.value, False, type(error).__name__ if error is not None else None)
            return
        kid = sup.parent.find(sup.path[-1])
        assert kid is not None and kid.sup is sup
        kid.sup = None
        self.child_exited(sup.parent, kid, reason, error)

    # == exits and restarts ===========================================================

    def exits_by_itself(self, path: Path, reason: ExitReason, error: BaseException | None) -> None:
        """A running child exits (a Crash or Exit step); any other is left alone."""
        try:
            sup = self.resolve(path[:-1])
        except (NotFound, SupervisorNotRunning):
            return
        kid = sup.find(path[-1])
        if kid is None or kid.status is not RUNNING:
            return
        if kid.sup is not None:  # a crashing supervisor stops its children first
            self.stop_supervisor(kid.sup, orderly=True)
            kid.sup = None
        self.child_exited(sup, kid, reason, error)

    def child_exited(self, sup: Sup, kid: Kid, reason: ExitReason, error: BaseException | None) -> None:
        """A child exited by itself: restart it, or not, by its ``restart`` type."""
        path = (*sup.path, kid.id)
        kid.status = TERMINATED
        self.emit(ChildExited(path=path, time=self.now, reason=reason, error=error))
        # "PERMANENT (always restarted), TRANSIENT (restarted only after an abnormal
        # exit), TEMPORARY (never restarted; removed from the supervisor when it exits)."
        if kid.spec.restart is Restart.TEMPORARY:
            self.remove(sup, kid)
        restart = kid.spec.restart is Restart.PERMANENT or (
            kid.spec.restart is Restart.TRANSIENT and reason is ExitReason.CRASH
        )
        if not restart and self.removes_ended(sup) and kid in sup.kids:
            self.remove(sup, kid)
        if not restart:
            # "auto_shutdown: when a significant child exits (any, or the last of them)
            # by itself, the supervisor stops its other children and exits normally."
            if kid.spec.significant:
                self.auto_shutdown(sup)
            return
        # "Intensity: before each restart, drop restarts older than period seconds; if
        # more than intensity restarts remain in the window (counting this one), the
        # supervisor gives up." Counted here, when the restart is decided.
        verdict = self.restart_verdict(sup, kid, error)
        if verdict == GIVE_UP:
            self.give_up(sup, error)
            return
        if verdict == LEAVE:
            return
        backoff = kid.spec.backoff or sup.spec.backoff
        if backoff is None:
            # "Without a backoff, restarts are immediate, as in OTP."
            self.restart(sup, kid.id, waiting=[])
            return
        # "A child that stays running reset_after seconds (None: maximum) starts again at n = 1."
        reset_after = backoff.maximum if backoff.reset_after is None else backoff.reset_after
        if self.now - kid.since >= reset_after:
            kid.streak = 0
        # "With backoff, the retries and restarts wait the backoff delay."
        self.schedule_retry(sup, kid, waiting=[])

    def restart_verdict(self, sup: Sup, kid: Kid, cause: BaseException | None) -> str:
        """Whether ``kid`` restarts (RESTART), its supervisor gives up (GIVE_UP), or
        it stays terminated (LEAVE).

        A child with an ``intensity`` of its own counts the restart in its own
        window, "as a nested supervisor with that one child would": within it, the
        supervisor's window is not touched. Beyond it the child gives up
        (``SupervisorGaveUp`` with its path) and its window starts over; a
        permanent child is then restarted all the same, counted against the
        supervisor's intensity; a transient or temporary one stays terminated.
        """
        own = kid.spec.intensity
        if own is not None:
            kid.restarts.append(self.now)
            in_window = [t for t in kid.restarts if self.now - t <= kid.spec.period]
            if len(in_window) <= own:
                return RESTART
            kid.restarts.clear()
            path = (*sup.path, kid.id)
            error = TooManyRestarts(path, own, kid.spec.period)
            error.__cause__ = cause
            self.gave_up.append(path)
            self.emit(SupervisorGaveUp(path=path, time=self.now, error=error))
            if kid.spec.restart is not Restart.PERMANENT:
                return LEAVE
        return RESTART if self.count_restart(sup, kid) else GIVE_UP

    def count_restart(self, sup: Sup, kid: Kid) -> bool:
        """Record a restart of ``kid`` now; False if that is one too many.

        The count belongs to the supervisor, whichever child is restarted (``kid``
        is not used: restart limits are per supervisor, never per child). Restarts
        older than ``period`` are dropped; a restart exactly ``period`` old still
        counts (OTP's ``>=``). "With intensity=0 the first restart already exceeds
        the limit."
        """
        sup.restarts.append(self.now)
        in_window = [t for t in sup.restarts if self.now - t <= sup.spec.period]
        return len(in_window) <= sup.spec.intensity

    def give_up(self, sup: Sup, cause: BaseException | None) -> None:
        """Too many restarts: "the supervisor gives up: it stops all its children
        right to left and exits (escalation) ... with reason shutdown (cause:
        TooManyRestarts)". It emits SupervisorGaveUp first; then its parent sees
        it exit ("A nested supervisor that gives up emits SupervisorGaveUp(path=its
        path) and then ChildExited(path=its path, reason="shutdown", ...)")."""
        error = TooManyRestarts(sup.path, sup.spec.intensity, sup.spec.period)
        error.__cause__ = cause
        self.gave_up.append(sup.path)
        self.emit(SupervisorGaveUp(path=sup.path, time=self.now, error=error))
        self.stop_supervisor(sup, orderly=False)
        self.supervisor_exited(sup, ExitReason.SHUTDOWN, error)

    def auto_shutdown(self, sup: Sup) -> None:
        """any_significant: stop now. all_significant: stop when no significant child
        is left running or waiting to restart (a restarting child is still there)."""
        mode = sup.spec.auto_shutdown
        if mode is AutoShutdown.NEVER:
            return
        still_there = any(k.spec.significant and k.status in (RUNNING, RESTARTING) for k in sup.kids)
        if mode is AutoShutdown.ALL_SIGNIFICANT and still_there:
            return
        self.stop_supervisor(sup, orderly=True)
        self.supervisor_exited(sup, ExitReason.NORMAL, None)

    def plan(self, sup: Sup, failed: str) -> set[str]:
        """The ids to restart with ``failed``: the three built-in strategies, as DESIGN
        states them, or the spec's own ``plan()`` if a subclass overrides it."""
        ids = sup.ids()
        if type(sup.spec).plan is not Supervisor.plan:
            return set(sup.spec.plan(tuple(ids), failed)) | {failed}
        strategy = sup.spec.strategy
        if strategy is Strategy.ONE_FOR_ONE:  # "restart the failed child"
            return {failed}
        if strategy is Strategy.ONE_FOR_ALL:  # "stop all other running children, then start all"
            return set(ids)
        # rest_for_one: "stop the children after the failed one right to left, then
        # start the failed one and those after it left to right"
        return set(ids[ids.index(failed) :])

    def restart(self, sup: Sup, failed: str, waiting: list[str]) -> None:
        """Restart ``failed`` and the children the strategy names with it.

        "The runtime stops the running ones right to left and starts them all left
        to right." ``waiting`` are the rest of an earlier group restart that stopped
        at ``failed``'s failed start: they are started now too.
        """
        wanted = self.plan(sup, failed) | set(waiting)
        # A member whose retry is pending: this restart is the retry it waited for,
        # so it also starts the children that waited on that retry (else they would
        # stay "restarting" for ever, and "the supervisor retries it until it starts").
        # Repeat until nothing is added: a child taken along may own a retry too.
        while True:
            taken_along = {id for k in sup.kids if k.id in wanted and k.retry is not None for id in k.retry.waiting}
            if taken_along <= wanted:
                break
            wanted |= taken_along
        group = [k for k in sup.kids if k.id in wanted and self.in_group(k, failed)]
        for kid in reversed(group):
            if kid.status is RUNNING:
                self.stop_kid(sup, kid)
        to_start = []
        for kid in group:
            self.cancel_retry(kid)
            if not self.restarts_in_group(kid, failed):
                self.remove(sup, kid)
                continue
            kid.status = RESTARTING
            to_start.append(kid)
        for index, kid in enumerate(to_start):
            error = self.start_kid(sup, kid)
            if error is not None:
                rest = [k.id for k in to_start[index + 1 :]]  # still restarting, waiting
                self.retry_or_give_up(sup, kid, rest, error)
                return

    def retry_or_give_up(self, sup: Sup, kid: Kid, waiting: list[str], error: StartError) -> None:
        """A restart of ``kid`` failed to start. "A restart that fails to start leaves
        the child restarting; the supervisor retries it (counting each try against the
        intensity window) until it starts or the supervisor gives up." A child that
        exceeds a limit of its own and stays terminated (LEAVE) holds nobody up: the
        children waiting on its retry start now, in order."""
        verdict = self.restart_verdict(sup, kid, error)
        if verdict == GIVE_UP:
            self.give_up(sup, error)
            return
        if verdict == RESTART:
            self.schedule_retry(sup, kid, waiting=waiting)
            return
        for index, id in enumerate(waiting):
            other = sup.find(id)
            if other is None or other.status is not RESTARTING:
                continue
            failed = self.start_kid(sup, other)
            if failed is not None:
                self.retry_or_give_up(sup, other, waiting[index + 1 :], failed)
                return

    def in_group(self, kid: Kid, failed: str) -> bool:
        """Whether a child the strategy names takes part in the restart of ``failed``.

        "Terminated stays terminated: one_for_all and rest_for_one start only the
        children that were running or restarting."
        """
        return kid.id == failed or kid.status in (RUNNING, RESTARTING)

    def restarts_in_group(self, kid: Kid, failed: str) -> bool:
        """Whether a member of the group is started again, or removed.

        "Temporary children caught in a group restart are stopped and removed, never
        restarted."
        """
        return kid.id == failed or kid.spec.restart is not Restart.TEMPORARY

    def schedule_retry(self, sup: Sup, kid: Kid, waiting: list[str]) -> None:
        """The child waits for a restart: now (no backoff) or after the backoff delay.

        "The n-th consecutive restart (or retry) of one child waits
        min(maximum, initial * factor**(n-1)), scaled by a uniform random factor in
        [1-jitter, 1+jitter] and capped at maximum."
        """
        kid.status = RESTARTING
        kid.streak += 1
        delay = 0.0
        backoff = kid.spec.backoff or sup.spec.backoff
        if backoff is not None:
            delay = min(backoff.maximum, backoff.initial * backoff.factor ** min(kid.streak - 1, 1000))
            if backoff.jitter:
                delay *= self.rng.uniform(1 - backoff.jitter, 1 + backoff.jitter)
            delay = min(backoff.maximum, delay)
        self.set_retry(sup, kid, self.now + delay, waiting)
        self.emit(RestartScheduled(path=(*sup.path, kid.id), time=self.now, delay=delay))

    def set_retry(self, sup: Sup, kid: Kid, at: float, waiting: list[str]) -> None:
        self._seq += 1
        kid.retry = Retry(at, self._seq, sup, kid.id, waiting)
        self.retries.append(kid.retry)

    def cancel_retry(self, kid: Kid, *, hand_off: bool = False) -> None:
        """Cancel the child's pending retry. With ``hand_off`` (terminate_child), the
        children that waited on it still restart: the first of them takes the retry over."""
        retry = kid.retry
        if retry is None:
            return
        kid.retry = None
        self.retries.remove(retry)
        if hand_off:
            still = [id for id in retry.waiting if (k := retry.sup.find(id)) is not None and k.status is RESTARTING]
            heir = retry.sup.find(still[0]) if still else None
            if heir is not None and heir.retry is None:
                self.set_retry(retry.sup, heir, retry.at, still[1:])

    def advance(self, seconds: float) -> None:
        """Time passes; each due retry fires at its own time, earliest first."""
        target = self.now + seconds
        while True:
            due = [r for r in self.retries if r.at <= target]
            if not due:
                break
            retry = min(due, key=lambda r: (r.at, r.seq))
            self.retries.remove(retry)
            self.now = max(self.now, retry.at)
            kid = retry.sup.find(retry.id)
            assert kid is not None and kid.retry is retry and retry.sup.alive
            kid.retry = None
            if kid.status is RESTARTING:
                self.restart(retry.sup, retry.id, retry.waiting)
        self.now = target

    # == the API =======================================================================

    def resolve(self, path: Path) -> Sup:
        """The running supervisor at ``path``, as a handle finds it."""
        sup = self.root
        if sup is None or not sup.alive:
            raise SupervisorNotRunning("the tree is not running", path=())
        for depth, id in enumerate(path):
            kid = sup.find(id)
            if kid is None:
                raise NotFound.at(path[: depth + 1], "no such supervisor")
            if kid.sup is None:
                raise SupervisorNotRunning.at(path[: depth + 1], "supervisor is not running")
            sup = kid.sup
        return sup

    def find(self, path: Path) -> tuple[Sup, Kid]:
        sup = self.resolve(path[:-1])
        kid = sup.find(path[-1])
        if kid is None:
            raise NotFound.at(path, "no such child")
        return sup, kid

    def terminate_child(self, path: Path) -> None:
        """The API call: "terminate_child is never counted as a restart; a terminated
        child stays terminated (even if permanent) until restart_child. Temporary
        children are deleted when terminated." On a restarting child it "cancels
        the retries"; on a terminated one it "succeeds and does nothing"."""
        sup, kid = self.find(path)
        if kid.status is RUNNING:
            self.stop_kid(sup, kid)
        else:
            self.cancel_retry(kid, hand_off=True)
            kid.status = TERMINATED
        if kid.spec.restart is Restart.TEMPORARY or (self.removes_ended(sup) and kid in sup.kids):
            self.remove(sup, kid)

    def restart_child(self, path: Path) -> None:
        """Start a terminated child again; "restart_child on [a restarting child]
        raises ChildRestarting". A failed start leaves it terminated (no retry)."""
        sup, kid = self.find(path)
        if kid.status is RESTARTING:
            raise ChildRestarting.at(path, "restarting")
        if kid.status is not TERMINATED:
            raise ChildRunning.at(path, "running")
        error = self.start_kid(sup, kid)
        if error is not None:
            raise error

    def delete_child(self, path: Path) -> None:
        """Remove a terminated child's spec; "a snapshot ... is dropped with delete_child"."""
        sup, kid = self.find(path)
        if kid.status is RESTARTING:
            raise ChildRestarting.at(path, "restarting")
        if kid.status is not TERMINATED:
            raise ChildRunning.at(path, "running")
        self.remove(sup, kid)

    def start_child(self, parent: Path, spec: ChildSpec) -> None:
        """A dynamic child, "appended last". If its start fails it is not added."""
        sup = self.resolve(parent)
        if sup.group or sup.dynamic:  # "starts a child from the template", only
            raise SupervisionError(f"{format_path(parent)}: its children come from its template")
        existing = sup.find(spec.id)
        if existing is not None:
            if existing.status is RUNNING:
                raise AlreadyStarted.at((*parent, spec.id), "already running")
            raise AlreadyPresent.at((*parent, spec.id), f"already {existing.status}")
        if spec.significant and sup.spec.auto_shutdown is AutoShutdown.NEVER:
            raise SpecError((spec.id,), "significant", "a significant child needs auto_shutdown")
        kid = Kid(spec, dynamic=True)
        sup.kids.append(kid)
        error = self.start_kid(sup, kid)
        if error is not None:
            self.remove(sup, kid)
            raise error

    def start_dynamic(self, parent: Path, args: tuple[object, ...]) -> str:
        """``start_child(*args)`` on a dynamic supervisor: "starts a child from the
        template with those arguments, and returns its id"; ids are never reused
        within an incarnation (1, 2, ..., skipping one a start_child(spec) took);
        "max_children is enforced with a clear error". A child that fails to start
        is not added."""
        sup = self.resolve(parent)
        spec = sup.spec
        if not sup.dynamic:
            raise SupervisionError(f"{format_path(parent)}: not a dynamic supervisor")
        assert isinstance(spec, DynamicSupervisor)
        if not self.has_room(sup, spec.max_children):
            raise TooManyChildren.reached(parent, spec.max_children or 0)
        while sup.find(str(sup.next_id)) is not None:
            sup.next_id += 1
        id = str(sup.next_id)
        sup.next_id += 1
        kid = Kid(spec.template.child(id, (tuple(args), ())), dynamic=True)
        sup.kids.append(kid)
        error = self.start_kid(sup, kid)
        if error is not None:
            self.remove(sup, kid)
            raise error
        return id

    def removes_ended(self, sup: Sup) -> bool:
        """Whether a child that ended without a restart, or that terminate_child
        stopped, is removed: in a dynamic supervisor, as in OTP's simple_one_for_one,
        it is ("a dynamic supervisor keeps no terminated children")."""
        return sup.dynamic

    def has_room(self, sup: Sup, max_children: int | None) -> bool:
        """ "max_children bounds the children it has at once": all of them count,
        running or restarting."""
        return max_children is None or len(sup.kids) < max_children

    def scale(self, path: Path, count: int) -> None:
        """``scale(count)`` on an instance group: "when scaling down, it stops the
        highest-numbered first"; "it starts the new ones in order". A new one
        that fails to start is not added, and the scale stops there."""
        sup = self.resolve(path)
        spec = sup.spec
        if not sup.group:
            raise SupervisionError(f"{format_path(path)}: not an instance group")
        assert isinstance(spec, DynamicSupervisor)

        def number(kid: Kid) -> int:
            return int(kid.id) if kid.id.isdigit() else -1

        for kid in sorted((k for k in sup.kids if number(k) < 0 or number(k) >= count), key=number, reverse=True):
            if kid.status is RUNNING:
                self.stop_kid(sup, kid)
            self.remove(sup, kid)
        for n in range(count):
            if sup.find(str(n)) is not None:
                continue
            kid = Kid(spec.template.child(str(n)), dynamic=True)
            sup.kids.append(kid)
            sup.kids.sort(key=number)
            error = self.start_kid(sup, kid)
            if error is not None:
                self.remove(sup, kid)
                raise error

    # == bookkeeping ===================================================================

    def remove(self, sup: Sup, kid: Kid) -> None:
        """The child's spec is gone, and with it what belongs to its path."""
        self.cancel_retry(kid)
        sup.kids.remove(kid)
        self.forget((*sup.path, kid.id))

    def forget(self, path: Path) -> None:
        """The path's state goes: "a snapshot lives as long as its child's spec", and
        so does the start count ("it belongs to the path, like the snapshot"): drop
        them for ``path`` and every path below it."""
        for key in [k for k in self.starts if k[: len(path)] == path]:
            del self.starts[key]

    def emit(self, event: Event) -> None:
        self.events.append(event)

    # == observations ==================================================================

    @property
    def running(self) -> bool:
        return self.root is not None and self.root.alive

    def view(self) -> TreeView:
        """The tree as comparable data (the simulator's ``view()`` has the same shape)."""
        supervisors: dict[Path, tuple[tuple[str, str, str], ...]] = {}
        stack = [self.root] if self.running else []
        while stack:
            sup = stack.pop()
            assert sup is not None
            supervisors[sup.path] = tuple((k.id, k.status.value, k.spec.kind) for k in sup.kids)
            stack.extend(k.sup for k in sup.kids if k.sup is not None)
        return TreeView(supervisors, dict(self.starts), tuple(self.gave_up), self.root_exit)
