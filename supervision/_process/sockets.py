"""Held sockets, the OS side: binding once, and holding across incarnations.

The supervisor binds and listens on a child's sockets (``sockets=[sv.listen(...)]``)
before its first start and keeps them open in its own process. Each incarnation
gets them (a process at fds 3, 4, ... through the exec helper, a worker as
``ctx.sockets``), so while a child restarts the listening socket never closes:
the kernel queues new connections in its backlog until the next incarnation
accepts them. The sockets stay blocking, as systemd passes them
(``NonBlocking=no``): the file status flags are shared with every process that
holds the socket, so the supervisor never changes them.

A :class:`SocketPool` holds the sockets of one tree by the child's path and the
socket's address: a reload that keeps an address keeps its socket (a new backlog
or file mode is applied to it in place; a new name is only a label); one that
drops an address closes its socket once no incarnation of the path is started
with it any more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import Iterable, Sequence

from .._core.listen import Listen
from .._core.paths import Path, format_path

logger = logging.getLogger("supervision")


def bind(spec: Listen) -> socket.socket:
    """A new socket bound to ``spec.address`` (listening, unless UDP), close-on-exec, blocking."""
    family, host, port = spec.family, spec.host, spec.port
    if family == "unix":
        return _bind_unix(spec, host)
    kind = socket.SOCK_STREAM if family == "tcp" else socket.SOCK_DGRAM
    infos = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    error: OSError | None = None
    for address_family, sock_type, proto, _, address in infos:
        sock = socket.socket(address_family, sock_type, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if spec.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            if kind == socket.SOCK_STREAM:
                sock.listen(spec.backlog)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    assert error is not None
    raise error


def _bind_unix(spec: Listen, target: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if target.startswith("@"):
            sock.bind("\0" + target[1:])
        else:
            _remove_stale(target)
            sock.bind(target)
            if spec.mode is not None:
                os.chmod(target, spec.mode)
        sock.listen(spec.backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _remove_stale(path: str) -> None:
    """Remove an old socket file at ``path`` (left by a previous run); never any other file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    os.unlink(path)


class _Held:
    __slots__ = ("inode", "sock", "spec")

    def __init__(self, spec: Listen, sock: socket.socket) -> None:
        self.spec = spec
        self.sock = sock
        self.inode: int | None = None
        if spec.family == "unix" and not spec.host.startswith("@"):
            with contextlib.suppress(OSError):
                self.inode = os.stat(spec.host).st_ino

    def update(self, spec: Listen) -> None:
        """Take a changed spec of the same socket: a new backlog or file mode is
        applied in place (the socket stays open); a new name is only a label."""
        if spec.backlog != self.spec.backlog and self.sock.type == socket.SOCK_STREAM:
            self.sock.listen(spec.backlog)
        if spec.mode is not None and spec.mode != self.spec.mode and self.inode is not None:
            os.chmod(spec.host, spec.mode)
        self.spec = spec

    def close(self) -> None:
        if self.inode is not None:  # unlink the file if it is still ours
            with contextlib.suppress(OSError):
                if os.stat(self.spec.host).st_ino == self.inode:
                    os.unlink(self.spec.host)
        self.sock.close()


class SocketPool:
    """The held sockets of one tree, by child path and socket (``Listen.key``)."""

    def __init__(self) -> None:
        self._held: dict[Path, dict[str, _Held]] = {}

    def acquire(self, path: Path, specs: Sequence[Listen]) -> tuple[socket.socket, ...]:
        """The sockets for an incarnation of ``path``, in ``specs`` order: those
        held already (with a changed backlog or mode applied), and new ones bound
        now. Raises ``OSError`` (nothing new is kept then) if one cannot be bound."""
        held = self._held.setdefault(path, {})
        fresh: dict[str, _Held] = {}
        try:
            for spec in specs:
                if spec.key not in held and spec.key not in fresh:
                    fresh[spec.key] = _Held(spec, bind(spec))
        except OSError:
            for item in fresh.values():
                item.close()
            if not held:
                del self._held[path]
            raise
        held.update(fresh)
        for spec in specs:
            if held[spec.key].spec != spec:
                held[spec.key].update(spec)
        return tuple(held[spec.key].sock for spec in specs)

    def keep_only(self, path: Path, specs: Iterable[Listen]) -> None:
        """Close the sockets of ``path`` that ``specs`` no longer names (after a
        reload changed them, once no incarnation uses the old ones)."""
        held = self._held.get(path)
        if held is None:
            return
        wanted = {spec.key for spec in specs}
        for key in [k for k in held if k not in wanted]:
            held.pop(key).close()
        if not held:
            del self._held[path]

    def release(self, path: Path, *, subtree: bool = False) -> None:
        """Close the sockets of ``path`` (and, with ``subtree``, of every path below it)."""
        for key in [p for p in self._held if p == path or (subtree and p[: len(path)] == path)]:
            for item in self._held.pop(key).values():
                item.close()

    def held(self) -> dict[Path, dict[Listen, socket.socket]]:
        """What is held now, by path: each socket with its spec (for a re-exec's handover)."""
        return {path: {h.spec: h.sock for h in items.values()} for path, items in self._held.items()}

    def adopt(self, path: Path, spec: Listen, fd: int) -> None:
        """Re-exec: hold the socket the previous image handed over at ``fd``."""
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        self._held.setdefault(path, {})[spec.key] = _Held(spec, sock)

    def close(self) -> None:
        """Close everything (the tree stopped)."""
        for path in list(self._held):
            self.release(path)

    def __repr__(self) -> str:
        paths = ", ".join(format_path(p) for p in self._held)
        return f"<SocketPool {paths}>"
