"""The asyncio runtime: executes the core's effects. No restart logic lives here.

One :class:`SupervisorRunner` per running supervisor owns a
:class:`~supervision._core.SupervisorCore` and the incarnations of its children.
``Start`` and ``Stop`` effects complete synchronously when they can (a worker
without ``ready=True`` is started once its task is scheduled), so the common
crash -> restart cycle costs no extra task; otherwise a short-lived task awaits
the operation and feeds its completion back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from .._core.diff import Plan
from .._core.durable import DurablePaths, Route
from .._core.dynamic_machine import make_core
from .._core.errors import StartError, SupervisorNotRunning
from .._core.events import ExitReason, LeaderAcquired, LeaderLost
from .._core.leader import LeaderElection, LeaderTerm, Lease, Role, guard
from .._core.machine import Child, SupervisorCore
from .._core.messages import (
    Adopt,
    AllStopped,
    CancelTimer,
    Command,
    Emit,
    Exit,
    Exited,
    Fail,
    Forget,
    Init,
    Input,
    Outcome,
    Ready,
    Reply,
    SetTimer,
    Start,
    StartDone,
    StartFailed,
    Stop,
    StopAll,
    StopDone,
    StopSupervisor,
    TimerFired,
    Update,
    UpdateDone,
    UpdateSupervisor,
)
from .._core.paths import Path, format_path
from .._core.spec import ChildSpec, Kind, Supervisor, stop_time
from .._core.status import ChildInfo, Health, Phase, Status
from .._core.store import SnapshotStore
from .clock import TimerHandle
from .incarnation import Completion, Incarnation, Runtime, WorkerIncarnation
from .process import ProcessIncarnation

logger = logging.getLogger("supervision")
_logger_enabled = logger.isEnabledFor
_WORKER = Kind.WORKER  # a global: cheaper to read than the enum's member
_ERROR = logging.ERROR


class SupervisorIncarnation(Incarnation):
    """A nested supervisor: a runner of its own."""

    kind = "supervisor"
    __slots__ = ("child",)

    def start(self) -> Completion | Awaitable[Completion]:
        spec = self.spec.start
        assert isinstance(spec, Supervisor)
        runtime = self.runner.runtime
        self.child = SupervisorRunner(runtime, spec, self.path, self._on_exit)
        self.child.feed(runtime.init(self.path, spec))
        if self.child.init_done:
            return self._init_result()
        return self._wait_started()

    def _init_result(self) -> Completion:
        error = self.child.init_error
        return self._done() if error is None else self._failed(error)

    async def _wait_started(self) -> Completion:
        await asyncio.shield(self.child.started)
        return self._init_result()

    def _on_exit(self, exit: Exit) -> None:
        if self.started and not self.stopping:
            self.runner.child_exited(self, Outcome(exit.reason, exit.error))

    def stop(self) -> StopDone | Awaitable[StopDone]:
        self.stopping = True
        if self.child.finished is None:
            self.child.feed(StopSupervisor())
        if self.child.finished is not None:
            return self._stopped(self._outcome())
        return self._wait_stopped()

    def update(self, token: int, plan: Plan) -> UpdateDone | Awaitable[UpdateDone]:
        """Forward a reload's plan to this supervisor's runner (its ``Update`` job)."""
        if self.child.finished is not None:
            return UpdateDone(self.id, token, None)
        reply = self.child.request(Update(plan.new, plan))
        if reply.done():  # every start and stop it needed completed at once
            return self._updated(token, reply)
        done: asyncio.Future[UpdateDone] = self.runner.runtime.loop.create_future()
        reply.add_done_callback(lambda reply: done.set_result(self._updated(token, reply)))
        return done

    def _updated(self, token: int, reply: asyncio.Future[Any]) -> UpdateDone:
        # No applied result if it stopped meanwhile (it gave up): its exit follows.
        if reply.cancelled() or reply.exception() is not None:
            return UpdateDone(self.id, token, None)
        return UpdateDone(self.id, token, reply.result())

    def _outcome(self) -> Outcome:
        finished = self.child.finished
        assert finished is not None
        return Outcome(finished.reason, finished.error)

    async def _wait_stopped(self) -> StopDone:
        await asyncio.shield(self.child.done)
        return self._stopped(self._outcome())

    def crash(self, error: BaseException) -> None:
        """Stop the supervisor's children, then report it crashed with ``error``."""
        if self.child.finished is None and self.started and not self.stopping:
            self.stopping = True

            async def crash() -> None:
                self.child.feed(StopSupervisor())
                await asyncio.shield(self.child.done)
                self.runner.child_exited(self, Outcome(ExitReason.CRASH, error))

            self.runner.runtime.spawn(crash(), name=f"crash {format_path(self.path)}")


