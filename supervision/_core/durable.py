"""The tree's snapshots by path, written through to a snapshot store.

:class:`DurablePaths` is the runtime's table of snapshots (a ``PathStore``: the
values children saved, their start counts and state versions) that also hands
every change to a :class:`SnapshotStore`: the tree's own store, or, for the
subtree of a leader-gated supervisor, the shared store of its lease, fenced by
the term it holds. Reads never leave memory; writes are staged, never awaited.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .snapshot import PathStore, check_immutable
from .store import Fence, Path, Record, SnapshotStore


@dataclass(slots=True)
class Route:
    """Where the snapshots under one path (a leader-gated subtree) go: the
    lease's shared store, fenced by the term that may write there. Without a
    term (None), nothing is written there: the subtree's children do not run."""

    store: SnapshotStore
    fence: Fence | None = None


class DurablePaths(PathStore):
    """A ``PathStore`` whose snapshots also go to ``store`` (see the module docstring)."""

    __slots__ = ("routes", "store")

    def __init__(self, store: SnapshotStore) -> None:
        super().__init__()
        self.store = store
        self.routes: dict[Path, Route] = {}
        """Subtrees whose snapshots go elsewhere, by the path of their root
        (the key in that store is the path below it)."""

    def route(self, path: Path) -> tuple[SnapshotStore | None, Path, Fence | None]:
        """The store a snapshot at ``path`` goes to (None: nowhere, for now), its
        key there, and the fence to write it with."""
        if self.routes:
            for prefix, route in self.routes.items():
                if path[: len(prefix)] == prefix and len(path) > len(prefix):
                    if route.fence is None:
                        return None, path, None
                    return route.store, path[len(prefix) :], route.fence
        return self.store, path, None

    def fence(self, path: Path) -> Fence | None:
        """The fence of the term the child at ``path`` runs under, if it is leader-gated."""
        return self.route(path)[2] if self.routes else None

    def load(self, records: Mapping[Path, Record], under: Path = ()) -> None:
        """Take the snapshots a store holds (keys relative to ``under``) as the
        tree's own, replacing what was kept for that subtree."""
        if under:
            for table in (self.snapshots, self.versions):
                for path in [p for p in table if p[: len(under)] == under and len(p) > len(under)]:
                    del table[path]
        for key, record in records.items():
            path = (*under, *key)
            self.snapshots[path] = record.value
            if record.state_version:
                self.versions[path] = record.state_version
            else:
                self.versions.pop(path, None)

    def save(self, path: Path, value: Any) -> None:
        store, key, fence = self.route(path)
        if store is None or not store.validates:
            check_immutable(value)
        if store is not None:
            # Staged first: a snapshot over the store's limit raises here, and the
            # tree keeps the last one that was accepted.
            store.stage(key, Record(value, self.versions.get(path, 0)), fence=fence)
        self.snapshots[path] = value

    def prepare_start(self, path: Path, version: int, migrate: Callable[[Any, int], Any] | None) -> None:
        if self.versions.get(path, 0) == version:
            return  # the common case: nothing to migrate (nor to write)
        before = self.snapshots.get(path, _MISSING)
        super().prepare_start(path, version, migrate)
        after = self.snapshots.get(path, _MISSING)
        if after is before:
            return
        store, key, fence = self.route(path)
        if store is not None:
            store.stage(key, None if after is _MISSING else Record(after, version), fence=fence)

    def forget(self, path: Path, *, subtree: bool = False) -> None:
        depth = len(path)
        gone = [p for p in self.snapshots if p == path or (subtree and len(p) > depth and p[:depth] == path)]
        super().forget(path, subtree=subtree)
        for p in gone:
            store, key, fence = self.route(p)
            if store is not None:
                store.stage(key, None, fence=fence)


_MISSING: Any = object()
