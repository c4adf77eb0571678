"""Signal handlers that a storm of other signals cannot lose.

``loop.add_signal_handler`` learns which signal came from the bytes its C handler
writes to the loop's wakeup socket, one per delivery. That socket holds a few
hundred of them: when a thousand children exit while the loop is busy, the
SIGCHLD bytes fill it, the bytes that do not fit are dropped ("Exception ignored
when trying to write to the signal wakeup fd", once per signal, on stderr), and
a SIGTERM among them is never dispatched — the supervisor would not stop.

:func:`add_signal_handler` schedules the callback from the signal's own
Python-level handler instead, which CPython runs in the main thread for every
signal that was *tripped* (a flag per signal, never dropped), and keeps
asyncio's registration for the rest: the wakeup socket still wakes the loop out
of ``epoll_wait`` (a full socket is readable, so a dropped byte loses no
wake-up), and ``loop.remove_signal_handler`` undoes both. The socket's bytes for
such a signal run a no-op. :func:`quiet_wakeup` stops the warning per dropped
byte, which says nothing the supervisor needs to hear.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any


def add_signal_handler(
    loop: asyncio.AbstractEventLoop, signum: int, callback: Callable[..., object], *args: Any
) -> None:
    """As ``loop.add_signal_handler(signum, callback, *args)``, main thread only,
    but never lost to a full wakeup socket (see the module's docstring). Removed
    with ``loop.remove_signal_handler(signum)``."""
    loop.add_signal_handler(signum, _nothing)  # the wakeup fd and asyncio's bookkeeping

    def tripped(received: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback, *args)

    signal.signal(signum, tripped)
    signal.siginterrupt(signum, False)  # as asyncio has it: system calls restart
    quiet_wakeup()


def quiet_wakeup() -> None:
    """No warning on stderr for each signal whose byte the full wakeup socket
    could not take (asyncio sets it with the warning on, at each handler it adds)."""
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(fd, warn_on_full_buffer=False)


def _nothing() -> None:
    pass
