"""What the runners of one tree share (:class:`Runtime`), one run of one child
(:class:`Incarnation`), and the run of an ``async def`` worker as an asyncio task
(:class:`WorkerIncarnation`).

An incarnation starts and stops its child and reports how it ended; the runner feeds
that to the core. The kinds of child are a closed set (``Kind``): workers here, OS
processes in ``process``, nested supervisors in ``runner``.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from .._core.dynamic import DynamicSupervisor
from .._core.errors import Shutdown, ShutdownTimeout
from .._core.events import Event, ExitReason
from .._core.messages import Exited, Init, Outcome, StartDone, StartFailed, StopDone, UpdateDone
from .._core.paths import Path, format_path
from .._core.snapshot import PathStore
from .._core.spec import BRUTAL_KILL, INFINITY, ChildSpec, ShutdownSpec, Supervisor
from .._core.store import SnapshotStore
from .._process.output import OutputSink, write_prefixed
from .._process.sockets import SocketPool
from .clock import Clock
from .context import Context, _current
from .health import Monitor
from .hub import EventHub
from .registry import Registry

if TYPE_CHECKING:
    from .._reload.reexec import Resume
    from .runner import SupervisorRunner
    from .tree import Tree


_Task = asyncio.Task
_NORMAL, _SHUTDOWN, _CRASH = ExitReason.NORMAL, ExitReason.SHUTDOWN, ExitReason.CRASH  # globals: cheaper than enums

Completion = StartDone | StartFailed | StopDone | UpdateDone


class Runtime:
    """What the runners of one tree share."""

    def __init__(self, clock: Clock, rng: random.Random) -> None:
        self.loop = asyncio.get_running_loop()
        self.clock = clock
        self.rng = rng
        self.store = PathStore()
        self.snapshot_store: SnapshotStore | None = None
        """Where the snapshots in ``store`` are written (``sv.start(store=...)``);
        closed once the tree has stopped."""
        self.hub = EventHub()
        self.registry = Registry()
        """Values the workers published (``ctx.register``), found by ``tree.whereis``."""
        self.tree: Tree | None = None
        """The Tree these runners make up (``ctx.tree``), once made."""
        self.context = contextvars.copy_context()
        self.plain_loop = type(self.loop).create_task is asyncio.BaseEventLoop.create_task
        """True for asyncio's own loops: while no task factory is set, a worker's
        task is made as ``loop.create_task`` makes it (``asyncio.Task(...)``),
        without a call through it per start."""
        self.operations: set[asyncio.Task[Any]] = set()
        self.abandoned: set[asyncio.Task[Any]] = set()
        """Worker tasks that ignored cancellation past their shutdown timeout."""
        self.observers: list[Callable[[Event], None]] = []
        """Called with each event of the tree as the core emits it, before any
        ``events()`` reader sees it: bookkeeping kept in step with the tree's state."""
        self.sockets = SocketPool()
        """The listening sockets held for children (``sockets=[sv.listen(...)]``)."""
        self.output: OutputSink = write_prefixed
        """Where the output records of process children go (``sv.run`` adds its log)."""
        self.resume: Resume | None = None
        """Re-exec: the initial state the new image's tree starts from (the
        processes it adopts, the children that stay terminated), until it has
        started. See ``handover``."""

    def init(self, path: Path, spec: Supervisor) -> Init:
        """The ``Init`` of the supervisor at ``path``: a plain start, or after a
        re-exec its part of the initial state."""
        resume = self.resume
        if resume is None:
            return Init()
        restored = tuple(resume.restored.get(path, ()))  # a dynamic supervisor's children
        ids = [(id, (*path, id)) for id in [*(child.id for child in spec.children), *(id for id, _ in restored)]]
        running = resume.adoptions.keys() | resume.supervisors
        return Init(
            adopted=frozenset(id for id, at in ids if at in running),
            terminated=frozenset(id for id, at in ids if at in resume.terminated),
            removed=frozenset(id for id, at in ids if at in resume.removed),
            restored=restored,
        )

    def emit(self, event: Event) -> None:
        """Tell the observers, then the ``events()`` readers and the log."""
        for observer in self.observers:
            observer(event)
        self.hub.publish(event)

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


