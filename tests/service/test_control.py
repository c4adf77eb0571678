"""The control socket: file modes, peer credentials, one live owner per path, and a
server that answers every request, however broken, and keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervision._core.errors import AlreadyRunning, NotFound, RequestError, SupervisionError
from supervision._service.protocol import MAX_REQUEST, default_path, runtime_dir
from supervision._service.server import ControlServer
from tests.cli_helpers import DEADLINE, Run, ping, wait_until

APP = """
import asyncio
import supervision as sv

async def idle(ctx):
    await asyncio.Event().wait()

def build():
    return sv.Supervisor([sv.child("idle", idle), sv.process("sleeper", ["sleep", "1000"])])
"""


# -- in-process: the server alone, with a handler of our own --------------------------


async def handler(request: dict[str, Any]) -> dict[str, Any]:
    if request["cmd"] == "missing":
        raise NotFound("x: no such child")
    if request["cmd"] == "broken":
        raise ZeroDivisionError("a bug")
    if request["cmd"] == "slow":
        await asyncio.Event().wait()
    if request["cmd"] not in ("echo",):
        raise RequestError("UnknownCommand", "unknown")
    return {"echo": request.get("text")}


def own_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


async def exchange(path: str, *lines: bytes) -> list[dict[str, Any]]:
    """Send raw lines on one connection, close our side, read every reply."""
    reader, writer = await asyncio.open_unix_connection(path, limit=4 * MAX_REQUEST)
    try:
        for line in lines:
            writer.write(line)
        await writer.drain()
        writer.write_eof()
        replies = []
        while line := await reader.readline():
            replies.append(json.loads(line))
        return replies
    finally:
        writer.close()
        await writer.wait_closed()


async def test_the_socket_is_0600_in_a_0700_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = default_path("tree")
    assert path == str(tmp_path / "supervision" / "tree.sock") and runtime_dir() == os.path.dirname(path)
    server = ControlServer(path, handler)
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(tmp_path / "supervision").st_mode) == 0o700
        assert await exchange(path, b'{"v":1,"id":7,"cmd":"echo","text":"hi"}\n') == [
            {"v": 1, "id": 7, "ok": True, "result": {"echo": "hi"}}
        ]
    finally:
        await server.close()
    assert not os.path.exists(path)


async def test_an_unsafe_runtime_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "supervision").mkdir(mode=0o777)
    os.chmod(tmp_path / "supervision", 0o777)
    with pytest.raises(SupervisionError, match="unsafe"):
        ControlServer(default_path("tree"), handler).bind()


async def test_a_live_socket_is_kept_a_stale_one_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "tree.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays: what a killed server leaves
    first = ControlServer(path, handler)
    await first.start()
    try:
        second = ControlServer(path, handler)
        with pytest.raises(AlreadyRunning, match="already running"):
            second.bind()
        assert (await exchange(path, b'{"v":1,"cmd":"echo"}\n'))[0]["ok"] is True
    finally:
        await first.close()
    (tmp_path / "file.sock").write_text("not a socket")
    with pytest.raises(SupervisionError, match="not a socket"):
        ControlServer(str(tmp_path / "file.sock"), handler).bind()
    assert (tmp_path / "file.sock").read_text() == "not a socket"


async def test_errors_are_replies_and_the_connection_goes_on(tmp_path: Path) -> None:
    path = str(tmp_path / "tree.sock")
    server = ControlServer(path, handler)
    await server.start()
    try:
        head, tail = b'{"v":1,"cmd":"echo","text":"', b'"}'
        exactly = head + b"x" * (MAX_REQUEST - len(head) - len(tail)) + tail
        assert len(exactly) == MAX_REQUEST
        replies = await exchange(
            path,
            b"not json\n",
            b"[1, 2]\n",
            b'{"v":2,"cmd":"echo"}\n',
            b'{"v":1,"cmd":"frobnicate","id":"a"}\n',
            b'{"v":1,"cmd":"missing","id":3}\n',
            b'{"v":1,"cmd":"broken"}\n',
            b"[" * 100_000 + b"\n",
            b"a" * (MAX_REQUEST + 1) + b"\n",
            b"b" * (3 * MAX_REQUEST) + b"\n",
            exactly + b"\n",
            b'{"v":1,"cmd":"echo","text":"last"}',  # no newline: answered at EOF
        )
        types = [r["error"]["type"] if not r["ok"] else "ok" for r in replies]
        assert types == [
            "BadRequest",
            "BadRequest",
            "UnsupportedVersion",
            "UnknownCommand",
            "NotFound",
            "Internal",
            "BadRequest",
            "TooLarge",
            "TooLarge",
            "ok",
            "ok",
        ]
        assert replies[3]["id"] == "a" and replies[4]["id"] == 3
        assert replies[4]["error"]["message"] == "x: no such child"
        assert replies[-1]["result"] == {"echo": "last"}
    finally:
        await server.close()


async def test_close_ends_every_connection(tmp_path: Path) -> None:
    fds = own_fds()
    path = str(tmp_path / "tree.sock")
    server = ControlServer(path, handler, max_connections=2)
    await server.start()
    idle = await asyncio.open_unix_connection(path)
    slow = await asyncio.open_unix_connection(path)
    slow[1].write(b'{"v":1,"cmd":"slow"}\n')
    await slow[1].drain()
    await asyncio.sleep(0)
    # A third connection beyond max_connections gets an error reply and is closed.
    busy = await asyncio.open_unix_connection(path)
    assert json.loads(await busy[0].readline())["error"]["type"] == "Busy"
    assert await busy[0].read() == b""
    busy[1].close()
    await server.close()  # cancels the slow request and the idle connection
    assert server.connections == 0
    for reader, writer in (idle, slow):
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
    assert not os.path.exists(path)
    assert own_fds() == fds  # every connection's socket closed, and the listener


# -- end to end: a real `supervision run` ---------------------------------------------


@pytest.fixture
def run(tmp_path: Path) -> object:
    (tmp_path / "app.py").write_text(APP)
    running = Run(tmp_path, "app.py")
    running.wait_running()
    yield running
    running.close()


def raw(path: str, data: bytes) -> list[dict[str, Any]]:
    """Send bytes on a fresh connection, close our side, and read every reply line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(DEADLINE)
        sock.connect(path)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return [json.loads(line) for line in received.splitlines()]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_the_socket_file_is_0600(run: Run) -> None:
    assert stat.S_IMODE(os.stat(run.control).st_mode) == 0o600


