"""Typed events. Every event has the ``path`` of the child or supervisor it is
about (``()`` is the root) and the ``time`` of the tree's clock when it happened.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .paths import Path


class ExitReason(enum.StrEnum):
    """Why a child exited: ``"normal"``, ``"shutdown"`` or ``"crash"``.

    >>> import supervision as sv
    >>> sv.ExitReason.CRASH == "crash", [reason.value for reason in sv.ExitReason]
    (True, ['normal', 'shutdown', 'crash'])
    """

    NORMAL = "normal"
    SHUTDOWN = "shutdown"
    CRASH = "crash"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event.

    >>> import supervision as sv
    >>> from supervision.testing import Crash, simulate
    >>> async def w(ctx): ...
    >>> events = simulate(sv.Supervisor([sv.child("w", w)]), [Crash("w")])
    >>> all(isinstance(e, sv.Event) for e in events), [type(e).__name__ for e in events]
    (True, ['ChildStarted', 'ChildExited', 'ChildStarted'])
    """

    path: Path
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildStarted(Event):
    """A child started (and is ready, where readiness was asked for).

    >>> import supervision as sv
    >>> from supervision.testing import Crash, simulate
    >>> async def w(ctx): ...
    >>> [(e.path, e.starts) for e in simulate(sv.Supervisor([sv.child("w", w)]), [Crash("w")])
    ...  if isinstance(e, sv.ChildStarted)]
    [(('w',), 1), (('w',), 2)]
    """

    starts: int
    pid: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildExited(Event):
    """A child exited, by itself or because its supervisor stopped it.

    ``error`` is the exception that ended it (None for a normal exit). For an
    OS process, ``exit_status`` or ``signal`` tell how it ended.

    >>> import supervision as sv
    >>> from supervision.testing import Crash, simulate
    >>> async def w(ctx): ...
    >>> exited = simulate(sv.Supervisor([sv.child("w", w)]), [Crash("w")])[1]
    >>> exited.path, exited.reason, type(exited.error).__name__
    (('w',), <ExitReason.CRASH: 'crash'>, 'SimulatedCrash')

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

    >>> import supervision as sv
    >>> from supervision.testing import Crash, FailNextStart, simulate
    >>> async def w(ctx): ...
    >>> events = simulate(sv.Supervisor([sv.child("w", w)]), [FailNextStart("w"), Crash("w")])
    >>> failed = next(e for e in events if isinstance(e, sv.ChildStartFailed))
    >>> failed.path, type(failed.error).__name__, type(failed.error.__cause__).__name__
    (('w',), 'StartError', 'SimulatedStartFailure')

    """

    error: BaseException
    reload: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartScheduled(Event):
    """A restart (or retry) will happen after ``delay`` seconds.

    >>> import supervision as sv
    >>> from supervision.testing import Crash, simulate
    >>> async def w(ctx): ...
    >>> spec = sv.Supervisor([sv.child("w", w)], backoff=sv.Backoff(initial=1.0, jitter=0))
    >>> [(e.time, e.delay) for e in simulate(spec, [Crash("w")]) if isinstance(e, sv.RestartScheduled)]
    [(0.0, 1.0)]
    """

    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorGaveUp(Event):
    """A supervisor exceeded its restart intensity; ``error`` is ``TooManyRestarts``.

    >>> import supervision as sv
    >>> from supervision.testing import Crash, simulate
    >>> async def w(ctx): ...
    >>> events = simulate(sv.Supervisor([sv.child("w", w)], intensity=0), [Crash("w")])
    >>> gave_up = events[-1]
    >>> type(gave_up).__name__, gave_up.path, type(gave_up.error).__name__
    ('SupervisorGaveUp', (), 'TooManyRestarts')
    """

    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorStopped(Event):
    """A supervisor finished an orderly stop (its children are all stopped).

    >>> import supervision as sv
    >>> from supervision.testing import StopTree, simulate
    >>> async def w(ctx): ...
    >>> [type(e).__name__ for e in simulate(sv.Supervisor([sv.child("w", w)]), [StopTree()])]
    ['ChildStarted', 'ChildExited', 'SupervisorStopped']
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadApplied(Event):
    """A reload was applied: the paths started, stopped, restarted and updated in place.

    ``reset`` lists the paths whose snapshot was reset because ``state_version``
    changed and no ``migrate`` was given.

    >>> import asyncio, supervision as sv
    >>> async def v1(ctx):
    ...     await asyncio.Event().wait()
    >>> async def v2(ctx):
    ...     await asyncio.sleep(3600)
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("a", v1), sv.child("b", v1)])) as tree:
    ...         applied = await tree.update(sv.Supervisor([sv.child("a", v2), sv.child("c", v1)]))
    ...         print(applied.restarted, applied.stopped, applied.started)
    >>> asyncio.run(main())
    (('a',),) (('b',),) (('c',),)

    """

    started: tuple[Path, ...] = ()
    stopped: tuple[Path, ...] = ()
    restarted: tuple[Path, ...] = ()
    updated: tuple[Path, ...] = ()
    reset: tuple[Path, ...] = field(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadRejected(Event):
    """A reload was rejected before anything changed; ``error`` says why.

    >>> import asyncio, supervision as sv
    >>> async def main():
    ...     async with sv.start(sv.Supervisor()) as tree:
    ...         events = tree.events()
    ...         try:
    ...             await tree.reload()
    ...         except sv.ReloadError:
    ...             pass
    ...         async for event in events:
    ...             print(type(event).__name__, type(event.error).__name__)
    ...             break
    >>> asyncio.run(main())
    ReloadRejected ReloadError
    """

    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChanged(Event):
    """A child's health changed: ``healthy`` is True after the first passing
    probe (or the first after failures), False once it failed ``failures``
    probes in a row (then it is restarted). ``reason`` is the probe's.

    >>> HealthChanged(path=("web",), time=12.5, healthy=False, reason="HTTP/1.1 500").healthy
    False
    """

    healthy: bool
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderAcquired(Event):
    """A leader-gated supervisor's root won its lease; its children start now.
    ``fence`` is the term's fencing token (``ctx.fence``). See docs/distributed.md.

    >>> import supervision as sv
    >>> event = sv.LeaderAcquired(path=("singletons",), time=0.0, name="billing", fence=42)
    >>> event.fence
    42
    """

    name: str
    fence: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderLost(Event):
    """A leader-gated supervisor lost its lease (``reason``: the lease expired or
    was revoked, keep-alives went unanswered, or ``"stopped"``); its children
    were stopped, and it campaigns again unless it was stopped.

    >>> import supervision as sv
    >>> event = sv.LeaderLost(path=("singletons",), time=9.0, name="billing", fence=42, reason="stopped")
    >>> event.reason
    'stopped'
    """

    name: str
    fence: int
    reason: str


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
