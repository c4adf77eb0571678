"""Leases: who may run a leader-gated supervisor's children, across hosts.

>>> import supervision as sv
>>> lease = sv.lease.etcd("scheduler", ["http://10.0.0.1:2379"], ttl=10)

See docs/distributed.md for what a lease guarantees and what only the fencing
token (``ctx.fence``) does.
"""

from __future__ import annotations

from ._etcd import MIN_TTL, Election, EtcdLease, Term, boottime, etcd

__all__ = ["MIN_TTL", "Election", "EtcdLease", "Term", "boottime", "etcd"]
