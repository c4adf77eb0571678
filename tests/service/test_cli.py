"""End-to-end tests of the ``supervision`` command: ``supervision run`` runs as a
subprocess and every action goes through the command line (``python -m
supervision status/restart/stop/start/reload/logs``)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import supervision as sv
from supervision.__main__ import duration
from supervision._process.output import Output
from supervision._service.recorder import OutputLog
from supervision._service.run import default_name
from supervision._service.systemd import Notifier, watchdog_interval
from tests.cli_helpers import DEADLINE, PY, Run, ping, request, wait_until
from tests.process_helpers import alive

LOOP = "import sys, time\\nprint('hello from', sys.argv[1], flush=True)\\nwhile True: time.sleep(1)"

APP = f"""
import asyncio, sys
import supervision as sv

LOOP = "{LOOP}"

async def ticker(ctx):
    await asyncio.Event().wait()

def build():
    return sv.Supervisor([
        sv.child("ticker", ticker),
        sv.process("web", [sys.executable, "-c", LOOP, "web"]),
        sv.child("db", sv.Supervisor([sv.process("pool", [sys.executable, "-c", LOOP, "pool"])])),
    ])
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


@pytest.fixture
def run(app: Path) -> object:
    running = Run(app, "app.py")
    yield running
    running.close()


def test_status_restart_stop_start(run: Run) -> None:
    run.wait_running()
    status = run.status()
    assert status["state"] == "running" and status["pid"] == run.proc.pid
    nodes = run.nodes()
    assert list(nodes) == ["ticker", "web", "db", "db/pool"]
    assert [nodes[p]["kind"] for p in nodes] == ["worker", "process", "supervisor", "process"]
    web_pid = nodes["web"]["pid"]
    assert isinstance(web_pid, int) and alive(web_pid)
    assert nodes["ticker"]["pid"] is None and nodes["web"]["restarts"] == 0

    human = run.cli("status").stdout
    assert re.search(rf"^web\s+process\s+running\s+{web_pid}\s", human, re.M), human
    assert re.search(r"^  db/pool\s+process\s+running", human, re.M), human
    assert "LAST EXIT" in human.splitlines()[1]

    done = run.cli("restart", "web")
    new_pid = int(re.fullmatch(r"web: restarted \(pid (\d+)\)\n", done.stdout).group(1))  # type: ignore[union-attr]
    assert new_pid != web_pid
    wait_until(lambda: not alive(web_pid), "the old web to be gone")
    web = run.nodes()["web"]
    assert (web["pid"], web["restarts"], web["last_exit"]["reason"]) == (new_pid, 1, "shutdown")

    pool_pid = run.nodes()["db/pool"]["pid"]
    assert run.cli("stop", "db/pool").stdout == "db/pool: stopped\n"
    pool = run.nodes()["db/pool"]
    assert (pool["status"], pool["pid"]) == ("terminated", None)
    wait_until(lambda: not alive(pool_pid), "db/pool to be gone")
    assert "started (pid" in run.cli("start", "db/pool").stdout
    assert run.nodes()["db/pool"]["status"] == "running"

    assert [n["path"] for n in run.status("db")["children"]] == ["db"]
    assert [n["path"] for n in run.status("db")["children"][0]["children"]] == ["db/pool"]


def test_errors_go_to_stderr_with_a_non_zero_exit(run: Run, tmp_path: Path) -> None:
    run.wait_running()
    done = run.cli("restart", "nope", expect=1)
    assert done.stdout == "" and "nope: no such child" in done.stderr
    assert "running" in run.cli("start", "web", expect=1).stderr
    assert run.cli("status", "db/nope", expect=1).stderr
    # No tree at that path: exit status 3.
    missing = str(tmp_path / "none" / "x.sock")
    done = subprocess.run([PY, "-m", "supervision", "status", "--control", missing], capture_output=True, text=True)
    assert done.returncode == 3 and "no tree is running" in done.stderr
    done = subprocess.run([PY, "-m", "supervision", "bogus"], capture_output=True, text=True)
    assert done.returncode == 2


def test_logs_shows_recent_output_lines(run: Run) -> None:
    run.wait_running()
    wait_until(lambda: "hello from web" in run.cli("logs", "web").stdout, "web's output in logs")
    assert run.cli("logs", "web").stdout == "hello from web\n"
    wait_until(lambda: "hello from pool" in run.cli("logs", "db").stdout, "pool's output in logs")
    assert run.cli("logs", "db").stdout == "db/pool | hello from pool\n"
    run.cli("restart", "web")
    wait_until(lambda: run.cli("logs", "web").stdout.count("hello from web") == 2, "the second start's line")
    assert run.cli("logs", "web", "-n", "1").stdout == "hello from web\n"
    assert "hello from web" in run.stdout  # passed through unchanged, prefixed
    assert "web | hello from web" in run.stdout


