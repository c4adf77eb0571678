"""Re-exec in place (``supervision reexec``, ``tree.reexec()``), end to end: the
supervisor runs as a subprocess and is driven through the command line; every
wait is for a condition, with a deadline."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from pyrsistent import pmap, pvector

import supervision as sv
from supervision._core.errors import ReloadError
from supervision._core.snapshot import PathStore
from supervision._process.adopt import ProcessRecord, launch, verify
from supervision._process.proc import start_time
from supervision._reload import reexec as _reexec
from supervision._reload.reexec import Handover, decode_snapshots, encode_store
from tests.cli_helpers import DEADLINE, PY, Run, wait_until
from tests.process_helpers import alive, descendants, exists, open_fds, stat, until, wait_gone

CHILDREN = 20

# A worker that counts its boots in its snapshot and saves a snapshot of every
# kind of immutable plain data; each start writes what it found to a file.
APP = """
import asyncio, json, os, sys
from pyrsistent import freeze, pmap, pvector, pset
import supervision as sv

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = "import sys, time\\nn = 0\\nwhile True:\\n    print('tick', n, flush=True); n += 1; time.sleep(0.02)"
NOTIFY = '''
import os, signal, socket, time
def notify(message):
    address = os.environ["NOTIFY_SOCKET"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect("\\\\0" + address[1:])
        sock.sendall(message.encode())
signal.signal(signal.SIGUSR1, lambda *_: notify("STATUS=after the re-exec"))
notify("READY=1")
while True:
    time.sleep(1)
'''
RICH = pmap({"t": (1, 2.5, None, True), "f": frozenset({"a", b"b"}), "v": pvector([float("inf"), 10**30]),
             "s": pset([1, 2]), "nested": freeze({"x": [1, {"y": b"z"}]})})

async def counter(ctx):
    boots = ctx.state.get("boots", 0) + 1
    with open(os.path.join(HERE, f"counter-{ctx.starts}.json"), "w") as file:
        json.dump({"starts": ctx.starts, "boots": boots, "rich": repr(ctx.state.get("rich"))}, file)
    ctx.save(ctx.state.set("boots", boots).set("rich", RICH))
    await asyncio.Event().wait()

def build():
    return sv.Supervisor([
        sv.child("counter", counter),
        *[sv.process(f"sleep{i}", ["sleep", "1000"]) for i in range(CHILDREN)],
        sv.process("ticker", [sys.executable, "-c", TICK]),
        sv.child("db", sv.Supervisor([
            sv.process("notified", [sys.executable, "-c", NOTIFY], ready=sv.ready.notify()),
        ])),
    ], intensity=5)
