"""The memory store: snapshots live as long as the process (the default of ``sv.start``)."""

from __future__ import annotations

from collections.abc import Mapping

from ._base import Fence, Path, Record, SnapshotStore


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
