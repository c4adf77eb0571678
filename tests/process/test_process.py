"""Process children with real OS processes: exits, stops, readiness, output, leaks."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import supervision as sv
from supervision.testing import ManualClock, crash
from tests.helpers import WAIT, is_, next_event
from tests.process_helpers import (
    NOTIFY,
    PY,
    alive,
    descendants,
    exists,
    free_port,
    once,
    open_fds,
    start_watched,
    stat,
    until,
)

# -- specs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"argv": []}, "argv"),
        ({"argv": "sleep 1"}, "argv"),
        ({"argv": ["sleep", 1]}, "argv"),
        ({"argv": [""]}, "argv"),
        ({"env": {"A=B": "x"}}, "env"),
        ({"env": {"A": 1}}, "env"),
        ({"env": ["A"]}, "env"),
        ({"output": ""}, "output"),
        ({"output": 3}, "output"),
        ({"ready": sv.ready.port(0)}, "ready"),
        ({"ready": sv.ready.port(70000)}, "ready"),
        ({"ready": sv.ready.port("80")}, "ready"),  # type: ignore[arg-type]
        ({"ready": sv.ready.delay(-1)}, "ready"),
        ({"ready": sv.ready.delay(5), "ready_timeout": 1}, "ready"),
        ({"ready": 5}, "ready"),
        ({"stop_signal": 0}, "stop_signal"),
        ({"stop_signal": "TERM"}, "stop_signal"),
        ({"cwd": ""}, "cwd"),
        ({"pdeathsig": 1}, "pdeathsig"),
        ({"shutdown": -1}, "shutdown"),
        ({"restart": "sometimes"}, "restart"),
        ({"ready_timeout": -1}, "ready_timeout"),
    ],
)
def test_bad_process_specs_raise_spec_error_naming_the_child_and_field(kwargs: dict, field: str) -> None:
    args = {"argv": ["sleep", "1"], **kwargs}
    argv = args.pop("argv")
    with pytest.raises(sv.SpecError) as info:
        sv.process("web", argv, **args)
    assert info.value.path == ("web",)
    assert info.value.field == field


def test_process_spec_values() -> None:
    spec = sv.process(
        "web",
        ["python", "-m", "http.server"],
        env={"B": "2", "A": "1"},
        ready=sv.ready.port(8000),
        output="relative.log",
        stop_signal=signal.SIGINT,
    )
    assert spec.kind == "process"
    assert spec.ready is True
    assert spec.start.env == (("A", "1"), ("B", "2"))
    assert spec.start.output == os.path.abspath("relative.log")
    assert spec.start.stop_signal == signal.SIGINT
    assert spec == sv.process(
        "web",
        ["python", "-m", "http.server"],
        env={"A": "1", "B": "2"},
        ready=sv.ready.port(8000),
        output="relative.log",
        stop_signal=signal.SIGINT,
    )
    assert sv.process("w", ["true"]).shutdown == 5.0
    assert sv.process("w", ["true"], ready=None).ready is False


# -- exits and restart types ---------------------------------------------------------


EXITS = {
    "status0": ("exit 0", {"exit_status": 0, "signal": None, "reason": sv.ExitReason.NORMAL}),
    "status3": ("exit 3", {"exit_status": 3, "signal": None, "reason": sv.ExitReason.CRASH}),
    "signal": ("kill -KILL $$", {"exit_status": None, "signal": signal.SIGKILL, "reason": sv.ExitReason.CRASH}),
}
RESTARTED = {
    ("permanent", "status0"): True,
    ("permanent", "status3"): True,
    ("permanent", "signal"): True,
    ("transient", "status0"): False,
    ("transient", "status3"): True,
    ("transient", "signal"): True,
    ("temporary", "status0"): False,
    ("temporary", "status3"): False,
    ("temporary", "signal"): False,
}


@pytest.mark.parametrize(("restart", "how"), sorted(RESTARTED))
async def test_restart_type_by_exit_status_and_signal(restart: str, how: str, tmp_path: Path) -> None:
    command, fields = EXITS[how]
    spec = sv.Supervisor(
        [
            sv.process("p", once(str(tmp_path / "ran"), "exec sleep 1000", command), restart=restart),
            sv.process("other", ["sleep", "1000"]),
        ]
    )
    async with start_watched(spec) as (tree, events):
        began = await next_event(events, is_(sv.ChildStarted, "p"))
        first = began.pid  # type: ignore[attr-defined]
        assert first is not None
        exited = await next_event(events, is_(sv.ChildExited, "p"))
        assert isinstance(exited, sv.ChildExited)
        for name, value in fields.items():
            assert getattr(exited, name) == value, name
        if fields["reason"] is sv.ExitReason.CRASH:
            assert isinstance(exited.error, sv.ProcessExited)
            assert exited.error.exit_status == fields["exit_status"]
            assert exited.error.signal == fields["signal"]
        else:
            assert exited.error is None
        assert not exists(first)  # reaped before the exit was reported
        if RESTARTED[(restart, how)]:
            started = await next_event(events, is_(sv.ChildStarted, "p"))
            assert isinstance(started, sv.ChildStarted) and started.starts == 2
            info = tree.which_children()[0]
            assert info.status is sv.Status.RUNNING and info.pid == started.pid and alive(info.pid)
        else:
            ids = {c.id: c.status for c in tree.which_children()}
            if restart == "temporary":
                assert "p" not in ids
            else:
                assert ids["p"] is sv.Status.TERMINATED
        assert tree.which_children()[-1].status is sv.Status.RUNNING  # the sibling was untouched
    assert not descendants()


async def test_which_children_shows_kind_and_pid() -> None:
    spec = sv.Supervisor([sv.process("a", ["sleep", "1000"]), sv.process("b", ["sleep", "1000"])])
    async with sv.start(spec) as tree:
        infos = tree.which_children()
        assert [c.kind for c in infos] == ["process", "process"]
        for info in infos:
            assert info.pid is not None
            found = stat(info.pid)
            assert found is not None
            _state, ppid, pgrp, session = found
            assert ppid == os.getpid()
            assert pgrp == session == info.pid  # its own session and process group
        assert tree.count_children() == sv.ChildCounts(2, 2, 0, 2)
    for info in infos:
        assert info.pid is not None and not exists(info.pid)


async def test_crash_from_the_testing_toolkit_kills_the_process(tmp_path: Path) -> None:
    spec = sv.Supervisor([sv.process("p", ["sleep", "1000"])])
    async with start_watched(spec) as (tree, events):
        pid = tree.which_children()[0].pid
        assert pid is not None
        error = RuntimeError("injected")
        crash(tree, "p", error)
        exited = await next_event(events, is_(sv.ChildExited, "p"))
        assert isinstance(exited, sv.ChildExited)
        assert exited.reason is sv.ExitReason.CRASH and exited.error is error
        assert exited.signal == signal.SIGKILL
        await next_event(events, is_(sv.ChildStarted, "p", starts=2))
        assert not exists(pid)


async def test_intensity_over_processes_gives_up_and_leaves_nothing() -> None:
    clock = ManualClock()  # time stands still: every crash is in the window
    spec = sv.Supervisor([sv.process(f"p{i}", ["sleep", "1000"]) for i in range(3)], intensity=2, period=10)
    tree = await sv.start(spec, clock=clock)
    events = tree.events()
    for _ in range(3):
        crash(tree, "p1")
        await next_event(events, is_(sv.ChildExited, "p1"))
    gave_up = await next_event(events, is_(sv.SupervisorGaveUp))
    assert isinstance(gave_up.error, sv.TooManyRestarts)  # type: ignore[attr-defined]
    with pytest.raises(sv.TooManyRestarts):
        await tree.wait()
    assert not descendants()


# -- stopping ------------------------------------------------------------------------

IGNORE_TERM = NOTIFY + (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nnotify('READY=1')\ntime.sleep(1000)\n"
)


async def test_a_child_ignoring_sigterm_is_killed_after_shutdown() -> None:
    spec = sv.Supervisor([sv.process("stubborn", [PY, "-c", IGNORE_TERM], shutdown=0.3, ready=sv.ready.notify())])
    async with start_watched(spec) as (tree, events):
        pid = tree.which_children()[0].pid
        assert pid is not None
        began = time.monotonic()
        await tree.terminate_child("stubborn")
        elapsed = time.monotonic() - began
        exited = await next_event(events, is_(sv.ChildExited, "stubborn"))
        assert isinstance(exited, sv.ChildExited)
        assert exited.reason is sv.ExitReason.SHUTDOWN
        assert exited.signal == signal.SIGKILL
        assert 0.3 <= elapsed < 0.3 + WAIT
        assert not exists(pid)
        assert tree.which_children()[0].status is sv.Status.TERMINATED


async def test_a_child_that_obeys_sigterm_stops_at_once_and_brutal_kill_does_not_ask() -> None:
    spec = sv.Supervisor(
        [
            sv.process("polite", ["sleep", "1000"], shutdown=30),
            sv.process("brutal", [PY, "-c", IGNORE_TERM], shutdown=sv.BRUTAL_KILL, ready=sv.ready.notify()),
            sv.process("custom", ["sleep", "1000"], stop_signal=signal.SIGINT, shutdown=30),
        ]
    )
    async with start_watched(spec) as (tree, events):
        began = time.monotonic()
        for id, signum in (("polite", signal.SIGTERM), ("brutal", signal.SIGKILL), ("custom", signal.SIGINT)):
            await tree.terminate_child(id)
            exited = await next_event(events, is_(sv.ChildExited, id))
            assert isinstance(exited, sv.ChildExited)
            assert (exited.reason, exited.signal) == (sv.ExitReason.SHUTDOWN, signum)
        assert time.monotonic() - began < WAIT


async def test_stop_without_shutdown_limit_waits_for_the_child() -> None:
    script = "trap 'sleep 0.2; exit 0' TERM; while :; do sleep 0.05; done"
    spec = sv.Supervisor([sv.process("slow", ["sh", "-c", script], shutdown=sv.INFINITY)])
    async with start_watched(spec) as (tree, events):
        await asyncio.sleep(0.1)  # let the shell install its trap
        await tree.terminate_child("slow")
        exited = await next_event(events, is_(sv.ChildExited, "slow"))
        assert isinstance(exited, sv.ChildExited)
        assert (exited.reason, exited.exit_status) == (sv.ExitReason.SHUTDOWN, 0)


def daemonising(lifetime: float) -> str:
    """Python source that double-forks a daemon in a session of its own, which
    writes its pid to ``argv[1]`` and lives ``lifetime`` seconds; the script goes on
    once the pid file exists."""
    return (
        NOTIFY
        + f"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(sys.argv[1] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep({lifetime})
        os._exit(0)
    os._exit(0)
os.wait()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
"""
    )


