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
import contextvars
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar

from ._clock import Clock, TimerHandle
from ._context import Context, _current
from ._core import (
    CancelTimer,
    Command,
    Emit,
    Exit,
    Exited,
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
    StopDone,
    StopSupervisor,
    SupervisorCore,
    TimerFired,
    Update,
    UpdateDone,
    UpdateSupervisor,
)
from ._diff import Plan
from ._errors import Path, Shutdown, ShutdownTimeout, StartError, SupervisorNotRunning, format_path
from ._events import Event, ExitReason
from ._hub import EventHub
from ._snapshot import PathStore
from ._spec import BRUTAL_KILL, INFINITY, ChildSpec, ShutdownSpec, Supervisor

logger = logging.getLogger("supervision")

Completion = StartDone | StartFailed | StopDone | UpdateDone


class Runtime:
    """What the runners of one tree share."""

    def __init__(self, clock: Clock, rng: random.Random) -> None:
        self.loop = asyncio.get_running_loop()
        self.clock = clock
        self.rng = rng
        self.store = PathStore()
        self.hub = EventHub()
        self.context = contextvars.copy_context()
        self.operations: set[asyncio.Task[Any]] = set()
        self.abandoned: set[asyncio.Task[Any]] = set()
        """Worker tasks that ignored cancellation past their shutdown timeout."""
        self.observers: list[Callable[[Event], None]] = []
        """Called with each event of the tree as the core emits it, before any
        ``events()`` reader sees it: bookkeeping kept in step with the tree's state."""
        self.adoptions: dict[Path, Callable[..., Incarnation]] = {}
        """Re-exec: what makes the first incarnation of a path in the new image,
        instead of its kind (adopt a handed-over OS process, hold a terminated
        child); each is used once. See ``_reexec``."""

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = self.loop.create_task(coroutine, name=name)
        self.operations.add(task)
        task.add_done_callback(self.operations.discard)
        return task


def _timeout(shutdown: ShutdownSpec) -> float | None:
    if shutdown is INFINITY:
        return None
    if shutdown is BRUTAL_KILL:
        return 0.0
    return shutdown


class Incarnation:
    """One run of one child, from its start to its exit."""

    kind: ClassVar[str]
    __slots__ = ("id", "path", "runner", "spec", "started", "starts", "stopping", "token")

    def __init__(self, runner: SupervisorRunner, id: str, token: int, spec: ChildSpec, path: Path, starts: int) -> None:
        self.runner = runner
        self.id = id
        self.token = token
        self.spec = spec
        self.path = path
        self.starts = starts
        self.started = False
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return None

    def start(self) -> Completion | Awaitable[Completion]:
        raise NotImplementedError

    def stop(self) -> StopDone | Awaitable[StopDone]:
        raise NotImplementedError

    def crash(self, error: BaseException) -> None:
        """Make this incarnation exit as crashed with ``error`` (for tests)."""
        raise NotImplementedError

    def _done(self) -> StartDone:
        self.started = True
        return StartDone(self.id, self.token, self.starts, self.pid)

    def _failed(self, error: BaseException) -> StartFailed:
        return StartFailed(self.id, self.token, self.starts, error)

    def _stopped(self, outcome: Outcome) -> StopDone:
        return StopDone(self.id, self.token, outcome)


