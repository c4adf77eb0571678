"""Leader election on an etcd lease, with a fencing token per incarnation.

The recipe is etcd's own (``concurrency.Election``) reduced to one key:

- **campaign**: grant a lease of ``ttl`` seconds, then in one transaction create
  the election key ``<prefix><name>`` attached to that lease if no key exists.
  The revision that created the key is the **fencing token**: etcd revisions
  only grow, so every later leader holds a larger token than every earlier one.
  If the key exists, watch it until it is deleted (its holder resigned or its
  lease expired) and try again.
- **keep-alive**: renew the lease every ``(ttl - guard) / 3``. A renewal sent at local time
  ``t`` proves the lease lives until at least ``t + ttl`` on etcd (etcd renews it
  when the request arrives, after ``t``), so the term ends locally at
  ``t + ttl - guard``, whatever the network does: with ``guard`` the time the
  holder needs to stop what it runs, that is before etcd can grant the key to
  anyone else. A renewal answered with TTL 0 (lease gone) ends it at once.
- **resign**: revoke the lease, which deletes the key; a standby's watch fires.

Time is read from ``CLOCK_BOOTTIME`` by default, which keeps counting while the
machine is suspended, so a process resumed after a pause or a VM freeze sees at
once that its term is over. It still cannot stop anything while it is paused:
that is what the fencing token is for (docs/distributed.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .._etcd import EtcdClient, EtcdError, b64, unb64
from ..stores import EtcdStore, Fence

log = logging.getLogger("supervision.lease")

SNAPSHOT_PREFIX = "/supervision/snapshots/"
"""Where a lease's subtree keeps its snapshots: ``<this><lease name>/<path below>``."""

MIN_TTL = 2
"""The shortest lease accepted, in seconds (etcd's own floor with default timing)."""


def boottime() -> float:
    """Seconds on a clock that keeps counting through suspend (``CLOCK_BOOTTIME``)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True, slots=True)
class EtcdLease:
    """Which lease a leader-gated supervisor campaigns for; see :func:`etcd`.

    A plain value, so specs that hold it compare equal across reloads.
    """

    name: str
    endpoints: tuple[str, ...]
    ttl: int = 10
    prefix: str = "/supervision/leader/"
    timeout: float = field(default=1.0)

    @property
    def key(self) -> bytes:
        """The election key: whoever's lease it is attached to leads."""
        return (self.prefix + self.name).encode()

    def election(
        self, identity: str | None = None, *, guard: float = 0.0, now: Callable[[], float] = boottime
    ) -> Election:
        """A campaigner for this lease (one per root). ``guard``: seconds before
        the lease can expire at which a term counts as lost."""
        return Election(self, identity=identity, guard=guard, now=now)

    def snapshot_store(self) -> EtcdStore:
        """The store where the gated subtree keeps its snapshots, shared by every
        root that campaigns: ``/supervision/snapshots/<name>/`` on the same cluster."""
        return EtcdStore(
            self.endpoints, f"{SNAPSHOT_PREFIX}{self.name}/", flush_interval=0.1, max_bytes=1 << 20, timeout=2.0
        )


def etcd(
    name: str, endpoints: Sequence[str] | str, *, ttl: int = 10, prefix: str = "/supervision/leader/"
) -> EtcdLease:
    """A lease named ``name`` on the etcd cluster at ``endpoints``, held ``ttl``
    seconds past the holder's last keep-alive.

    >>> lease = etcd("billing-scheduler", ["http://10.0.0.1:2379", "http://10.0.0.2:2379"], ttl=10)
    """
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    if not name or not isinstance(name, str):
        raise ValueError(f"a lease needs a non-empty name, got {name!r}")
    if not endpoints:
        raise ValueError("a lease needs at least one etcd endpoint")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < MIN_TTL:
        raise ValueError(f"ttl must be a whole number of seconds >= {MIN_TTL} (etcd leases count seconds), got {ttl!r}")
    # One member may hold a request this long before the next one is tried.
    timeout = min(2.0, ttl / 6)
    return EtcdLease(name, tuple(url.rstrip("/") for url in endpoints), ttl, prefix, timeout)