def _close_all(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


class Incarnation:
    """One run of one child, from its start to its exit."""

    kind: ClassVar[str]
    __slots__ = ("id", "monitor", "path", "runner", "spec", "started", "starts", "stopping", "token")

    def __init__(self, runner: SupervisorRunner, id: str, token: int, spec: ChildSpec, path: Path, starts: int) -> None:
        self.runner = runner
        self.id = id
        self.token = token
        self.spec = spec
        self.path = path
        self.starts = starts
        self.started = False
        self.stopping = False
        self.monitor: Monitor | None = None

    @property
    def pid(self) -> int | None:
        return None

    @property
    def socket_owner(self) -> Path:
        """The path the held sockets of this incarnation belong to: the instance
        group's for one of its copies (``web/0``, ``web/1`` ... share the sockets
        of ``web``, bound once), else the child's own."""
        spec = self.runner.spec
        if isinstance(spec, DynamicSupervisor) and spec.instances is not None:
            return self.runner.path
        return self.path

    def fail(self, error: BaseException, watchdog: bool) -> None:
        """Stop this incarnation so that its exit is a crash with ``error`` (the
        core's ``Fail``: a failed health probe, a missed watchdog)."""
        self.crash(error)

    def _watch(self) -> None:
        """Begin the watchdog and the health probe (at readiness)."""
        spec = self.spec
        if spec.watchdog is None and spec.health is None:
            return
        runtime = self.runner.runtime
        self.monitor = Monitor(
            runtime.clock,
            self.id,
            self.token,
            self._watchdog_period(),
            spec.health,
            self.runner.feed,
            cwd=getattr(spec.start, "cwd", None),
            label=format_path(self.path),
        )

    def _watchdog_period(self) -> float | None:
        return self.spec.watchdog

    def _unwatch(self) -> None:
        """End the watchdog and the probe (stopping or exited). A probe in
        progress is cancelled and tracked until its cleanup ends."""
        monitor, self.monitor = self.monitor, None
        if monitor is None:
            return
        task = monitor.close()
        if task is not None:
            operations = self.runner.runtime.operations
            operations.add(task)
            task.add_done_callback(operations.discard)

    def start(self) -> Completion | Awaitable[Completion]:
        raise NotImplementedError

    def stop(self) -> StopDone | Awaitable[StopDone]:
        raise NotImplementedError

    def crash(self, error: BaseException) -> None:
        """Make this incarnation exit as crashed with ``error`` (for tests)."""
        raise NotImplementedError

    def _done(self) -> StartDone:
        self.started = True
        self._watch()
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
        started = self.launch()
        if started is None:
            return StartDone(self.id, self.token, self.starts)
        return started

    def launch(self) -> Completion | Awaitable[Completion] | None:
        """``start()``, but None when the worker started at once (the common case):
        the runner tells its core so without a ``StartDone``."""
        runtime = self.runner.runtime
        spec = self.spec
        self.injected: BaseException | None = None
        self.ready_future: asyncio.Future[None] | None = None
        if spec.ready:
            self.ready_future = runtime.loop.create_future()
        sockets: dict[str, socket.socket] | None = None
        if spec.sockets:
            try:
                held = runtime.sockets.acquire(self.socket_owner, spec.sockets)
            except OSError as exc:
                return self._failed(exc)
            runtime.sockets.keep_only(self.socket_owner, spec.sockets)
            # Its own copies (the same sockets, other fds): asyncio's Server.close()
            # closes the socket it serves on, and the held one must stay open.
            sockets = {listen.name: sock.dup() for listen, sock in zip(spec.sockets, held, strict=True)}
        self.ctx = ctx = Context(self.runner, spec, self.path, self.starts, sockets)
        context = runtime.context.copy()
        context.run(_current.set, ctx)
        try:
            coroutine = spec.start(ctx)
            loop = runtime.loop
            if runtime.plain_loop and loop._task_factory is None:  # type: ignore[attr-defined]
                task = _Task(coroutine, loop=loop, name="/".join(self.path), context=context)
            else:
                task = loop.create_task(coroutine, name="/".join(self.path), context=context)
            self.task: asyncio.Task[Any] = task
        except Exception as exc:
            if sockets:
                _close_all(sockets.values())
            return self._failed(exc)
        # The incarnation itself is its task's done-callback (``__call__``), run in
        # the tree's context: neither a bound method nor a context copy per worker.
        task.add_done_callback(self, context=runtime.context)
        if sockets:
            opened = sockets.values()
            task.add_done_callback(lambda _: _close_all(opened))
        if self.ready_future is not None:
            return self._wait_ready()
        if spec.watchdog is not None or spec.health is not None or runtime.registry.owners:
            return self._done()
        self.started = True  # _done(), inline: the common case, nothing to watch or publish
        return None

    def _done(self) -> StartDone:
        self.started = True
        registry = self.runner.runtime.registry
        if registry.owners and self.ctx._alive:  # what it registered is visible from now on
            registry.started(self.ctx, self.task)
        spec = self.spec
        if spec.watchdog is not None or spec.health is not None:
            self._watch()
        return StartDone(self.id, self.token, self.starts)

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

    def __call__(self, task: asyncio.Task[Any]) -> None:
        """The task is done (its done-callback)."""
        self.ctx._alive = False
        if self.monitor is not None:
            self._unwatch()
        runner = self.runner
        registry = runner.runtime.registry
        if registry.owners:
            registry.ended(self.ctx)  # before anyone hears of the exit
        if self.started and not self.stopping:
            if self.injected is None and not task.cancelled():  # outcome(), inline: a crash or a return
                error = task.exception()
                if error is None:
                    outcome = Outcome(_NORMAL)
                elif isinstance(error, Shutdown):
                    outcome = Outcome(_SHUTDOWN, error)
                else:
                    outcome = Outcome(_CRASH, error)
            else:
                outcome = self.outcome()
            runner.feed(Exited(self.id, self.token, outcome))
        elif not task.cancelled():
            task.exception()  # retrieved here: the start or stop path reports it

    def _report_exit(self) -> None:
        self.runner.child_exited(self, self.outcome())

    def stop(self) -> StopDone | Awaitable[StopDone]:
        self.stopping = True
        self._unwatch()
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
        self.runner.runtime.registry.ended(self.ctx)
        self.runner.runtime.abandoned.add(self.task)
        self.task.add_done_callback(self.runner.runtime.abandoned.discard)
        return ShutdownTimeout(self.path, _timeout(self.spec.shutdown) or 0.0)

    def crash(self, error: BaseException) -> None:
        if not self.task.done():
            self.injected = error
            self.task.cancel()

    def fail(self, error: BaseException, watchdog: bool) -> None:
        """Cancel the task; if it is still running ``shutdown`` seconds later it
        is abandoned (a Python task cannot be killed) and its exit reported."""
        if self.task.done() or self.stopping:
            return
        self._unwatch()
        self.crash(error)
        timeout = _timeout(self.spec.shutdown)
        if timeout is None:
            return

        def expired() -> None:
            if not self.task.done() and not self.stopping:
                self.task.remove_done_callback(self)
                self._abandon()
                self.runner.child_exited(self, Outcome(ExitReason.CRASH, error))

        handle = self.runner.runtime.loop.call_later(timeout, expired)
        self.task.add_done_callback(lambda _: handle.cancel())
