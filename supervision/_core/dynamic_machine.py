"""The state machine of a dynamic supervisor: ``SupervisorCore`` plus templates. Pure.

What a :class:`~supervision._dynamic.DynamicSupervisor` adds to an ordinary
supervisor, all of it policy, so all of it here:

* ``StartDynamic``: a child made from the template with the caller's
  arguments, under a fresh id (``"1"``, ``"2"``, ... never reused within an
  incarnation), refused with ``TooManyChildren`` at ``max_children``.
* An instance group (``instances=N``) declares ``0`` ... ``N-1``; ``Scale``
  stops the highest-numbered first, then starts the missing ones in order.
* ``start_child(spec)`` is refused: every child comes from the template.
* A plain dynamic supervisor keeps no terminated children (OTP's
  ``simple_one_for_one``): a child that exits and is not restarted, or that
  ``terminate_child`` stops, is removed, with its snapshot.
* Stopping the supervisor stops its children concurrently (one ``StopAll``
  effect), as OTP does for ``simple_one_for_one``; their exits are reported
  right to left all the same, so a trace does not depend on timing.
* A reload gives each child a spec made from the new template with its own
  arguments; a child whose spec changed (by fingerprint) restarts, the others
  keep running. An instance group is reset to its new spec: instances beyond
  it stopped, missing ones started.
* Re-exec: the children the previous image ran are ``restored`` before the
  supervisor starts, and started with the others (processes adopted by pid).
"""

from __future__ import annotations

import random
from typing import Any

from .diff import Plan, same_child
from .dynamic import NO_ARGS, Args, DynamicSupervisor
from .errors import SupervisionError, SupervisorNotRunning, TooManyChildren
from .events import ExitReason
from .machine import Job, SupervisorCore, Verdict
from .messages import AllStopped, Applied, Init, Input, Scale, StartDynamic, Stop, StopAll
from .paths import Path, format_path
from .spec import Supervisor
from .status import Phase, Status

_ALL = ""  # the id a StopAll and its completion carry (no child has an empty id)


