"""Lifecycle states and what ``which_children()`` and ``count_children()`` report.

``Status`` is a child's state, ``Phase`` a supervisor's own; ``ChildInfo`` and
``ChildCounts`` are plain values, built by the runtime and by the simulator alike.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from .leader import Role
from .spec import Kind


class Status(enum.StrEnum):
    """A child's lifecycle state, as ``ChildInfo.status`` shows it.

    >>> import supervision as sv
    >>> [status.value for status in sv.Status]
    ['starting', 'running', 'restarting', 'stopping', 'terminated']
    """

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    TERMINATED = "terminated"


class Health(enum.StrEnum):
    """A running child's health, as ``ChildInfo.health`` shows it (with a ``health=`` probe)."""

    UNKNOWN = "unknown"
    """No probe result counted yet."""
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    """It failed ``failures`` probes in a row: it is being restarted."""


class Phase(enum.Enum):
    """The supervisor's own lifecycle."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child as ``which_children()`` reports it.

    >>> import asyncio, supervision as sv
    >>> async def w(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("w", w)])) as tree:
    ...         info = tree.which_children()[0]
    ...         print(info.id, info.kind, info.status, info.starts, info.pid)
    >>> asyncio.run(main())
    w worker running 1 None
    """

    id: str
    kind: Kind
    status: Status
    starts: int
    pid: int | None = None
    health: Health | None = None
    """For a running child with a ``health=`` probe (see :class:`Health`); else None."""
    role: Role | None = None
    """For a running leader-gated supervisor (``leader=``): ``"leader"`` or ``"standby"``."""
    fence: int | None = None
    """For a leader: the fencing token of its term."""


class IntensityFill(NamedTuple):
    """``Handle.intensity()``: restarts within the last ``period`` seconds, against ``intensity``."""

    restarts: int
    intensity: int
    period: float


class ChildCounts(NamedTuple):
    """``count_children()``: specs, active (running), supervisors, workers (processes included).

    >>> import asyncio, supervision as sv
    >>> async def w(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     spec = sv.Supervisor([sv.child("a", w), sv.child("db", sv.Supervisor([sv.child("b", w)]))])
    ...     async with sv.start(spec) as tree:
    ...         print(tree.count_children())
    >>> asyncio.run(main())
    ChildCounts(specs=2, active=2, supervisors=1, workers=1)
    """

    specs: int
    active: int
    supervisors: int
    workers: int
