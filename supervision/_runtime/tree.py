"""The public runtime API: ``sv.start``, ``Tree`` and the handles of nested supervisors."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Any, NoReturn

from .._core.diff import diff
from .._core.durable import DurablePaths
from .._core.dynamic import NO_ARGS, DynamicSupervisor, pack_args
from .._core.errors import (
    NotFound,
    ReloadError,
    SpecError,
    StartError,
    SupervisionError,
    SupervisorNotRunning,
    TooManyRestarts,
)
from .._core.events import Event, ExitReason, ReloadApplied, ReloadRejected
from .._core.machine import Child
from .._core.messages import (
    Applied,
    DeleteChild,
    Exit,
    RestartChild,
    Scale,
    StartChild,
    StartDynamic,
    StopSupervisor,
    TerminateChild,
    Update,
)
from .._core.paths import Path, format_path, parse_path
from .._core.plan import DryRun, explain
from .._core.snapshot import PathStore, plan_migrations
from .._core.spec import ChildSpec, Kind, Supervisor
from .._core.status import ChildCounts, ChildInfo, IntensityFill, Status
from .._core.store import SnapshotStore, memory
from .._process.output import OutputSink
from .._reload.modules import Reloader, Swap
from .._reload.reexec import claim as claim_handover
from .._reload.target import Source, Target, build, describe_error
from .clock import Clock, LoopClock
from .handover import reexec as _reexec
from .handover import settle
from .hub import EventHub, EventStream
from .incarnation import Incarnation, Runtime
from .runner import SupervisorRunner

logger = logging.getLogger("supervision")


class Handle:
    """A supervisor in a running tree, by path. It resolves its path on every
    call, so it stays valid across restarts of the supervisor it names.

    >>> import asyncio, supervision as sv
    >>> async def w(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     db = sv.Supervisor([sv.child("pool", w)])
    ...     async with sv.start(sv.Supervisor([sv.child("db", db)])) as tree:
    ...         handle = tree.at("db")                # a sv.Handle
    ...         await handle.terminate_child("pool")
    ...         print([(c.id, c.status.value) for c in handle.which_children()])
    >>> asyncio.run(main())
    [('pool', 'terminated')]
    """

    def __init__(self, tree: Tree, path: Path) -> None:
        self._tree = tree
        self.path = path

    def _runner(self) -> SupervisorRunner:
        return self._tree.runner_at(self.path)

    def at(self, path: str | Path) -> Handle:
        """The handle of a nested supervisor, by id or path relative to this one."""
        return Handle(self._tree, (*self.path, *parse_path(path)))

    def which_children(self) -> list[ChildInfo]:
        """The children in start order, with kind, status, starts and pid."""
        runner = self._runner()
        return [runner.info(child, incarnation) for child, incarnation in runner.children()]

    def count_children(self) -> ChildCounts:
        """``ChildCounts(specs, active, supervisors, workers)``, as OTP counts them."""
        runner = self._runner()
        children = runner.core.children.values()
        supervisors = sum(1 for c in children if isinstance(c.spec.start, Supervisor))
        active = sum(1 for c in children if c.status is Status.RUNNING)
        return ChildCounts(len(children), active, supervisors, len(children) - supervisors)

    def intensity(self) -> IntensityFill:
        """How full this supervisor's intensity window is now: the restarts within
        its last ``period`` seconds, against its ``intensity``. One more restart
        than ``intensity`` in the window and it gives up."""
        runner = self._runner()
        spec = runner.spec
        return IntensityFill(runner.core.restarts_within(runner.runtime.clock.now()), spec.intensity, spec.period)

    async def start_child(self, *args: Any, **kwargs: Any) -> str:
        """Start a dynamic child; its id.

        On a :class:`~supervision.DynamicSupervisor`: a child made from its
        template with these arguments, under a fresh id (``TooManyChildren`` at
        ``max_children``). On any other supervisor: ``start_child(spec)`` adds
        the child ``spec`` (appended last) and starts it; ``AlreadyStarted`` /
        ``AlreadyPresent`` if the id exists. ``StartError`` if the child fails
        to start (then it is not added).

        >>> async def accepted(tree, reader, writer):
        ...     conn_id = await tree.at("conns").start_child(reader, writer)
        """
        runner = self._runner()
        if isinstance(runner.spec, DynamicSupervisor):
            # request(), not call(): a worker's start completes at once, and this is
            # the path of every connection, job or tenant (bench/dynamic.py).
            reply = runner.request(StartDynamic(pack_args(args, kwargs) if args or kwargs else NO_ARGS))
            id: str = reply.result() if reply.done() else await reply
            return id
        if len(args) != 1 or kwargs or not isinstance(args[0], ChildSpec):
            shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            raise TypeError(f"start_child() takes a child spec (sv.child, sv.process), got {shown}")
        spec = args[0]
        await runner.call(StartChild(spec))
        return spec.id

    async def scale(self, count: int) -> int:
        """Run ``count`` instances of the instance group this handle names
        (``sv.process(..., instances=N)``): the missing ones are started in order,
        those beyond stopped, the highest-numbered first. Returns ``count``.
        The command line's ``supervision scale PATH N``.

        >>> async def busy(tree):
        ...     await tree.at("web").scale(8)
        """
        runner = self._runner()
        spec = runner.spec
        if not isinstance(spec, DynamicSupervisor) or spec.instances is None:
            raise SupervisionError(f"{format_path(self.path)}: not an instance group (sv.process(..., instances=N))")
        result: int = await runner.call(Scale(count))
        return result

    async def terminate_child(self, id: str) -> None:
        """Stop a child and keep its spec (a temporary child is deleted). Not a restart."""
        await self._runner().call(TerminateChild(id))

    async def restart_child(self, id: str) -> None:
        """Start a terminated child again."""
        await self._runner().call(RestartChild(id))

    async def delete_child(self, id: str) -> None:
        """Remove a terminated child's spec (and its snapshot)."""
        await self._runner().call(DeleteChild(id))

    def state(self, path: str | Path) -> Any:
        """The last snapshot of a child, by id or path relative to this handle."""
        full = (*self.path, *parse_path(path))
        if not full[len(self.path) :]:
            raise NotFound("state() needs a child's path")
        parent = Handle(self._tree, full[:-1])._runner()
        child = parent.core.children.get(full[-1])
        if child is None:
            raise NotFound.at(full, "no such child")
        return parent.runtime.store.snapshot(full, child.spec.initial_state)

    def events(self, *, maxsize: int = 10_000) -> EventStream:
        """An async iterator over the events of this subtree, from now on.

        It subscribes when called, so nothing after this call is missed, and it
        ends when the tree stops. A slow reader never blocks the tree: beyond
        ``maxsize`` queued events, new ones are dropped, counted and logged.
        """
        return self._tree._runtime.hub.stream(self.path, maxsize)

    @property
    def spec(self) -> Supervisor:
        """The spec this supervisor runs now."""
        return self._runner().spec

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {format_path(self.path)}>"


class Tree(Handle):
    """A running tree: the root's handle, plus the tree-wide operations.

    >>> import asyncio, supervision as sv
    >>> async def w(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("w", w)])) as tree:   # a sv.Tree
    ...         print([c.id for c in tree.which_children()], tree.stopped)
    ...     print(tree.stopped)
    >>> asyncio.run(main())
    ['w'] False
    True
    """

    def __init__(self, runtime: Runtime, runner: SupervisorRunner, source: Source) -> None:
        self._runtime = runtime
        runtime.tree = self
        self._root = runner
        self.source = source
        super().__init__(self, ())
        self._reloading = asyncio.Lock()  # reloads and updates, one at a time
        self._reloader: Reloader | None = None
        self._not_reloadable: ReloadError | None = None
        try:
            self._reloader = Reloader(source.target)
        except ReloadError as exc:
            self._not_reloadable = exc
        except Exception as exc:  # whatever stops us finding the source: the tree runs, it cannot reload
            self._not_reloadable = ReloadError(f"cannot find the tree's source again: {exc!r}")
            self._not_reloadable.__cause__ = exc

    # -- the internal API: what re-exec, the control commands and testing.crash use --

    def runner_at(self, path: Path) -> SupervisorRunner:
        """The runner of the running supervisor at ``path`` (``()``: the root).

        ``NotFound`` if no supervisor is declared there, ``SupervisorNotRunning`` if it
        (or the tree) is not running. Resolve a path once per request, then talk to
        the runner: its ``call`` sends a command to its core.
        """
        runner = self._root
        if runner.finished is not None:
            raise SupervisorNotRunning("the tree has stopped", path=())
        for depth, id in enumerate(path):
            next_runner = runner.child_runner(id)
            if next_runner is None:
                where = path[: depth + 1]
                child = runner.core.children.get(id)
                if child is None:
                    raise NotFound.at(where, "no such supervisor")
                if child.spec.kind is not Kind.SUPERVISOR:
                    raise NotFound.at(where, f"a {child.spec.kind}, not a supervisor")
                raise SupervisorNotRunning.at(where, "supervisor is not running")
            runner = next_runner
        return runner

    def walk(self) -> Iterator[tuple[SupervisorRunner, Child, Incarnation | None]]:
        """Every child of every running supervisor, depth first in start order (the
        children of a nested supervisor right after it), with its supervisor's
        runner and its current incarnation (None if it has none)."""
        if self._root.finished is None:
            yield from _walk(self._root)

    @property
    def store(self) -> PathStore:
        """Snapshots, start counts and state versions, by path."""
        return self._runtime.store

    async def reload(self) -> ReloadApplied:
        """Re-import the tree's source, build the spec again and apply the diff.

        The target's module is re-imported, with the modules of its package (or
        directory) whose source changed and those that use them; the builder
        is called; the new spec is diffed against the running tree by path, and
        only what changed is stopped, started, restarted or updated in place
        (see ``docs/reload.md``). Returns the ``ReloadApplied`` event (also
        emitted).

        Anything that fails before the diff is applied (an import or syntax
        error, a builder that raises, an invalid spec, a ``migrate`` that raises)
        rejects the reload: ``ReloadError`` (``__cause__`` says why), a
        ``ReloadRejected`` event, ``sys.modules`` restored, the running tree and
        every snapshot untouched. A tree started from a bare spec cannot reload.
        """
        async with self._reloading:
            if self._reloader is None:
                assert self._not_reloadable is not None
                self._reject(self._not_reloadable)
            try:
                swap = self._reloader.load()
            except Exception as exc:
                self._reject(exc)
            assert swap.spec is not None
            return await self._apply(swap.spec, swap)

    async def plan_reload(self) -> DryRun:
        """What ``reload()`` would do now, without doing it (``reload --dry-run``).

        The source is re-imported and the spec built as for a reload, diffed
        against the running tree, and the modules put back as they were. Raises
        ``ReloadError`` where ``reload()`` would reject the reload (no event is
        emitted: nothing happened).
        """
        async with self._reloading:
            if self._reloader is None:
                assert self._not_reloadable is not None
                raise self._not_reloadable
            try:
                swap = self._reloader.load()
            except Exception as exc:
                error = ReloadError(f"reload rejected: {exc!r}")
                raise error from exc
            try:
                assert swap.spec is not None
                if not isinstance(swap.spec, Supervisor):
                    raise SpecError((), "spec", f"a reload needs a Supervisor, got {swap.spec!r}")
                if self._root.finished is not None:
                    raise SupervisorNotRunning("the tree has stopped")
                return self.plan_update(swap.spec)
            except ReloadError:
                raise
            except Exception as exc:
                raise ReloadError(f"reload rejected: {exc!r}") from exc
            finally:
                swap.rollback()

    def plan_update(self, spec: Supervisor) -> DryRun:
        """What ``update(spec)`` would do now, without doing it (see ``_plan``)."""
        found: dict[Path, Status] = {}

        def walk(handle: Handle) -> None:
            for info in handle.which_children():
                path = (*handle.path, info.id)
                found[path] = info.status
                if info.kind == "supervisor" and info.status is Status.RUNNING:
                    walk(handle.at(info.id))

        walk(self)
        return explain(self.spec, spec, found.get)

    async def update(self, spec: Supervisor) -> ReloadApplied:
        """Apply the diff between the running tree and ``spec``, as ``reload()``
        does with the spec it builds (see there), and return ``ReloadApplied``."""
        async with self._reloading:
            return await self._apply(spec, None)

    async def _apply(self, spec: Supervisor, swap: Swap | None) -> ReloadApplied:
        runtime = self._runtime
        store = runtime.store
        root = self._root
        try:
            if not isinstance(spec, Supervisor):
                raise SpecError((), "spec", f"a reload needs a Supervisor, got {spec!r}")
            if root.finished is not None:
                raise SupervisorNotRunning("the tree has stopped", path=())
            plan = diff(root.spec, spec)
            migrations, reset = plan_migrations(plan, store.snapshots, store.versions)
        except Exception as exc:
            if swap is not None:
                swap.rollback()
            self._reject(exc)
        except BaseException:
            if swap is not None:
                swap.rollback()
            raise
        if swap is not None:
            swap.commit()
        store.migrations.update(migrations)  # installed when each child next starts
        applied: Applied = await root.call(Update(spec, plan))
        event = ReloadApplied(
            path=(),
            time=runtime.clock.now(),
            started=tuple(applied.started),
            stopped=tuple(applied.stopped),
            restarted=tuple(applied.restarted),
            updated=tuple(dict.fromkeys(applied.updated)),
            reset=reset,
        )
        runtime.emit(event)
        return event

    def _reject(self, cause: Exception) -> NoReturn:
        """Emit ``ReloadRejected`` and raise the ``ReloadError``."""
        if isinstance(cause, ReloadError):
            error = cause
        else:
            error = ReloadError(f"reload rejected: {cause!r}")
            error.__cause__ = cause
        self._runtime.emit(ReloadRejected(path=(), time=self._runtime.clock.now(), error=error))
        raise error

    def whereis(self, key: str | Path) -> Any:
        """The value registered (``ctx.register``) by the incarnation running now
        at a path (``"db/pool"``, ``("db", "pool")``) or under a name, or None.
        A plain string is a name if one is registered, else a child of the root.
        Never a value of an incarnation that has ended."""
        return self._runtime.registry.whereis(key)

    async def wait_for(self, key: str | Path) -> Any:
        """The value under ``key`` (see :meth:`whereis`) once it is registered by
        an incarnation that has started; after a restart, the new incarnation's.
        ``SupervisorNotRunning`` if the tree stops first.

        >>> async def place(tree, order):
        ...     orders = await tree.wait_for("orders")
        ...     await orders.put(order)
        """
        return await self._runtime.registry.wait_for(key)

    def _observe(self, callback: Callable[[Event], None]) -> None:
        """For the service around a root: call ``callback`` with each event of the
        tree synchronously, as its state changes (an ``events()`` reader runs
        later, in its own task), reloads included. What ``callback`` records then agrees with a
        snapshot of the tree taken at any moment, as ``supervision status`` needs."""
        self._runtime.observers.append(callback)

    @property
    def stopped(self) -> bool:
        """True once the root has exited."""
        return self._root.finished is not None

    async def stop(self) -> None:
        """Stop the tree in order (children right to left), then write what the
        snapshot store holds back. A second call does nothing."""
        root = self._root
        if root.finished is None:
            root.feed(StopSupervisor())
        await asyncio.shield(root.done)
        await self._settle()
        await self._close_store()

    async def _close_store(self) -> None:
        """Flush and close the snapshot store, once the root has stopped."""
        store = self._runtime.snapshot_store
        if store is not None:
            self._runtime.snapshot_store = None
            await asyncio.shield(store.close())

    async def wait(self) -> None:
        """Wait until the root stops. Raises ``TooManyRestarts`` if it gave up
        (or the error that crashed it)."""
        exit = await asyncio.shield(self._root.done)
        await self._settle()
        await self._close_store()
        if exit.reason is ExitReason.CRASH or isinstance(exit.error, TooManyRestarts):
            assert exit.error is not None
            raise exit.error

    async def _settle(self) -> None:
        # The operations that fed the root's last completion end right after it.
        pending = [task for task in self._runtime.operations if task is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending)

    @property
    def abandoned(self) -> frozenset[asyncio.Task[Any]]:
        """Worker tasks that ignored cancellation past their shutdown and still run."""
        return frozenset(self._runtime.abandoned)

    async def reexec(self) -> NoReturn:
        r"""Re-execute this process in place, keeping the OS children running.

        The supervisor ``execve``\ s the same interpreter with the same arguments
        (same pid, like systemd's daemon-reexec), after checking in a subprocess
        that the code on disk imports and the target builds; the new image
        re-adopts the OS children by pid (same pids, output and notify sockets
        kept), restores every snapshot, and starts the in-process workers again
        (they are stopped, in order, just before the exec). Under ``sv.run`` the
        control socket is kept too. The first tree the new image starts (its
        ``sv.run`` or ``sv.start``) takes the children over.

        Returns only by raising ``ReloadError`` (the check failed, a stop began,
        ``execve`` failed): then nothing has changed and this image keeps
        supervising. See ``docs/reload.md``.
        """
        async with self._reloading:  # never during a reload
            await _reexec(self)

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "running"
        return f"<Tree {self.source.describe()} {state}>"


def _walk(runner: SupervisorRunner) -> Iterator[tuple[SupervisorRunner, Child, Incarnation | None]]:
    for child, incarnation in runner.children():
        yield runner, child, incarnation
        nested = runner.child_runner(child.spec.id)
        if nested is not None:
            yield from _walk(nested)


async def _start_tree(
    target: Target,
    clock: Clock | None,
    rng: random.Random | None,
    hub: EventHub | None = None,
    output: OutputSink | None = None,
    store: SnapshotStore | None = None,
) -> Tree:
    try:
        spec = build(target)
        if spec.leader is not None:
            raise SpecError((), "leader", "a root cannot be leader-gated: put the gated supervisor under the root")
    except Exception as exc:
        if hub is not None:
            hub.close()
        why = describe_error(exc)
        separator = "\n" if "\n" in why else " "  # a traceback's lines start on a line of their own
        error = StartError((), f"could not build the tree from {target!r}:{separator}{why}")
        raise error from exc
    runtime = Runtime(clock if clock is not None else LoopClock(), rng if rng is not None else random.Random())
    backend = store if store is not None else memory()
    await backend.open()
    try:
        paths = DurablePaths(backend)
        paths.load(await backend.items())  # the tree starts with what the store holds
    except BaseException:
        await backend.close()
        if hub is not None:
            hub.close()
        raise
    runtime.store = paths
    runtime.snapshot_store = backend
    if hub is not None:
        runtime.hub = hub  # streams subscribed before the start see the start-up events
    if output is not None:
        runtime.output = output
    runner = SupervisorRunner(runtime, spec, ())
    tree = Tree(runtime, runner, Source(target))
    runner.on_exit = _root_exited(runtime)
    handover = claim_handover()  # None unless this process was just re-executed (see handover)
    if handover is not None:
        runtime.resume = await handover.prepare(runtime.loop, spec, runtime.store, runtime.output)
        for path, listen, fd in runtime.resume.sockets:  # held sockets, kept open across the exec
            runtime.sockets.adopt(path, listen, fd)
    runner.feed(runtime.init((), spec))
    try:
        await asyncio.shield(runner.started)
        if handover is not None:
            await settle(handover, tree)
    except asyncio.CancelledError:
        await _cancelled_start(tree)
        await tree._close_store()
        raise
    if runner.init_error is not None:
        await tree._settle()
        await tree._close_store()
        raise runner.init_error
    return tree


async def _cancelled_start(tree: Tree) -> None:
    """The caller of a start was cancelled (a timeout, Ctrl-C): stop what was
    started, right to left, as a failed start does, before the cancellation goes on.
    A second cancellation meanwhile leaves the stop running on its own."""
    root = tree._root
    root.abort_start()
    await asyncio.shield(root.started)  # the start job ends: failed, or done just before the abort
    if root.finished is None:
        root.feed(StopSupervisor())
    await asyncio.shield(root.done)
    await tree._settle()


def _root_exited(runtime: Runtime) -> Callable[[Exit], None]:
    def on_exit(exit: Exit) -> None:
        if exit.reason is ExitReason.CRASH:  # no parent reports it: say it here
            logger.error("/: the root supervisor crashed: %r", exit.error, exc_info=exit.error)
        runtime.sockets.close()  # every child has stopped: nobody needs them any more
        runtime.registry.close()
        runtime.hub.close()

    return on_exit


class _Starting:
    """What ``sv.start`` returns: await it, or use it as an async context manager."""

    def __init__(
        self,
        target: Target,
        clock: Clock | None,
        rng: random.Random | None,
        output: OutputSink | None = None,
        store: SnapshotStore | None = None,
    ) -> None:
        self._target = target
        self._output = output
        self._store = store
        self._clock = clock
        self._rng = rng
        self._hub = EventHub()  # the tree's own: a stream taken at any time sees what follows
        self._tree: Tree | None = None

    def events(self, *, maxsize: int = 10_000) -> EventStream:
        """Subscribe before the tree starts, so the stream sees the start-up events
        too (a child that crashes at once, say). Taken later, it is the same as
        ``tree.events()``; after the tree has stopped, it is empty.

        >>> starting = sv.start(build)  # doctest: +SKIP
        >>> events = starting.events()  # doctest: +SKIP
        >>> async with starting as tree: ...  # doctest: +SKIP
        """
        return self._hub.stream((), maxsize)

    def __await__(self) -> Generator[Any, None, Tree]:
        return _start_tree(self._target, self._clock, self._rng, self._hub, self._output, self._store).__await__()

    async def __aenter__(self) -> Tree:
        self._tree = await _start_tree(self._target, self._clock, self._rng, self._hub, self._output, self._store)
        return self._tree

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tree is not None
        await self._tree.stop()


def start_with_output(target: Target, output: OutputSink, store: SnapshotStore | None = None) -> _Starting:
    """``start(target, store=store)``, with the output records of its process children
    sent to ``output`` (``sv.run`` keeps the recent lines for ``supervision logs``)."""
    return _Starting(target, None, None, output, store)


def start(
    target: Target,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    store: SnapshotStore | None = None,
) -> _Starting:
    """Start a tree; raises ``StartError`` if a child fails to start.

    ``target`` is a ``Supervisor`` spec, a zero-argument builder returning one,
    or ``"pkg.module:build"`` / ``"path/to/file.py[:name]"``. ``clock`` and
    ``rng`` are injected for tests (``supervision.testing.ManualClock``).
    ``store`` is where snapshots outlive the tree (``sv.stores.sqlite(...)``;
    default ``sv.stores.memory()``): the tree starts with the snapshots it holds
    and writes every save to it (docs/distributed.md).

    >>> async def main():
    ...     async with sv.start(build) as tree:
    ...         await tree.wait()
    """
    return _Starting(target, clock, rng, None, store)
