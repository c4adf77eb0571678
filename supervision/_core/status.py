"""Lifecycle states and what ``which_children()`` and ``count_children()`` report.

``Status`` is a child's state, ``Phase`` a supervisor's own; ``ChildInfo`` and
``ChildCounts`` are plain values, built by the runtime and by the simulator alike.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from .spec import Kind


class Status(enum.StrEnum):
    """A child's lifecycle state, as ``ChildInfo.status`` shows it."""

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
    """One child as ``which_children()`` reports it."""

    id: str
    kind: Kind
    status: Status
    starts: int
    pid: int | None = None
    health: Health | None = None
    """For a running child with a ``health=`` probe (see :class:`Health`); else None."""


class ChildCounts(NamedTuple):
    """``count_children()``: specs, active (running), supervisors, workers (processes included)."""

    specs: int
    active: int
    supervisors: int
    workers: int
