"""The control socket: how ``supervision status`` (and friends) talk to a running tree.

A unix stream socket, mode 0600, by default ``$XDG_RUNTIME_DIR/supervision/NAME.sock``.
The protocol is JSON lines, one request and one reply per line, in order, as many
as the client likes on one connection (see ``docs/cli.md``)::

    -> {"v": 1, "id": 1, "cmd": "restart", "path": "web"}
    <- {"v": 1, "id": 1, "ok": true, "result": {"path": "web", "pid": 4242}}
    <- {"v": 1, "id": 2, "ok": false, "error": {"type": "NotFound", "message": "..."}}

Security: the socket file is 0600 and its default directory 0700, and every peer
is checked with ``SO_PEERCRED`` as soon as it is accepted: a uid other than ours
or root's gets an error reply and is disconnected without ever taking one of the
``max_connections`` slots (so a foreign user cannot starve the owner of them).
Robustness: a malformed, oversized (> 1 MiB) or unknown request gets an error
reply and the connection goes on; each connection is one task, all of them
cancelled and awaited when the server closes; at most ``max_connections`` are
served at once.

Only one tree may own a socket path: a stale socket (its server is dead:
``ECONNREFUSED``) is replaced, a live one is not (``AlreadyRunning``). The check
and the bind happen under an ``flock`` of the directory, so two trees starting
at once cannot both take the path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import fcntl
import json
import logging
import os
import socket
import stat
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._core.errors import AlreadyRunning, RequestError, SupervisionError, to_wire
from .protocol import MAX_REQUEST, VERSION, Request, encode, runtime_dir

logger = logging.getLogger("supervision")


_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_CHUNK = 65536
_LINGER = 1.0  # seconds a refused connection may stay half-open (see ControlServer._refuse)
_MAX_LINGERING = 64  # refused connections half-open at once; beyond, closed at once
_ACCEPTS_PER_WAKEUP = 16  # connections accepted per turn of the loop: the tree keeps its share

Handler = Callable[[Request], Awaitable[dict[str, Any]]]


class Peer:
    """A connection being served: the socket, the id of the request being
    answered, and what it sent after that request (not read yet)."""

    __slots__ = ("buffer", "connection", "id")

    def __init__(self, connection: socket.socket, buffer: bytes = b"") -> None:
        self.connection = connection
        self.id: Any = None
        self.buffer = bytearray(buffer)


_peer: contextvars.ContextVar[Peer] = contextvars.ContextVar("supervision.peer")


def current_request() -> Peer | None:
    """Inside a handler: the connection the request came on (a re-exec hands it
    over, with what follows the request, so that the new image replies)."""
    return _peer.get(None)


# -- where sockets live -----------------------------------------------------------


def _private_dir(directory: str) -> None:
    """Create ``directory`` 0700 if missing; refuse one that others could write to."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise SupervisionError(f"{directory}: not a directory")
    if info.st_uid not in (os.geteuid(), 0) or info.st_mode & 0o022:
        raise SupervisionError(f"{directory}: unsafe (owned by uid {info.st_uid}, mode {info.st_mode & 0o777:o})")


# -- the server -------------------------------------------------------------------


