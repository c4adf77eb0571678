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
    from .incarnation import WorkerIncarnation
    from .tree import Tree

_current: ContextVar[Context] = ContextVar("supervision.current")
_NO_SOCKETS: Mapping[str, Any] = MappingProxyType({})  # shared by every worker that holds none


class Context:
    """Passed to every worker (and returned by :func:`current` inside it).

    >>> async def counter(ctx):
    ...     n = ctx.state.get("n", 0)
    ...     ctx.save(ctx.state.set("n", n + 1))
    """

    # Two slots: the rest is read from the incarnation it belongs to (its path,
    # start count, spec and tree, whether it still runs), so that a worker costs
    # one small object here. The incarnation does not refer back to it.
    __slots__ = ("_inc", "sockets")

    def __init__(self, incarnation: WorkerIncarnation, sockets: Mapping[str, socket.socket] | None = None) -> None:
        self._inc = incarnation
        self.sockets: Mapping[str, socket.socket] = sockets if sockets is not None else _NO_SOCKETS
        """The listening sockets its spec asked for (``sockets=[sv.listen(...)]``), by
        name. Held by the supervisor across restarts: serve on them, never close them."""

    @property
    def id(self) -> str:
        """The child's id."""
        return self._inc.id

    @property
    def path(self) -> Path:
        """The child's path from the root, e.g. ``("db", "pool")``."""
        return self._inc.path

    @property
    def starts(self) -> int:
        """1 on the first start of this path, +1 on each restart (failed ones included)."""
        return self._inc.starts

    @property
    def _store(self) -> PathStore:
        return self._inc.runner.runtime.store

    @property
    def state(self) -> Any:
        """The last saved snapshot, else the spec's ``state``, else an empty ``pmap()``."""
        incarnation = self._inc
        return incarnation.runner.runtime.store.snapshot(incarnation.path, incarnation.spec.initial_state)

    def save(self, value: Any) -> None:
        """Store a new snapshot. It survives restarts, reloads and re-exec.

        ``value`` must be immutable plain data (pyrsistent structures, tuples,
        frozensets, str, int, float, bool, None, bytes), else ``TypeError``.
        """
        if self._inc.alive:
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
        incarnation = self._inc
        if incarnation.alive:  # an ended incarnation publishes nothing
            registry = incarnation.runner.runtime.registry
            started = incarnation.started
            task = incarnation.task if started else None
            registry.register(incarnation, self.path, value, name, live=started, task=task)

    def unregister(self, name: str | None = None) -> None:
        """Withdraw what :meth:`register` published under the path, or ``name``."""
        incarnation = self._inc
        incarnation.runner.runtime.registry.unregister(incarnation, self.path, name)

    @property
    def tree(self) -> Tree:
        """The running tree this worker belongs to: reach another supervisor with
        ``ctx.tree.at("pool")``, find a registered value with ``ctx.tree.whereis(...)``.

        >>> async def listener(ctx):
        ...     await ctx.tree.at("conns").start_child(reader, writer)
        """
        tree = self._inc.runner.runtime.tree
        if tree is None:
            raise LookupError("this context belongs to no running tree")
        return tree

    def ready(self) -> None:
        """Tell the supervisor this worker has started (for ``ready=True`` children)."""
        self._inc._on_ready()

    def heartbeat(self) -> None:
        """Tell the supervisor this worker is alive (for ``watchdog=`` children).

        Cheap (it only notes the time): call it from the worker's main loop. A
        worker with ``watchdog=S`` that goes ``S`` seconds without calling it,
        once ready, is cancelled and restarted as a crash (``sv.WatchdogTimeout``)."""
        monitor = self._inc.monitor
        if monitor is not None:
            monitor.beat()

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
