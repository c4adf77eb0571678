"""The worker's context: its identity, its snapshot, and readiness."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._core.durable import DurablePaths
from .._core.paths import Path
from .._core.snapshot import check_immutable

if TYPE_CHECKING:
    import socket

    from .._core.snapshot import PathStore
    from .._core.spec import ChildSpec
    from .incarnation import WorkerIncarnation
    from .runner import SupervisorRunner
    from .tree import Tree

_current: ContextVar[Context] = ContextVar("supervision.current")
_NO_SOCKETS: Mapping[str, Any] = MappingProxyType({})  # shared by every worker that holds none


class Context:
    """Passed to every worker (and returned by :func:`current` inside it).

    >>> async def counter(ctx):
    ...     n = ctx.state.get("n", 0)
    ...     ctx.save(ctx.state.set("n", n + 1))
    """

    # No reference to its incarnation nor to the task: the worker's frame holds the
    # context, and a crash's traceback holds the frame, so a link back to the task
    # (which holds the exception) would leave a cycle for the garbage collector on
    # every restart. Shared objects (the runner, the spec) are fine. What a context
    # rarely needs of its incarnation (readiness, heartbeats) it looks up.
    __slots__ = ("_alive", "_runner", "_spec", "path", "sockets", "starts")

    def __init__(
        self,
        runner: SupervisorRunner,
        spec: ChildSpec,
        path: Path,
        starts: int,
        sockets: Mapping[str, socket.socket] | None = None,
    ) -> None:
        self._runner = runner
        self._spec = spec
        self.path = path
        """The child's path from the root, e.g. ``("db", "pool")``."""
        self.starts = starts
        """1 on the first start of this path, +1 on each restart (failed ones included)."""
        self.sockets: Mapping[str, socket.socket] = sockets if sockets is not None else _NO_SOCKETS
        """The listening sockets its spec asked for (``sockets=[sv.listen(...)]``), by
        name. Held by the supervisor across restarts: serve on them, never close them."""
        self._alive = True

    @property
    def id(self) -> str:
        """The child's id."""
        return self.path[-1]

    @property
    def _store(self) -> PathStore:
        return self._runner.runtime.store

    def _incarnation(self) -> WorkerIncarnation | None:
        """The incarnation this context was made for, while its supervisor knows it."""
        runner = self._runner
        found = runner.incarnations.get(self.path[-1])
        if found is not None and getattr(found, "ctx", None) is self:
            return found  # type: ignore[return-value]
        for retiring in runner.retiring.values():  # replaced by an overlapping restart, still running
            if getattr(retiring, "ctx", None) is self:
                return retiring  # type: ignore[return-value]
        return None

    @property
    def state(self) -> Any:
        """The last saved snapshot, else the spec's ``state``, else an empty ``pmap()``."""
        return self._runner.runtime.store.snapshot(self.path, self._spec.initial_state)

    def save(self, value: Any) -> None:
        """Store a new snapshot. It survives restarts, reloads and re-exec.

        ``value`` must be immutable plain data (pyrsistent structures, tuples,
        frozensets, str, int, float, bool, None, bytes), else ``TypeError``.
        """
        if self._alive:
            self._store.save(self.path, value)  # checks the value (or its store's codec does)
        else:
            check_immutable(value)

    @property
    def fence(self) -> int | None:
        """The fencing token of the term this child runs under, if a supervisor
        above it is leader-gated (``leader=``), else None. It grows from term to
        term across every root: pass it with each write to a system that rejects
        tokens smaller than the largest it has seen (docs/distributed.md). OS
        processes get it as ``SUPERVISION_FENCE``."""
        store = self._store
        fence = store.fence(self.path) if isinstance(store, DurablePaths) else None
        return fence.revision if fence is not None else None

    def register(self, value: Any, name: str | None = None) -> None:
        """Publish ``value`` (a queue, a client, an object with methods) for others
        to find with ``tree.whereis`` / ``tree.wait_for``: under this worker's path,
        or under ``name``, unique across the tree (``AlreadyPresent`` if another
        incarnation holds it). It is visible once this incarnation has started
        (with ``ready=True``: once it called ``ready()``) and unregistered when it
        ends, so nobody gets a dead incarnation's object. Registering again under
        the same key replaces the value.

        >>> async def orders(ctx):
        ...     ctx.register(asyncio.Queue(), name="orders")
        """
        if self._alive:  # an ended incarnation publishes nothing
            incarnation = self._incarnation()
            started = incarnation is not None and incarnation.started
            task = incarnation.task if incarnation is not None and started else None
            self._runner.runtime.registry.register(self, self.path, value, name, live=started, task=task)

    def unregister(self, name: str | None = None) -> None:
        """Withdraw what :meth:`register` published under the path, or ``name``."""
        self._runner.runtime.registry.unregister(self, self.path, name)

    @property
    def tree(self) -> Tree:
        """The running tree this worker belongs to: reach another supervisor with
        ``ctx.tree.at("pool")``, find a registered value with ``ctx.tree.whereis(...)``.

        >>> async def listener(ctx):
        ...     await ctx.tree.at("conns").start_child(reader, writer)
        """
        tree = self._runner.runtime.tree
        if tree is None:
            raise LookupError("this context belongs to no running tree")
        return tree

    def ready(self) -> None:
        """Tell the supervisor this worker has started (for ``ready=True`` children)."""
        incarnation = self._incarnation()
        if incarnation is not None:
            incarnation._on_ready()

    def heartbeat(self) -> None:
        """Tell the supervisor this worker is alive (for ``watchdog=`` children).

        Cheap (it only notes the time): call it from the worker's main loop. A
        worker with ``watchdog=S`` that goes ``S`` seconds without calling it,
        once ready, is cancelled and restarted as a crash (``sv.WatchdogTimeout``)."""
        if self._spec.watchdog is not None and self._alive:
            incarnation = self._incarnation()
            if incarnation is not None and incarnation.monitor is not None:
                incarnation.monitor.beat()

    def __repr__(self) -> str:
        return f"<Context {'/'.join(self.path)} starts={self.starts}>"


def current() -> Context:
    """The context of the worker running now. ``LookupError`` outside a worker.

    >>> import asyncio, supervision as sv
    >>> def where_am_i() -> str:                     # deep in a worker's call stack
    ...     return "/".join(sv.current().path)
    >>> async def w(ctx):
    ...     print(where_am_i())
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("db", sv.Supervisor([sv.child("w", w)]))])):
    ...         await asyncio.sleep(0)
    >>> asyncio.run(main())
    db/w
    """
    try:
        return _current.get()
    except LookupError:
        raise LookupError("sv.current() called outside a supervised worker") from None