class ControlServer:
    """Serves the control protocol on a unix socket; ``handler`` answers requests.

    ``bind()`` takes the path (synchronously, before anything else starts, so a
    second copy of a tree fails before spawning anything); ``start()`` begins
    accepting; ``close()`` stops, cancels and awaits every connection and
    removes the socket file.
    """

    def __init__(self, path: str, handler: Handler, *, max_connections: int = 64) -> None:
        self.path = os.path.abspath(path)
        self.handler = handler
        self.max_connections = max_connections
        self._listener: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._accepting = False  # the listener is watched by the loop
        self._retry: asyncio.TimerHandle | None = None  # after a failed accept (EMFILE)
        self._connections: set[asyncio.Task[None]] = set()
        self._refused: dict[socket.socket, asyncio.TimerHandle] = {}  # lingering, see _refuse
        self._refusals = 0
        self._uids = {os.geteuid(), 0}

    @property
    def connections(self) -> int:
        """How many connections are being served now."""
        return len(self._connections)

    def bind(self) -> None:
        directory = os.path.dirname(self.path)
        if directory == runtime_dir():
            _private_dir(directory)
        else:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            with _locked(directory):
                _clear_stale(self.path)
                old_umask = os.umask(0o177)  # born 0600: no window where others may connect
                try:
                    listener.bind(self.path)
                finally:
                    os.umask(old_umask)
                os.chmod(self.path, 0o600)
                listener.listen(64)
            info = os.stat(self.path)
        except BaseException:
            listener.close()
            raise
        listener.setblocking(False)
        self._listener = listener
        self._inode = (info.st_dev, info.st_ino)

    def adopt(self, state: dict[str, Any]) -> bool:
        """Re-exec: serve on the listening socket the previous image of this process
        handed over (see :meth:`handover`), instead of binding again: no moment
        without a listener, no stale-socket check. False (and the fd closed) if
        the socket file was removed or replaced meanwhile: then :meth:`bind`."""
        listener = socket.socket(fileno=int(state["fd"]))
        listener.set_inheritable(False)
        inode = (int(state["inode"][0]), int(state["inode"][1]))
        try:
            info = os.stat(self.path)
            current = (info.st_dev, info.st_ino)
        except OSError:
            current = None
        if state["path"] != self.path or current != inode:
            listener.close()
            return False
        listener.setblocking(False)
        self._listener = listener
        self._inode = inode
        return True

    def handover(self, reply_to: Peer | None) -> tuple[dict[str, Any], list[int]]:
        """Re-exec: what :meth:`adopt` needs in the new image, and the fds to keep
        open across the exec: the listening socket and, with ``reply_to``, the
        connection the new image replies on (with the request's id, and what the
        peer sent after it). Other connections are closed by the exec."""
        assert self._listener is not None and self._inode is not None
        state: dict[str, Any] = {"fd": self._listener.fileno(), "path": self.path, "inode": list(self._inode)}
        fds = [self._listener.fileno()]
        if reply_to is not None and reply_to.connection.fileno() >= 0:
            fd = reply_to.connection.fileno()
            rest = base64.b64encode(bytes(reply_to.buffer)).decode()
            state["reply"] = {"fd": fd, "id": reply_to.id, "rest": rest}
            fds.append(fd)
        return state, fds

    def resume(
        self, reply: dict[str, Any], result: dict[str, Any] | None, error: tuple[str, str] | None = None
    ) -> None:
        """Re-exec: answer the request that asked for it, on the connection handed
        over by the previous image (``handover()["reply"]``), then serve the rest
        of that connection as any other."""
        fd, id = int(reply["fd"]), reply["id"]
        connection = socket.socket(fileno=fd)
        connection.set_inheritable(False)
        connection.setblocking(False)
        if error is not None:  # at once: the run is about to end
            _try_send(connection, _error_line(id, *error))
            connection.close()
            return
        line = encode({"v": VERSION, "id": id, "ok": True, "result": result})
        rest = base64.b64decode(reply.get("rest", ""))
        task = asyncio.get_running_loop().create_task(
            self._resume(connection, line, rest), name="supervision control connection"
        )
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _resume(self, connection: socket.socket, line: bytes, rest: bytes) -> None:
        try:
            await asyncio.get_running_loop().sock_sendall(connection, line)
        except OSError:
            connection.close()
            return
        await self._serve(connection, rest)

    async def start(self) -> None:
        if self._listener is None:
            self.bind()
        self._listen()

    def _listen(self) -> None:
        assert self._listener is not None
        self._retry = None
        asyncio.get_running_loop().add_reader(self._listener.fileno(), self._accept)
        self._accepting = True

    async def close(self) -> None:
        """Stop accepting, end every connection, remove the socket file. Idempotent."""
        self._stop_accepting()
        connections = set(self._connections)
        for task in connections:
            task.cancel()
        if connections:
            await asyncio.wait(connections)
        for connection in list(self._refused):
            self._drop_refused(connection)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            self._unlink()

    def _unlink(self) -> None:
        # Only our own socket: another tree may have replaced it after a restart.
        with contextlib.suppress(OSError):
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._inode:
                os.unlink(self.path)

    def _stop_accepting(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._accepting and self._listener is not None:
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(self._listener.fileno())
        self._accepting = False

    def _accept(self) -> None:
        """The listener is readable: accept what is waiting, at most
        :data:`_ACCEPTS_PER_WAKEUP` connections per turn of the loop.

        A reader callback rather than ``loop.sock_accept`` in a task: cancelling
        that (on close) can race with a connection accepted in the same turn of
        the loop, which Python 3.11 then loses (its future is already cancelled,
        ``InvalidStateError``, the peer never answered). Here nothing is
        accepted after :meth:`_stop_accepting`, and nothing accepted is lost."""
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                connection, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: pause a little, keep serving
                logger.warning("control socket: accept failed: %s", exc)
                self._stop_accepting()
                self._retry = loop.call_later(0.1, self._listen)
                return
            connection.setblocking(False)
            try:
                uid = _peer_uid(connection)
            except OSError:
                connection.close()
                continue
            if uid not in self._uids:  # before anything else: it never takes a slot
                self._refusals += 1
                if self._refusals in (1, 10, 100) or self._refusals % 1000 == 0:
                    logger.warning("control socket: refused a peer with uid %s (%d refusal(s))", uid, self._refusals)
                self._refuse(connection, "PermissionDenied", "permission denied")
                continue
            if len(self._connections) >= self.max_connections:
                self._refuse(connection, "Busy", "too many connections")
                continue
            task = loop.create_task(self._serve(connection), name="supervision control connection")
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    def _refuse(self, connection: socket.socket, type: str, message: str) -> None:
        """Reply with an error and end the connection, without a task or a slot.

        The socket lingers (half-closed, its input read and dropped) until the
        peer closes or for a second: closing a socket with unread input resets
        the connection, and the peer's next read or write would fail instead
        of seeing the end. At most ``_MAX_LINGERING`` linger (an fd each, no
        task); beyond that a refused socket is closed at once."""
        _try_send(connection, _error_line(None, type, message))
        if len(self._refused) >= _MAX_LINGERING:
            with contextlib.suppress(OSError):  # what was sent already, so that it closes cleanly
                for _ in range(4):
                    if not connection.recv(_CHUNK):
                        break
            connection.close()
            return
        try:
            connection.shutdown(socket.SHUT_WR)
        except OSError:
            connection.close()
            return
        loop = asyncio.get_running_loop()
        self._refused[connection] = loop.call_later(_LINGER, self._drop_refused, connection)
        loop.add_reader(connection.fileno(), self._drain_refused, connection)

    def _drain_refused(self, connection: socket.socket) -> None:
        try:
            for _ in range(16):  # bounded work per wake-up
                if not connection.recv(_CHUNK):
                    break
            else:
                return  # more to read: called again
        except BlockingIOError:
            return
        except OSError:
            pass
        self._drop_refused(connection)  # the peer closed (or failed): so do we

    def _drop_refused(self, connection: socket.socket) -> None:
        timer = self._refused.pop(connection, None)
        if timer is None:
            return
        timer.cancel()
        with contextlib.suppress(OSError, ValueError):
            asyncio.get_running_loop().remove_reader(connection.fileno())
        connection.close()

    async def _serve(self, connection: socket.socket, rest: bytes = b"") -> None:
        """Serve a connection whose peer was checked (by ``_accept``, or by the
        image before a re-exec)."""
        loop = asyncio.get_running_loop()
        peer = Peer(connection, rest)
        _peer.set(peer)
        try:
            buffer = peer.buffer  # what follows the request being answered: a re-exec hands it over
            discarding = False  # skipping the rest of an oversized line
            while True:
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    if discarding:
                        discarding = False
                    elif len(line) > MAX_REQUEST:
                        await loop.sock_sendall(connection, _too_large())
                    else:
                        await loop.sock_sendall(connection, await self._answer(line))
                if discarding:
                    buffer.clear()  # still inside the oversized line
                elif len(buffer) > MAX_REQUEST:
                    await loop.sock_sendall(connection, _too_large())
                    discarding = True
                    buffer.clear()
                data = await loop.sock_recv(connection, _CHUNK)
                if not data:
                    if buffer and not discarding:
                        line = bytes(buffer)
                        buffer.clear()
                        await loop.sock_sendall(connection, await self._answer(line))
                    return
                buffer += data
        except OSError:
            pass  # the peer went away
        finally:
            connection.close()

    async def _answer(self, line: bytes) -> bytes:
        """The reply line to one request line. Never raises (but for cancellation)."""
        id: Any = None
        try:
            request = _parse(line)
            id = request.get("id")
            peer = _peer.get(None)
            if peer is not None:
                peer.id = id
            result = await self.handler(request)
            return encode({"v": VERSION, "id": id, "ok": True, "result": result})
        except SupervisionError as exc:
            return encode({"v": VERSION, "id": id, "ok": False, "error": to_wire(exc)})
        except Exception as exc:
            logger.exception("control socket: internal error")
            return _error_line(id, "Internal", f"{type(exc).__name__}: {exc}")


def _parse(line: bytes) -> Request:
    try:
        request = json.loads(line)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RequestError("BadRequest", f"not a JSON object: {exc}") from None
    if not isinstance(request, dict):
        raise RequestError("BadRequest", "a request is a JSON object")
    id = request.get("id")
    if not (id is None or (isinstance(id, (str, int)) and not isinstance(id, bool))):
        raise RequestError("BadRequest", "'id' must be a string or an integer")
    version = request.get("v")
    if type(version) is not int or version != VERSION:  # not True, not 1.0
        raise RequestError("UnsupportedVersion", f"this server speaks protocol version {VERSION}")
    if not isinstance(request.get("cmd"), str):
        raise RequestError("BadRequest", "'cmd' must be a string")
    return request


def _error_line(id: Any, type: str, message: str) -> bytes:
    return encode({"v": VERSION, "id": id, "ok": False, "error": to_wire(RequestError(type, message))})


def _too_large() -> bytes:
    return _error_line(None, "TooLarge", f"a request is at most {MAX_REQUEST} bytes")


def _try_send(connection: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        connection.send(data)


def _peer_uid(connection: socket.socket) -> int:
    data = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
    _, uid, _ = _CREDENTIALS.unpack(data)
    return int(uid)


@contextlib.contextmanager
def _locked(directory: str, timeout: float = 5.0) -> Any:
    """Hold an ``flock`` on ``directory`` while checking and binding a socket in it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SupervisionError(f"{directory}: locked by another process for {timeout:g}s") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def _clear_stale(path: str) -> None:
    """Remove a socket left by a dead server; ``AlreadyRunning`` if one answers."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SupervisionError(f"{path} exists and is not a socket; not touching it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # stale: nobody listens
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SupervisionError(f"{path}: cannot check the existing socket: {exc}") from None
        pid, _, _ = _CREDENTIALS.unpack(probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))
    raise AlreadyRunning(f"a tree is already running on {path} (pid {pid})")


# -- the client -------------------------------------------------------------------