def test_stop_stops_the_tree_and_waits(run: Run) -> None:
    run.wait_running()
    pids = run.pids()
    assert len(pids) == 2
    assert run.cli("stop").stdout == "stopped\n"
    assert run.wait_exit() == 0
    assert not os.path.exists(run.control)
    wait_until(lambda: not any(alive(pid) for pid in pids), "the processes to be gone")


def test_sigterm_stop_leaves_no_process_behind(run: Run) -> None:
    run.wait_running()
    pids = run.pids()
    assert {n["pid"] for n in run.nodes().values() if n["pid"]} <= pids and len(pids) == 2
    run.signal(signal.SIGTERM)
    assert run.wait_exit() == 0
    assert not any(alive(pid) for pid in pids)  # reaped by the run before it exited
    assert not os.path.exists(run.control)
    assert "SIGTERM: stopping the tree" in run.stderr


STUBBORN = """
import sys
import supervision as sv

IGNORE = (
    "import signal, time\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
    "print('ignoring', flush=True)\\ntime.sleep(1000)"
)

def build():
    return sv.Supervisor([sv.process("stubborn", [sys.executable, "-c", IGNORE], shutdown=600)])
"""


def test_second_sigint_kills_what_is_left(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(STUBBORN)
    run = Run(tmp_path, "app.py")
    try:
        run.wait_running()
        wait_until(lambda: "ignoring" in run.cli("logs", "stubborn").stdout, "the child to ignore SIGTERM")
        pid = run.nodes()["stubborn"]["pid"]
        run.signal(signal.SIGINT)
        wait_until(lambda: (ping(run.control) or {}).get("state") == "stopping", "the orderly stop to begin")
        assert alive(pid)  # it ignores SIGTERM: the orderly stop would wait 600 s
        began = time.monotonic()
        run.signal(signal.SIGINT)
        assert run.wait_exit() == 130
        assert time.monotonic() - began < DEADLINE
        assert not alive(pid)
        assert "SIGINT again: killed 1 process group(s)" in run.stderr
    finally:
        run.close()


def test_a_second_run_on_a_live_socket_fails_and_a_stale_one_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    control = tmp_path / "control" / "tree.sock"
    control.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(control))  # a socket file nobody listens on: what a killed run leaves
    stale.close()
    first = Run(tmp_path, "app.py")
    try:
        first.wait_running()
        argv = [PY, "-m", "supervision", "run", "app.py", "--control", str(control)]
        second = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE)
        assert second.returncode == 1
        assert f"already running on {control} (pid {first.proc.pid})" in second.stderr
        assert first.nodes()["web"]["status"] == "running"  # untouched
        assert first.proc.poll() is None
    finally:
        first.close()


def test_the_socket_is_found_by_name(tmp_path: Path) -> None:
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tree.py").write_text(APP)
    run = Run(tmp_path, "myapp.tree:build", name="web-1")
    try:
        run.wait_running()
        assert oct(os.stat(run.control).st_mode & 0o777) == "0o600"
        assert json.loads(run.cli("status", "--json").stdout)["name"] == "web-1"
        # Without --name or --control: the only socket in $XDG_RUNTIME_DIR/supervision.
        argv = [PY, "-m", "supervision", "status", "--json"]
        done = subprocess.run(argv, cwd=tmp_path, env=run.env, capture_output=True, text=True, timeout=DEADLINE)
        assert done.returncode == 0 and json.loads(done.stdout)["name"] == "web-1"
    finally:
        run.close()


GIVES_UP = """
import supervision as sv

def build():
    return sv.Supervisor([sv.process("false", ["false"])], intensity=2, period=60)
"""


