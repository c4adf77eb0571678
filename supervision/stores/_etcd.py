"""The etcd store: snapshots shared by the roots of several hosts.

Each snapshot is one key, ``<prefix><path>``, holding the codec's JSON. A batch
of saves is one transaction (split in chunks of ``_TXN_OPS`` operations, etcd's
default limit is 128). A fenced batch (saves of a leader-gated supervisor's
children) carries a comparison: the election key must still have the
``create_revision`` of the fence, so a leader that lost its lease while paused
cannot overwrite what its successor saved: etcd refuses the whole transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._core.store import DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_BYTES, Fence, Path, StaleFence
from .._etcd import EtcdClient, b64, unb64
from .._runtime.writebehind import WriteBehindStore

_TXN_OPS = 100


def _range_end(prefix: bytes) -> bytes:
    """The key just past every key that starts with ``prefix`` (etcd's prefix range)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


class EtcdStore(WriteBehindStore):
    """Snapshots under a key prefix of an etcd cluster; see :func:`etcd`."""

    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str,
        *,
        flush_interval: float,
        max_bytes: int | None,
        timeout: float,
    ) -> None:
        super().__init__(flush_interval=flush_interval, max_bytes=max_bytes)
        if not prefix:
            raise ValueError("the etcd store needs a non-empty key prefix")
        self.endpoints = tuple(endpoints)
        self.prefix = prefix
        self._prefix = prefix.encode()
        self._timeout = timeout
        self._client: EtcdClient | None = None

    def __repr__(self) -> str:
        return f"<EtcdStore {self.prefix!r} on {','.join(self.endpoints)}>"

    def _key(self, path: Path) -> bytes:
        return self._prefix + "/".join(path).encode()

    def _etcd(self) -> EtcdClient:
        if self._client is None:
            self._client = EtcdClient(self.endpoints, timeout=self._timeout)
        return self._client

    async def _close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def _write(self, batch: Mapping[Path, tuple[bytes | None, Fence | None]]) -> None:
        groups: dict[Fence | None, list[dict[str, Any]]] = {}
        for path, (data, fence) in batch.items():
            key = b64(self._key(path))
            if data is None:
                op: dict[str, Any] = {"request_delete_range": {"key": key}}
            else:
                op = {"request_put": {"key": key, "value": b64(data)}}
            groups.setdefault(fence, []).append(op)
        stale: list[str] = []
        for fence, ops in groups.items():
            compare = []
            if fence is not None:
                compare = [
                    {
                        "key": b64(fence.key),
                        "target": "CREATE",
                        "result": "EQUAL",
                        "create_revision": str(fence.revision),
                    }
                ]
            for start in range(0, len(ops), _TXN_OPS):
                # Repeating a put or a delete is harmless, so a retry on another
                # endpoint after a timeout is safe.
                answer = await self._etcd().call(
                    "kv/txn", {"compare": compare, "success": ops[start : start + _TXN_OPS]}
                )
                if not answer.get("succeeded", False):
                    assert fence is not None
                    stale.append(f"fence {fence.revision} on {fence.key!r} no longer holds")
                    break
        if stale:
            raise StaleFence("; ".join(stale))

    async def _read(self, path: Path) -> bytes | None:
        answer = await self._etcd().call("kv/range", {"key": b64(self._key(path))})
        kvs = answer.get("kvs") or []
        return unb64(kvs[0].get("value")) if kvs else None

    async def _read_all(self) -> dict[Path, bytes]:
        answer = await self._etcd().call(
            "kv/range", {"key": b64(self._prefix), "range_end": b64(_range_end(self._prefix))}
        )
        found: dict[Path, bytes] = {}
        for kv in answer.get("kvs") or []:
            name = unb64(kv.get("key"))[len(self._prefix) :].decode()
            found[tuple(name.split("/"))] = unb64(kv.get("value"))
        return found

    async def _clear(self) -> None:
        await self._etcd().call(
            "kv/deleterange", {"key": b64(self._prefix), "range_end": b64(_range_end(self._prefix))}
        )


def etcd(
    endpoints: Sequence[str],
    prefix: str = "/supervision/snapshots/",
    *,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    timeout: float = 2.0,
) -> EtcdStore:
    """A store shared between hosts: snapshots are keys under ``prefix`` in etcd.

    ``endpoints`` are the client URLs of the cluster's members. Saves are
    written in batches, like :func:`sqlite`'s, at most ``flush_interval`` after
    they are made. Needs the ``supervision[etcd]`` extra (aiohttp).

    >>> store = etcd(["http://10.0.0.1:2379", "http://10.0.0.2:2379"], prefix="/myapp/snapshots/")
    """
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    return EtcdStore(endpoints, prefix, flush_interval=flush_interval, max_bytes=max_bytes, timeout=timeout)
