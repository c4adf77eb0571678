"""The parts of health checks and held sockets, each on its own: the core's
judgement of probe results (pure), the probe runner and the watchdog against
real servers, processes and the injected clock, binding and holding sockets,
and ``sv.listen_fds()`` in a real child."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from supervision import health
from supervision._core.errors import SpecError
from supervision._core.health import HealthRecord as Health
from supervision._core.listen import check_sockets, listen
from supervision._process.sockets import SocketPool
from supervision._runtime.health import ProbeRunner, Watchdog, run_probe, watchdog_message
from supervision.testing import ManualClock
from tests.process_helpers import alive

# -- the core's judgement -------------------------------------------------------------


def test_failures_in_a_row_fail_the_child_once() -> None:
    h = Health()
    judge = {"now": 10.0, "ready_at": 0.0, "grace": 0.0, "failures": 3}
    assert h.probed(True, **judge) == (True, False)
    assert h.probed(False, **judge) == (None, False)
    assert h.probed(False, **judge) == (None, False)
    assert h.probed(True, **judge) == (None, False)  # a pass resets the count
    assert h.probed(False, **judge) == (None, False)
    assert h.probed(False, **judge) == (None, False)
    assert h.probed(False, **judge) == (False, True)
    assert h.probed(False, **judge) == (None, False)  # failed already: nothing more
    assert not h.expired()


def test_failures_within_grace_are_not_counted() -> None:
    h = Health()
    for now in (1.0, 2.0, 4.9):
        assert h.probed(False, now=now, ready_at=0.0, grace=5.0, failures=1) == (None, False)
    assert h.healthy is None
    assert h.probed(False, now=5.0, ready_at=0.0, grace=5.0, failures=1) == (False, True)


def test_watchdog_expiry_fails_once() -> None:
    h = Health()
    assert h.expired()
    assert not h.expired()
    assert h.probed(False, now=0.0, ready_at=0.0, grace=0.0, failures=1) == (None, False)


# -- specs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "field"),
    [
        (health.http("ftp://x/"), "health"),
        (health.http("http://127.0.0.1:99999/"), "health"),
        (health.tcp(0), "health"),
        (health.exec([]), "health"),
        (health.http("http://h/", every=0), "health.every"),
        (health.tcp(80, timeout=float("nan")), "health.timeout"),
        (health.tcp(80, failures=0), "health.failures"),
        (health.tcp(80, grace=-1), "health.grace"),
    ],
)
def test_bad_probes_are_refused(probe: health.Probe, field: str) -> None:
    with pytest.raises(SpecError) as info:
        probe.check(("web",))
    assert info.value.path == ("web",)
    assert info.value.field == field


def test_a_call_probe_needs_an_async_function() -> None:
    def plain() -> bool:
        return True

    with pytest.raises(SpecError, match="async def"):
        health.call(plain).check(("w",))  # type: ignore[arg-type]


def test_listen_addresses() -> None:
    tcp = listen("tcp://127.0.0.1:8080")
    assert (tcp.family, tcp.host, tcp.port, tcp.name) == ("tcp", "127.0.0.1", 8080, "tcp-127.0.0.1-8080")
    v6 = listen("tcp://[::1]:0", name="v6")
    assert (v6.host, v6.port) == ("::1", 0)
    assert listen("unix:/run/app.sock", mode=0o660).family == "unix"
    for bad in ("http://x:1", "tcp://x", "tcp://::1:80", "unix:relative", "tcp://h:70000", "unix:@"):
        with pytest.raises(SpecError):
            listen(bad)
    with pytest.raises(SpecError, match="mode"):
        listen("tcp://127.0.0.1:1", mode=0o600)
    with pytest.raises(SpecError, match="name"):
        listen("tcp://127.0.0.1:1", name="a:b")


def test_socket_lists_are_checked() -> None:
    a = listen("tcp://127.0.0.1:1", name="a")
    with pytest.raises(SpecError, match="two sockets named"):
        check_sockets([a, listen("tcp://127.0.0.1:2", name="a")], ("w",))
    with pytest.raises(SpecError, match="listed twice"):
        check_sockets([a, listen("tcp://127.0.0.1:1", name="b")], ("w",))
    with pytest.raises(SpecError, match=r"sv\.listen"):
        check_sockets(["tcp://127.0.0.1:1"], ("w",))
    assert check_sockets([a], ("w",)) == (a,)


# -- probes against real things ---------------------------------------------------------


@contextlib.asynccontextmanager
async def http_server(status: list[int], delay: list[float] | None = None) -> AsyncIterator[int]:
    """A real HTTP server on loopback answering ``status[0]`` (changeable)."""

    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            if delay and delay[0]:
                await asyncio.sleep(delay[0])
            writer.write(f"HTTP/1.1 {status[0]} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def test_http_probe_healthy_on_2xx_3xx_only() -> None:
    status = [200]
    async with http_server(status) as port:
        probe = health.http(f"http://127.0.0.1:{port}/healthz")
        for code, healthy in ((200, True), (302, True), (404, False), (500, False)):
            status[0] = code
            result = await run_probe(probe)
            assert result[0] is healthy, (code, result)
            assert str(code) in result[1]


async def test_tcp_probe() -> None:
    async with http_server([200]) as port:
        assert (await run_probe(health.tcp(port)))[0]
    with pytest.raises(OSError):
        await run_probe(health.tcp(port))  # closed now: the runner turns this into a failure


async def test_exec_probe_status_and_reason() -> None:
    assert await run_probe(health.exec(["true"])) == (True, "exit status 0")
    healthy, reason = await run_probe(health.exec(["sh", "-c", "echo first >&2; echo 'disk full' >&2; exit 3"]))
    assert not healthy
    assert reason == "exit status 3: disk full"
    healthy, reason = await run_probe(health.exec(["/nonexistent/probe"]))
    assert not healthy and "FileNotFoundError" in reason


async def test_a_hung_exec_probe_is_cut_at_timeout_and_its_process_reaped(tmp_path: Path) -> None:
    results: list[tuple[bool, str]] = []
    done = asyncio.Event()
    pid_file = tmp_path / "probe.pid"

    def report(healthy: bool, reason: str) -> None:
        results.append((healthy, reason))
        done.set()

    clock = ManualClock()
    probe = health.exec(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"], every=1, timeout=0.5)
    runner = ProbeRunner(clock, probe, report)
    runner.start()
    clock.advance(1)
    try:
        await asyncio.wait_for(done.wait(), 10)
        assert results == [(False, "no answer within 0.5s")]
        with open(pid_file) as file:
            pid = int(file.read())
        assert not alive(pid)
    finally:
        runner.close()


async def test_a_hung_http_probe_is_cut_at_timeout() -> None:
    results: list[tuple[bool, str]] = []
    done = asyncio.Event()

    def report(healthy: bool, reason: str) -> None:
        results.append((healthy, reason))
        done.set()

    async with http_server([200], delay=[30.0]) as port:
        clock = ManualClock()
        runner = ProbeRunner(clock, health.http(f"http://127.0.0.1:{port}/", every=1, timeout=0.3), report)
        runner.start()
        clock.advance(1)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(done.wait(), 10)
        assert results == [(False, "no answer within 0.3s")]
        assert loop.time() - began < 5
        runner.close()


async def test_probes_never_overlap() -> None:
    in_flight = 0
    most = 0
    calls = 0
    release = asyncio.Event()

    async def slow() -> bool:
        nonlocal in_flight, most, calls
        calls += 1
        in_flight += 1
        most = max(most, in_flight)
        try:
            await release.wait()
        finally:
            in_flight -= 1
        return True

    results: list[bool] = []
    clock = ManualClock()
    runner = ProbeRunner(clock, health.call(slow, every=1, timeout=1000), lambda ok, _: results.append(ok))
    runner.start()
    for _ in range(10):  # ten ticks while the first probe hangs
        clock.advance(1)
        await asyncio.sleep(0)
    assert (calls, most, runner.runs, runner.skipped) == (1, 1, 1, 9)
    release.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert results == [True]
    clock.advance(1)
    await asyncio.sleep(0)
    assert (calls, most) == (2, 1)
    runner.close()
    await asyncio.sleep(0)


async def test_call_probe_results() -> None:
    async def false() -> bool:
        return False

    async def boom() -> None:
        raise RuntimeError("db gone")

    async def none() -> None:
        return None

    assert await run_probe(health.call(false)) == (False, "returned False")
    assert (await run_probe(health.call(none)))[0]
    with pytest.raises(RuntimeError):
        await run_probe(health.call(boom))


async def test_the_runner_reports_exceptions_as_failures() -> None:
    async def boom() -> None:
        raise RuntimeError("db gone")

    results: list[tuple[bool, str]] = []
    clock = ManualClock()
    runner = ProbeRunner(clock, health.call(boom, every=1), lambda ok, why: results.append((ok, why)))
    runner.start()
    clock.advance(1)
    for _ in range(3):
        await asyncio.sleep(0)
    assert results == [(False, "RuntimeError: db gone")]
    runner.close()


# -- the watchdog ----------------------------------------------------------------------


def test_watchdog_deadline_beats_trigger_and_period() -> None:
    clock = ManualClock()
    expired: list[tuple[float, bool, float]] = []
    dog = Watchdog(clock, 2.0, lambda period, triggered: expired.append((period, triggered, clock.now())))
    for _ in range(5):  # beating every 1.5 s keeps it alive
        clock.advance(1.5)
        dog.beat()
    assert expired == []
    clock.advance(1.9)
    assert expired == []
    clock.advance(0.2)
    assert expired == [(2.0, False, pytest.approx(9.5))]
    clock.advance(10)
    assert len(expired) == 1  # once

    expired.clear()
    dog = Watchdog(clock, 2.0, lambda period, triggered: expired.append((period, triggered, clock.now())))
    assert watchdog_message(dog, "WATCHDOG_USEC", "5000000")
    clock.advance(4.9)
    assert expired == []
    assert watchdog_message(dog, "WATCHDOG", "1")
    assert not watchdog_message(dog, "WATCHDOG", "2")
    assert not watchdog_message(dog, "WATCHDOG_USEC", "-1")
    assert watchdog_message(dog, "WATCHDOG", "trigger")
    assert expired == [(5.0, True, clock.now())]

    off = Watchdog(clock, 1.0, lambda period, triggered: expired.append((period, triggered, 0)))
    off.set_period(0)
    clock.advance(100)
    assert len(expired) == 1
    off.close()


# -- held sockets -----------------------------------------------------------------------


def test_pool_binds_once_and_keeps_what_the_spec_keeps(tmp_path: os.PathLike[str]) -> None:
    pool = SocketPool()
    web = listen("tcp://127.0.0.1:0", name="web")
    path = os.path.join(os.fspath(tmp_path), "app.sock")
    app = listen(f"unix:{path}", mode=0o660, name="app")
    try:
        first = pool.acquire(("web",), [web, app])
        again = pool.acquire(("web",), [web, app])
        assert [s.fileno() for s in first] == [s.fileno() for s in again]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        port = first[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the kernel accepts into the backlog: nobody has to call accept()
        assert not first[0].get_inheritable()
        assert first[0].getblocking()
        # The same addresses with a new backlog, mode and name: the same sockets, changed in place.
        changed = [listen("tcp://127.0.0.1:0", name="web", backlog=16), listen(f"unix:{path}", mode=0o600, name="x")]
        assert [s.fileno() for s in pool.acquire(("web",), changed)] == [s.fileno() for s in first]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        pool.keep_only(("web",), [web])
        assert first[1].fileno() == -1
        assert not os.path.exists(path)
        pool.release(("web",))
        assert first[0].fileno() == -1
    finally:
        pool.close()


def test_pool_replaces_a_stale_socket_file_but_no_other_file(tmp_path: os.PathLike[str]) -> None:
    pool = SocketPool()
    stale = os.path.join(os.fspath(tmp_path), "stale.sock")
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(stale)
    plain = os.path.join(os.fspath(tmp_path), "plain")
    with open(plain, "w") as file:
        file.write("keep me")
    try:
        (sock,) = pool.acquire(("a",), [listen(f"unix:{stale}")])
        assert sock.getsockname() == stale
        with pytest.raises(FileExistsError):
            pool.acquire(("b",), [listen(f"unix:{plain}")])
        with open(plain) as file:
            assert file.read() == "keep me"
    finally:
        pool.close()


def test_a_socket_that_cannot_be_bound_leaves_nothing_held() -> None:
    pool = SocketPool()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            pool.acquire(("a",), [listen("tcp://127.0.0.1:0", name="ok"), listen(f"tcp://127.0.0.1:{port}")])
    assert pool.held() == {}


LISTEN_CHILD = """
import os, sys, json
sys.path.insert(0, sys.argv[1])
os.environ["LISTEN_PID"] = str(os.getpid()) if sys.argv[2] == "me" else "1"
from supervision._process.activation import listen_fds
found = listen_fds()
print(json.dumps({name: [s.getsockname()[1], s.get_inheritable()] for name, s in found.items()}))
print(json.dumps("LISTEN_FDS" in os.environ))
"""


@pytest.mark.parametrize("who", ["me", "another"])
def test_listen_fds_in_a_real_child(who: str) -> None:
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    try:
        ports = [s.getsockname()[1] for s in socks]
        fds = [s.fileno() for s in socks]

        def place() -> None:  # at fds 3 and 4, as the exec helper places them
            copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
            for index, fd in enumerate(copies):
                os.dup2(fd, 3 + index)

        env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="web:")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        lines = subprocess.run(
            [sys.executable, "-c", LISTEN_CHILD, root, who],
            env=env,
            preexec_fn=place,
            close_fds=False,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.splitlines()
        found, inherited = json.loads(lines[0]), json.loads(lines[1])
        if who == "me":
            assert found == {"web": [ports[0], False], "unknown": [ports[1], False]}
        else:
            assert found == {}
        assert inherited is False  # the variables are unset for the service's own children
    finally:
        for s in socks:
            s.close()


# -- the spawner's socket activation (the exec helper, and its preexec_fn fallback) ----------

ACTIVATED = """
import json, os
print(json.dumps([os.getpid(), os.environ["LISTEN_PID"], os.environ["WATCHDOG_PID"], os.environ["OTHER"],
                  [os.fstat(fd).st_ino for fd in (3, 4)], sorted(int(fd) for fd in os.listdir("/proc/self/fd"))]))
