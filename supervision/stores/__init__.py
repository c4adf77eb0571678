"""Snapshot stores: where the snapshots children save with ``ctx.save`` outlive the tree.

>>> import supervision as sv
>>> store = sv.stores.sqlite("/var/lib/myapp/snapshots.db")

- :func:`memory` keeps them in the process (the default of ``sv.start``);
- :func:`sqlite` keeps them in a file on this host (the default of ``supervision run``);
- :func:`etcd` keeps them in an etcd cluster, shared between hosts (``supervision[etcd]``).

The durable stores hold the snapshot as JSON written by :mod:`supervision._core.codec`
(pyrsistent structures, tuples, frozensets, bytes and atoms; never pickle), refuse a
snapshot larger than ``max_bytes`` (1 MiB by default) with :class:`SnapshotTooLarge`,
and write saves in batches at most ``flush_interval`` (100 ms) after they are made.
See docs/distributed.md.
"""

from __future__ import annotations

from .._core.codec import CodecError, decode, encode
from .._core.store import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_BYTES,
    Fence,
    MemoryStore,
    Record,
    SnapshotStore,
    SnapshotTooLarge,
    StaleFence,
    StoreError,
    memory,
)
from .._service.sqlite import SqliteStore, sqlite
from ._etcd import EtcdStore, etcd

__all__ = [
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_MAX_BYTES",
    "CodecError",
    "EtcdStore",
    "Fence",
    "MemoryStore",
    "Record",
    "SnapshotStore",
    "SnapshotTooLarge",
    "SqliteStore",
    "StaleFence",
    "StoreError",
    "decode",
    "encode",
    "etcd",
    "memory",
    "sqlite",
]
