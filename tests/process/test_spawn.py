"""The spawner as supervision calls it (``Spawner.spawn``): what the child gets and
does not get, through the exec helper started by ``os.posix_spawn`` and through the
``preexec_fn`` fallback alike."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervision._process import helper as _helper
from supervision._process.spawn import Spawner
from tests.process_helpers import state

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="the exec helper is x86-64 code")

REPORT = (
    "import json, os\n"
    "fds = sorted(int(fd) for fd in os.listdir('/proc/self/fd') if os.path.exists(f'/proc/self/fd/{fd}'))\n"
    "print(json.dumps({'fds': fds, 'inodes': {fd: os.fstat(fd).st_ino for fd in fds}}), flush=True)\n"
)

WAYS = ["vfork", "vfork, no pdeathsig", "helper", "helper, no pdeathsig", "preexec", "preexec, no pdeathsig"]
"""The method (``vfork``: the helper's code in this process; ``helper``: the helper
exec'd by ``os.posix_spawn``; ``preexec``: the fallback), with pdeathsig or not."""


@pytest.fixture(scope="module")
def spawner() -> Iterator[Spawner]:
    spawner = Spawner()
    assert spawner.method == "vfork"
    try:
        yield spawner
    finally:
        spawner.close()


def _spawn(spawner: Spawner, way: str, argv: list[str], cwd: str | None = None, **kwargs: Any) -> int:
    """Spawn ``argv`` the ``way`` named, its output into a pipe; its pid."""
    method = way.split(",")[0]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return spawner.spawn(argv, cwd, env, None, None, pdeathsig="no pdeathsig" not in way, method=method, **kwargs)


def _report(spawner: Spawner, way: str, cwd: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """What a Python child sees of itself (``REPORT``), spawned the ``way`` named."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        method = way.split(",")[0]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        pid = spawner.spawn(
            [sys.executable, "-c", REPORT],
            cwd,
            env,
            write_end,
            None,
            pdeathsig="no pdeathsig" not in way,
            method=method,
            **kwargs,
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as output:
        text = output.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, text
    report: dict[str, Any] = json.loads(text)
    report["inodes"] = {int(fd): inode for fd, inode in report["inodes"].items()}
    return report


def _bits(*signals: int) -> int:
    return sum(1 << (number - 1) for number in signals)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize(("cwd", "error"), [("/no/such/dir", FileNotFoundError), ("/etc/passwd", NotADirectoryError)])
def test_a_bad_cwd_is_an_os_error_naming_it(spawner: Spawner, way: str, cwd: str, error: type[OSError]) -> None:
    with pytest.raises(error) as caught:
        _spawn(spawner, way, ["/bin/true"], cwd=cwd)
    assert caught.value.filename == cwd
    assert not _zombies()


@pytest.mark.parametrize("way", WAYS)
def test_the_cwd_is_set_and_a_relative_program_found_from_it(spawner: Spawner, way: str, tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    script = tmp_path / "bin" / "hello"
    script.write_text(f"#!{sys.executable}\nimport os\nprint(os.getcwd())\n")
    script.chmod(0o755)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        method = way.split(",")[0]
        pdeathsig = "no pdeathsig" not in way
        pids = [
            spawner.spawn([program], str(tmp_path), env, write_end, None, pdeathsig=pdeathsig, method=method)
            for program, env in (("./bin/hello", {"PATH": "/bin"}), ("hello", {"PATH": "bin:/bin"}))
        ]
    finally:
        os.close(write_end)
    with os.fdopen(read_end) as output:
        assert output.read().split() == [str(tmp_path)] * 2
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0


@pytest.mark.parametrize("way", WAYS)
def test_stdin_is_dev_null_in_a_new_session_with_signals_restored(spawner: Spawner, way: str) -> None:
    """As ``Popen(restore_signals=True)``: SIGPIPE and SIGXFSZ (ignored by Python) at
    their defaults; a signal the application ignores stays ignored, as across exec; a
    blocked signal stays blocked (the mask is inherited). Seen from the outside: a
    Python child would ignore SIGPIPE and SIGXFSZ itself."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    try:
        assert signal.getsignal(signal.SIGPIPE) is signal.SIG_IGN
        pid = _spawn(spawner, way, ["sleep", "30"])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGHUP, previous)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    try:
        deadline = time.monotonic() + 10
        while True:  # spawn returns at exec's point of no return, before the name is set
            with open(f"/proc/{pid}/status") as file:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in file)
            if status["Name"] == "sleep" or time.monotonic() > deadline:
                break
            time.sleep(0.001)
        stdin = os.readlink(f"/proc/{pid}/fd/0")
        with open(f"/proc/{pid}/fdinfo/0") as file:
            stdin_flags = int(dict(line.split(":", 1) for line in file)["flags"], 8)
        sid = os.getsid(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert status["Name"] == "sleep"
    assert stdin == "/dev/null" and stdin_flags & os.O_ACCMODE == os.O_RDWR  # as Popen's DEVNULL
    assert sid == pid
    assert int(status["SigIgn"], 16) == _bits(signal.SIGHUP)
    assert int(status["SigBlk"], 16) == _bits(signal.SIGUSR2)


@pytest.mark.parametrize("way", WAYS)
def test_an_inheritable_fd_the_application_leaked_never_reaches_the_child(spawner: Spawner, way: str) -> None:
    read_end, write_end = os.pipe()
    os.set_inheritable(read_end, True)
    os.set_inheritable(write_end, True)
    high = fcntl.fcntl(write_end, fcntl.F_DUPFD, 200)  # inheritable too
    try:
        report = _report(spawner, way)
    finally:
        for fd in (read_end, write_end, high):
            os.close(fd)
    assert report["fds"] == [0, 1, 2]


@pytest.mark.parametrize("way", ["vfork", "vfork, no pdeathsig", "helper", "helper, no pdeathsig"])
def test_sockets_are_placed_and_nothing_else_passes(spawner: Spawner, way: str) -> None:
    leaked = os.open("/dev/null", os.O_RDONLY)  # inheritable: at 3 or above
    os.set_inheritable(leaked, True)
    first, second = socket.socket(), socket.socket()
    try:
        report = _report(spawner, way, listen=[second.fileno(), first.fileno()])
        inodes = [os.fstat(sock.fileno()).st_ino for sock in (second, first)]
    finally:
        first.close()
        second.close()
        os.close(leaked)
    assert report["fds"] == [0, 1, 2, 3, 4]
    assert [report["inodes"][3], report["inodes"][4]] == inodes


def test_a_concurrent_spawn_inherits_neither_the_error_pipe_nor_the_sockets(
    spawner: Spawner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another thread may spawn at any moment of ours: at the worst one, as the child
    is made, no fd of ours was made inheritable here (the sources of the child's fds
    are close-on-exec), and a plain child spawned then holds none of them. (The
    exec'd helper's fds are ``Popen``'s ``pass_fds``, made inheritable in its child.)"""
    spawned = os.posix_spawn
    before = _inheritable()
    seen: dict[str, list[int]] = {}
    assert spawner._in_process is not None
    call = spawner._in_process._call

    def in_process(frame: int, stack: int) -> int:
        seen["inheritable"] = _inheritable()
        thread = threading.Thread(target=lambda: seen.setdefault("other", _other_spawn(spawned)))
        thread.start()
        thread.join()
        return call(frame, stack)

    monkeypatch.setattr(spawner._in_process, "_call", in_process)
    first, second = socket.socket(), socket.socket()
    try:
        pid = _spawn(spawner, "vfork", ["/bin/true"], listen=[first.fileno(), second.fileno()])
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        first.close()
        second.close()
    assert seen["inheritable"] == before
    assert set(seen["other"]) == {0, 1, 2, *before}


def _inheritable() -> list[int]:
    found = []
    for fd in _open_fds():
        try:
            if fd > 2 and os.get_inheritable(fd):
                found.append(fd)
        except OSError:  # listdir's own, closed since
            pass
    return found


def _other_spawn(posix_spawn: Callable[..., int]) -> list[int]:
    """A plain spawn, as another thread's: the fds its child holds above its output."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    script = (
        "import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')"
        " if os.path.exists(f'/proc/self/fd/{fd}')), flush=True)"  # not listdir's own, closed since
    )
    actions = [(os.POSIX_SPAWN_DUP2, write_end, 1)]
    pid = posix_spawn(sys.executable, [sys.executable, "-c", script], dict(os.environ), file_actions=actions)
    os.close(write_end)
    with os.fdopen(read_end) as output:
        text = output.read()
    os.waitpid(pid, 0)
    fds: list[int] = json.loads(text)
    return fds


def _open_fds() -> list[int]:
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


def _zombies() -> list[int]:
    """Children of this process not yet reaped."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    fields = file.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] == "Z":
                found.append(int(entry))
    return found


def test_the_fast_path_takes_no_popen(spawner: Spawner, monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process (``vfork``), pdeathsig or not: no ``Popen``."""
    import subprocess

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Popen was called")

    monkeypatch.setattr(subprocess, "Popen", refused)
    for method, pdeathsig in (("vfork", True), ("vfork", False)):
        pid = spawner.spawn(["/bin/true"], None, None, None, None, pdeathsig=pdeathsig, method=method)
        assert os.waitpid(pid, 0)[1] == 0


@pytest.mark.parametrize("way", ["vfork", "helper", "preexec"])
def test_the_child_dies_with_a_supervisor_killed_hard(spawner: Spawner, way: str) -> None:
    """``PR_SET_PDEATHSIG``: a stand-in supervisor spawns, reports the pid and dies
    without cleaning up; its child gets SIGKILL (and ``pdeathsig=False`` does not)."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(read_end)
            pids = [_spawn(spawner, way, ["sleep", "60"]), _spawn(spawner, f"{way}, no pdeathsig", ["sleep", "60"])]
            os.write(write_end, " ".join(map(str, pids)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child, kept = map(int, pipe.read().split())
    os.waitpid(middle, 0)
    try:
        deadline = time.monotonic() + 10
        while state(child) not in ("Z", "gone") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state(child) in ("Z", "gone"), "the child outlived its supervisor"
        assert state(kept) not in ("Z", "gone")
    finally:
        for pid in (child, kept):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):  # reaped by us only if we are a subreaper
                os.waitpid(pid, 0)


@pytest.mark.parametrize("way", ["vfork", "helper"])
@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["/bin/true"], {"A=B": "x"}),
        (["/bin/true"], {b"A=B": b"x"}),
        (["/bin/tr\0ue"], {}),
        (["/bin/true"], {"A": "\0"}),
    ],
)
def test_a_bad_argument_or_environment_is_a_value_error_leaving_no_fd(
    spawner: Spawner, way: str, argv: list[str], env: dict[Any, Any]
) -> None:
    """As ``Popen`` refused them, before anything runs."""
    before = _open_fds()
    sock = socket.socket()  # a copy of it is made when it sits below its target: not here
    try:
        with pytest.raises(ValueError):
            spawner.spawn(argv, None, env, None, None, pdeathsig=True, method=way, listen=[sock.fileno()])
    finally:
        sock.close()
    assert _open_fds() == before
    assert not _zombies()


def test_without_close_range_the_helper_is_exec_d(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel before 5.9 has no ``close_range``: the in-process probe fails, and the
    spawner execs the helper through ``Popen`` (which closes the fds itself)."""
    monkeypatch.setattr(_helper, "_CLOSE_RANGE", 1023)  # no such system call: ENOSYS
    monkeypatch.setattr(_helper, "_ENCODED", {})  # programs encoded with it are forgotten after
    fallback = Spawner()
    try:
        assert fallback.method == "helper"
        leaked = os.open("/dev/null", os.O_RDONLY)
        os.set_inheritable(leaked, True)
        try:
            report = _report(fallback, "helper")
        finally:
            os.close(leaked)
        assert report["fds"] == [0, 1, 2]
    finally:
        fallback.close()


def test_the_fds_are_marked_close_on_exec_where_the_kernel_can(spawner: Spawner) -> None:
    """Linux 5.11: the child marks the fds from 3 up close-on-exec (a bitmap
    operation) instead of closing them one by one before its exec; the target's
    exec closes them, after it has let the supervisor go on."""
    assert spawner._in_process is not None
    assert spawner._in_process.cloexec_range  # this kernel is newer than 5.11
    program, _ = _helper.encode([_helper.CloseFrom(5, cloexec=True), _helper.CloseFrom(3, 4)])
    entries = bytes.fromhex(program)
    assert _helper._ENTRY.unpack_from(entries, 8)[:4] == (_helper._CLOSE_RANGE, 5, 2**32 - 1, 4)
    assert _helper._ENTRY.unpack_from(entries, 8 + 64)[:4] == (_helper._CLOSE_RANGE, 3, 4, 0)


def test_without_close_range_cloexec_the_fds_are_closed_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux 5.9 and 5.10 have ``close_range`` without ``CLOSE_RANGE_CLOEXEC``: the
    in-process spawn closes the fds instead; nothing leaks either way."""
    monkeypatch.setattr(_helper, "_cloexec_range_works", lambda libc: False)
    monkeypatch.setattr(_helper, "_ENCODED", {})
    closing = Spawner()
    try:
        assert closing.method == "vfork"
        assert closing._in_process is not None and not closing._in_process.cloexec_range
        leaked = os.open("/dev/null", os.O_RDONLY)
        os.set_inheritable(leaked, True)
        high = fcntl.fcntl(leaked, fcntl.F_DUPFD, 300)  # inheritable too
        try:
            report = _report(closing, "vfork")
        finally:
            os.close(leaked)
            os.close(high)
        assert report["fds"] == [0, 1, 2]
    finally:
        closing.close()


def test_a_failure_is_reported_without_waiting_for_the_error_pipe_to_close(
    spawner: Spawner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error pipe is read once, without blocking, right after ``clone``
    returns: a failure was written before the child exited; a child that exec'd
    has written nothing, and the read does not wait for its EOF."""
    reads: list[bool] = []
    read = os.read

    def watched(fd: int, size: int) -> bytes:
        reads.append(os.get_blocking(fd))
        return read(fd, size)

    monkeypatch.setattr(_helper.os, "read", watched)
    with pytest.raises(FileNotFoundError):
        _spawn(spawner, "vfork", ["/no/such/program"])
    pid = _spawn(spawner, "vfork", ["/bin/true"])
    assert os.waitpid(pid, 0)[1] == 0
    assert reads == [False, False]
