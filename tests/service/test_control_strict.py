"""The control server is strict about who and what it serves: the protocol
version is exactly the integer 1, and a peer of another uid is refused before it
can take one of the connection slots the owner needs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from supervision._core.errors import RequestError
from supervision._service.server import ControlServer

NOBODY = 65534


async def echo(request: dict[str, Any]) -> dict[str, Any]:
    if request["cmd"] != "echo":
        raise RequestError("UnknownCommand", "unknown")
    return {"echo": request.get("text")}


async def exchange(path: str, data: bytes) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        return [json.loads(line) async for line in reader]
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.fixture
def open_dir() -> Iterator[str]:
    """A directory others may enter (tmp_path's parents are 0700)."""
    directory = tempfile.mkdtemp(prefix="supervision-ctl-")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def test_the_version_is_exactly_the_integer_1(open_dir: str) -> None:
    server = ControlServer(os.path.join(open_dir, "s.sock"), echo)
    await server.start()
    try:
        lines = [
            b'{"v":1,"cmd":"echo","text":"a"}',
            b'{"v":true,"cmd":"echo"}',
            b'{"v":1.0,"cmd":"echo"}',
            b'{"v":"1","cmd":"echo"}',
            b'{"v":[1],"cmd":"echo"}',
            b'{"cmd":"echo"}',
            b'{"v":2,"cmd":"echo"}',
            b'{"v":1,"cmd":"echo","text":"b"}',
        ]
        replies = await exchange(server.path, b"\n".join(lines) + b"\n")
    finally:
        await server.close()
    assert [r["ok"] for r in replies] == [True, False, False, False, False, False, False, True]
    assert {r["error"]["type"] for r in replies[1:-1]} == {"UnsupportedVersion"}
    assert replies[-1]["result"] == {"echo": "b"}


def foreign_peer(path: str, count: int, report: int, go: int, parents: tuple[int, ...]) -> None:
    """In a forked child, as uid ``nobody``: open ``count`` connections, report each
    reply's error type, hold them all open until told, then report how each ended.
    Plain system calls only, then ``_exit``."""
    code = 99
    try:
        for fd in parents:  # the parent's ends: else reading ``go`` never sees its end
            os.close(fd)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        out = os.fdopen(report, "w", buffering=1)
        held = []
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(20)
            sock.connect(path)
            sock.sendall(b'{"v":1,"cmd":"echo","text":"let me in"}\n')
            reply = json.loads(sock.makefile("rb").readline())
            out.write((reply["error"]["type"] if not reply["ok"] else "ok") + "\n")
            held.append(sock)  # and keep it open, as an attacker would
        os.read(go, 1)
        for sock in held:
            try:
                out.write(("end" if sock.recv(1) == b"" else "more") + "\n")
            except OSError as exc:
                out.write(f"{exc!r}\n")
        code = 0
    finally:
        os._exit(code)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a peer as another user")
async def test_a_foreign_uid_is_refused_at_once_and_holds_no_slot(open_dir: str) -> None:
    loop = asyncio.get_running_loop()
    fds = set(os.listdir("/proc/self/fd"))
    server = ControlServer(os.path.join(open_dir, "s.sock"), echo, max_connections=2)
    await server.start()
    os.chmod(server.path, 0o666)  # a careless admin: only SO_PEERCRED stands in the way
    count = 8
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        foreign_peer(server.path, count, report_w, go_r, (report_r, go_w))
    os.close(report_w)
    os.close(go_r)
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(report_r, "rb"))

    async def lines(n: int) -> list[str]:
        return [(await asyncio.wait_for(reader.readline(), 20)).decode().strip() for _ in range(n)]

    try:
        assert await lines(count) == ["PermissionDenied"] * count
        # The foreign peer still holds its 8 connections open: none of them is a slot.
        assert server.connections == 0
        for i in range(3):
            replies = await exchange(server.path, b'{"v":1,"cmd":"echo","text":"%d"}\n' % i)
            assert replies == [{"v": 1, "id": None, "ok": True, "result": {"echo": str(i)}}]
        os.write(go_w, b"g")
        assert await lines(count) == ["end"] * count  # a clean end after the reply, not a reset
    finally:
        os.close(go_w)
        _, status = os.waitpid(pid, 0)
        transport.close()
        await server.close()
        await asyncio.sleep(0)  # the pipe transport closes its fd at the loop's next turn
    assert os.waitstatus_to_exitcode(status) == 0
    assert set(os.listdir("/proc/self/fd")) == fds  # the lingering sockets are closed too