class WorkerIncarnation(Incarnation):
    """An ``async def`` worker running as an asyncio task."""

    kind = "worker"
    __slots__ = ("ctx", "injected", "ready_future", "task")

    def start(self) -> Completion | Awaitable[Completion]:
        runtime = self.runner.runtime
        spec = self.spec
        self.injected: BaseException | None = None
        self.ready_future: asyncio.Future[None] | None = None
        on_ready = None
        if spec.ready:
            self.ready_future = runtime.loop.create_future()
            on_ready = self._on_ready
        default = spec.initial_state
        self.ctx = ctx = Context(self.path, self.starts, runtime.store, default, on_ready)
        context = runtime.context.copy()
        context.run(_current.set, ctx)
        try:
            coroutine = spec.start(ctx)
            self.task: asyncio.Task[Any] = runtime.loop.create_task(
                coroutine, name="/".join(self.path), context=context
            )
        except Exception as exc:
            return self._failed(exc)
        self.task.add_done_callback(self._on_task_done)
        if self.ready_future is None:
            return self._done()
        return self._wait_ready()

    def _on_ready(self) -> None:
        if self.ready_future is not None and not self.ready_future.done():
            self.ready_future.set_result(None)

    async def _wait_ready(self) -> Completion:
        assert self.ready_future is not None
        timeout = self.spec.ready_timeout
        await asyncio.wait({self.ready_future, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self.ready_future.done():
            completion = self._done()
            if self.task.done():  # ready, then exited at once: report the exit after the start
                self.runner.runtime.loop.call_soon(self._report_exit)
            return completion
        if self.task.done():
            outcome = self.outcome()
            error = outcome.error or RuntimeError(f"exited ({outcome.reason}) before it was ready")
            return self._failed(error)
        self.stopping = True
        self.task.cancel()
        await asyncio.wait({self.task}, timeout=_timeout(self.spec.shutdown))
        if not self.task.done():
            self._abandon()
        return self._failed(TimeoutError(f"not ready within {timeout:g}s"))

    def outcome(self) -> Outcome:
        task = self.task
        if self.injected is not None:
            return Outcome(ExitReason.CRASH, self.injected)
        if task.cancelled():
            if self.stopping:
                return Outcome(ExitReason.SHUTDOWN)
            return Outcome(ExitReason.CRASH, asyncio.CancelledError("cancelled by someone else"))
        error = task.exception()
        if error is None:
            return Outcome(ExitReason.SHUTDOWN if self.stopping else ExitReason.NORMAL)
        if isinstance(error, Shutdown):
            return Outcome(ExitReason.SHUTDOWN, error)
        return Outcome(ExitReason.CRASH, error)

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self.ctx._alive = False
        if self.started and not self.stopping:
            self._report_exit()
        elif not task.cancelled():
            task.exception()  # retrieved here: the start or stop path reports it

    def _report_exit(self) -> None:
        self.runner.child_exited(self, self.outcome())

    def stop(self) -> StopDone | Awaitable[StopDone]:
        self.stopping = True
        task = self.task
        if task.done():
            return self._stopped(self.outcome())
        task.cancel()
        # Callbacks, not a task per stop: stopping 100 000 workers costs 100 000 callbacks.
        loop = self.runner.runtime.loop
        future: asyncio.Future[StopDone] = loop.create_future()
        timeout = _timeout(self.spec.shutdown)
        timer: asyncio.TimerHandle | None = None

        def finished(_: object) -> None:
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.set_result(self._stopped(self.outcome()))

        def expired() -> None:
            if task.done():  # it unwound in time; its done-callback is still queued
                finished(task)
            elif not future.done():
                task.remove_done_callback(finished)
                future.set_result(self._stopped(Outcome(ExitReason.SHUTDOWN, self._abandon())))

        task.add_done_callback(finished)
        if timeout is not None:
            timer = loop.call_later(timeout, expired)
        return future

    def _abandon(self) -> ShutdownTimeout:
        self.ctx._alive = False
        self.runner.runtime.abandoned.add(self.task)
        self.task.add_done_callback(self.runner.runtime.abandoned.discard)
        return ShutdownTimeout(self.path, _timeout(self.spec.shutdown) or 0.0)

    def crash(self, error: BaseException) -> None:
        if not self.task.done():
            self.injected = error
            self.task.cancel()


class SupervisorIncarnation(Incarnation):
    """A nested supervisor: a runner of its own."""

    kind = "supervisor"
    __slots__ = ("child",)

    def start(self) -> Completion | Awaitable[Completion]:
        spec = self.spec.start
        assert isinstance(spec, Supervisor)
        self.child = SupervisorRunner(self.runner.runtime, spec, self.path, self._on_exit)
        self.child.feed(Init())
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


KINDS: dict[str, type[Incarnation]] = {
    "worker": WorkerIncarnation,
    "supervisor": SupervisorIncarnation,
}


def register_kind(kind: str, cls: type[Incarnation]) -> None:
    """Plug in a child kind (the process module registers ``"process"``)."""
    KINDS[kind] = cls


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
        self.core = SupervisorCore(spec, path, runtime.rng)
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
        self.aborting = False

    @property
    def spec(self) -> Supervisor:
        return self.core.spec

    # -- input ------------------------------------------------------------------

    async def call(self, command: Command) -> Any:
        """Send a command to the core and wait for its reply."""
        if self.finished is not None:
            raise SupervisorNotRunning(f"{format_path(self.path)}: supervisor is not running")
        return await self.request(command)

    def request(self, command: Command) -> asyncio.Future[Any]:
        """Send a command to the core; the future of its reply (done already
        if the core could answer at once)."""
        future: asyncio.Future[Any] = self.runtime.loop.create_future()
        if self.finished is not None:
            future.set_exception(SupervisorNotRunning(f"{format_path(self.path)}: supervisor is not running"))
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
            next_message: Input | None = message
            while next_message is not None:
                self._process(next_message)
                next_message = self._backlog.popleft() if self._backlog else None
        finally:
            self._feeding = False

    def _process(self, message: Input | None) -> None:
        runtime = self.runtime
        core = self.core
        core.observed = runtime.hub.observed or bool(runtime.observers)
        while message is not None:
            effects = core.handle(message, runtime.clock.now())
            message = None
            for effect in effects:
                kind = type(effect)
                if kind is Emit:
                    event = effect.event  # type: ignore[union-attr]
                    for observer in runtime.observers:
                        observer(event)
                    runtime.hub.publish(event)
                elif kind is Start:
                    message = self._start(effect)  # type: ignore[arg-type]
                elif kind is Stop:
                    message = self._stop(effect)  # type: ignore[arg-type]
                elif kind is UpdateSupervisor:
                    message = self._update(effect)  # type: ignore[arg-type]
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

    def _start(self, effect: Start) -> Completion | None:
        spec = effect.spec
        path = effect.path or (*self.path, effect.id)
        store = self.runtime.store
        starts = store.count_start(path)
        make = self.runtime.adoptions.pop(path, None) if self.runtime.adoptions else None
        incarnation = (make or KINDS[spec.kind])(self, effect.id, effect.token, spec, path, starts)
        self.incarnations[effect.id] = incarnation
        if store.versions.get(path, 0) != spec.state_version:  # a reload changed it
            try:
                store.adopt(path, spec.state_version, spec.migrate)
            except Exception as exc:  # a migrate that raises: the start fails, the snapshot is kept
                return incarnation._failed(exc)
        return self._complete(incarnation.start(), incarnation, stopping=False)

    def _update(self, effect: UpdateSupervisor) -> Completion | None:
        incarnation = self.incarnations[effect.id]
        assert isinstance(incarnation, SupervisorIncarnation) and incarnation.token == effect.token, effect
        incarnation.spec = effect.spec
        return self._complete(incarnation.update(effect.token, effect.plan), incarnation, stopping=False)

    def _stop(self, effect: Stop) -> Completion | None:
        incarnation = self.incarnations[effect.id]
        assert incarnation.token == effect.token, (incarnation.token, effect)
        return self._complete(incarnation.stop(), incarnation, stopping=True)

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

    def _forget(self, effect: Forget) -> None:
        self.runtime.store.forget((*self.path, effect.id), subtree=effect.subtree)
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
                future.set_exception(SupervisorNotRunning(f"{format_path(self.path)}: supervisor stopped"))
        self._replies.clear()
        if self.on_exit is not None:
            self.on_exit(effect)

    # -- reads ------------------------------------------------------------------

    def child_runner(self, id: str) -> SupervisorRunner | None:
        incarnation = self.incarnations.get(id)
        if isinstance(incarnation, SupervisorIncarnation) and incarnation.child.finished is None:
            return incarnation.child
        return None
