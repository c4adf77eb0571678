"""Leader-gated supervisors: the pure rules (no asyncio, no I/O).

A supervisor with ``leader=`` runs its children only while its root holds the
lease. The rules, in one place:

- it starts as a **standby**: started at once for its parent, no children;
- when the lease is **acquired**, its children start (with the snapshots of the
  lease's shared store) under a new term;
- when the lease is **lost**, its children are stopped at once, right to left,
  and it campaigns again. It must be able to do that before etcd can grant the
  lease elsewhere, which :func:`check_leader` proves at spec construction: the
  time its children take to stop, plus a margin, must fit in the part of the
  ttl that a term keeps after the last renewal;
- when its children stop by themselves (it gave up, or auto_shutdown), it
  resigns and exits as any supervisor would: its parent decides what follows.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import Protocol

from .events import LeaderAcquired, LeaderLost
from .store import Fence, SnapshotStore

MARGIN = 1.0
"""Seconds of slack between the children being stopped and the lease expiring on etcd."""


class LeaderTerm(Protocol):
    """One incarnation of leadership (``supervision.lease.Term``)."""

    @property
    def fence(self) -> int: ...
    @property
    def token(self) -> Fence: ...
    @property
    def reason(self) -> str | None: ...
    def held(self) -> bool: ...
    async def wait_lost(self) -> None: ...


class LeaderElection(Protocol):
    """Campaigns for a lease from this process (``supervision.lease.Election``)."""

    async def campaign(self) -> LeaderTerm: ...
    async def resign(self) -> None: ...
    async def close(self) -> None: ...


class Lease(Protocol):
    """What ``leader=`` takes (``sv.lease.etcd(...)``): a value naming a lease, which
    makes elections and the store the gated subtree keeps its snapshots in. The
    runtime knows leases only through this protocol."""

    @property
    def name(self) -> str: ...
    @property
    def ttl(self) -> int: ...
    def election(self, identity: str | None = None, *, guard: float = 0.0) -> LeaderElection: ...
    def snapshot_store(self) -> SnapshotStore: ...


class Role(enum.StrEnum):
    """What a leader-gated supervisor is doing, as ``supervision status`` shows it."""

    STANDBY = "standby"
    LEADER = "leader"


def stop_time(shutdowns: Iterable[float]) -> float:
    """The longest a supervisor takes to stop children that stop one after
    another with these ``shutdown`` times (``math.inf`` for ``sv.INFINITY``)."""
    return math.fsum(shutdowns)


def guard(stop: float) -> float:
    """Seconds before the lease may expire at which a term is given up: the
    time to stop the children, plus :data:`MARGIN`."""
    return stop + MARGIN


def leader_problem(stop: float, ttl: int) -> str | None:
    """Why children that take ``stop`` seconds to stop cannot be gated by a
    lease of ``ttl`` seconds, or None if they can.

    A term renews its lease every ttl/3 and gives it up ``guard(stop)`` seconds
    before it may expire; so that one late renewal does not end every term,
    the guard must leave more than a renewal interval: ``guard < 2/3 ttl``.
    """
    limit = ttl * 2 / 3 - MARGIN
    if stop < limit:
        return None
    what = "never stop (sv.INFINITY)" if math.isinf(stop) else f"take up to {stop:g}s to stop"
    return (
        f"the children {what}; under a lease of ttl={ttl}s they must stop within {limit:g}s "
        f"(2/3 of the ttl minus a {MARGIN:g}s margin), before the lease can be granted elsewhere: "
        f"lower their shutdown or raise the ttl"
    )


__all__ = [
    "MARGIN",
    "LeaderAcquired",
    "LeaderElection",
    "LeaderLost",
    "LeaderTerm",
    "Lease",
    "Role",
    "guard",
    "leader_problem",
    "stop_time",
]
