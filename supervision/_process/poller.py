"""One epoll of our own per event loop, watched by the loop as a single reader: the
pidfds of process children and the read ends of their output pipes.

``loop.add_reader`` costs ~6 us (a ``Handle``, a ``SelectorKey``, a lookup that
raises ``KeyError`` for a new fd) and ``remove_reader`` ~3 us; each child adds three
(a pidfd, two pipes) as it starts and a restart adds and removes its pidfd. Here
an fd is one ``epoll_ctl`` and a dict entry (~1 us). When the loop sees the epoll
readable, :meth:`Poller._dispatch` polls it without waiting and calls each ready
fd's callback, as the loop would have (level-triggered: what a callback leaves
unread is reported again at the next turn).

An event polled in a batch may come after an earlier callback of the same batch
removed its fd, and the number may have been reused meanwhile: the callback then
found is called once for nothing. Every callback here reads or reaps without
blocking (``WNOHANG``, ``O_NONBLOCK``), so such a call finds nothing to do.

An fd closed without :meth:`Poller.remove` while another process held a copy of it
(a child forked without exec) would stay registered under its old number, where
it can no longer be unregistered, and wake the loop at every turn: an fd that is
reported in two polls in a row without a callback makes the poller start a new
epoll with the fds it watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import weakref
from collections.abc import Callable
from typing import Any

_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Poller] = weakref.WeakKeyDictionary()


def poller(loop: asyncio.AbstractEventLoop) -> Poller:
    """The poller of ``loop`` (made at first use)."""
    found = _pollers.get(loop)
    if found is None or found.closed:
        found = _pollers[loop] = Poller(loop)
    return found


class Poller:
    """An epoll of ours, registered with the loop as one reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._epoll = select.epoll()
        self._callbacks: dict[int, tuple[Callable[[Any], None], Any]] = {}
        self.closed = False
        self._strays: set[int] = set()  # fds the last poll reported without a callback
        self.generation = 0
        """How many times it was polled: exits reported by the same poll happened
        before it (see ``Reaper._unwatched_children``)."""
        loop.add_reader(self._epoll.fileno(), self._dispatch)
        self._finalizer = weakref.finalize(self, self._epoll.close)

    def add(self, fd: int, callback: Callable[[Any], None], argument: Any) -> None:
        """Call ``callback(argument)`` whenever ``fd`` is readable (or hung up)."""
        self._callbacks[fd] = (callback, argument)
        self._epoll.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        """Stop watching ``fd`` (before it is closed: a copy held elsewhere, in a
        child being spawned, would keep it registered)."""
        if self._callbacks.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):  # the fd closed (gone from the epoll), the epoll too
                self._epoll.unregister(fd)

    def _dispatch(self) -> None:
        self.generation += 1
        callbacks = self._callbacks
        strays: set[int] = set()
        for fd, _ in self._epoll.poll(0):
            found = callbacks.get(fd)
            if found is None:
                strays.add(fd)  # removed earlier in this batch, mostly
                continue
            try:
                found[0](found[1])
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # as the loop reports a callback's error, and goes on
                self.loop.call_exception_handler(
                    {"message": f"Exception in callback {found[0]!r} for fd {fd}", "exception": exc}
                )

        if strays & self._strays:
            self._renew()
        self._strays = strays

    def _renew(self) -> None:
        """A new epoll with the fds we watch, instead of one holding a registration
        we cannot remove (see the module's docstring)."""
        fresh = select.epoll()
        for fd in self._callbacks:
            with contextlib.suppress(OSError):  # closed already: its callback finds nothing
                fresh.register(fd, select.EPOLLIN)
        self.loop.remove_reader(self._epoll.fileno())
        self._finalizer()
        self._epoll = fresh
        self._finalizer = weakref.finalize(self, fresh.close)
        self.loop.add_reader(fresh.fileno(), self._dispatch)
        self._strays = set()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):  # the loop may be closed already
                self.loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