def test_the_run_exits_1_when_the_root_gives_up(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(GIVES_UP)
    run = Run(tmp_path, "app.py")
    assert run.wait_exit() == 1
    assert "giving up" in run.stderr
    assert not os.path.exists(run.control)


def _edit(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


V1 = """
import asyncio, sys
import supervision as sv

async def keeper(ctx):
    await asyncio.Event().wait()

def build():
    return sv.Supervisor([
        sv.child("keeper", keeper),
        sv.process("svc", ["sleep", "1000"]),
    ])
"""


@pytest.mark.skipif(not hasattr(sv.Tree, "reload"), reason="tree.reload() does not exist yet")
def test_reload_after_editing_the_file(tmp_path: Path) -> None:
    _edit(tmp_path / "app.py", V1)
    run = Run(tmp_path, "app.py")
    try:
        run.wait_running()
        before = run.nodes()
        v2 = V1.replace(
            '"svc", ["sleep", "1000"]),', '"svc", ["sleep", "2000"]),\n        sv.process("new", ["sleep", "1000"]),'
        )
        assert v2.count("sleep") == 2
        _edit(tmp_path / "app.py", v2)
        done = run.cli("reload")
        assert done.stdout == "reloaded:\n  started: new\n  restarted: svc\n", done.stdout
        after = run.nodes()
        assert list(after) == ["keeper", "svc", "new"]
        assert after["keeper"]["starts"] == 1  # unchanged: kept running
        assert after["svc"]["pid"] != before["svc"]["pid"]
        assert after["new"]["status"] == "running"

        (tmp_path / "app.py").write_text(V1 + "\ndef broken(:\n")
        done = run.cli("reload", expect=1)
        assert done.stderr.startswith("supervision: reload rejected: SyntaxError"), done.stderr
        unchanged = run.nodes()
        assert {p: (n["pid"], n["starts"]) for p, n in unchanged.items()} == {
            p: (n["pid"], n["starts"]) for p, n in after.items()
        }
    finally:
        run.close()


def test_sd_notify_messages(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(DEADLINE)
    received: list[str] = []

    def until(prefix: str) -> str:
        while True:
            message = listener.recv(4096).decode()
            received.append(message)
            if message.startswith(prefix):
                return message

    run = Run(tmp_path, "app.py", env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
    try:
        ready = until("READY=1")
        assert ready == "READY=1\nSTATUS=running: 3 of 3 children"
        assert "STATUS=starting" in received
        until("WATCHDOG=1")
        until("WATCHDOG=1")  # pings keep coming (every 0.1 s)
        if hasattr(sv.Tree, "reload"):
            run.signal(signal.SIGHUP)
            reloading = until("RELOADING=1")
            assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+", reloading)
            usec = int(reloading.rsplit("=", 1)[1])
            assert abs(usec / 1e6 - time.monotonic()) < DEADLINE  # CLOCK_MONOTONIC, like ours
            assert until("READY=1") == "READY=1\nSTATUS=reloaded: nothing changed"
        run.signal(signal.SIGTERM)
        assert until("STOPPING=1") == "STOPPING=1\nSTATUS=stopping"
        assert run.wait_exit() == 0
    finally:
        run.close()
        listener.close()


def test_status_json_of_a_stopped_child_has_its_last_exit(run: Run) -> None:
    run.wait_running()
    run.cli("stop", "web")
    web = request(run.control, "status", path="web")["children"][0]
    assert web["status"] == "terminated" and web["uptime"] is None
    assert web["last_exit"]["reason"] == "shutdown" and web["last_exit"]["signal"] == signal.SIGTERM
    human = run.cli("status", "web").stdout
    # PATH KIND STATUS PID CPU% RSS UPTIME RESTARTS LAST EXIT
    assert re.search(
        r"^web\s+process\s+terminated\s+-\s+-\s+-\s+-\s+0\s+shutdown \(SIGTERM\), [\d.]+s ago$", human, re.M
    )


def test_notifier_speaks_to_abstract_sockets_and_the_watchdog_checks_its_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"supervision-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(DEADLINE)
        notifier = Notifier("@" + name)
        notifier.ready("up")
        notifier.close()
        assert listener.recv(4096) == b"READY=1\nSTATUS=up"
    Notifier(None).ready("nobody listens")  # no NOTIFY_SOCKET: does nothing
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    assert watchdog_interval() == 1.5
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None  # meant for another process
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 1.5
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


async def build_nothing() -> None: ...


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("myapp.tree:build", "myapp.tree"),
        ("path/to/app.py", "app"),
        ("path/to/app.py:make", "app"),
        ("deploy/services.toml", "services"),
        (sv.Supervisor(), "supervision"),
        (build_nothing, "tests.service.test_cli"),
    ],
)
def test_default_name(target: object, name: str) -> None:
    assert default_name(target) == name  # type: ignore[arg-type]


def test_durations() -> None:
    assert [duration(s) for s in (0.25, 59.96, 312, 7380, 273600)] == ["0.2s", "1m00s", "5m12s", "2h03m", "3d04h"]


def test_output_log_is_bounded_and_keeps_records_by_path() -> None:
    log = OutputLog(lines_per_path=3, max_paths=2, max_line=10, max_bytes=25)
    log.record(Output(("web",), "stdout", ("one", "two")))
    log.record(Output(("db", "pool"), "stdout", ("partial",)))
    assert [line.text for line in log.lines("web", 10)] == ["one", "two"]
    log.record(Output(("web",), "stdout", ("three", "four")))
    assert [line.text for line in log.lines("web", 10)] == ["two", "three", "four"]  # 3 per path
    assert [(line.path, line.text) for line in log.lines("db", 10)] == [("db/pool", "partial")]
    assert [line.text for line in log.lines("/", 2)] == ["three", "four"]  # merged, in order
    log.record(Output(("x",), "stderr", ("y" * 50,)))  # a third path evicts the least recently active one
    assert log.lines("db", 10) == [] and log.lines("x", 1)[0].text == "y" * 10 + "..."
    assert log.lines("x", 1)[0].stream == "stderr"
    assert sum(len(line.text) for line in log.lines("/", 100)) <= 25  # the byte budget
    log.record(Output(("web",), "stdout", ("web | not a prefix: the text of web's own line",)))
    assert log.lines("web", 1)[0].text.startswith("web | not")


def test_help_lists_every_command() -> None:
    """``supervision --help`` formats each command's help with %: a literal one must not break it."""
    done = subprocess.run([PY, "-m", "supervision", "--help"], capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    assert "CPU %, RSS" in done.stdout and "reload" in done.stdout