DAEMON = (
    daemonising(1000)
    + """if sys.argv[2] == "stay":
    notify("READY=1")
    time.sleep(1000)
sys.exit(4)
"""
)


async def test_a_daemonised_grandchild_leaves_nothing_after_stop(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    spec = sv.Supervisor([sv.process("svc", [PY, "-c", DAEMON, str(pidfile), "stay"], ready=sv.ready.notify())])
    async with sv.start(spec) as tree:
        daemon = int(pidfile.read_text())
        found = stat(daemon)
        assert found is not None and found[0] != "Z"
        assert found[1] == os.getpid()  # it came back to us, the subreaper
        assert found[3] != tree.which_children()[0].pid  # it left the service's session
        await tree.terminate_child("svc")
        assert not exists(daemon)  # killed and reaped before terminate_child returned
    assert not descendants()


async def test_what_a_crashed_service_left_behind_is_killed_before_the_exit_is_reported(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    argv = once(str(tmp_path / "ran"), "exec sleep 1000", f"exec {PY} -c '{DAEMON}' {pidfile} exit")
    spec = sv.Supervisor([sv.process("svc", argv)])
    async with start_watched(spec) as (_tree, events):
        exited = await next_event(events, is_(sv.ChildExited, "svc"))
        assert isinstance(exited, sv.ChildExited) and exited.exit_status == 4
        assert not exists(int(pidfile.read_text()))
        await next_event(events, is_(sv.ChildStarted, "svc", starts=2))
    assert not descendants()


async def test_the_group_is_killed_when_its_leader_exits() -> None:
    # sh starts a background sleep in its group, then exits: the sleep must not outlive it.
    spec = sv.Supervisor(
        [sv.process("sh", ["sh", "-c", "sleep 1000 & echo $! ; exit 2"], restart="temporary", output="inherit")]
    )
    async with start_watched(spec) as (_tree, events):
        await next_event(events, is_(sv.ChildExited, "sh"))
        assert not descendants()


# -- start failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "cwd", "cause"),
    [
        (["no-such-program-anywhere"], None, FileNotFoundError),
        (["/no/such/program"], None, FileNotFoundError),
        (["sleep", "1"], "/no/such/dir", FileNotFoundError),
        (["./sleep", "1"], "/bin", None),
        (["{tmp}/plain"], None, PermissionError),
        (["{tmp}/garbage"], None, OSError),
    ],
)
async def test_a_missing_program_or_bad_cwd_is_a_start_error(
    argv: list[str], cwd: str | None, cause: type[BaseException] | None, tmp_path: Path
) -> None:
    (tmp_path / "plain").write_text("#!/bin/sh\n")
    (tmp_path / "garbage").write_bytes(b"\x00\x01garbage")
    (tmp_path / "garbage").chmod(0o755)
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    spec = sv.Supervisor([sv.process("p", argv, cwd=cwd)])
    if cause is None:
        async with sv.start(spec) as tree:
            assert tree.which_children()[0].status is sv.Status.RUNNING
        return
    with pytest.raises(sv.StartError) as info:
        await sv.start(spec)
    assert info.value.path == ("p",)
    assert isinstance(info.value.__cause__, cause)
    assert not descendants()


async def test_start_child_of_a_missing_program_fails_and_the_tree_goes_on() -> None:
    spec = sv.Supervisor([sv.process("a", ["sleep", "1000"])])
    async with sv.start(spec) as tree:
        with pytest.raises(sv.StartError) as info:
            await tree.start_child(sv.process("b", ["no-such-program-anywhere"]))
        assert isinstance(info.value.__cause__, FileNotFoundError)
        assert [c.id for c in tree.which_children()] == ["a"]


# -- readiness -----------------------------------------------------------------------

NOTIFY_LATE = (
    NOTIFY
    + """
import sys, time
time.sleep(float(sys.argv[1]))
notify("STATUS=warming up")
notify("READY=1\\nSTATUS=serving")
time.sleep(1000)
"""
)


async def test_ready_notify_waits_for_ready_and_dependents_wait(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", "supervision")
    spec = sv.Supervisor(
        [
            sv.process("db", [PY, "-c", NOTIFY_LATE, "0.3"], ready=sv.ready.notify()),
            sv.process("app", ["sleep", "1000"]),
        ]
    )
    began = time.monotonic()
    async with sv.start(spec) as tree:
        assert time.monotonic() - began >= 0.3
        assert [c.status for c in tree.which_children()] == [sv.Status.RUNNING] * 2
        assert True
    assert "db: status: serving" in caplog.text


async def test_the_supervisors_own_notify_socket_is_not_passed_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("SUPERVISION_TEST_VAR", "inherited")
    out = tmp_path / "env"
    async with sv.start(sv.Supervisor()) as tree:
        events = tree.events()  # subscribed before the children start
        await tree.start_child(
            sv.process("merged", ["sh", "-c", f"env > {out}.merged"], env={"EXTRA": "1"}, restart="transient")
        )
        await tree.start_child(
            sv.process(
                "alone",
                ["/usr/bin/env"],
                env={"ONLY": "this"},
                inherit_env=False,
                restart="transient",
                output=str(out) + ".alone",
            )
        )
        exits: set[str] = set()
        while len(exits) < 2:
            exits.add((await next_event(events, is_(sv.ChildExited))).path[0])
    merged = dict(line.split("=", 1) for line in Path(f"{out}.merged").read_text().splitlines() if "=" in line)
    assert merged["SUPERVISION_TEST_VAR"] == "inherited" and merged["EXTRA"] == "1"
    assert "NOTIFY_SOCKET" not in merged
    alone = dict(line.split("=", 1) for line in Path(f"{out}.alone").read_text().splitlines())
    assert set(alone) == {"ONLY", "SUPERVISION_INVOCATION_ID"}


SERVE_LATE = """
import socket, sys, time
time.sleep(float(sys.argv[2]))
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
while True:
    server.accept()[0].close()
"""

CONNECT_OR_DIE = """
import socket, sys, time
socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()
time.sleep(1000)
"""


async def test_ready_port_waits_for_the_port_before_dependents_start() -> None:
    port = free_port()
    spec = sv.Supervisor(
        [
            sv.process("db", [PY, "-c", SERVE_LATE, str(port), "0.3"], ready=sv.ready.port(port)),
            sv.process("app", [PY, "-c", CONNECT_OR_DIE, str(port)], ready=sv.ready.delay(0.3)),
        ]
    )
    async with start_watched(spec) as (tree, events):
        assert [c.status for c in tree.which_children()] == [sv.Status.RUNNING] * 2
        crash(tree, "app")  # the app's restart connects again: the db is still up
        await next_event(events, is_(sv.ChildStarted, "app", starts=2))


async def test_ready_delay_counts_from_the_spawn() -> None:
    spec = sv.Supervisor([sv.process("p", ["sleep", "1000"], ready=sv.ready.delay(0.2))])
    began = time.monotonic()
    async with sv.start(spec):
        assert time.monotonic() - began >= 0.2


@pytest.mark.parametrize("check", [sv.ready.notify(), sv.ready.port(1), sv.ready.delay(5)])
async def test_exit_before_ready_is_a_start_failure(check: sv.ready.Check) -> None:
    spec = sv.Supervisor([sv.process("p", ["sh", "-c", "exit 3"], ready=check, ready_timeout=10)])
    with pytest.raises(sv.StartError) as info:
        await sv.start(spec)
    cause = info.value.__cause__
    assert isinstance(cause, sv.ProcessExited) and cause.exit_status == 3
    assert "before it was ready" in str(cause)


@pytest.mark.parametrize("check", [sv.ready.notify(), sv.ready.port(1)])
async def test_ready_timeout_is_a_start_failure_and_the_process_is_reaped(check: sv.ready.Check) -> None:
    spec = sv.Supervisor([sv.process("p", ["sleep", "1000"], ready=check, ready_timeout=0.2)])
    with pytest.raises(sv.StartError) as info:
        await sv.start(spec)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert not descendants()


async def test_rest_for_one_restarts_dependents_after_the_dependency_is_ready_again() -> None:
    port = free_port()
    spec = sv.Supervisor(
        [
            sv.process("db", [PY, "-c", SERVE_LATE, str(port), "0.2"], ready=sv.ready.port(port)),
            sv.process("app", [PY, "-c", CONNECT_OR_DIE, str(port)], ready=sv.ready.delay(0.3)),
            sv.process("web", ["sleep", "1000"]),
        ],
        strategy="rest_for_one",
    )
    async with start_watched(spec) as (tree, events):
        await next_event(events, is_(sv.ChildStarted, "web"))  # the first starts are done
        old = {c.id: c.pid for c in tree.which_children()}
        crash(tree, "db")
        seen: list[tuple[str, str]] = []
        while len([e for e in seen if e[0] == "started"]) < 3:
            event = await next_event(events, lambda e: isinstance(e, (sv.ChildStarted, sv.ChildExited)))
            kind = "started" if isinstance(event, sv.ChildStarted) else str(event.reason)  # type: ignore[attr-defined]
            seen.append((kind, event.path[0]))
        assert seen == [
            ("crash", "db"),
            ("shutdown", "web"),
            ("shutdown", "app"),
            ("started", "db"),
            ("started", "app"),  # it connected: db was ready before app started
            ("started", "web"),
        ]
        new = {c.id: c.pid for c in tree.which_children()}
        assert all(new[id] != old[id] for id in old)
        assert all(not exists(pid) for pid in old.values() if pid is not None)


# -- output --------------------------------------------------------------------------


async def test_prefixed_output_keeps_the_last_lines_of_a_crashed_child(capsys: pytest.CaptureFixture[str]) -> None:
    script = "i=0; while [ $i -lt 500 ]; do echo line $i; i=$((i+1)); done; echo oops >&2; printf 'no newline'; exit 1"
    loud = sv.process("loud", ["sh", "-c", script], restart="temporary")
    spec = sv.Supervisor([sv.child("db", sv.Supervisor([loud]))])
    async with start_watched(spec) as (_tree, events):
        await next_event(events, is_(sv.ChildExited, "db/loud"))
        out, err = capsys.readouterr()
    assert out.splitlines() == [f"db/loud | line {i}" for i in range(500)] + ["db/loud | no newline"]
    assert err.splitlines()[0] == "db/loud | oops"


async def test_output_to_a_file_is_appended(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("before\n")
    argv = once(str(tmp_path / "ran"), "echo second; exec sleep 1000", "echo first; echo err >&2; exit 1")
    spec = sv.Supervisor([sv.process("p", argv, output=str(log))])
    async with start_watched(spec) as (_tree, events):
        await next_event(events, is_(sv.ChildStarted, "p", starts=2))
        await until(lambda: "second" in log.read_text(), what="the second incarnation's line")
    lines = log.read_text().splitlines()
    assert lines[:3] == ["before", "first", "err"] and lines[3] == "second"


async def test_an_unwritable_output_file_is_a_start_error(tmp_path: Path) -> None:
    spec = sv.Supervisor([sv.process("p", ["true"], output=str(tmp_path / "missing" / "out.log"))])
    with pytest.raises(sv.StartError) as info:
        await sv.start(spec)
    assert isinstance(info.value.__cause__, FileNotFoundError)


async def test_output_inherit_writes_to_the_supervisors_fds(capfd: pytest.CaptureFixture[str]) -> None:
    spec = sv.Supervisor([sv.process("p", ["sh", "-c", "echo hi; echo ho >&2"], output="inherit", restart="temporary")])
    async with start_watched(spec) as (_tree, events):
        await next_event(events, is_(sv.ChildExited, "p"))
    out, err = capfd.readouterr()
    assert "hi\n" in out and "ho\n" in err and "p |" not in out


async def test_a_partial_line_is_held_until_its_end(capsys: pytest.CaptureFixture[str]) -> None:
    # A child writing half a line must neither block the tree nor have its line split.
    script = "printf 'half'; sleep 0.2; printf ' and half\\n'; exec sleep 1000"
    spec = sv.Supervisor([sv.process("p", ["sh", "-c", script]), sv.process("q", ["sleep", "1000"])])
    seen: list[str] = []

    def complete() -> bool:
        seen.append(capsys.readouterr().out)
        return "p | half and half\n" in "".join(seen)

    async with sv.start(spec) as tree:
        assert [c.status for c in tree.which_children()] == [sv.Status.RUNNING] * 2
        await until(complete, what="the completed line")
    assert "".join(seen).count("p | ") == 1


# -- leaks and the reaper ------------------------------------------------------------


async def test_no_fd_zombie_or_process_left_after_start_crash_stop(tmp_path: Path) -> None:
    warm = sv.Supervisor([sv.process("w", ["true"], restart="temporary")])
    async with sv.start(warm):
        pass  # creates the reaper and the exec helper once
    before = open_fds()
    spec = sv.Supervisor(
        [
            sv.process("n", [PY, "-c", NOTIFY_LATE, "0"], ready=sv.ready.notify()),
            sv.process("p", ["sh", "-c", "sleep 1000 & sleep 1000"]),
            sv.process("f", ["sleep", "1000"], output=str(tmp_path / "f.log")),
        ]
    )
    async with start_watched(spec) as (tree, events):
        for id in ("n", "p", "f"):
            crash(tree, id)
            await next_event(events, is_(sv.ChildStarted, id, starts=2))
        await tree.terminate_child("p")
    assert not descendants()
    assert open_fds() == before


async def test_the_reaper_does_not_steal_other_childrens_exit_status() -> None:
    spec = sv.Supervisor([sv.process("p", ["sleep", "1000"])])
    async with start_watched(spec) as (tree, events):
        other = subprocess.Popen(["sh", "-c", "exit 7"])
        crash(tree, "p")  # SIGCHLD while the other child is a zombie
        await next_event(events, is_(sv.ChildStarted, "p", starts=2))
        assert await asyncio.to_thread(other.wait) == 7


async def test_one_pidfd_per_child_and_no_thread() -> None:
    def pidfds() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if "pidfd" in _readlink(f"/proc/self/fd/{fd}"))

    threads = threading.active_count()
    spec = sv.Supervisor([sv.process(f"p{i}", ["sleep", "1000"], output="inherit") for i in range(10)])
    async with sv.start(spec):
        assert pidfds() == 10
        assert threading.active_count() == threads
    assert pidfds() == 0


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


SHORT_DAEMON = (
    daemonising(0.3)
    + """notify("READY=1")
time.sleep(1000)
"""
)


async def test_an_orphan_that_exits_is_reaped_even_behind_a_foreign_zombie(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    spec = sv.Supervisor([sv.process("svc", [PY, "-c", SHORT_DAEMON, str(pidfile)], ready=sv.ready.notify())])
    # Older than the service, so first in line for waitid(P_ALL): it hides the orphan's zombie.
    foreign = subprocess.Popen(["true"])  # exits at once, left unwaited: a zombie in our session
    await until(lambda: (stat(foreign.pid) or ("",))[0] == "Z", what="the foreign zombie")
    async with sv.start(spec):
        daemon = int(pidfile.read_text())
        await until(lambda: not exists(daemon), what="the orphan reaped")
        assert foreign.wait() == 0  # its status was left to its owner


def test_room_in_the_fd_table_is_reserved_in_one_step() -> None:
    """``reserve_fds`` grows the fd table at once (``FDSize`` in ``/proc/self/status``);
    ``make_room`` reserves four times the fd it is given once fds come near the
    room reserved, so that a growing tree grows the table a few times only."""
    from supervision._process import proc

    def size() -> int:
        with open("/proc/self/status") as file:
            return next(int(line.split()[1]) for line in file if line.startswith("FDSize:"))

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    wanted = min(2048, limit)
    assert proc.reserve_fds(wanted) == wanted
    assert size() >= wanted
    assert proc._fd_room >= wanted * 3 // 4
    room = proc._fd_room
    proc.make_room(room - 1)  # below the room: nothing to do
    assert proc._fd_room == room
    if limit >= 4 * room:
        proc.make_room(room)
        assert size() >= 4 * room
        assert proc._fd_room >= 3 * room
