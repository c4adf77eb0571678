"""Typed events. Every event has the ``path`` of the child or supervisor it is
about (``()`` is the root) and the ``time`` of the tree's clock when it happened.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .paths import Path


class ExitReason(enum.StrEnum):
    """Why a child exited: ``"normal"``, ``"shutdown"`` or ``"crash"``."""

    NORMAL = "normal"
    SHUTDOWN = "shutdown"
    CRASH = "crash"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event."""

    path: Path
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildStarted(Event):
    """A child started (and is ready, where readiness was asked for)."""

    starts: int
    pid: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildExited(Event):
    """A child exited, by itself or because its supervisor stopped it.

    ``error`` is the exception that ended it (None for a normal exit). For an
    OS process, ``exit_status`` or ``signal`` tell how it ended.
    """

    reason: ExitReason
    error: BaseException | None = None
    exit_status: int | None = None
    signal: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildStartFailed(Event):
    """A start attempt failed; ``error`` says why (``StartError`` has the cause).

    ``reload`` is True when the start was a reload's (a changed or added child
    that failed to start with its new spec: it is retried as any other).
    """

    error: BaseException
    reload: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartScheduled(Event):
    """A restart (or retry) will happen after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorGaveUp(Event):
    """A supervisor exceeded its restart intensity; ``error`` is ``TooManyRestarts``."""

    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorStopped(Event):
    """A supervisor finished an orderly stop (its children are all stopped)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadApplied(Event):
    """A reload was applied: the paths started, stopped, restarted and updated in place.

    ``reset`` lists the paths whose snapshot was reset because ``state_version``
    changed and no ``migrate`` was given.
    """

    started: tuple[Path, ...] = ()
    stopped: tuple[Path, ...] = ()
    restarted: tuple[Path, ...] = ()
    updated: tuple[Path, ...] = ()
    reset: tuple[Path, ...] = field(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadRejected(Event):
    """A reload was rejected before anything changed; ``error`` says why."""

    error: BaseException


def describe(event: Event) -> str:
    """A one-line human description, used for logging."""
    where = "/".join(event.path) or "/"
    name = type(event).__name__
    details: dict[str, Any] = {}
    for f in getattr(type(event), "__dataclass_fields__", {}):
        if f not in ("path", "time"):
            value = getattr(event, f)
            if value is not False and value not in (None, ()):
                details[f] = value
    if not details:
        return f"{where}: {name}"
    text = ", ".join(f"{k}={v}" if k != "error" else f"error={v!r}" for k, v in details.items())
    return f"{where}: {name} {text}"
