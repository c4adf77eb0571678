"""The per-child ``NOTIFY_SOCKET`` of ``sv.ready.notify()`` (sd_notify protocol).

Each child with a notify check gets its own datagram socket in the abstract
namespace (``NOTIFY_SOCKET=@supervision/<random>``): nothing on disk to clean
up, even after a hard kill. Datagrams are read through the event loop. Since an
abstract name can be seen by anyone in the network namespace, a datagram counts
only if its sender (``SCM_CREDENTIALS``) runs as our user or root, or belongs
to the child's session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import struct
from collections.abc import Callable

from .proc import read_stat

logger = logging.getLogger("supervision")

_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class NotifySocket:
    """Receives ``READY=1``, ``STATUS=...`` and ``STOPPING=1`` from one child."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        label: str,
        on_ready: Callable[[], None],
        *,
        adopt: tuple[int, str] | None = None,
    ) -> None:
        """A new socket; with ``adopt=(fd, address)`` (re-exec), the bound socket
        the previous image of this process used, made close-on-exec again."""
        self.loop = loop
        self.label = label
        self.on_ready = on_ready
        self.leader = 0
        self.status: str | None = None
        """The last ``STATUS=`` the child sent."""
        self.stopping = False
        """True once the child sent ``STOPPING=1``."""
        self._uids = {os.geteuid(), 0}
        if adopt is not None:
            fd, self.address = adopt
            self._sock = socket.socket(fileno=fd)
            self._sock.set_inheritable(False)
            self._sock.setblocking(False)
        else:
            name = f"supervision/{secrets.token_hex(12)}"
            self.address = "@" + name
            """The value of ``NOTIFY_SOCKET`` for the child."""
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
                self._sock.bind("\0" + name)
            except OSError:
                self._sock.close()
                raise
        loop.add_reader(self._sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for _ in range(64):  # a bounded batch per wake-up
            try:
                data, ancillary, _, _ = self._sock.recvmsg(4096, socket.CMSG_SPACE(_CREDENTIALS.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if self._accepted(ancillary):
                self._handle(data)

    def _accepted(self, ancillary: list[tuple[int, int, bytes]]) -> bool:
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= _CREDENTIALS.size:
                pid, uid, _ = _CREDENTIALS.unpack_from(payload)
                if uid in self._uids or pid == self.leader:
                    return True
                stat = read_stat(pid)
                return stat is not None and stat[3] == self.leader
        return False

    def _handle(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").split("\n"):
            key, _, value = line.partition("=")
            if key == "READY" and value == "1":
                self.on_ready()
            elif key == "STATUS":
                self.status = value
                logger.info("%s: status: %s", self.label, value)
            elif key == "STOPPING" and value == "1":
                self.stopping = True
                logger.info("%s: stopping", self.label)

    def fileno(self) -> int:
        """The socket's fd (re-exec hands it over, see ``adopt``)."""
        return self._sock.fileno()

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
