"""Snapshots: the immutable state a child saves with ``ctx.save``, and the one place
that decides their migration.

A snapshot belongs to the child's path, not to one incarnation, so it must be
plain immutable data that can outlive the code that made it (and be serialised
for re-exec). When a reload changes a child's ``state_version``, its snapshot is
converted by the spec's ``migrate`` or reset: :func:`plan_migrations` decides it
ahead, before anything changes (a ``migrate`` that raises rejects the reload), and
:meth:`PathStore.prepare_start` applies it when the child next starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyrsistent import PBag, PClass, PDeque, PList, PMap, PSet, PVector

from .errors import ReloadError
from .paths import Path

if TYPE_CHECKING:
    from .diff import Plan

_ATOMS = (str, int, float, bool, bytes, type(None))


def check_immutable(value: Any) -> None:
    """Raise ``TypeError`` unless ``value`` is immutable plain data.

    Allowed: pyrsistent structures, tuples and frozensets of allowed values,
    str, int, float, bool, None and bytes.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _ATOMS):
            continue
        if isinstance(item, PMap):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (tuple, frozenset, PVector, PSet, PBag, PList, PDeque)):
            stack.extend(item)
        elif isinstance(item, PClass):
            stack.extend(item.serialize().values())
        else:
            raise TypeError(
                f"a snapshot must be immutable plain data (pyrsistent, tuple, frozenset, "
                f"str, int, float, bool, None, bytes); got {type(item).__name__}: {item!r}"
            )


@dataclass(frozen=True, slots=True)
class Migration:
    """A snapshot converted ahead of time by a reload (``migrate(source, old_version)``)."""

    source: Any
    old_version: int
    version: int
    result: Any


class PathStore:
    """Snapshots and start counts, by path. They belong to the path, not to one
    incarnation: they survive restarts of the child and of its supervisors.

    ``versions`` holds the ``state_version`` of the incarnation that last started
    at a path (absent: 0), so the snapshot it saved can be converted when a
    reload changes the version; ``migrations`` holds conversions a reload
    computed ahead of time, installed at the child's next start.
    """

    __slots__ = ("migrations", "snapshots", "starts", "versions")

    def __init__(self) -> None:
        self.snapshots: dict[tuple[str, ...], Any] = {}
        self.starts: dict[tuple[str, ...], int] = {}
        self.versions: dict[tuple[str, ...], int] = {}
        self.migrations: dict[tuple[str, ...], Migration] = {}

    def snapshot(self, path: tuple[str, ...], default: Any) -> Any:
        return self.snapshots.get(path, default)

    def save(self, path: tuple[str, ...], value: Any) -> None:
        """Keep ``value`` as the snapshot of ``path``; ``TypeError`` unless it is
        immutable plain data (:func:`check_immutable`)."""
        check_immutable(value)
        self.snapshots[path] = value

    def count_start(self, path: tuple[str, ...]) -> int:
        n = self.starts.get(path, 0) + 1
        self.starts[path] = n
        return n

    def prepare_start(self, path: tuple[str, ...], version: int, migrate: Callable[[Any, int], Any] | None) -> None:
        """Before a child of ``state_version`` ``version`` starts at ``path``:
        convert the snapshot saved under another version with ``migrate`` (the
        conversion a reload computed, if the snapshot has not changed since),
        or drop it without ``migrate``. Raises what ``migrate`` raises (then
        nothing changed: the start fails, and a later reload can still convert it).
        """
        old_version = self.versions.get(path, 0)
        if old_version == version:
            return  # the common case: nothing to migrate
        snapshots = self.snapshots
        if path in snapshots:
            pending = self.migrations.get(path)
            if migrate is None:
                del snapshots[path]
            elif (
                pending is not None
                and pending.source is snapshots[path]
                and (pending.old_version, pending.version) == (old_version, version)
            ):
                snapshots[path] = pending.result
            else:
                result = migrate(snapshots[path], old_version)
                check_immutable(result)
                snapshots[path] = result
        self.migrations.pop(path, None)
        if version:
            self.versions[path] = version
        else:
            self.versions.pop(path, None)

    def forget(self, path: tuple[str, ...], *, subtree: bool = False) -> None:
        """Drop what is kept for ``path`` (and, with ``subtree``, every path below it)."""
        tables: tuple[dict[tuple[str, ...], Any], ...] = (self.snapshots, self.starts, self.versions, self.migrations)
        for table in tables:
            table.pop(path, None)
        if subtree:
            depth = len(path)
            for table in tables:
                for key in [k for k in table if len(k) > depth and k[:depth] == path]:
                    del table[key]


def plan_migrations(
    plan: Plan, snapshots: Mapping[Path, Any], versions: Mapping[Path, int]
) -> tuple[dict[Path, Migration], tuple[Path, ...]]:
    """Convert, ahead of time, the snapshots of the children a plan (re)starts
    whose ``state_version`` changed; which snapshots are reset for want of a
    ``migrate``. A ``migrate`` that raises (or returns mutable data) raises
    ``ReloadError``, so the reload is rejected before anything changed.

    Nothing is written: the conversion is installed when the child next starts
    (:meth:`PathStore.prepare_start`), so a snapshot the old incarnation saves
    while it stops is converted too.
    """
    migrations: dict[Path, Migration] = {}
    reset: list[Path] = []
    for path, spec in plan.starting():
        old_version = versions.get(path, 0)
        if spec.kind == "supervisor" or old_version == spec.state_version or path not in snapshots:
            continue
        if spec.migrate is None:
            reset.append(path)
            continue
        source = snapshots[path]
        try:
            result = spec.migrate(source, old_version)
            check_immutable(result)
        except Exception as exc:
            message = f"migrate from state_version {old_version} to {spec.state_version} failed: {exc!r}"
            raise ReloadError(message, path=path) from exc
        migrations[path] = Migration(source, old_version, spec.state_version, result)
    return migrations, tuple(reset)