def test_bad_requests_get_error_replies_and_the_server_keeps_serving(run: Run) -> None:
    replies = raw(
        run.control,
        b"\xff\xfe garbage\n"
        + b'{"v":1,"cmd":"launch_missiles"}\n'
        + b'{"v":1,"cmd":"status","path":42}\n'
        + b'{"v":1,"cmd":"restart"}\n'
        + b"x" * (MAX_REQUEST + 10)
        + b"\n"
        + b'{"v":1,"cmd":"status"}\n',
    )
    assert [r["ok"] for r in replies] == [False, False, False, False, False, True]
    assert [r["error"]["type"] for r in replies[:5]] == [
        "BadRequest",
        "UnknownCommand",
        "BadRequest",
        "BadRequest",
        "TooLarge",
    ]
    assert [c["path"] for c in replies[-1]["result"]["children"]] == ["idle", "sleeper"]
    assert ping(run.control) is not None  # and a new connection too
    assert run.proc.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a peer as another user")
def test_a_peer_with_another_uid_is_refused(run: Run) -> None:
    nobody = 65534

    def as_nobody() -> int:
        """Fork a child that drops to uid ``nobody`` and connects; its exit status says what happened."""
        pid = os.fork()
        if pid == 0:  # the child: only plain system calls, then _exit
            code = 99
            try:
                os.chdir(os.path.dirname(run.control))  # as root: the parents of tmp_path are 0700
                os.setgroups([])
                os.setgid(nobody)
                os.setuid(nobody)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(DEADLINE)
                try:
                    sock.connect(os.path.basename(run.control))
                except PermissionError:
                    code = 10  # the file mode kept it out
                else:
                    # the server may have answered and closed before this is sent
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        sock.sendall(b'{"v":1,"cmd":"status"}\n')
                    reply = json.loads(sock.makefile("rb").readline())
                    closed = sock.recv(1) == b""
                    refused = reply["ok"] is False and reply["error"]["type"] == "PermissionDenied"
                    code = 20 if refused and closed else 21
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    os.chmod(os.path.dirname(run.control), 0o755)
    assert as_nobody() == 10  # the socket is 0600: it cannot even connect
    os.chmod(run.control, 0o666)  # open the door, as a careless admin might: SO_PEERCRED still holds
    assert as_nobody() == 20
    wait_until(lambda: "refused a peer with uid 65534" in run.stderr, "the refusal to be logged")
    assert ping(run.control) is not None


