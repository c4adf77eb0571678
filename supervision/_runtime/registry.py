"""The registry: values published by workers, found by path or by name.

Erlang's registered names and Elixir's ``Registry``, for a tree of asyncio
workers: ``ctx.register(value)`` publishes a value (a queue, a client, an object
with methods) under the worker's path, ``ctx.register(value, name="orders")``
under a name unique across the tree. ``tree.whereis(key)`` returns the value of
the *current* incarnation or None; ``await tree.wait_for(key)`` waits until one
is there.

A value belongs to the incarnation that registered it (its owner, the worker's
context): it becomes visible once that incarnation has started (for a
``ready=True`` worker, once it called ``ctx.ready()``), and it is dropped, in
the same callback that learns the incarnation ended, before its supervisor hears
of the exit. So a caller never gets a dead incarnation's object, and a restart
never serves the old value to someone waiting for the new one.

Keys: a tuple, or a string with ``/``, is a path; a plain string is a name if
one is registered under it, else the path of a child of the root.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

from .._core.errors import AlreadyPresent, SupervisorNotRunning
from .._core.paths import Path, format_path

Key = str | Path
_Task = asyncio.Future[Any]


class _Entry:
    __slots__ = ("key", "owner", "path", "value")

    def __init__(self, owner: Hashable, key: str | Path, path: Path, value: Any) -> None:
        self.owner = owner
        self.key = key
        self.path = path
        self.value = value


class Registry:
    """The values registered in one tree. Single-threaded (the event loop's)."""

    def __init__(self) -> None:
        self._entries: dict[str | Path, _Entry] = {}
        self._owned: dict[Hashable, list[_Entry]] = {}
        self.owners = self._owned
        """The owners that registered something, with their entries: when it is
        empty, :meth:`started` and :meth:`ended` have nothing to do (a worker's
        start and exit skip the calls)."""
        self._live: dict[Hashable, _Task | None] = {}
        self._waiters: dict[str | Path, list[asyncio.Future[_Entry]]] = {}
        self._closed: BaseException | None = None

    def __len__(self) -> int:
        return len(self._entries)

    # -- the owner's side (a worker's context) ---------------------------------------

    def register(
        self,
        owner: Hashable,
        path: Path,
        value: Any,
        name: str | None = None,
        *,
        live: bool = False,
        task: _Task | None = None,
    ) -> None:
        """Publish ``value`` for ``owner`` (at ``path``) under its path, or under
        ``name``. Registering again under the same key replaces the value; a
        name held by another incarnation is ``AlreadyPresent``. An owner that
        has ended must not call this (its value would be stale at once): the worker's
        context checks that it is alive first. ``live``: the owner has started
        already (:meth:`started` was called before it owned anything), running ``task``."""
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"a registered name is a non-empty string without '/', got {name!r}")
        if self._closed is not None:
            return
        key: str | Path = path if name is None else name
        existing = self._entries.get(key)
        if existing is not None and existing.owner is not owner:
            holder = format_path(existing.path)
            raise AlreadyPresent(f"name {name!r} is registered already (by {holder})")
        if existing is not None:
            existing.value = value
        else:
            entry = self._entries[key] = _Entry(owner, key, path, value)
            self._owned.setdefault(owner, []).append(entry)
        if live and owner not in self._live and (task is None or not task.done()):
            self._live[owner] = task
        if owner in self._live:
            self._wake(key)

    def unregister(self, owner: Hashable, path: Path, name: str | None = None) -> None:
        """Withdraw what ``owner`` registered under its path, or under ``name``."""
        key: str | Path = path if name is None else name
        entry = self._entries.get(key)
        if entry is not None and entry.owner is owner:
            del self._entries[key]
            self._owned[owner].remove(entry)

    def started(self, owner: Hashable, task: _Task | None = None) -> None:
        """``owner``'s incarnation has started: what it registered is visible.
        Once ``task`` is done it is not, even before :meth:`ended` is called
        (a task's done-callbacks run a loop turn after it finished).

        Only owners that registered something are tracked (one that registers
        later says it is live then): starting a worker that registers nothing
        costs nothing here."""
        owned = self._owned.get(owner)
        if owned is None or (task is not None and task.done()):
            return
        self._live[owner] = task
        for entry in owned:
            self._wake(entry.key)

    def ended(self, owner: Hashable) -> None:
        """``owner``'s incarnation has ended: drop everything it registered."""
        if not self._owned:  # nothing registered at all (a live owner always owns a list)
            return
        self._live.pop(owner, None)
        for entry in self._owned.pop(owner, ()):
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]

    # -- the callers' side ------------------------------------------------------------

    def _visible(self, entry: _Entry | None) -> bool:
        if entry is None or entry.owner not in self._live:
            return False
        task = self._live[entry.owner]
        if task is not None and task.done():  # finished; its done-callback has not run yet
            self.ended(entry.owner)
            return False
        return True

    def _find(self, candidates: tuple[str | Path, ...]) -> _Entry | None:
        for candidate in candidates:
            entry = self._entries.get(candidate)
            if self._visible(entry):
                return entry
        return None

    def whereis(self, key: Key) -> Any:
        """The value of the current incarnation under ``key``, or None."""
        entry = self._find(_candidates(key))
        return None if entry is None else entry.value

    async def wait_for(self, key: Key) -> Any:
        """The value under ``key``, once registered by a started incarnation
        that is still running when the caller resumes."""
        candidates = _candidates(key)
        while True:
            entry = self._find(candidates)
            if entry is not None:
                return entry.value
            if self._closed is not None:
                raise SupervisorNotRunning("the tree has stopped")
            future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
            for candidate in candidates:
                self._waiters.setdefault(candidate, []).append(future)
            try:
                await future  # then look again: it may have ended meanwhile
            finally:
                for candidate in candidates:
                    waiting = self._waiters.get(candidate)
                    if waiting is not None:
                        if future in waiting:
                            waiting.remove(future)
                        if not waiting:
                            del self._waiters[candidate]

    def close(self) -> None:
        """The tree has stopped: nothing is registered any more, waiters fail."""
        self._closed = SupervisorNotRunning("the tree has stopped")
        self._entries.clear()
        self._owned.clear()
        self._live.clear()
        for waiting in self._waiters.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(SupervisorNotRunning("the tree has stopped"))
        self._waiters.clear()

    def _wake(self, key: str | Path) -> None:
        entry = self._entries[key]
        for future in self._waiters.pop(key, ()):
            if not future.done():
                future.set_result(entry)


def _candidates(key: Key) -> tuple[str | Path, ...]:
    if isinstance(key, tuple):
        return (key,)
    if not isinstance(key, str):
        raise TypeError(f"a registry key is a path or a name, got {key!r}")
    if "/" in key:
        return (tuple(part for part in key.split("/") if part),)
    return (key, (key,)) if key else ((),)
