"""Watchdogs, health probes, held sockets and overlapping restarts, with real
processes, real sockets and real servers (issue 14)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path

import pytest

import supervision as sv
from supervision._core.messages import OperatorRestart
from supervision.testing import ManualClock
from tests.helpers import is_, next_event
from tests.process_helpers import NOTIFY, PY, alive, free_port

pytestmark = pytest.mark.timeout(60)

LONG = 20.0  # an upper bound for things that take a second or less, under load

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def operator_restart(tree: sv.Tree, id: str) -> None:
    """What ``supervision restart ID`` does (the control command sends this to the core)."""
    await tree.runner_at(()).call(OperatorRestart(id))


# A real HTTP service on its held sockets: it answers the status in STATUS_FILE
# (200 if there is none) and appends each answer to LOG_FILE.
SERVER = NOTIFY + textwrap.dedent(
    """
    import http.server, os, signal, sys, threading
    sys.path.insert(0, sys.argv[1])
    import supervision as sv
    status_file, log_file = sys.argv[2], sys.argv[3]
    sock = sv.listen_fds()["web"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                with open(status_file) as file:
                    code = int(file.read())
            except (OSError, ValueError):
                code = 200
            with open(log_file, "a") as file:  # before the answer: the test reads it after the probe
                file.write(f"{code}\\n")
            body = f"{os.getpid()}".encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket = sock
    # A graceful stop, as docs/health.md asks: stop accepting, finish the request in flight.
    # (shutdown() waits for serve_forever to return, so it runs on a thread of its own.)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    if "NOTIFY_SOCKET" in os.environ:
        notify("READY=1")
    server.serve_forever(poll_interval=0.05)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # then end as stopped by SIGTERM (tests check)
    os.kill(os.getpid(), signal.SIGTERM)
    """
)


def server_argv(tmp_path: Path) -> list[str]:
    return [PY, "-c", SERVER, ROOT, str(tmp_path / "status"), str(tmp_path / "log")]


async def http_get(port: int) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


# -- watchdogs ---------------------------------------------------------------------------------

PINGER = NOTIFY + textwrap.dedent(
    """
    import json, sys, time
    print(json.dumps([os.getpid(), os.environ["WATCHDOG_PID"], os.environ["WATCHDOG_USEC"]]), flush=True)
    notify("READY=1")
    mode = sys.argv[1]
    if mode == "trigger":
        time.sleep(0.3)
        notify("WATCHDOG=trigger")
    elif mode == "usec":
        notify("WATCHDOG_USEC=3000000")
        for _ in range(3):  # every second: fine with 3 s, too slow for the 0.3 s of the spec
            time.sleep(1.0)
            notify("WATCHDOG=1")
    else:
        for _ in range(5):
            time.sleep(0.05)
            notify("WATCHDOG=1")
    time.sleep(60)
    """
)


async def test_a_process_that_stops_sending_watchdog_is_killed_with_the_watchdog_signal(tmp_path: Path) -> None:
    log = tmp_path / "out"
    spec = sv.process(
        "svc",
        [PY, "-c", PINGER, "stop"],
        cwd=tmp_path,
        ready=sv.ready.notify(),
        watchdog=0.3,
        output=str(log),
    )
    starting = sv.start(sv.Supervisor([spec], intensity=5, period=60))
    events = starting.events()
    async with starting as tree:
        exited = await next_event(events, is_(sv.ChildExited, "svc"), timeout=LONG)
        assert isinstance(exited, sv.ChildExited)
        assert exited.reason == "crash"
        assert isinstance(exited.error, sv.WatchdogTimeout)
        assert exited.error.path == ("svc",) and exited.error.period == 0.3 and not exited.error.triggered
        assert exited.signal == signal.SIGABRT
        restarted = await next_event(events, is_(sv.ChildStarted, "svc"), timeout=LONG)
        assert isinstance(restarted, sv.ChildStarted) and restarted.starts == 2
        await tree.stop()
    pid, watchdog_pid, usec = json.loads(log.read_text().splitlines()[0])
    assert watchdog_pid == str(pid)  # the program's own pid, as sd_watchdog_enabled() checks
    assert usec == "300000"


async def test_watchdog_trigger_fails_the_child_at_once(tmp_path: Path) -> None:
    spec = sv.process(
        "svc", [PY, "-c", PINGER, "trigger"], cwd=tmp_path, ready=sv.ready.notify(), watchdog=30, output="inherit"
    )
    starting = sv.start(sv.Supervisor([spec]))
    events = starting.events()
    async with starting as tree:
        exited = await next_event(events, is_(sv.ChildExited, "svc"), timeout=LONG)
        assert isinstance(exited, sv.ChildExited) and isinstance(exited.error, sv.WatchdogTimeout)
        assert exited.error.triggered
        assert exited.signal == signal.SIGABRT
        await tree.stop()


async def test_watchdog_usec_changes_the_period(tmp_path: Path) -> None:
    spec = sv.process(
        "svc", [PY, "-c", PINGER, "usec"], cwd=tmp_path, ready=sv.ready.notify(), watchdog=0.3, output="inherit"
    )
    starting = sv.start(sv.Supervisor([spec]))
    events = starting.events()
    async with starting as tree:
        started = await next_event(events, is_(sv.ChildStarted, "svc"), timeout=LONG)
        exited = await next_event(events, is_(sv.ChildExited, "svc"), timeout=LONG)
        assert isinstance(exited, sv.ChildExited) and isinstance(exited.error, sv.WatchdogTimeout)
        assert exited.error.period == 3.0
        assert exited.time - started.time >= 3.0  # three pings a second apart were enough
        await tree.stop()


async def test_a_worker_that_stops_calling_heartbeat_is_cancelled_and_restarted() -> None:
    beats: asyncio.Queue[None] = asyncio.Queue()
    cancelled: list[int] = []

    async def worker(ctx: sv.Context) -> None:
        try:
            while True:
                await beats.get()
                ctx.heartbeat()
        except asyncio.CancelledError:
            cancelled.append(ctx.starts)
            raise

    clock = ManualClock()
    starting = sv.start(sv.Supervisor([sv.child("w", worker, watchdog=1.0)]), clock=clock)
    events = starting.events()
    async with starting as tree:
        for _ in range(5):  # a beat every 0.8 s keeps it alive
            clock.advance(0.8)
            beats.put_nowait(None)
            await asyncio.sleep(0)
        assert cancelled == []
        clock.advance(0.99)
        await asyncio.sleep(0)
        assert cancelled == []
        clock.advance(0.02)
        exited = await next_event(events, is_(sv.ChildExited, "w"))
        assert isinstance(exited, sv.ChildExited) and exited.reason == "crash"
        assert isinstance(exited.error, sv.WatchdogTimeout) and exited.error.path == ("w",)
        assert cancelled == [1]
        started = await next_event(events, is_(sv.ChildStarted, "w"))
        assert isinstance(started, sv.ChildStarted) and started.starts == 2
        await tree.stop()


# -- health probes ----------------------------------------------------------------------------


async def test_an_http_probe_restarts_after_failures_in_a_row_and_not_before(tmp_path: Path) -> None:
    port = free_port()
    spec = sv.process(
        "web",
        server_argv(tmp_path),
        sockets=[sv.listen(f"tcp://127.0.0.1:{port}", name="web")],
        health=sv.health.http(f"http://127.0.0.1:{port}/healthz", every=0.1, timeout=5, failures=3),
        output="inherit",
    )
    starting = sv.start(sv.Supervisor([spec], intensity=5, period=60))
    events = starting.events()
    async with starting as tree:
        healthy = await next_event(events, is_(sv.HealthChanged, "web"), timeout=LONG)
        assert isinstance(healthy, sv.HealthChanged) and healthy.healthy
        assert tree.which_children()[0].health == "healthy"
        (tmp_path / "status").write_text("500")
        unhealthy = await next_event(events, is_(sv.HealthChanged, "web"), timeout=LONG)
        assert isinstance(unhealthy, sv.HealthChanged) and not unhealthy.healthy
        assert "500" in unhealthy.reason
        exited = await next_event(events, is_(sv.ChildExited, "web"), timeout=LONG)
        assert isinstance(exited, sv.ChildExited) and exited.reason == "crash"
        assert isinstance(exited.error, sv.HealthCheckFailed) and "500" in exited.error.reason
        assert exited.signal == signal.SIGTERM  # an unhealthy child is stopped, not aborted
        answers = (tmp_path / "log").read_text().split()
        failed = len(answers) - len("".join("x" if a == "200" else " " for a in answers).rstrip())
        assert answers[-3:] == ["500"] * 3 and failed == 3  # exactly `failures` in a row, then the restart
        (tmp_path / "status").unlink()
        started = await next_event(events, is_(sv.ChildStarted, "web"), timeout=LONG)
        assert isinstance(started, sv.ChildStarted) and started.starts == 2
        await tree.stop()


async def test_health_failures_count_toward_intensity_and_escalate() -> None:
    probes = 0

    async def sick() -> bool:
        nonlocal probes
        probes += 1
        return False

    async def worker(ctx: sv.Context) -> None:
        await asyncio.Event().wait()

    spec = sv.child("w", worker, health=sv.health.call(sick, every=0.02, failures=1))
    starting = sv.start(sv.Supervisor([spec], intensity=2, period=60))
    events = starting.events()
    async with starting as tree:
        with pytest.raises(sv.TooManyRestarts) as info:
            await asyncio.wait_for(tree.wait(), LONG)
        assert isinstance(info.value.__cause__, sv.HealthCheckFailed)
        assert probes == 3  # three crashes: the third restart exceeds intensity 2
    seen = []
    async for event in events:
        seen.append(type(event).__name__)
    assert seen.count("HealthChanged") == 3 and "SupervisorGaveUp" in seen


async def test_failures_within_grace_are_not_counted() -> None:
    results: list[bool] = []

    async def sick() -> bool:
        results.append(False)
        return False

    async def worker(ctx: sv.Context) -> None:
        await asyncio.Event().wait()

    clock = ManualClock()
    spec = sv.child("w", worker, health=sv.health.call(sick, every=1, failures=1, grace=5))
    starting = sv.start(sv.Supervisor([spec]), clock=clock)
    events = starting.events()
    async with starting as tree:
        for _ in range(4):
            clock.advance(1)
            for _ in range(5):
                await asyncio.sleep(0)
        assert len(results) == 4
        assert tree.which_children()[0].health == "unknown"
        clock.advance(1)  # 5 s after readiness: this failure counts
        exited = await next_event(events, is_(sv.ChildExited, "w"))
        assert isinstance(exited, sv.ChildExited) and isinstance(exited.error, sv.HealthCheckFailed)
        await tree.stop()


# -- held sockets -------------------------------------------------------------------------------


async def test_sockets_are_passed_by_socket_activation_and_held_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    unix_path = tmp_path / "app.sock"
    script = NOTIFY + textwrap.dedent(
        """
        import json, os, sys, socket
        sys.path.insert(0, sys.argv[1])
        env = {k: os.environ.get(k) for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")}
        import supervision as sv
        found = sv.listen_fds()
        print(json.dumps([os.getpid(), env, sorted(found), found["web"].fileno(), found["app"].fileno()]), flush=True)
        web = found["web"]
        notify("READY=1")
        while True:
            conn, _ = web.accept()
            conn.sendall(str(os.getpid()).encode())
            conn.close()
        """
    )
    log = tmp_path / "out"
    spec = sv.process(
        "web",
        [PY, "-c", script, ROOT],
        sockets=[
            sv.listen(f"tcp://127.0.0.1:{port}", name="web"),
            sv.listen(f"unix:{unix_path}", mode=0o660, name="app"),
        ],
        ready=sv.ready.notify(),
        output=str(log),
    )
    starting = sv.start(sv.Supervisor([spec], intensity=5, period=60))
    events = starting.events()
    async with starting as tree:
        assert os.stat(unix_path).st_mode & 0o777 == 0o660
        first = tree.which_children()[0].pid
        assert first is not None
        sv.testing.crash(tree, "web")
        await next_event(events, is_(sv.ChildExited, "web"))
        # Gone, and its successor not listening yet: the socket stays open, the kernel queues the connection.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(reader.read(), LONG)
        writer.close()
        await writer.wait_closed()
        second = tree.which_children()[0].pid
        assert second is not None and second != first and answer == str(second).encode()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    pid, env, names, web_fd, app_fd = lines[0]
    assert names == ["app", "web"]
    assert env == {"LISTEN_PID": str(pid), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:app"}
    assert (web_fd, app_fd) == (3, 4)
    assert not unix_path.exists()  # the tree stopped: its socket file is gone


async def test_a_worker_gets_its_sockets_as_ctx_sockets_and_they_outlive_it() -> None:
    port = free_port()

    async def serve(ctx: sv.Context) -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(str(ctx.starts).encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, sock=ctx.sockets["web"])
        async with server:  # closes its socket when the worker ends: its own copy, not the held one
            await asyncio.Event().wait()

    async def ask() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = await asyncio.wait_for(reader.read(), LONG)
        writer.close()
        await writer.wait_closed()
        return data

    spec = sv.child("w", serve, sockets=[sv.listen(f"tcp://127.0.0.1:{port}", name="web")])
    starting = sv.start(sv.Supervisor([spec]))
    events = starting.events()
    async with starting as tree:
        assert await ask() == b"1"
        sv.testing.crash(tree, "w")
        await next_event(events, is_(sv.ChildStarted, "w"))
        assert await ask() == b"2"
        await tree.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)  # the tree stopped: the socket is closed


# -- overlapping restarts ------------------------------------------------------------------------


async def test_an_operator_restart_overlaps_start_then_stop(tmp_path: Path) -> None:
    port = free_port()
    spec = sv.process(
        "web",
        server_argv(tmp_path),
        sockets=[sv.listen(f"tcp://127.0.0.1:{port}", name="web")],
        ready=sv.ready.notify(),
        restart_mode="overlap",
        output="inherit",
    )
    starting = sv.start(sv.Supervisor([spec]))
    events = starting.events()
    async with starting as tree:
        await next_event(events, is_(sv.ChildStarted, "web"))
        old = tree.which_children()[0].pid
        assert old is not None
        await operator_restart(tree, "web")
        started = await next_event(events, is_(sv.ChildStarted, "web"))
        exited = await next_event(events, is_(sv.ChildExited, "web"))
        assert isinstance(started, sv.ChildStarted) and started.pid != old
        assert isinstance(exited, sv.ChildExited) and exited.reason == "shutdown"
        assert started.time <= exited.time
        assert tree.which_children()[0].pid == started.pid
        assert not alive(old)
        status, body = await http_get(port)
        assert (status, body) == (200, str(started.pid))
        await tree.stop()


async def test_an_overlapping_restart_that_fails_to_start_keeps_the_old_one() -> None:
    running: list[int] = []

    async def worker(ctx: sv.Context) -> None:
        if ctx.starts == 2:
            raise RuntimeError("the new version is broken")
        running.append(ctx.starts)
        ctx.ready()
        await asyncio.Event().wait()

    spec = sv.child("w", worker, ready=True, restart_mode="overlap")
    async with sv.start(sv.Supervisor([spec])) as tree:
        with pytest.raises(sv.StartError):
            await operator_restart(tree, "w")
        info = tree.which_children()[0]
        assert info.status == "running" and running == [1]
        await operator_restart(tree, "w")  # the third start works: old stopped after it
        assert running == [1, 3]
        await tree.stop()


async def test_a_reload_with_a_changed_spec_overlaps(tmp_path: Path) -> None:
    port = free_port()

    def web(version: str) -> sv.ChildSpec:
        return sv.process(
            "web",
            server_argv(tmp_path),
            env={"VERSION": version},
            sockets=[sv.listen(f"tcp://127.0.0.1:{port}", name="web")],
            ready=sv.ready.notify(),
            restart_mode="overlap",
            output="inherit",
        )

    starting = sv.start(sv.Supervisor([web("1")]))
    events = starting.events()
    async with starting as tree:
        await next_event(events, is_(sv.ChildStarted, "web"))
        old = tree.which_children()[0].pid
        applied = await tree.update(sv.Supervisor([web("2")]))
        assert applied.restarted == (("web",),)
        started = await next_event(events, is_(sv.ChildStarted, "web"))
        exited = await next_event(events, is_(sv.ChildExited, "web"))
        assert isinstance(started, sv.ChildStarted) and isinstance(exited, sv.ChildExited)
        assert started.pid != old and started.time <= exited.time
        await tree.stop()


async def test_overlap_leaves_rest_for_one_dependents_running() -> None:
    tasks: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    async def worker(ctx: sv.Context) -> None:
        tasks[ctx.id].append(ctx.starts)
        ctx.ready()
        await asyncio.Event().wait()

    spec = sv.Supervisor(
        [sv.child(id, worker, ready=True, restart_mode="overlap") for id in "abc"], strategy="rest_for_one"
    )
    async with sv.start(spec) as tree:
        await operator_restart(tree, "b")  # on purpose: only b, overlapping
        assert tasks == {"a": [1], "b": [1, 2], "c": [1]}
        sv.testing.crash(tree, "b")  # a crash: b and c, stop then start
        for _ in range(20):
            await asyncio.sleep(0)
        assert tasks == {"a": [1], "b": [1, 2, 3], "c": [1, 2]}
        await tree.stop()


def test_specs_refuse_what_a_supervisor_cannot_have() -> None:
    with pytest.raises(sv.SpecError, match="notify"):
        sv.process("p", ["true"], sockets=[sv.listen("tcp://127.0.0.1:8080")], ready=sv.ready.port(8080))
    with pytest.raises(sv.SpecError, match="restart_mode"):
        sv.child("s", sv.Supervisor(), restart_mode="overlap")
    with pytest.raises(sv.SpecError, match="watchdog"):
        sv.child("s", sv.Supervisor(), watchdog=1)
    with pytest.raises(sv.SpecError, match="restart_mode"):
        sv.process("p", ["true"], restart_mode="sometimes")
    with pytest.raises(sv.SpecError, match="watchdog_signal"):
        sv.process("p", ["true"], watchdog_signal=0)
    with pytest.raises(sv.SpecError, match="health"):
        sv.process("p", ["true"], health="http://x")  # type: ignore[arg-type]
    with pytest.raises(sv.SpecError, match="sockets"):
        sv.process("p", ["true"], sockets=["tcp://127.0.0.1:1"])  # type: ignore[list-item]
    assert sys.version_info >= (3, 11)


# -- re-exec --------------------------------------------------------------------------------------

REEXEC_APP = """
import os, sys
import supervision as sv

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = {server!r}

def build():
    return sv.Supervisor([
        sv.process(
            "web",
            [sys.executable, "-c", SERVER, {root!r}, os.path.join(HERE, "status"), os.path.join(HERE, "log")],
            env={{"VERSION": {version!r}}},
            sockets=[sv.listen("tcp://127.0.0.1:{port}", name="web")],
            ready=sv.ready.notify(),
            restart_mode="overlap",
        ),
    ])
"""


class Load:
    """A client hitting the service in a loop from a thread: answers by pid, failures."""

    def __init__(self, port: int) -> None:
        import threading

        self.port = port
        self.pids: list[str] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := sock.recv(4096):
                        data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
                    raise OSError(f"bad answer {head[:40]!r}")
                self.pids.append(body.decode())
            except OSError as exc:
                self.failures.append(repr(exc))
            self.stopping.wait(0.005)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)


def test_reexec_keeps_held_sockets_and_overlaps_a_changed_child(tmp_path: Path) -> None:
    from tests.cli_helpers import Run, wait_until

    port = free_port()
    app = tmp_path / "app.py"

    def write(version: str) -> None:
        app.write_text(REEXEC_APP.format(server=SERVER, root=ROOT, version=version, port=port))

    write("1")
    run = Run(tmp_path, "app.py", env={"PYTHONPATH": ROOT})
    load: Load | None = None
    try:
        run.wait_running()
        first = run.nodes()["web"]["pid"]
        load = Load(port)
        wait_until(lambda: len(load.pids) >= 5 if load else False, "answers")
        run.cli("reexec")  # the same spec: adopted, and its socket held on
        assert run.nodes()["web"]["pid"] == first
        write("2")
        run.cli("reexec")  # a changed spec: replaced, overlapping
        second = run.nodes()["web"]["pid"]
        assert second != first
        wait_until(lambda: load is not None and load.pids[-1] == str(second), "answers from the new process")
        load.stop()
        assert load.failures == []
        assert not alive(first)
        run.signal(signal.SIGTERM)
        assert run.wait_exit() == 0
    finally:
        if load is not None:
            load.stop()
        run.close()


STATUS_APP = """
import os, sys
import supervision as sv

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = {server!r}

def build():
    return sv.Supervisor([
        sv.process(
            "web",
            [sys.executable, "-c", SERVER, {root!r}, os.path.join(HERE, "status"), os.path.join(HERE, "log")],
            sockets=[sv.listen("tcp://127.0.0.1:{port}", name="web")],
            ready=sv.ready.notify(),
            health=sv.health.http("http://127.0.0.1:{port}/", every=0.1),
        ),
        sv.process("plain", ["sleep", "60"]),
    ])
"""


def test_status_shows_health(tmp_path: Path) -> None:
    from tests.cli_helpers import Run, wait_until

    port = free_port()
    (tmp_path / "app.py").write_text(STATUS_APP.format(server=SERVER, root=ROOT, port=port))
    run = Run(tmp_path, "app.py", env={"PYTHONPATH": ROOT})
    try:
        run.wait_running()
        wait_until(lambda: run.nodes()["web"]["health"] == "healthy", "the first passing probe")
        assert run.nodes()["plain"]["health"] is None
        text = run.cli("status").stdout.splitlines()
        assert text[1].split() == [
            "PATH",
            "KIND",
            "STATUS",
            "HEALTH",
            "PID",
            "CPU%",
            "RSS",
            "UPTIME",
            "RESTARTS",
            "LAST",
            "EXIT",
        ]
        assert text[2].split()[:4] == ["web", "process", "running", "healthy"]
        assert text[3].split()[:4] == ["plain", "process", "running", "-"]
        run.signal(signal.SIGTERM)
        assert run.wait_exit() == 0
    finally:
        run.close()