async def _wait(operation: Awaitable[StopDone]) -> StopDone:
    return await operation


class SupervisorRunner:
    """Runs one supervisor: feeds its core and executes the effects."""

    def __init__(
        self,
        runtime: Runtime,
        spec: Supervisor,
        path: Path,
        on_exit: Callable[[Exit], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.path = path
        self.core: SupervisorCore = make_core(spec, path, runtime.rng)
        self.on_exit = on_exit
        self.incarnations: dict[str, Incarnation] = {}
        self.init_done = False
        self.init_error: StartError | None = None
        self.finished: Exit | None = None
        loop = runtime.loop
        self.started: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[Exit] = loop.create_future()
        self._timers: dict[int, TimerHandle] = {}
        self._replies: dict[Command, asyncio.Future[Any]] = {}
        self._feeding = False
        self._backlog: deque[Input] = deque()
        self._starting: dict[str, asyncio.Task[None]] = {}  # id -> the task completing its start
        self.retiring: dict[int, Incarnation] = {}
        """Token -> an incarnation that runs on while its replacement starts (an
        overlapping restart), until the core stops it."""
        self._overlaps: dict[int, int] = {}  # token of a starting replacement -> token of the one it replaces
        self.aborting = False

    @property
    def spec(self) -> Supervisor:
        return self.core.spec

    # -- input ------------------------------------------------------------------

    async def call(self, command: Command) -> Any:
        """Send a command to the core and wait for its reply."""
        if self.finished is not None:
            raise SupervisorNotRunning.at(self.path, "supervisor is not running")
        return await self.request(command)

    def request(self, command: Command) -> asyncio.Future[Any]:
        """Send a command to the core; the future of its reply (done already
        if the core could answer at once)."""
        future: asyncio.Future[Any] = self.runtime.loop.create_future()
        if self.finished is not None:
            future.set_exception(SupervisorNotRunning.at(self.path, "supervisor is not running"))
            return future
        self._replies[command] = future
        self.feed(command)
        return future

    def child_exited(self, incarnation: Incarnation, outcome: Outcome) -> None:
        self.feed(Exited(incarnation.id, incarnation.token, outcome))

    def feed(self, message: Input) -> None:
        if self._feeding:  # re-entered from an effect: handle after the current input
            self._backlog.append(message)
            return
        self._feeding = True
        try:
            self._process(message)
            backlog = self._backlog
            while backlog:
                self._process(backlog.popleft())
        finally:
            self._feeding = False

    def _process(self, message: Input | int | None) -> None:
        runtime = self.runtime
        core = self.core
        # hub.observed, inline (no property call): a stream listens, or the logger would log
        core.observed = bool(runtime.observers or runtime.hub._streams) or _logger_enabled(_ERROR)
        handle_input = core.handle
        # One reading of the clock per input: the completions an effect answers at
        # once (a worker's start) happen at the same instant as the input.
        now = runtime.clock.now()
        while message is not None:
            if isinstance(message, int):  # a worker's start completed at once: its start count
                effects = core.handle_started(message, now)
            else:
                if self._overlaps and isinstance(message, (StartDone, StartFailed)):
                    self._overlap_settled(message)
                effects = handle_input(message, now)
            message = None
            for effect in effects:
                kind = type(effect)
                if kind is Emit:
                    runtime.emit(effect.event)  # type: ignore[union-attr]
                elif kind is Start:
                    message = self._start(effect)  # type: ignore[arg-type]
                elif kind is Adopt:
                    message = self._adopt(effect)  # type: ignore[arg-type]
                elif kind is Stop:
                    message = self._stop(effect)  # type: ignore[arg-type]
                elif kind is StopAll:
                    message = self._stop_all(effect)  # type: ignore[arg-type]
                elif kind is UpdateSupervisor:
                    message = self._update(effect)  # type: ignore[arg-type]
                elif kind is Fail:
                    self._fail(effect)  # type: ignore[arg-type]
                elif kind is SetTimer:
                    self._set_timer(effect)  # type: ignore[arg-type]
                elif kind is CancelTimer:
                    handle = self._timers.pop(effect.token, None)  # type: ignore[union-attr]
                    if handle is not None:
                        handle.cancel()
                elif kind is Reply:
                    self._reply(effect)  # type: ignore[arg-type]
                elif kind is Forget:
                    self._forget(effect)  # type: ignore[arg-type]
                elif kind is Ready:
                    self._init_finished(None)
                elif kind is Exit:
                    self._exit(effect)  # type: ignore[arg-type]
                else:
                    raise AssertionError(f"unknown effect {effect!r}")

    # -- effects ----------------------------------------------------------------

    def _start(self, effect: Start) -> Completion | int | None:
        """Start the incarnation ``effect`` asks for: its completion if it is
        known at once (an int: a worker that started, its start count), else
        None (a task feeds it back)."""
        spec = effect.spec
        path = effect.path or (*self.path, effect.id)
        store = self.runtime.store
        counts = store.starts  # store.count_start(path), inline: every start takes this path
        counts[path] = starts = counts.get(path, 0) + 1
        incarnation: Incarnation
        if spec.kind is _WORKER:  # the common kind, without a call to dispatch it
            incarnation = WorkerIncarnation(self, effect.id, effect.token, spec, path, starts)
        else:
            incarnation = self._incarnation(effect.id, effect.token, spec, path, starts)
        if effect.overlaps:
            old = self.incarnations[effect.id]
            assert old.token == effect.overlaps, (old.token, effect)
            self.retiring[old.token] = old
            self._overlaps[effect.token] = old.token
        self.incarnations[effect.id] = incarnation
        versions = store.versions  # only versions other than 0: mostly empty
        if (versions or spec.state_version) and versions.get(path, 0) != spec.state_version:
            # a reload changed it: convert the snapshot
            try:
                store.prepare_start(path, spec.state_version, spec.migrate)
            except Exception as exc:  # a migrate that raises: the start fails, the snapshot is kept
                return incarnation._failed(exc)
        if type(incarnation) is WorkerIncarnation and not effect.overlaps:
            launched = incarnation.launch()
            if launched is None:  # the common case: started at once, told without a StartDone
                return starts
            started = launched
        else:
            started = incarnation.start()
        if type(started) is StartDone:
            return started
        return self._complete(started, incarnation, stopping=False)

    def _incarnation(self, id: str, token: int, spec: ChildSpec, path: Path, starts: int) -> Incarnation:
        """A new incarnation for the child's kind: the closed set, dispatched here."""
        kind = spec.kind
        if kind is Kind.WORKER:
            return WorkerIncarnation(self, id, token, spec, path, starts)
        if kind is Kind.PROCESS:
            return ProcessIncarnation(self, id, token, spec, path, starts)
        if isinstance(spec.start, Supervisor) and spec.start.leader is not None:
            return GatedIncarnation(self, id, token, spec, path, starts)
        return SupervisorIncarnation(self, id, token, spec, path, starts)

    def _adopt(self, effect: Adopt) -> Completion | None:
        """Re-exec: take over the child at ``effect.path``: the OS process the old
        image handed over, or a nested supervisor (rebuilt from its own initial
        state). Not a start: its start count stays as the old image left it."""
        path = effect.path
        runtime = self.runtime
        starts = runtime.store.starts.get(path, 0)
        adoption = runtime.resume.adoptions.pop(path, None) if runtime.resume is not None else None
        incarnation: Incarnation
        if adoption is not None:
            incarnation = ProcessIncarnation(
                self, effect.id, effect.token, effect.spec, path, starts, adoption=adoption
            )
        else:
            incarnation = self._incarnation(effect.id, effect.token, effect.spec, path, starts)
        self.incarnations[effect.id] = incarnation
        return self._complete(incarnation.start(), incarnation, stopping=False)

    def _update(self, effect: UpdateSupervisor) -> Completion | None:
        incarnation = self.incarnations[effect.id]
        assert isinstance(incarnation, SupervisorIncarnation) and incarnation.token == effect.token, effect
        incarnation.spec = effect.spec
        return self._complete(incarnation.update(effect.token, effect.plan), incarnation, stopping=False)

    def _stop(self, effect: Stop) -> Completion | None:
        incarnation = self.retiring.pop(effect.token, None) or self.incarnations[effect.id]
        assert incarnation.token == effect.token, (incarnation.token, effect)
        return self._complete(incarnation.stop(), incarnation, stopping=True)

    def _stop_all(self, effect: StopAll) -> Completion | None:
        """Stop the children of ``effect`` all at once (a dynamic supervisor's
        stop): one ``AllStopped`` once the last has finished. Callbacks, not a
        task per child, where the incarnation offers a future (workers)."""
        outcomes: dict[str, Outcome] = {}
        pending: list[tuple[str, Awaitable[StopDone]]] = []
        for stop in effect.stops:
            incarnation = self.incarnations[stop.id]
            assert incarnation.token == stop.token, (incarnation.token, stop)
            result = incarnation.stop()
            if isinstance(result, StopDone):
                outcomes[stop.id] = result.outcome
            else:
                pending.append((stop.id, result))

        def all_stopped() -> AllStopped:
            return AllStopped(effect.id, effect.token, Outcome(ExitReason.SHUTDOWN), outcomes)

        if not pending:
            return all_stopped()
        left = len(pending)

        def one_stopped(id: str, future: asyncio.Future[StopDone]) -> None:
            nonlocal left
            error = None if future.cancelled() else future.exception()
            if future.cancelled() or error is not None:  # a bug in a child kind: never hang the core
                logger.error("%s: internal error while stopping: %r", format_path((*self.path, id)), error)
                outcomes[id] = Outcome(ExitReason.CRASH, error)
            else:
                outcomes[id] = future.result().outcome
            left -= 1
            if left == 0:
                self.feed(all_stopped())

        for id, result in pending:
            future = result if isinstance(result, asyncio.Future) else self.runtime.spawn(_wait(result), f"stop {id}")
            future.add_done_callback(functools.partial(one_stopped, id))
        return None

    def _complete(
        self, result: Completion | Awaitable[Completion], incarnation: Incarnation, *, stopping: bool
    ) -> Completion | None:
        if isinstance(result, (StartDone, StartFailed, StopDone, UpdateDone)):
            return result
        if isinstance(result, asyncio.Future):  # resolved by the incarnation's own callbacks
            result.add_done_callback(lambda future: self.feed(future.result()))
            return None
        name = f"supervision {'stop' if stopping else 'start'} {format_path(incarnation.path)}"
        task = self.runtime.spawn(self._finish(result, incarnation, stopping), name=name)
        if not stopping and not self.init_done:
            self._starting[incarnation.id] = task
        return None

    async def _finish(self, operation: Awaitable[Completion], incarnation: Incarnation, stopping: bool) -> None:
        completion: Completion
        try:
            completion = await operation
        except asyncio.CancelledError:
            if stopping or not self.aborting:
                raise
            # abort_start(): the start is abandoned; what it got running is stopped
            # before the core hears that it failed (then stops the others).
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
            stopped = incarnation.stop()
            if not isinstance(stopped, StopDone):
                await stopped
            completion = incarnation._failed(asyncio.CancelledError("the start was cancelled"))
        except Exception as exc:  # a bug in a child kind: report it, never hang the core
            logger.exception("%s: internal error", format_path(incarnation.path))
            crashed = Outcome(ExitReason.CRASH, exc)
            completion = incarnation._stopped(crashed) if stopping else incarnation._failed(exc)
        finally:
            if self._starting.get(incarnation.id) is asyncio.current_task():
                del self._starting[incarnation.id]
        self.feed(completion)

    def abort_start(self) -> None:
        """Give up this supervisor's start (its caller was cancelled): the child
        being started fails, after being stopped if it was running already (a
        nested supervisor gives up its own start first), so the start job stops
        the children started before it, right to left, and the supervisor fails
        to start. Does nothing once the start is over."""
        if self.init_done or self.finished is not None:
            return
        self.aborting = True
        for id, task in list(self._starting.items()):
            incarnation = self.incarnations.get(id)
            if isinstance(incarnation, SupervisorIncarnation):
                incarnation.child.abort_start()  # its start fails: the completion follows
            else:
                task.cancel()

    def _set_timer(self, effect: SetTimer) -> None:
        token = effect.token

        def fire() -> None:
            if self._timers.pop(token, None) is not None:
                self.feed(TimerFired(token))

        self._timers[token] = self.runtime.clock.call_at(effect.at, fire)

    def _reply(self, effect: Reply) -> None:
        future = self._replies.pop(effect.command, None)
        if future is None or future.done():
            return
        if effect.error is not None:
            future.set_exception(effect.error)
        else:
            future.set_result(effect.value)

    def _overlap_settled(self, done: StartDone | StartFailed) -> None:
        """An overlapping start ended; if it failed, the incarnation it was to
        replace is the child's again (the core keeps it running, or stops it)."""
        old_token = self._overlaps.pop(done.token, None)
        if old_token is not None and isinstance(done, StartFailed):
            self.incarnations[done.id] = self.retiring.pop(old_token)

    def _fail(self, effect: Fail) -> None:
        found = self.child(effect.id)
        incarnation = found[1] if found is not None else None
        if incarnation is not None and incarnation.token == effect.token:
            logger.warning("%s", effect.error)
            incarnation.fail(effect.error, effect.watchdog)

    def _forget(self, effect: Forget) -> None:
        self.runtime.store.forget((*self.path, effect.id), subtree=effect.subtree)
        self.runtime.sockets.release((*self.path, effect.id), subtree=effect.subtree)
        self.incarnations.pop(effect.id, None)

    def _init_finished(self, error: StartError | None) -> None:
        self.init_done = True
        self.init_error = error
        if not self.started.done():
            self.started.set_result(None)

    def _exit(self, effect: Exit) -> None:
        self.finished = effect
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if effect.start_failed:
            assert isinstance(effect.error, StartError)
            self._init_finished(effect.error)
        if not self.done.done():
            self.done.set_result(effect)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(SupervisorNotRunning.at(self.path, "supervisor stopped"))
        self._replies.clear()
        if self.on_exit is not None:
            self.on_exit(effect)

    # -- reads ------------------------------------------------------------------

    def children(self) -> Iterator[tuple[Child, Incarnation | None]]:
        """The core's record of each child, in start order, with its current
        incarnation (None if it has none: never started, or removed since)."""
        incarnations = self.incarnations
        for child in self.core.children.values():
            incarnation = incarnations.get(child.spec.id)
            if incarnation is not None and incarnation.token != child.token:
                incarnation = None
            yield child, incarnation

    def child(self, id: str) -> tuple[Child, Incarnation | None] | None:
        """One child's record and current incarnation, or None if there is no such child."""
        child = self.core.children.get(id)
        if child is None:
            return None
        incarnation = self.incarnations.get(id)
        return child, incarnation if incarnation is not None and incarnation.token == child.token else None

    def info(self, child: Child, incarnation: Incarnation | None) -> ChildInfo:
        """What ``which_children()`` says of one child."""
        running = child.status is Status.RUNNING
        pid = incarnation.pid if incarnation is not None and running else None
        health: Health | None = None
        if child.spec.health is not None and running:
            healthy = child.health.healthy if child.health is not None else None
            health = Health.UNKNOWN if healthy is None else Health.HEALTHY if healthy else Health.UNHEALTHY
        role = incarnation.role if isinstance(incarnation, GatedIncarnation) and running else None
        fence = incarnation.fence if isinstance(incarnation, GatedIncarnation) and running else None
        starts = self.runtime.store.starts.get(child.path, 0)
        return ChildInfo(
            child.spec.id, child.spec.kind, child.status, starts, pid, health=health, role=role, fence=fence
        )

    def child_runner(self, id: str) -> SupervisorRunner | None:
        incarnation = self.incarnations.get(id)
        if isinstance(incarnation, SupervisorIncarnation) and incarnation.child.finished is None:
            return incarnation.child
        return None


# -- leader-gated supervisors ----------------------------------------------------------
#
# A supervisor with ``leader=`` runs its children only while its root holds the
# lease (docs/distributed.md; the rules are ``_core.leader``'s). Its incarnation
# reports itself started at once, as a standby, and runs a session task:
# campaign; on winning, read the subtree's snapshots from the lease's shared store,
# route the subtree's saves there fenced by the term, and start a runner for the
# children; on losing, stop that runner at once and campaign again. Only this task
# touches the election. The lease is known only through ``_core.leader.Lease``.


class GatedIncarnation(SupervisorIncarnation):
    """A nested supervisor that runs its children only while its root leads."""

    kind = "supervisor"
    __slots__ = ("election", "role", "session", "shared", "term")

    def start(self) -> Any:
        spec = self.spec.start
        assert isinstance(spec, Supervisor)
        lease: Lease | None = getattr(spec, "leader", None)
        assert lease is not None
        runtime = self.runner.runtime
        self.role = Role.STANDBY
        self.term: LeaderTerm | None = None
        self.election: LeaderElection = lease.election(guard=guard(stop_time(spec.children)))
        self.shared: SnapshotStore | None = lease.snapshot_store()
        paths = runtime.store
        if isinstance(paths, DurablePaths):
            # No fence until a term begins: nothing is written for the subtree meanwhile.
            paths.routes[self.path] = Route(self.shared)
        # A runner that never starts: what handles see while this root is a standby.
        self.child = SupervisorRunner(runtime, spec, self.path)
        self.session = runtime.loop.create_task(self._session(lease), name=f"leader {format_path(self.path)}")
        self.session.add_done_callback(self._session_ended)
        return self._done()

    def _session_ended(self, session: asyncio.Task[None]) -> None:
        if session.cancelled() or self.stopping:
            return
        error = session.exception()
        if error is not None:  # a bug, or the lease's store refused to open: this supervisor crashed
            logger.error("%s: leader session failed: %r", format_path(self.path), error)
            self.runner.child_exited(self, Outcome(ExitReason.CRASH, error))

    @property
    def fence(self) -> int | None:
        return self.term.fence if self.term is not None and self.role is Role.LEADER else None

    async def _session(self, lease: Lease) -> None:
        try:
            await self._lead(lease)
        finally:
            # However the session ends (a bug, etcd refusing the store), no child
            # of this supervisor may run on without the lease.
            runner = self.child
            if runner.finished is None and runner.core.phase is not Phase.NEW:
                runner.feed(StopSupervisor())
                await asyncio.shield(runner.done)

    async def _flush_shared(self, shared: SnapshotStore, seconds: float) -> None:
        """Write the subtree's last saves to the shared store, waiting at most
        ``seconds`` (etcd may be out of reach: what is left is retried, and
        refused by the fence once another term began)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await shared.flush()

    async def _lead(self, lease: Lease) -> None:
        runtime = self.runner.runtime
        shared = self.shared
        assert shared is not None
        await shared.open()
        while True:
            term = await self.election.campaign()
            paths = runtime.store
            if isinstance(paths, DurablePaths):
                paths.routes[self.path].fence = term.token
                try:
                    await shared.flush()
                    paths.load(await shared.items(), under=self.path)
                except Exception as exc:  # etcd went away between winning and reading: try again
                    logger.warning("%s: could not read the shared snapshots: %r", format_path(self.path), exc)
                    await self.election.resign()
                    continue
            if not term.held():
                continue
            spec = self.spec.start
            assert isinstance(spec, Supervisor)
            runner = SupervisorRunner(runtime, spec, self.path)
            self.child, self.term, self.role = runner, term, Role.LEADER
            runtime.hub.publish(
                LeaderAcquired(path=self.path, time=runtime.clock.now(), name=lease.name, fence=term.fence)
            )
            runner.feed(Init())
            lost: asyncio.Future[Any] = asyncio.ensure_future(term.wait_lost())
            await asyncio.wait([lost, runner.done], return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            if runner.finished is not None and term.held():
                # The children stopped by themselves: exit as a supervisor does.
                self.role = Role.STANDBY
                exit = runner.finished
                if not self.stopping:
                    await self._release()
                    self.runner.child_exited(self, Outcome(exit.reason, exit.error))
                return
            # Lost: stop the children at once (their shutdown fits in the guard).
            if runner.finished is None:
                runner.feed(StopSupervisor())
                await asyncio.shield(runner.done)
            self.role = Role.STANDBY
            runtime.hub.publish(
                LeaderLost(
                    path=self.path,
                    time=runtime.clock.now(),
                    name=lease.name,
                    fence=term.fence,
                    reason=term.reason or "",
                )
            )
            self.child = SupervisorRunner(runtime, spec, self.path)
            await self._flush_shared(shared, lease.ttl)  # refused by etcd if the lease is really gone

    async def _release(self) -> None:
        """Resign, and close the election and the shared store (once)."""
        if self.shared is None:
            return
        shared, self.shared = self.shared, None
        lease = getattr(self.spec.start, "leader", None)
        try:
            await self._flush_shared(shared, getattr(lease, "ttl", 2))  # the last saves, while the fence holds
        finally:
            await self.election.close()
            await shared.close()
        paths = self.runner.runtime.store
        if isinstance(paths, DurablePaths):
            paths.routes.pop(self.path, None)

    def stop(self) -> StopDone | Any:
        self.stopping = True
        return self._stop()

    async def _stop(self) -> StopDone:
        runner = self.child
        term, was_leader = self.term, self.role is Role.LEADER
        if runner.finished is None and runner.core.phase is not Phase.NEW:
            runner.feed(StopSupervisor())
            await asyncio.shield(runner.done)
        self.session.cancel()
        await asyncio.wait([self.session])
        self.role = Role.STANDBY
        await self._release()
        if was_leader and term is not None:
            runtime = self.runner.runtime
            lease = getattr(self.spec.start, "leader", None)
            name = getattr(lease, "name", "")
            runtime.hub.publish(
                LeaderLost(path=self.path, time=runtime.clock.now(), name=name, fence=term.fence, reason="stopped")
            )
        finished = runner.finished
        if finished is None:
            return self._stopped(Outcome(ExitReason.SHUTDOWN))
        return self._stopped(Outcome(finished.reason, finished.error))
