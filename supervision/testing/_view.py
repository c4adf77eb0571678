"""What the simulator and the model are compared on: a plain-data view of a tree.

Both produce a :class:`TreeView` after every step; two views are equal when the
tree's children, their statuses, the start counts, the give-ups and the root's
exit agree. :func:`event_key` reduces an event to comparable data (errors are
compared by type and path, not by identity).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .._core.events import Event
from .._core.paths import Path, format_path


@dataclass(frozen=True)
class RootExit:
    """How the root finished: ``reason``, whether it never started, and the error's type."""

    reason: str
    start_failed: bool
    error: str | None


@dataclass(frozen=True)
class TreeView:
    """A comparable snapshot of a whole tree.

    ``supervisors`` maps the path of every running supervisor to its children in
    start order, each as ``(id, status, kind)``. ``starts`` is the start count of
    every path the tree remembers. ``gave_up`` lists the supervisors that gave up,
    in order. ``exit`` is how the root finished, or None while it runs.

    >>> import supervision as sv
    >>> from supervision.testing import Crash, Simulator
    >>> async def w(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("w", w)]))
    >>> sim.start(); before = sim.view(); sim.apply(Crash("w"))
    >>> [(id, status) for id, status, kind in before.supervisors[()]], sim.view().starts
    ([('w', 'running')], {('w',): 2})

    """

    supervisors: dict[Path, tuple[tuple[str, str, str], ...]]
    starts: dict[Path, int]
    gave_up: tuple[Path, ...]
    exit: RootExit | None

    def diff(self, other: TreeView, mine: str = "core", theirs: str = "model") -> str:
        """A readable account of where two views differ ("" if they agree)."""
        lines = []
        for path in sorted(set(self.supervisors) | set(other.supervisors)):
            a, b = self.supervisors.get(path), other.supervisors.get(path)
            if a != b:
                lines.append(f"children of {format_path(path)}: {mine} {_children(a)} != {theirs} {_children(b)}")
        for path in sorted(set(self.starts) | set(other.starts)):
            a_n, b_n = self.starts.get(path), other.starts.get(path)
            if a_n != b_n:
                lines.append(f"starts of {format_path(path)}: {mine} {a_n} != {theirs} {b_n}")
        if self.gave_up != other.gave_up:
            lines.append(f"gave up: {mine} {_paths(self.gave_up)} != {theirs} {_paths(other.gave_up)}")
        if self.exit != other.exit:
            lines.append(f"root exit: {mine} {self.exit} != {theirs} {other.exit}")
        return "\n".join(lines)


def _children(children: tuple[tuple[str, str, str], ...] | None) -> str:
    if children is None:
        return "(not running)"
    return "[" + ", ".join(f"{id}:{status}" for id, status, _ in children) + "]"


def _paths(paths: tuple[Path, ...]) -> str:
    return "[" + ", ".join(format_path(p) for p in paths) + "]"


def error_key(error: BaseException | None) -> Any:
    """An error as comparable data: its type name, and its ``.path`` if it has one."""
    if error is None:
        return None
    path = getattr(error, "path", None)
    return (type(error).__name__, path) if path is not None else type(error).__name__


def event_key(event: Event) -> tuple[Any, ...]:
    """An event as comparable data: type, path, time and fields, errors by :func:`error_key`."""
    fields = []
    for name in type(event).__dataclass_fields__:
        if name in ("path", "time"):
            continue
        value = getattr(event, name)
        fields.append((name, error_key(value) if isinstance(value, BaseException) else value))
    return (type(event).__name__, event.path, event.time, *fields)


def format_event(event: Event) -> str:
    """One line per event, for failing examples: ``1.5 a/b ChildExited reason=crash``.

    Fields left at their default value are not shown.

    >>> import supervision as sv
    >>> from supervision.testing import Advance, Crash, format_event, simulate
    >>> async def w(ctx): ...
    >>> for event in simulate(sv.Supervisor([sv.child("w", w)]), [Advance(1.5), Crash("w")]):
    ...     print(format_event(event))
    0 w ChildStarted starts=1
    1.5 w ChildExited reason=crash error=SimulatedCrash
    1.5 w ChildStarted starts=2

    """
    parts = [f"{event.time:g}", format_path(event.path), type(event).__name__]
    for field in dataclasses.fields(event):
        name = field.name
        if name in ("path", "time"):
            continue
        value = getattr(event, name)
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if value is None or value == () or (default is not dataclasses.MISSING and value == default):
            continue
        if isinstance(value, BaseException):
            value = error_key(value)
        parts.append(f"{name}={value}")
    return " ".join(parts)