class DynamicCore(SupervisorCore):
    """The core of a :class:`DynamicSupervisor` (see the module docstring)."""

    spec: DynamicSupervisor

    def __init__(self, spec: DynamicSupervisor, path: Path = (), rng: random.Random | None = None) -> None:
        super().__init__(spec, path, rng)
        self.args: dict[str, Args] = {}
        """The arguments each child was started with (declared instances: none)."""
        self.next_id = 1

    # -- children made from the template ------------------------------------------

    @property
    def is_group(self) -> bool:
        return self.spec.instances is not None

    def _add(self, id: str, args: Args) -> None:
        self._append(self.spec.template.child(id, args))
        if args != NO_ARGS:
            self.args[id] = args
        if id.isdigit():
            self.next_id = max(self.next_id, int(id) + 1)

    def _remove(self, id: str) -> None:
        super()._remove(id)
        self.args.pop(id, None)

    def _renumber_group(self) -> None:
        """Keep an instance group's children in numeric order (the order they
        start and, reversed, stop in), wherever a scale or a reload added one."""
        if not self.is_group:
            return
        order = sorted(self.children, key=_number)
        if order != list(self.children):
            self._reorder({id: self.children[id] for id in order})

    def children_args(self) -> list[tuple[str, Args]]:
        """Re-exec: the children made from the template, in start order, with
        their arguments (declared instances are not listed)."""
        return [(id, self.args.get(id, NO_ARGS)) for id, child in self.children.items() if child.dynamic]

    def _init_job(self, init: Init) -> Job:
        # Re-exec: the children of the old image, made again from the template,
        # then started (or adopted) with the others.
        for id, args in init.restored:
            if id not in self.children:
                self._add(id, args)
        self._renumber_group()
        return (yield from super()._init_job(init))

    # -- dispatch -----------------------------------------------------------------

    def _dispatch(self, message: Input) -> None:
        if isinstance(message, StartDynamic):
            if self.phase is Phase.STOPPED:
                super()._dispatch(message)  # the "not running" reply
            else:
                self._start_dynamic(message)
        elif isinstance(message, Scale):
            if self.phase is Phase.STOPPED:
                super()._dispatch(message)
            else:
                self._scale(message)
        else:
            super()._dispatch(message)

    def _not_running(self) -> SupervisorNotRunning:
        return SupervisorNotRunning.at(self.path, "supervisor is not running")

    def _start_dynamic(self, command: StartDynamic) -> None:
        if self.phase is not Phase.RUNNING:
            self._reply(command, self._not_running())
            return
        if self.is_group:
            error = SupervisionError(f"{format_path(self.path)}: an instance group grows with scale, not start_child")
            self._reply(command, error)
            return
        limit = self.spec.max_children
        if limit is not None and len(self.children) >= limit:
            self._reply(command, TooManyChildren.reached(self.path, limit))
            return
        while str(self.next_id) in self.children:  # never a live child's id
            self.next_id += 1
        id = str(self.next_id)
        try:
            self._add(id, command.args)
        except Exception as exc:  # arguments a process template cannot take
            self._reply(command, exc)
            return
        self._run(self._start_dynamic_job(id), command)

    def _start_dynamic_job(self, id: str) -> Job:
        error = yield from self._start(id)
        if error is not None:
            self._remove(id)
            return error
        return id

    def _start_child(self, command: Any) -> None:
        # As OTP's simple_one_for_one: children come from the template only.
        what = "an instance group grows with scale" if self.is_group else "its children come from its template"
        self._reply(command, SupervisionError(f"{format_path(self.path)}: {what}, not start_child(spec)"))

    def _scale(self, command: Scale) -> None:
        if self.phase is not Phase.RUNNING:
            self._reply(command, self._not_running())
        elif not self.is_group:
            self._reply(command, SupervisionError(f"{format_path(self.path)}: not an instance group"))
        elif isinstance(command.count, bool) or not isinstance(command.count, int) or command.count < 0:
            self._reply(command, ValueError(f"scale: a count >= 0, got {command.count!r}"))
        else:
            self._run(self._scale_job(command.count), command)

    def _scale_job(self, count: int) -> Job:
        """Instances ``count`` and above stopped, the highest-numbered first;
        then the missing ones below ``count`` started in order."""
        doomed = sorted((id for id in self.children if not id.isdigit() or int(id) >= count), key=_number, reverse=True)
        for id in doomed:
            child = self.children[id]
            if child.status is Status.RUNNING:
                yield from self._stop(id)
            self._remove(id)
        for n in range(count):
            id = str(n)
            if id in self.children:
                continue
            self._add(id, NO_ARGS)
            self._renumber_group()
            error = yield from self._start(id)
            if error is not None:
                self._remove(id)
                return error
        return count

    # -- a plain dynamic supervisor keeps no terminated children ----------------------

    def _on_exited(self, message: Any) -> None:
        super()._on_exited(message)
        if self.is_group or self.phase is not Phase.RUNNING or self._job is not None:
            return
        child = self.children.get(message.id)
        if child is not None and child.token == message.token and child.status is Status.TERMINATED:
            self._remove(message.id)

    def _terminate_job(self, id: str) -> Job:
        yield from super()._terminate_job(id)
        if not self.is_group and id in self.children:
            self._remove(id)
        return None

    # -- stopping: all children at once --------------------------------------------

    def _shutdown_job(self, reason: ExitReason, error: BaseException | None, *, orderly: bool = True) -> Job:
        self.phase = Phase.STOPPING
        running: list[str] = []
        for id in reversed(list(self.children)):
            child = self.children[id]
            if child.status is Status.RUNNING:
                child.status = Status.STOPPING
                running.append(id)
            else:
                self._cancel_retry(child)
                child.status = Status.TERMINATED
        if running:
            stops = tuple(Stop(id, self.children[id].token, self.children[id].spec) for id in running)
            done: AllStopped = yield StopAll(_ALL, self.next_token(), stops[0].spec, stops)
            for id in running:  # right to left, as an ordinary supervisor reports them
                self.children[id].status = Status.TERMINATED
                self._emit_exit(id, done.outcomes[id])
        self._stopped(reason, error, orderly=orderly)
        return None

    # -- reload ---------------------------------------------------------------------

    def _update_job(self, plan: Plan) -> Job:
        applied: Applied = yield from super()._update_job(plan)
        if self.phase is not Phase.RUNNING:
            return applied  # it gave up meanwhile
        new = plan.new
        assert isinstance(new, DynamicSupervisor)
        if self.is_group:
            yield from self._reset_group(new, applied)
        elif plan.old.template != new.template:  # type: ignore[attr-defined]
            yield from self._respec(new, applied)
        return applied

    def _respec(self, new: DynamicSupervisor, applied: Applied) -> Job:
        """Each child takes the spec the new template makes with its arguments;
        those whose spec changed restart (stopped right to left, started left to right).
        A child whose arguments the new template cannot take (a worker's turned
        into an argv template) is stopped and removed."""
        changed: list[str] = []
        unfit: list[str] = []
        for id, child in self.children.items():
            try:
                spec = new.template.child(id, self.args.get(id, NO_ARGS))
            except TypeError:
                unfit.append(id)
                continue
            if not same_child(child.spec, spec):
                changed.append(id)
            child.spec = spec
        for id in reversed(unfit):
            child = self.children[id]
            if child.status is Status.RUNNING:
                yield from self._stop(id)
            self._remove(id)
            applied.stopped.append(child.path)
        to_start = []
        for id in reversed(changed):
            child = self.children[id]
            if child.status is Status.RUNNING:
                yield from self._stop(id)
                to_start.append(id)
            elif child.status is Status.RESTARTING:
                self._cancel_retry(child)
                to_start.append(id)
            else:
                applied.updated.append(child.path)
        for id in reversed(to_start):
            applied.restarted.append(self.children[id].path)
            error = yield from self._start(id, reload=True)
            if error is not None:
                verdict = self._count_restart(id, error)
                if verdict is Verdict.GIVE_UP:
                    yield from self._give_up_job(error)
                    return None
                if verdict is Verdict.RESTART:
                    self._schedule_retry(id, ())
        return None

    def _reset_group(self, new: DynamicSupervisor, applied: Applied) -> Job:
        """A changed instance group runs its new spec's instances: those beyond
        it stopped (highest first), those scaled away started again."""
        declared = {spec.id for spec in new.children}
        for id in sorted((id for id in self.children if id not in declared), key=_number, reverse=True):
            child = self.children[id]
            if child.status is Status.RUNNING:
                yield from self._stop(id)
            self._remove(id)
            applied.stopped.append(child.path)
        for spec in new.children:
            if spec.id in self.children:
                continue
            child = self._append(spec)
            child.dynamic = False
            self._renumber_group()
            applied.started.append(child.path)
            error = yield from self._start(spec.id, reload=True)
            if error is not None:
                verdict = self._count_restart(spec.id, error)
                if verdict is Verdict.GIVE_UP:
                    yield from self._give_up_job(error)
                    return None
                if verdict is Verdict.RESTART:
                    self._schedule_retry(spec.id, ())
        return None


def _number(id: str) -> int:
    return int(id) if id.isdigit() else -1


def make_core(spec: Supervisor, path: Path = (), rng: random.Random | None = None) -> SupervisorCore:
    """The core for a supervisor spec: a :class:`DynamicCore` for a dynamic one."""
    if isinstance(spec, DynamicSupervisor):
        return DynamicCore(spec, path, rng)
    return SupervisorCore(spec, path, rng)