class Term:
    """One incarnation of leadership: from winning the election to losing it.

    ``fence`` is the fencing token (an int that grows from term to term across
    the fleet); pass it to whatever the leader writes to, and have that reject
    any token smaller than the largest it has seen. ``held()`` says whether the
    term still holds *now*; check it before acting. ``await wait_lost()``
    returns when the term is over; ``reason`` then says why.
    """

    def __init__(self, key: bytes, fence: int, lease_id: int, valid_until: float, now: Callable[[], float]) -> None:
        self.key = key
        self.fence = fence
        self.lease_id = lease_id
        self.valid_until = valid_until
        """Local time (of ``now``) at which the lease may expire on etcd, minus the guard."""
        self.reason: str | None = None
        self._now = now
        self._lost = asyncio.Event()

    @property
    def token(self) -> Fence:
        """The fence as the stores take it: the election key and its revision."""
        return Fence(self.key.decode(), self.fence)

    def held(self) -> bool:
        """True while this term certainly holds the lease (by the local clock)."""
        if self._lost.is_set():
            return False
        if self._now() >= self.valid_until:
            self.end("the lease may have expired: no keep-alive was answered in time")
            return False
        return True

    def end(self, reason: str) -> None:
        if not self._lost.is_set():
            self.reason = reason
            self._lost.set()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    def __repr__(self) -> str:
        state = "held" if not self._lost.is_set() else f"lost: {self.reason}"
        return f"<Term fence={self.fence} lease={self.lease_id:x} {state}>"


