"""The SQLite store: snapshots that survive the process, on one host.

One table, ``snapshots(path TEXT PRIMARY KEY, data BLOB)``, in WAL mode with
``synchronous=FULL``: a committed batch survives a crash of the process and of
the machine. Every call into SQLite runs on one dedicated thread (SQLite
connections belong to the thread that opened them), so the event loop never
waits for the disk; the write-behind buffer of :class:`WriteBehindStore` turns
thousands of saves a second into one transaction per ``flush_interval``.

What a hard crash (SIGKILL, power loss) loses: the saves of the last
``flush_interval`` (100 ms by default), plus those made during the write that
was under way, if any. ``close()`` (every orderly stop) writes everything.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .._core.store import DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_BYTES, Fence, Path, StoreError
from .._runtime.writebehind import WriteBehindStore

T = TypeVar("T")

_SCHEMA = "CREATE TABLE IF NOT EXISTS snapshots (path TEXT PRIMARY KEY NOT NULL, data BLOB NOT NULL) WITHOUT ROWID"


def _key(path: Path) -> str:
    # Ids never contain "/" (checked by the spec), so the written path is unambiguous.
    return "/".join(path)


def _path(key: str) -> Path:
    return tuple(key.split("/"))


class SqliteStore(WriteBehindStore):
    """Snapshots in a SQLite database file; see :func:`sqlite`."""

    def __init__(
        self, filename: str | os.PathLike[str], *, flush_interval: float, max_bytes: int | None, fresh: bool = False
    ) -> None:
        super().__init__(flush_interval=flush_interval, max_bytes=max_bytes)
        self.filename = os.fspath(filename)
        self.fresh = fresh
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<SqliteStore {self.filename}>"

    async def _call(self, function: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._db is None:
            raise StoreError(f"{self!r} is not open")
        db = self._db
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, db)

    async def _open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="supervision-sqlite")

        def connect() -> sqlite3.Connection:
            os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
            db = sqlite3.connect(self.filename, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA busy_timeout = 5000")
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"{self.filename}: SQLite refused WAL mode (got {mode!r})")
                db.execute("PRAGMA synchronous = FULL")
                db.execute(_SCHEMA)
                if self.fresh:
                    db.execute("DELETE FROM snapshots")
            except BaseException:
                db.close()
                raise
            return db

        loop = asyncio.get_running_loop()
        try:
            self._db = await loop.run_in_executor(self._executor, connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def _close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            assert self._executor is not None
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=False)

    async def _write(self, batch: Mapping[Path, tuple[bytes | None, Fence | None]]) -> None:
        # The batch is the flusher's until this returns (new saves go to another
        # dict), so the rows are built on the store's thread, not the event loop.
        def write(db: sqlite3.Connection) -> None:
            rows = [(_key(path), data) for path, (data, _) in batch.items() if data is not None]
            gone = [(_key(path),) for path, (data, _) in batch.items() if data is None]
            with db:  # one transaction: BEGIN ... COMMIT, or ROLLBACK on error
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT OR REPLACE INTO snapshots (path, data) VALUES (?, ?)", rows)
                db.executemany("DELETE FROM snapshots WHERE path = ?", gone)

        await self._call(write)

    async def _read(self, path: Path) -> bytes | None:
        def read(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT data FROM snapshots WHERE path = ?", (_key(path),)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._call(read)

    async def _read_all(self) -> dict[Path, bytes]:
        def read(db: sqlite3.Connection) -> dict[Path, bytes]:
            return {_path(key): bytes(data) for key, data in db.execute("SELECT path, data FROM snapshots")}

        return await self._call(read)

    async def _clear(self) -> None:
        def clear(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM snapshots")

        await self._call(clear)


def sqlite(
    filename: str | os.PathLike[str],
    *,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    fresh: bool = False,
) -> SqliteStore:
    """A durable store in the SQLite database ``filename`` (created if missing).

    Saves are written in batches, off the event loop, at most ``flush_interval``
    seconds after they are made, and all of them at every orderly stop. A hard
    crash loses at most the last ``flush_interval``. A snapshot whose encoded
    form (see :mod:`supervision.stores`) exceeds ``max_bytes`` is refused at
    ``ctx.save`` with :class:`SnapshotTooLarge`. With ``fresh``, the snapshots
    the file holds are forgotten when the store opens (``supervision run --fresh``).

    >>> store = sqlite("/var/lib/myapp/snapshots.db")
    """
    return SqliteStore(filename, flush_interval=flush_interval, max_bytes=max_bytes, fresh=fresh)
