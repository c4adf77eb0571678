"""The blocking client of the control socket, what ``supervision status`` and the other
control commands use. It imports only the protocol and the core's errors: a control
command never loads the runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import Any

from .._core.errors import ConnectionLost, NotRunning, SeveralTrees, from_wire
from .protocol import VERSION, check_name, default_path, encode, runtime_dir


def client_path(name: str | None, control: str | None) -> str:
    """The socket a client command should use: ``--control``, else the one named
    ``--name``, else the only socket in the runtime directory."""
    if control:
        return control
    if name:
        return default_path(check_name(name))
    directory = runtime_dir()
    try:
        found = sorted(entry[:-5] for entry in os.listdir(directory) if entry.endswith(".sock"))
    except FileNotFoundError:
        found = []
    if not found:
        raise NotRunning(f"no tree is running (no socket in {directory}); start one with 'supervision run'")
    if len(found) > 1:
        raise SeveralTrees(f"several trees are running ({', '.join(found)}); choose one with --name")
    return os.path.join(directory, found[0] + ".sock")


class Client:
    """A blocking connection to a control socket (what the command line uses).

    >>> with Client(path) as client:  # doctest: +SKIP
    ...     client.call("status")
    """

    def __init__(self, path: str, *, timeout: float | None = None) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.settimeout(5.0)
        try:
            self._sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            self._sock.close()
            raise NotRunning(f"no tree is running on {path}") from None
        except OSError as exc:
            self._sock.close()
            raise NotRunning(f"cannot connect to {path}: {exc.strerror or exc}") from None
        self._sock.settimeout(timeout)
        self._file = self._sock.makefile("rb")
        self._ids = 0

    def call(self, cmd: str, **fields: Any) -> Any:
        """Send one request and return its result. An error reply raises what it
        says (``errors.from_wire``): the tree's refusals as themselves (``NotFound``,
        ``ChildRunning``... with ``.path``), anything else as a ``RequestError``."""
        self._ids += 1
        # Refused at once (PermissionDenied, Busy), the send may fail: the reply is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send({"v": VERSION, "id": self._ids, "cmd": cmd, **fields})
        reply = self.receive()
        if reply is None:
            raise ConnectionLost(f"the tree on {self.path} closed the connection")
        if not reply.get("ok"):
            raise from_wire(reply.get("error"))
        return reply.get("result")

    def send(self, message: dict[str, Any]) -> None:
        self._sock.sendall(encode(message))

    def receive(self) -> dict[str, Any] | None:
        """The next reply, or None at the end of the connection."""
        line = self._file.readline()
        if not line:
            return None
        reply: dict[str, Any] = json.loads(line)
        return reply

    def wait_closed(self) -> None:
        """Block until the server closes the connection (the tree has stopped)."""
        while self._file.readline():
            pass

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