class Election:
    """Campaigns for one :class:`EtcdLease` from this process.

    >>> async def singleton(lease):
    ...     election = lease.election(guard=1.0)
    ...     try:
    ...         while True:
    ...             term = await election.campaign()      # waits while another leads
    ...             ...                                   # lead, passing term.fence on
    ...             await term.wait_lost()
    ...     finally:
    ...         await election.close()                    # resigns
    """

    def __init__(
        self,
        lease: EtcdLease,
        *,
        identity: str | None = None,
        guard: float = 0.0,
        now: Callable[[], float] = boottime,
    ) -> None:
        if not 0 <= guard < lease.ttl:
            raise ValueError(f"guard must be in [0, ttl={lease.ttl}), got {guard!r}")
        self.lease = lease
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        self.guard = guard
        self._now = now
        self._client = EtcdClient(lease.endpoints, timeout=lease.timeout)
        self.term: Term | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._revoking: set[asyncio.Task[None]] = set()

    async def campaign(self) -> Term:
        """Wait until this process leads, and return the new term.

        Keeps trying through etcd failures (no quorum, members down), with a
        pause of a fraction of the ttl between tries.
        """
        if self.term is not None and self.term.held():
            return self.term
        await self._end_term("a new campaign began")
        key = self.lease.key
        while True:
            try:
                term, revision = await self._try_once(key)
            except EtcdError as exc:
                log.debug("campaign for %s: %s", self.lease.name, exc)
                await asyncio.sleep(self.lease.ttl / 6)
                continue
            if term is not None:
                self.term = term
                self._keeper = asyncio.get_running_loop().create_task(
                    self._keep_alive(term), name=f"keep-alive {self.lease.name}"
                )
                log.info("lease %s: leading with fence %d", self.lease.name, term.fence)
                return term
            # Someone else leads: wait for the key to go, but look again after a
            # while in case the watch missed it (a member died, quorum lost).
            await self._client.wait_deleted(key, revision + 1, timeout=self.lease.ttl)

    async def _try_once(self, key: bytes) -> tuple[Term | None, int]:
        sent = self._now()
        grant = await self._client.call("lease/grant", {"TTL": str(self.lease.ttl)})
        lease_id = int(grant["ID"])
        ttl = int(grant.get("TTL", self.lease.ttl))
        valid_until = sent + ttl - self.guard
        txn = {
            "compare": [{"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": {"key": b64(key), "value": b64(self.identity), "lease": str(lease_id)}}],
            "failure": [{"request_range": {"key": b64(key)}}],
        }
        try:
            answer = await self._client.call("kv/txn", txn)
        except BaseException:
            self._revoke_later(lease_id)
            raise
        revision = int(answer["header"]["revision"])
        if answer.get("succeeded"):
            return Term(key, revision, lease_id, valid_until, self._now), revision
        kvs = answer["responses"][0]["response_range"].get("kvs") or []
        if kvs and int(kvs[0].get("lease", 0)) == lease_id:
            # A retried transaction that had succeeded the first time.
            return Term(key, int(kvs[0]["create_revision"]), lease_id, valid_until, self._now), revision
        self._revoke_later(lease_id)
        if kvs:
            log.debug("lease %s: %s leads", self.lease.name, unb64(kvs[0].get("value")).decode(errors="replace"))
        return None, revision

    async def _keep_alive(self, term: Term) -> None:
        """Renew the lease every ttl/3 until the term ends; end it when the
        lease may expire before the next renewal is answered."""
        # Three renewals fit in what the guard leaves of the ttl, so one or two
        # lost or slow ones do not end the term.
        interval = (self.lease.ttl - self.guard) / 3
        next_renewal = self._now() + interval
        while term.held():
            delay = min(next_renewal, term.valid_until) - self._now()
            if delay > 0:
                # Wake at the renewal time, or when the term runs out.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await term.wait_lost()
                continue
            if not term.held():
                break
            sent = self._now()
            remaining = term.valid_until - sent
            try:
                # Each member gets at most lease.timeout; all of them together, what is left.
                async with asyncio.timeout(max(remaining, 0.01)):
                    answer = await self._client.call(
                        "lease/keepalive", {"ID": str(term.lease_id)}, timeout=min(self.lease.timeout, remaining)
                    )
            except (EtcdError, TimeoutError) as exc:
                log.warning("lease %s: keep-alive failed: %s", self.lease.name, exc)
                next_renewal = self._now() + min(interval / 4, 0.25)
                continue
            ttl = int(answer.get("result", {}).get("TTL", 0))
            if ttl <= 0:
                term.end("the lease expired or was revoked on etcd")
                break
            term.valid_until = max(term.valid_until, sent + ttl - self.guard)
            next_renewal = sent + interval
        level = logging.INFO if term.reason == "resigned" else logging.WARNING
        log.log(level, "lease %s: lost leadership (fence %d): %s", self.lease.name, term.fence, term.reason)
        self._revoke_later(term.lease_id)

    def _revoke_later(self, lease_id: int) -> None:
        """Revoke a lease in the background, best effort, until etcd answers or
        twice the ttl has passed (past that it has expired anyway)."""

        async def revoke() -> None:
            deadline = self._now() + 2 * self.lease.ttl
            while self._now() < deadline:
                try:
                    await self._client.call("lease/revoke", {"ID": str(lease_id)})
                    return
                except EtcdError as exc:
                    if exc.code == 5 or "not found" in str(exc):  # NOT_FOUND: already gone
                        return
                    await asyncio.sleep(min(0.5, self.lease.ttl / 6))

        task = asyncio.get_running_loop().create_task(revoke(), name=f"revoke lease {lease_id:x}")
        self._revoking.add(task)
        task.add_done_callback(self._revoking.discard)

    async def _end_term(self, reason: str) -> None:
        term, keeper = self.term, self._keeper
        self.term = self._keeper = None
        if term is not None:
            term.end(reason)
        if keeper is not None:
            await asyncio.wait([keeper])

    async def resign(self) -> None:
        """Give up the current term (if any): revoke its lease so a standby takes over."""
        term = self.term
        await self._end_term("resigned")
        if term is not None:
            with contextlib.suppress(EtcdError):
                await self._client.call("lease/revoke", {"ID": str(term.lease_id)})

    async def close(self) -> None:
        """Resign, give background revocations a moment, and close. A lease
        not revoked by then expires by itself within its ttl."""
        await self.resign()
        if self._revoking:
            _, late = await asyncio.wait(list(self._revoking), timeout=2 * self.lease.timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self._client.close()

    def __repr__(self) -> str:
        return f"<Election {self.lease.name} as {self.identity} term={self.term!r}>"