"""


def write_app(tmp: Path, children: int = CHILDREN) -> Path:
    path = tmp / "app.py"
    path.write_text(f"CHILDREN = {children}\n" + APP)
    return path


def pids(run: Run) -> dict[str, int | None]:
    return {path: node["pid"] for path, node in run.nodes().items()}


def fds(pid: int) -> dict[str, Any]:
    """What a process holds open: its pipes (by inode) and how many fds of each other kind."""
    kinds: dict[str, int] = {}
    pipes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("pipe:"):
            pipes.add(target)
        else:
            kind = re.sub(r"\[\d+\]|\s*\(deleted\)", "", target)
            kinds[kind] = kinds.get(kind, 0) + 1
    kinds.pop("/memfd:supervision-exec-helper", None)  # made again at the next spawn
    return {"pipes": pipes, **kinds}


def ticks(run: Run) -> list[int]:
    lines = run.cli("logs", "ticker", "-n", "10000").stdout.splitlines()
    return [int(line.split()[1]) for line in lines if line.startswith("tick ")]


@pytest.fixture
def app(tmp_path: Path) -> Path:
    write_app(tmp_path)
    return tmp_path


def test_reexec_keeps_the_os_children_and_the_snapshots(app: Path) -> None:
    run = Run(app, "app.py")
    try:
        run.wait_running()
        wait_until(lambda: (app / "counter-1.json").exists(), "the worker to start")
        wait_until(lambda: len(ticks(run)) >= 5, "the ticker's output")
        supervisor = run.proc.pid
        before = pids(run)
        processes = {path: pid for path, pid in before.items() if pid is not None}
        assert len(processes) == CHILDREN + 2
        # Idle, the supervisor holds: its event loop, its control socket, one notify
        # socket, two pipes and a pidfd per process child.
        wait_until(lambda: fds(supervisor).get("socket:") == 4, "the control connections to close")
        held = fds(supervisor)
        assert held["anon_inode:[pidfd]"] == len(processes) and len(held["pipes"]) >= 2 * len(processes)

        done = run.cli("reexec")
        match = re.fullmatch(r"re-executed: pid (\d+), (\d+) OS process\(es\) kept, in \d+ ms\n", done.stdout)
        assert match is not None, done.stdout
        assert int(match.group(1)) == supervisor and int(match.group(2)) == len(processes)

        status = run.status()
        assert status["pid"] == supervisor and run.proc.poll() is None
        assert status["state"] == "running"
        assert pids(run) == before  # the same OS children, the same pids
        nodes = run.nodes()
        assert nodes["counter"]["restarts"] == 1  # the worker restarted once...
        assert all(nodes[path]["restarts"] == 0 for path in processes)  # ...the processes never
        assert nodes["sleep0"]["uptime"] > nodes["counter"]["uptime"]  # uptime kept across the exec
        first = json.loads((app / "counter-1.json").read_text())
        second = json.loads(wait_until(lambda: _read(app / "counter-2.json"), "the worker's restart"))
        assert (first["starts"], first["boots"], first["rich"]) == (1, 1, "None")
        assert (second["starts"], second["boots"]) == (2, 2)  # its snapshot, intact
        assert _same_rich(second["rich"]), second["rich"]

        # Output keeps flowing through the same pipes: no tick lost or repeated.
        last = ticks(run)[-1]
        wait_until(lambda: ticks(run)[-1] > last + 3, "ticks from the new image")
        seen = ticks(run)
        assert seen == list(range(seen[0], seen[0] + len(seen)))
        # The notify socket is the same: a STATUS= sent now reaches the new image.
        os.kill(before["db/notified"], signal.SIGUSR1)  # type: ignore[arg-type]
        wait_until(lambda: "status: after the re-exec" in run.stderr, "the notify socket to be read")

        # No fd leaked across the exec: the same pipes, the same number of each kind.
        def same_fds() -> bool:
            return fds(supervisor) == held

        try:
            wait_until(same_fds, "the same fds as before the re-exec", timeout=5)
        except AssertionError:
            raise AssertionError(f"fds before {held}, after {fds(supervisor)}") from None

        # SIGTERM stops everything: no process left, not even a zombie.
        everything = set(descendants(supervisor))
        assert set(processes.values()) <= everything
        run.signal(signal.SIGTERM)
        assert run.wait_exit() == 0
        wait_until(lambda: not any(exists(pid) for pid in everything), "every process to be gone")
    finally:
        run.close()


def _read(path: Path) -> str | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text if text.endswith("}") else None


def _same_rich(text: str) -> bool:
    """Set and frozenset reprs depend on hashing order: compare as values."""
    from pyrsistent import freeze, pset

    found = eval(text, {"pmap": pmap, "pvector": pvector, "pset": pset, "inf": float("inf")})
    expected = pmap(
        {
            "t": (1, 2.5, None, True),
            "f": frozenset({"a", b"b"}),
            "v": pvector([float("inf"), 10**30]),
            "s": pset([1, 2]),
            "nested": freeze({"x": [1, {"y": b"z"}]}),
        }
    )
    return bool(found == expected)


def test_a_broken_code_on_disk_is_refused_and_the_old_tree_runs_on(tmp_path: Path) -> None:
    app = write_app(tmp_path, children=3)
    run = Run(tmp_path, "app.py")
    try:
        run.wait_running()
        before = pids(run)
        good = app.read_text()
        app.write_text(good + "\ndef broken(:\n")
        done = run.cli("reexec", expect=1)
        assert "re-exec refused: the code on disk cannot take over: SyntaxError" in done.stderr, done.stderr
        status = run.status()
        assert status["state"] == "running" and status["pid"] == run.proc.pid
        assert pids(run) == before and all(alive(pid) for pid in before.values() if pid is not None)
        assert run.nodes()["counter"]["restarts"] == 0  # not even the worker was touched
        # A builder that raises is refused as well.
        app.write_text(good.replace("def build():", "def build():\n    raise RuntimeError('no tree today')"))
        assert "RuntimeError: no tree today" in run.cli("reexec", expect=1).stderr
        assert pids(run) == before
        # Fixed: the re-exec goes through.
        app.write_text(good)
        run.cli("reexec")
        assert pids(run) == before and run.nodes()["counter"]["restarts"] == 1
    finally:
        run.close()


def test_a_child_killed_during_the_handover_is_restarted_after_it(tmp_path: Path) -> None:
    write_app(tmp_path, children=3)
    run = Run(tmp_path, "app.py")
    try:
        run.wait_running()
        supervisor = run.proc.pid
        before = pids(run)
        victim = before["sleep1"]
        assert victim is not None
        argv = [PY, "-m", "supervision", "reexec", "--control", run.control]
        client = subprocess.Popen(argv, cwd=tmp_path, env=run.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The handover memfd exists from just before the exec until the new image
        # has read it: kill the victim in that window, before it can be adopted.
        killed = False
        while client.poll() is None and not killed:
            if _holds_handover(supervisor):
                os.kill(victim, signal.SIGKILL)
                killed = True
        _, err = client.communicate(timeout=DEADLINE)
        assert client.returncode == 0, err
        assert killed, "never saw the handover memfd"
        nodes = wait_until(
            lambda: (n := run.nodes())["sleep1"]["status"] == "running" and n["sleep1"]["pid"] != victim and n,
            "the victim to be restarted",
        )
        assert nodes["sleep1"]["restarts"] == 1
        assert nodes["sleep1"]["last_exit"]["reason"] == "crash" and nodes["sleep1"]["last_exit"]["signal"] == 9
        others = {path: pid for path, pid in before.items() if path != "sleep1"}
        assert {path: pids(run)[path] for path in others} == others
        assert not exists(victim)  # reaped
    finally:
        run.close()


def _holds_handover(pid: int) -> bool:
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in names:
        try:
            if "supervision-reexec" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                return True
        except OSError:
            continue
    return False


def test_terminated_stays_terminated_and_status_shows_the_old_exits(tmp_path: Path) -> None:
    write_app(tmp_path, children=2)
    run = Run(tmp_path, "app.py")
    try:
        run.wait_running()
        run.cli("stop", "sleep0")
        before = pids(run)
        # Requests sent after "reexec" on the same connection are answered by the new image.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(DEADLINE)
            sock.connect(run.control)
            sock.sendall(b'{"v": 1, "id": 1, "cmd": "reexec"}\n{"v": 1, "id": 2, "cmd": "ping"}\n')
            with sock.makefile("rb") as replies:
                first, second = json.loads(replies.readline()), json.loads(replies.readline())
        assert first["ok"] and first["id"] == 1 and first["result"]["pid"] == run.proc.pid
        assert second["ok"] and second["id"] == 2 and second["result"]["state"] == "running"
        nodes = run.nodes()
        assert nodes["sleep0"]["status"] == "terminated" and nodes["sleep0"]["pid"] is None
        assert nodes["sleep0"]["last_exit"]["reason"] == "shutdown"
        assert pids(run) == before
        assert "started (pid" in run.cli("start", "sleep0").stdout  # and it can be started again
    finally:
        run.close()


# -- tree.reexec() without sv.run: a program of its own, with a dynamic child -----------

PROGRAM = """
import asyncio, json, os, signal, sys
import supervision as sv

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = os.path.join(HERE, "first-run-done")

