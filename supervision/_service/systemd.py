"""systemd integration for ``sv.run``: sd_notify messages and watchdog pings.

When ``NOTIFY_SOCKET`` is set (``Type=notify`` or ``Type=notify-reload``), the
root tells systemd ``READY=1`` once the tree is up, ``RELOADING=1`` (with
``MONOTONIC_USEC``, as ``Type=notify-reload`` requires) and ``READY=1`` around
a reload, ``STOPPING=1`` when it begins to stop, and ``STATUS=...`` lines that
``systemctl status`` shows. When ``WATCHDOG_USEC`` is set (``WatchdogSec=``), it
sends ``WATCHDOG=1`` every half period from the event loop, so a wedged loop
stops the pings and systemd restarts the service.

No libsystemd: the protocol is one datagram per message on a unix socket
(``@`` at the start of the address means the abstract namespace).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

logger = logging.getLogger("supervision")


class Notifier:
    """Sends sd_notify messages; does nothing when ``NOTIFY_SOCKET`` is unset."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self._target = ""
        self._warned = False
        if address:
            self._target = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @classmethod
    def from_environ(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *assignments: str) -> None:
        """Send ``KEY=VALUE`` lines in one datagram. Failures are logged once, never raised."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(assignments).encode(), self._target)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                logger.warning("sd_notify to %s failed: %s", self.address, exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None if not asked for
    (or asked of another process: ``WATCHDOG_PID``)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        logger.warning("WATCHDOG_USEC=%r is not a number; no watchdog pings", usec)
        return None
    return value / 2e6 if value > 0 else None


class Watchdog:
    """Pings ``WATCHDOG=1`` at a fixed interval from the event loop (a timer, no task)."""

    def __init__(self, notifier: Notifier, interval: float) -> None:
        self.notifier = notifier
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._ping()

    def _ping(self) -> None:
        self.notifier.send("WATCHDOG=1")
        self._handle = asyncio.get_running_loop().call_later(self.interval, self._ping)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
