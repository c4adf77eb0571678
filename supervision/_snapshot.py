"""Snapshots: the immutable state a child saves with ``ctx.save``.

A snapshot belongs to the child's path, not to one incarnation, so it must be
plain immutable data that can outlive the code that made it (and be serialised
for re-exec).
"""

from __future__ import annotations

from typing import Any

from pyrsistent import PBag, PClass, PDeque, PList, PMap, PSet, PVector

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


class PathStore:
    """Snapshots and start counts, by path. They belong to the path, not to one
    incarnation: they survive restarts of the child and of its supervisors."""

    __slots__ = ("snapshots", "starts")

    def __init__(self) -> None:
        self.snapshots: dict[tuple[str, ...], Any] = {}
        self.starts: dict[tuple[str, ...], int] = {}

    def snapshot(self, path: tuple[str, ...], default: Any) -> Any:
        return self.snapshots.get(path, default)

    def save(self, path: tuple[str, ...], value: Any) -> None:
        self.snapshots[path] = value

    def count_start(self, path: tuple[str, ...]) -> int:
        n = self.starts.get(path, 0) + 1
        self.starts[path] = n
        return n

    def forget(self, path: tuple[str, ...], *, subtree: bool = False) -> None:
        """Drop what is kept for ``path`` (and, with ``subtree``, every path below it)."""
        self.snapshots.pop(path, None)
        self.starts.pop(path, None)
        if subtree:
            depth = len(path)
            for table in (self.snapshots, self.starts):
                for key in [k for k in table if len(k) > depth and k[:depth] == path]:
                    del table[key]