# Not "reexec": each would re-execute the server (tests/reload/test_reexec.py does, on purpose).
ACTIONS = st.sampled_from(["ping", "status", "logs", "nope", "", "stop\x00"])
JSONISH = st.fixed_dictionaries(
    {"v": st.one_of(st.just(1), st.integers(), st.text(max_size=3), st.none())},
    optional={
        "cmd": st.one_of(ACTIONS, st.text(max_size=20), st.integers()),
        "id": st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2)),
        "path": st.one_of(st.text(max_size=20), st.integers(), st.none()),
        "lines": st.one_of(st.integers(), st.text(max_size=3)),
    },
).map(lambda d: json.dumps(d).encode())
PAYLOADS = st.one_of(
    st.binary(max_size=2000),
    JSONISH,
    st.lists(st.one_of(st.binary(max_size=50), JSONISH), max_size=5).map(b"\n".join),
)


def test_random_bytes_never_crash_the_server(run: Run) -> None:
    fds = open_fds(run.proc.pid)
    tried: set[bytes] = set()

    @settings(
        max_examples=1000,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(PAYLOADS)
    def exchange_random(data: bytes) -> None:
        tried.add(data)
        replies = raw(run.control, data)
        lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        assert len(replies) == lines
        for reply in replies:
            assert reply["v"] == 1 and isinstance(reply["ok"], bool)
            assert reply["ok"] or set(reply["error"]) - {"path"} == {"type", "message"}  # path: NotFound & co
            assert reply["ok"] or reply["error"]["type"] != "Internal", reply

    exchange_random()
    assert len(tried) >= 900  # 1000 examples, a few of them alike
    assert run.proc.poll() is None
    assert ping(run.control) is not None
    assert {n["status"] for n in run.nodes().values()} == {"running"}
    # <=: the baseline may still hold the connection of the last ping of wait_running().
    wait_until(lambda: open_fds(run.proc.pid) <= fds, "the server to close every connection")


async def test_closing_while_peers_connect_loses_no_connection_and_no_fd(tmp_path: Path) -> None:
    """Connections arriving in the same turn of the loop as close(): each is either
    served or sees the end, none hangs, the loop reports no error, no fd is kept."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    before = own_fds()
    for round in range(20):
        path = str(tmp_path / f"s{round}.sock")
        server = ControlServer(path, handler)
        await server.start()
        await asyncio.sleep(0.001)  # the server waits for connections
        peers = []
        for _ in range(8):
            peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            peer.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                peer.connect(path)
            peer.sendall(b'{"v":1,"id":1,"cmd":"echo","text":"x"}\n')
            peers.append(peer)
        if round % 2:
            await asyncio.sleep(0)  # some rounds accept a few first
        # close() from a task of its own, as a `stop` request does: its first step runs
        # in the same turn of the loop as the listener's readiness, before it
        await asyncio.ensure_future(server.close())
        for peer in peers:
            peer.settimeout(2.0)
            try:
                data = peer.recv(4096)  # a reply, or the end: never a hang
            except ConnectionResetError:
                data = b""
            except TimeoutError:
                data = b"(no answer: the connection was lost)"
            assert data == b"" or (data.startswith(b"{") and json.loads(data)["ok"] is True), data
            peer.close()
    loop.set_exception_handler(None)
    assert errors == []
    assert own_fds() == before