"""


@pytest.mark.parametrize("method", ["vfork", "helper", "preexec"])
@pytest.mark.parametrize("pdeathsig", [True, False])
def test_the_spawner_places_sockets_and_writes_the_pid(method: str, pdeathsig: bool, tmp_path: Path) -> None:
    from supervision._process.reaper import spawner

    spawn = spawner()
    if (method == "vfork" and spawn.method != "vfork") or (method == "helper" and spawn.method == "preexec"):
        pytest.skip("no exec helper on this machine (not x86-64, or memfd exec forbidden)")
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    out = tmp_path / "out"
    try:
        env = {b"LISTEN_PID": b" " * 12, b"WATCHDOG_PID": b" " * 12, b"OTHER": b"kept", b"PATH": os.environb[b"PATH"]}
        with open(out, "wb") as file:
            fds = [s.fileno() for s in reversed(socks)]  # any order: placed at 3, 4 as listed
            pid = spawn.spawn(
                [sys.executable, "-c", ACTIVATED],
                None,
                env,
                file.fileno(),
                None,
                pdeathsig=pdeathsig,
                method=method,
                listen=fds,
                pid_variables=2,
            )
        _, status = os.waitpid(pid, 0)
        assert status == 0
        own, listen_pid, watchdog_pid, other, inodes, open_fds = json.loads(out.read_text())
        assert (own, listen_pid, watchdog_pid, other) == (pid, str(pid), str(pid), "kept")
        assert inodes == [os.fstat(fd).st_ino for fd in fds]
        assert open_fds[:5] == [0, 1, 2, 3, 4] and len(open_fds) == 6  # and the listdir's own: nothing leaked
        with pytest.raises(FileNotFoundError):
            spawn.spawn(["/nonexistent/x"], None, env, None, None, pdeathsig=pdeathsig, method=method, listen=fds)
    finally:
        for s in socks:
            s.close()