def build():
    return sv.Supervisor([
        sv.process("a", ["sleep", "1000"]),
        sv.process("off", ["sleep", "1000"]),
        sv.process("b", ["sleep", "1000"]),
    ])

async def main():
    loop = asyncio.get_running_loop()
    async with sv.start(build) as tree:
        first = not os.path.exists(MARK)
        if first:
            await tree.start_child(sv.process("dyn", ["sleep", "1000"]))
            await tree.terminate_child("off")
            open(MARK, "w").close()
        state = {info.id: [info.status, info.pid] for info in tree.which_children()}
        name = os.path.join(HERE, "state-1.json" if first else "state-2.json")
        with open(name + ".tmp", "w") as file:
            json.dump(state, file)
        os.rename(name + ".tmp", name)

        async def reexec():
            try:
                await tree.reexec()
            except sv.ReloadError as exc:
                print("refused:", exc, flush=True)

        loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(reexec()))
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(tree.stop()))
        await tree.wait()

asyncio.run(main())
"""


def test_tree_reexec_under_sv_start_stops_dynamic_children(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(textwrap.dedent(PROGRAM))
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    with open(tmp_path / "err", "wb") as err:
        proc = subprocess.Popen([PY, "prog.py"], cwd=tmp_path, env=env, stderr=err)
    everything: set[int] = set()
    try:
        first = json.loads(wait_until(lambda: _read(tmp_path / "state-1.json"), "the first image"))
        everything = set(descendants(proc.pid))
        assert first["dyn"][0] == "running" and first["off"] == ["terminated", None]
        proc.send_signal(signal.SIGUSR1)
        second = json.loads(wait_until(lambda: _read(tmp_path / "state-2.json"), "the new image"))
        assert proc.poll() is None
        assert second["a"] == first["a"] and second["b"] == first["b"]  # adopted: same pids
        assert second["off"] == ["terminated", None]
        assert "dyn" not in second  # dynamic children do not survive a re-exec...
        assert wait_gone(first["dyn"][1]) and not exists(first["dyn"][1])  # ...they are stopped and reaped
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0
        wait_until(lambda: not any(exists(pid) for pid in everything), "every process to be gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in everything:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert "Traceback" not in (tmp_path / "err").read_text()


# -- units --------------------------------------------------------------------------------


def test_a_recycled_or_gone_pid_is_never_adopted() -> None:
    child = subprocess.Popen(["sleep", "1000"])
    try:
        started = start_time(child.pid)
        assert started is not None
        pidfd, why = verify(child.pid, started)
        assert pidfd is not None and why == ""
        os.close(pidfd)
        # Another start time: the pid names another process now (it was recycled).
        assert verify(child.pid, started + 1) == (None, "its pid names another process now")
        # Not our child: never adopted, even with the right start time.
        assert verify(os.getppid(), start_time(os.getppid()) or 0)[0] is None
    finally:
        child.kill()
        child.wait()
    assert verify(child.pid, started) == (None, "it was gone")


def test_snapshots_round_trip_and_unserialisable_ones_are_refused() -> None:
    store = PathStore()
    value = pmap({"a": (1, None, b"x", frozenset({1.5})), "v": pvector([10**40, float("-inf")])})
    store.save(("w",), value)
    store.save(("db", "pool"), "text")
    store.starts[("w",)] = 3
    store.versions[("w",)] = 2
    state = json.loads(json.dumps(encode_store(store)))
    assert decode_snapshots(state) == {("w",): value, ("db", "pool"): "text"}
    assert state["starts"] == [[["w"], 3]] and state["versions"] == [[["w"], 2]]

    from pyrsistent import PClass, field

    class Local(PClass):  # a class defined in a function cannot be pickled
        x = field()

    store.save(("bad",), Local(x=1))
    with pytest.raises(ReloadError, match="cannot be serialised") as info:
        encode_store(store)
    assert info.value.path == ("bad",)


def test_an_unreadable_snapshot_is_dropped_not_the_others() -> None:
    state = {"snapshots": [[["ok"], "gAVLAS4="], [["broken"], "bm90IGEgcGlja2xl"]]}  # pickle of 1; garbage
    assert decode_snapshots(state) == {("ok",): 1}


# -- the new image's side, in process: a handover made by hand ---------------------------


def _record(path: tuple[str, ...], pid: int, spec: sv.ChildSpec, *, start: int | None = None) -> ProcessRecord:
    found = start_time(pid) if start is None else start
    assert found is not None
    return ProcessRecord(
        path=path,
        pid=pid,
        start_time=found,
        invocation=b"SUPERVISION_INVOCATION_ID=test",
        launch=launch(spec),
        stop_signal=signal.SIGTERM,
        shutdown=5.0,
        ready=True,
    )


def _hand_over(monkeypatch: pytest.MonkeyPatch, *records: ProcessRecord, **state: Any) -> Handover:
    handover = Handover(
        {
            "format": 1,
            "pid": os.getpid(),
            "target": "test",
            "store": {"snapshots": [], "starts": [], "versions": []},
            "processes": [record.to_json() for record in records],
            "terminated": [],
            "gone": [],
            "host": {},
            "blocked": [],
            "timings": {"exec": time.monotonic()},
            **state,
        }
    )
    monkeypatch.setattr(_reexec, "_read", True)
    monkeypatch.setattr(_reexec, "_pending", handover)
    monkeypatch.setattr(_reexec, "_claimed", False)
    return handover


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "1000"], start_new_session=True)


async def test_a_pid_with_another_start_time_is_lost_never_adopted(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = sv.process("p", ["sleep", "1000"])
    stranger = _sleeper()  # has the recorded pid, but not the recorded start time
    try:
        started = start_time(stranger.pid)
        assert started is not None
        store = {"snapshots": [], "starts": [[["p"], 1]], "versions": []}  # the old image started it once
        handover = _hand_over(monkeypatch, _record(("p",), stranger.pid, spec, start=started - 1), store=store)
        async with sv.start(sv.Supervisor([spec])) as tree:
            await until(lambda: tree.which_children()[0].starts == 2, what="p restarted")
            info = tree.which_children()[0]
            assert info.status is sv.Status.RUNNING and info.pid not in (None, stranger.pid)
            assert handover.result["lost"] == ["p"] and handover.result["adopted"] == []
        assert stranger.poll() is None  # never signalled: it is not the process we started
    finally:
        stranger.kill()
        stranger.wait()


async def test_a_child_that_exited_during_the_handover_is_reaped_and_its_exit_handled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = sv.process("p", ["true"], restart="transient")
    pid = os.fork()
    if pid == 0:  # a child that exits at once, normally: a zombie until we reap it
        os._exit(0)
    await until(lambda: (stat(pid) or ("?",))[0] == "Z", what="the zombie")
    store = {"snapshots": [], "starts": [[["p"], 3]], "versions": []}
    handover = _hand_over(monkeypatch, _record(("p",), pid, spec), store=store)
    async with sv.start(sv.Supervisor([spec])) as tree:
        await until(lambda: tree.which_children()[0].status is sv.Status.TERMINATED, what="p handled")
        assert tree.which_children()[0].starts == 3  # adopted (not a start), exited normally: transient, done
        assert handover.result["adopted"] == ["p"]
    assert not exists(pid)  # reaped


async def test_a_process_whose_spec_changed_is_stopped_before_the_tree_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    old = sv.process("p", ["sleep", "1000"])
    new = sv.process("p", ["sleep", "999"])
    extra = sv.process("dyn", ["sleep", "1000"])
    first, second = _sleeper(), _sleeper()
    pids = {first.pid, second.pid}
    first.returncode = second.returncode = 0  # reaped by the tree, not by subprocess
    handover = _hand_over(monkeypatch, _record(("p",), first.pid, old), _record(("dyn",), second.pid, extra))
    async with sv.start(sv.Supervisor([new])) as tree:
        assert not any(exists(pid) for pid in pids)  # stopped and reaped before the tree started
        info = tree.which_children()[0]
        assert info.status is sv.Status.RUNNING and info.pid not in pids and info.starts == 1
        assert handover.result["stopped"] == ["dyn"] and handover.result["replaced"] == ["p"]


async def test_the_new_image_emits_no_event_for_a_child_that_did_not_change(monkeypatch: pytest.MonkeyPatch) -> None:
    async def worker(ctx: sv.Context) -> None:
        await asyncio.Event().wait()

    kept = sv.process("p", ["sleep", "1000"])
    spec = sv.Supervisor(
        [
            kept,
            sv.process("off", ["sleep", "1000"]),
            sv.child("w", worker),
            sv.child("sub", sv.Supervisor([sv.child("w2", worker)])),
            sv.child("deleted", worker),
        ]
    )
    sleeper = _sleeper()
    sleeper.returncode = 0  # reaped by the tree, not by subprocess
    store = {"snapshots": [], "starts": [[["p"], 4], [["off"], 1], [["sub"], 1], [["w"], 2]], "versions": []}
    handover = _hand_over(
        monkeypatch, _record(("p",), sleeper.pid, kept), store=store, terminated=[["off"]], gone=[["deleted"]]
    )
    starting = sv.start(spec)
    events = starting.events()
    async with starting as tree:
        infos = {info.id: info for info in tree.which_children()}
        assert infos["p"].status is sv.Status.RUNNING and infos["p"].pid == sleeper.pid and infos["p"].starts == 4
        assert infos["off"].status is sv.Status.TERMINATED and infos["off"].starts == 1
        assert infos["sub"].status is sv.Status.RUNNING and infos["sub"].starts == 1
        assert infos["w"].status is sv.Status.RUNNING and infos["w"].starts == 3  # workers start again
        assert "deleted" not in infos
        assert handover.result["adopted"] == ["p"]
    seen = [event async for event in events]
    during = seen[: next(i for i, e in enumerate(seen) if isinstance(e, sv.ChildExited))]
    # Only the workers, which really started again; p, off, sub and deleted did not change.
    assert sorted((type(e).__name__, e.path) for e in during) == [
        ("ChildStarted", ("sub", "w2")),
        ("ChildStarted", ("w",)),
    ]
    assert not exists(sleeper.pid)  # stopped with the tree


def test_the_subreaper_setting_survives_execve(tmp_path: Path) -> None:
    """What re-exec relies on (and sets again all the same): the kernel keeps
    PR_SET_CHILD_SUBREAPER across execve."""
    script = tmp_path / "subreaper.py"
    script.write_text(
        "import ctypes, os, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "if sys.argv[1:] == ['after']:\n"
        "    value = ctypes.c_int(0)\n"
        "    libc.prctl(37, ctypes.byref(value), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER\n"
        "    print(value.value)\n"
        "else:\n"
        "    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n"
        "    os.execv(sys.executable, [sys.executable, __file__, 'after'])\n"
    )
    done = subprocess.run([PY, str(script)], capture_output=True, text=True, timeout=DEADLINE)
    assert done.stdout.strip() == "1", done.stderr


async def test_a_failed_execve_leaves_the_tree_running_in_the_old_image(monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[Any] = []

    async def worker(ctx: sv.Context) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            saved.append(ctx.starts)
            ctx.save(ctx.state.set("saved", ctx.starts))  # a last snapshot, as it is stopped

    async def checked(source: Any) -> None:
        pass

    def execve(*args: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_reexec, "check", checked)
    monkeypatch.setattr(os, "execve", execve)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    spec = sv.Supervisor([sv.child("w", worker), sv.process("p", ["sleep", "1000"])])
    async with sv.start(spec) as tree:
        await asyncio.sleep(0)  # the worker runs up to its first await
        pid = tree.which_children()[1].pid
        fds_before = open_fds()
        inheritable = _inheritable(fds_before)
        with pytest.raises(sv.ReloadError, match="re-exec failed: Permission denied"):
            await tree.reexec()
        assert saved == [1]  # the worker was stopped in order before the exec...
        await until(lambda: tree.which_children()[0].starts == 2, what="the worker started again")
        assert tree.state("w")["saved"] == 1  # ...with its last snapshot kept
        assert [c.status for c in tree.which_children()] == [sv.Status.RUNNING] * 2
        assert tree.which_children()[1].pid == pid
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
        assert open_fds() == fds_before  # the memfd is closed
        assert _inheritable(fds_before) == inheritable  # close-on-exec again


def _inheritable(fds: set[int]) -> set[int]:
    found = set()
    for fd in fds:
        try:
            if os.get_inheritable(fd):
                found.add(fd)
        except OSError:  # the fd of the listing itself
            continue
    return found
