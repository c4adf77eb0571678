"""The snapshot store interface: pure values and an abstract class, no I/O.

A tree keeps every snapshot in memory as the immutable value the child saved;
a store is where those values also go so that they outlive the process. The
runtime reads a store once, when a tree starts, and then writes to it behind
the children's backs: ``ctx.save`` must never wait for a disk or a network.
The durable stores (SQLite, etcd) live in ``supervision.stores``; the memory
store, which does nothing but keep the values, lives here.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SupervisionError

Path = tuple[str, ...]

DEFAULT_MAX_BYTES = 1 << 20
"""The largest encoded snapshot a durable store accepts by default: 1 MiB.

etcd refuses requests larger than 1.5 MiB by default (``--max-request-bytes``), and
a snapshot is rewritten on every save: state larger than this belongs in a
database the child writes to, not in a snapshot."""

DEFAULT_FLUSH_INTERVAL = 0.1
"""How long a durable store may hold a save before writing it: 100 ms."""


class StoreError(SupervisionError):
    """A snapshot store failed, or refused a snapshot (see the subclasses)."""


class SnapshotTooLarge(StoreError, ValueError):
    """A snapshot whose encoded form exceeds the store's ``max_bytes``; raised at ``save``."""

    def __init__(self, path: Path, size: int, limit: int) -> None:
        self.path = path
        self.size = size
        self.limit = limit
        where = "/".join(path) or "/"
        super().__init__(
            f"snapshot of {where} is {size} bytes encoded, more than the store's limit of {limit} bytes; "
            f"keep large state in a database and save a reference to it"
        )


class StaleFence(StoreError):
    """A fenced write was refused: the lease it was made under is no longer held."""


@dataclass(frozen=True, slots=True)
class Fence:
    """The fencing token of one leader incarnation: the election key and the
    etcd revision that created it. Revisions only grow, so a later leader
    always has a larger token than every earlier one."""

    key: str
    revision: int

    def __int__(self) -> int:
        return self.revision


@dataclass(frozen=True, slots=True)
class Record:
    """A stored snapshot: the value and the ``state_version`` it was saved under."""

    value: Any
    state_version: int = 0


class SnapshotStore(abc.ABC):
    """Where snapshots outlive the tree: async get, put and delete by path.

    Use a store from a running event loop: ``await store.open()`` before the
    first call, ``await store.close()`` (which flushes) after the last. A store
    serves one tree at a time.

    ``put`` and ``delete`` return once the store has the change staged, and
    the change is durable after ``flush()`` returns or ``flush_interval``
    seconds later; ``get`` always sees the last ``put``.
    """

    flush_interval: float = 0.0
    """Seconds a change may stay staged before it is written (0: written at once)."""
    max_bytes: int | None = None
    """The largest encoded snapshot accepted, or None for no limit (no encoding)."""
    validates: bool = False
    """True if ``stage`` refuses, with ``TypeError``, a value that is not immutable
    plain data (a store that encodes does, in the same pass): the tree then skips
    its own check, which ``ctx.save`` would otherwise pay for twice."""

    async def open(self) -> None:  # noqa: B027  (optional hook)
        """Connect or create what the store needs."""

    async def close(self) -> None:
        """Write what is staged, then release the store's resources."""
        await self.flush()

    async def flush(self) -> None:  # noqa: B027  (optional hook)
        """Return once every change staged so far is durable."""

    @abc.abstractmethod
    async def get(self, path: Path) -> Record | None:
        """The snapshot stored at ``path``, or None."""

    @abc.abstractmethod
    async def items(self) -> Mapping[Path, Record]:
        """Every stored snapshot, by path (read once when a tree starts)."""

    async def put(self, path: Path, value: Any, state_version: int = 0, *, fence: Fence | None = None) -> None:
        """Store ``value`` at ``path``. ``SnapshotTooLarge`` if it is too large;
        with ``fence``, a shared store writes it only while that fence holds."""
        self.stage(path, Record(value, state_version), fence=fence)

    async def delete(self, path: Path, *, fence: Fence | None = None) -> None:
        """Forget the snapshot at ``path`` (nothing happens if there is none)."""
        self.stage(path, None, fence=fence)

    @abc.abstractmethod
    def stage(self, path: Path, record: Record | None, *, fence: Fence | None = None) -> None:
        """What ``put`` (a record) or ``delete`` (None) do, without awaiting:
        the runtime calls it from ``ctx.save``, which must not wait."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """Forget every snapshot (``supervision run --fresh``)."""


class MemoryStore(SnapshotStore):
    """Keeps the saved values themselves, unencoded: nothing outlives the process,
    so there is nothing to serialise and no size limit."""

    def __init__(self) -> None:
        self._records: dict[Path, Record] = {}

    async def get(self, path: Path) -> Record | None:
        return self._records.get(path)

    async def items(self) -> Mapping[Path, Record]:
        return dict(self._records)

    def stage(self, path: Path, record: Record | None, *, fence: Fence | None = None) -> None:
        if record is None:
            self._records.pop(path, None)
        else:
            self._records[path] = record

    async def clear(self) -> None:
        self._records.clear()

    def __repr__(self) -> str:
        return f"<MemoryStore {len(self._records)} snapshot(s)>"


def memory() -> MemoryStore:
    """A store that keeps snapshots in this process only: they survive restarts,
    reloads and re-exec of the tree, not the end of the process.

    >>> store = memory()
    """
    return MemoryStore()
