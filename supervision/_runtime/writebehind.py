"""The write-behind buffer of the durable stores (SQLite, etcd)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Mapping

from .._core.codec import decode, encode
from .._core.store import Fence, Path, Record, SnapshotStore, SnapshotTooLarge, StaleFence, StoreError

log = logging.getLogger("supervision.stores")


class WriteBehindStore(SnapshotStore):
    """A store that encodes at ``stage`` and writes in batches.

    The latest change per path waits in ``_pending``; ``flush_interval`` after
    the first change of a batch, a flusher task takes the whole batch and
    writes it with ``_write`` (one transaction). Saves made while a batch is
    being written wait for the next one, so a path saved every millisecond is
    written once per interval, and a crash loses at most the changes of the
    last ``flush_interval`` (plus the time of the write under way).
    """

    validates = True  # the codec refuses what is not immutable plain data

    def __init__(self, *, flush_interval: float, max_bytes: int | None) -> None:
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0, got {flush_interval!r}")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive or None, got {max_bytes!r}")
        self.flush_interval = flush_interval
        self.max_bytes = max_bytes
        self._pending: dict[Path, tuple[bytes | None, Fence | None]] = {}
        self._writing: dict[Path, tuple[bytes | None, Fence | None]] = {}
        self._dirty: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.failed_writes = 0
        """Batches whose write failed (kept staged and retried, or dropped if stale)."""

    # -- the backend ---------------------------------------------------------------

    @abc.abstractmethod
    async def _write(self, batch: Mapping[Path, tuple[bytes | None, Fence | None]]) -> None:
        """Write one batch: bytes to store, or None to delete. Raise ``StaleFence``
        for a batch that must be dropped; any other error keeps it staged."""

    @abc.abstractmethod
    async def _read(self, path: Path) -> bytes | None: ...

    @abc.abstractmethod
    async def _read_all(self) -> dict[Path, bytes]: ...

    @abc.abstractmethod
    async def _clear(self) -> None: ...

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    # -- the interface -------------------------------------------------------------

    async def open(self) -> None:
        self._dirty = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._hurry = asyncio.Event()
        await self._open()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name=f"flush {self!r}")

    close_timeout: float = 10.0
    """How long ``close`` waits for the last batch before giving it up (logged)."""

    async def close(self) -> None:
        if self._closed:
            return
        try:
            if self._flusher is not None:
                try:
                    async with asyncio.timeout(self.close_timeout):
                        await self.flush()
                except TimeoutError:
                    log.error("%r: %d snapshot(s) not written at close", self, len(self._pending) + len(self._writing))
        finally:
            self._closed = True
            if self._flusher is not None:
                self._flusher.cancel()
                await asyncio.wait([self._flusher])
                self._flusher = None
            await self._close()

    def stage(self, path: Path, record: Record | None, *, fence: Fence | None = None) -> None:
        if self._closed or self._dirty is None:
            raise StoreError(f"{self!r} is not open")
        if record is None:
            data = None
        else:
            data = encode(record.value, record.state_version)
            if self.max_bytes is not None and len(data) > self.max_bytes:
                raise SnapshotTooLarge(path, len(data), self.max_bytes)
        self._pending[path] = (data, fence)
        assert self._idle is not None
        self._idle.clear()
        self._dirty.set()

    async def get(self, path: Path) -> Record | None:
        for table in (self._pending, self._writing):
            if path in table:
                data = table[path][0]
                return None if data is None else Record(*decode(data))
        data = await self._read(path)
        return None if data is None else Record(*decode(data))

    async def items(self) -> Mapping[Path, Record]:
        stored = await self._read_all()
        for table in (self._writing, self._pending):
            for path, (data, _) in table.items():
                if data is None:
                    stored.pop(path, None)
                else:
                    stored[path] = data
        return {path: Record(*decode(data)) for path, data in stored.items()}

    async def flush(self) -> None:
        if self._idle is None or self._flusher is None:
            return
        if self._pending or self._writing:
            assert self._hurry is not None
            self._hurry.set()
            await self._idle.wait()

    async def clear(self) -> None:
        self._pending.clear()
        await self._clear()

    # -- the flusher -----------------------------------------------------------------

    _hurry: asyncio.Event | None = None

    async def _flush_loop(self) -> None:
        # A save only sets ``_dirty``, which wakes this task once per batch (not
        # once per save: ctx.save must stay cheap); ``flush()`` sets ``_hurry``
        # to cut the gathering short.
        assert self._dirty is not None and self._idle is not None and self._hurry is not None
        hurry = self._hurry
        while True:
            await self._dirty.wait()
            if not hurry.is_set() and self.flush_interval > 0:
                # Gather the saves of one interval into one batch.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_interval):
                        await hurry.wait()
            self._dirty.clear()
            hurry.clear()
            if not self._pending:
                self._idle.set()
                continue
            self._writing, self._pending = self._pending, {}
            try:
                await self._write(self._writing)
            except StaleFence as exc:
                self.failed_writes += 1
                log.warning("%r: dropped %d fenced change(s): %s", self, len(self._writing), exc)
            except Exception:
                self.failed_writes += 1
                log.exception("%r: writing %d snapshot(s) failed; retrying", self, len(self._writing))
                for path, change in self._writing.items():
                    self._pending.setdefault(path, change)
                self._writing = {}
                self._dirty.set()
                # Do not spin on a store that keeps failing.
                await asyncio.sleep(max(self.flush_interval, 0.1))
                continue
            self._writing = {}
            if self._pending:
                self._dirty.set()
            else:
                self._idle.set()
