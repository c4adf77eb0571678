"""The benchmark suite: supervision against the physical floor, circus and supervisord.

    python bench/run.py            # the full suite (a few minutes on 2 cores)
    python bench/run.py --quick    # a ~2-minute pass: fewer samples, 5 s idle window

Writes a Markdown report to stdout and ``bench/results/latest.md``, and the raw numbers
to ``bench/results/latest.json``. ``docs/performance.md`` explains how to read it.

Every supervisor (the floors too) runs as its own daemon, started from a generated
config in a temporary directory and stopped with SIGTERM, and is timed from outside
by the kernel's proc connector (``cnproc.py``), one clock for all: the exit of one
incarnation, the fork and the exec of the next. Without root the children's own
timestamps and ``/proc`` polling stand in (the report says so).

Contenders: the floors, supervision, and circus and supervisord each at its fastest and
at its default setting (``contenders.py``). N children are one instance group under
supervision (``sv.process(..., instances=N)``), one watcher or program of N under the
peers; at 500, supervision also runs them as 500 separate children (extra rows).

Scenarios:
1. crash -> respawn of ``/bin/false``, ``sh -c 'exit 1'`` and a Python child, and the
   supervisor's CPU time per restart (its process CPU clock over the measured cycles);
2. bring-up of 100 and 500 ``sleep`` children until all have exec'd;
3. idle CPU, wake-ups and RSS of the supervisor with 100 idle children;
4. orderly stop (SIGTERM) of 500 children;
5. in-process restart cycle and 100 000-worker start (``bench/inproc.py``);
6. reload of a 10 000-worker tree with one change (``bench/reload.py`` when present);
7. re-exec handover with 100 OS children (when ``Tree.reexec`` exists);
8. many identical children (``bench/dynamic.py``): ``start_child`` of 100 000 workers
   against bare ``asyncio.create_task``, and scaling 100 process instances against
   circus's ``incr``/``decr``;
9. how the cost grows with the tree (``bench/scale.py``; only with ``--only scale``):
   10 to 10 000 OS children, 10 to 1 000 000 workers; ``--plot`` draws it (matplotlib);
and a breakdown of supervision's respawn time (logging, output pipes, pdeathsig off
one at a time).

With ``--priority fifo`` every contender runs under SCHED_FIFO 1, inherited by its
children: on a shared machine this keeps the others' load from deciding the latencies
(the published table uses it). The default runs at normal priority.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import itertools
import json
import os
import platform
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import cnproc  # noqa: E402
import contenders  # noqa: E402
import report  # noqa: E402
from contenders import Contender  # noqa: E402

RESULTS = BENCH / "results"
MARKER = "SV_BENCH_RUN"
SLEEP = ["/bin/sleep", "100000"]
PYTHON_CHILD = [os.path.realpath(sys.executable), "-c", "import sys; sys.exit(1)"]
CRASHERS = {
    "false": ("`/bin/false`", ["/bin/false"]),
    "sh": ("`sh -c 'exit 1'`", ["/bin/sh", "-c", "exit 1"]),
    "python": ("Python child (`sys.exit(1)`)", PYTHON_CHILD),
}


@dataclass(frozen=True)
class Plan:
    """How many samples of everything; ``--quick`` shrinks them."""

    quick: bool
    cycles: int  # respawn cycles measured, fast supervisors, /bin/false and sh
    python_cycles: int  # the same for the Python child (each cycle starts an interpreter)
    slow_cycles: int  # supervisord: about one cycle per second, in one round
    glacial_cycles: int  # circus at its default check_delay: about one cycle per 5 s, in one round
    warmup: int  # respawn cycles dropped at the start
    respawn_cap: float  # seconds at most per respawn run
    rounds: int  # respawn runs per contender and program, round-robin
    repeat: int  # bring-up / stop runs per contender and size
    idle_seconds: float
    inproc_n: int
    inproc_repeat: int
    reload_n: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 60, 15, 3, 2, 3, 5.0, 1, 1, 5.0, 10_000, 1, 10_000)
        return cls(False, 300, 45, 9, 4, 5, 10.0, 3, 3, 30.0, 100_000, 3, 10_000)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- /proc helpers ------------------------------------------------------------------


def comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def proc_children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(x) for x in f.read().split()]
    return found


def cpu_of(pid: int) -> tuple[int, int]:
    """CPU time (ns) and times scheduled in, summed over the threads of ``pid``."""
    cpu = slices = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            fields = f.read().split()
            cpu += int(fields[0])
            slices += int(fields[2])
    return cpu, slices


def cpu_clock(pid: int) -> int:
    """The clock id of another process's CPU time (``clock_getcpuclockid``, which
    Python lacks): ``MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)``. Nanoseconds of
    user + system time of all its threads, those that have exited included."""
    return ((~pid) << 3) | 2


def process_cpu(pid: int) -> int | None:
    try:
        return time.clock_gettime_ns(cpu_clock(pid))
    except OSError:
        return None


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def marked(token: str, pids: list[int] | None = None) -> list[int]:
    """Processes (of ``pids``, else all) whose environment carries this marker."""
    needle = f"{MARKER}={token}".encode()
    if pids is None:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    found = []
    for pid in pids:
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as f:
            if needle in f.read().split(b"\0"):
                found.append(pid)
    return found


class _Fd(int):
    def close(self) -> None:
        if self >= 0:
            os.close(self)


def _pidfd(pid: int) -> _Fd:
    try:
        return _Fd(os.pidfd_open(pid))
    except ProcessLookupError:
        return _Fd(-1)


def _kill_marked(pid: int, token: str) -> None:
    """SIGKILL ``pid`` through a pidfd, once it is sure to still be the marked process."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if pid in marked(token, [pid]):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- running a daemon ---------------------------------------------------------------


class Failed(RuntimeError):
    """A contender failed a scenario: reported in its cell, the run goes on."""

    def __init__(self, what: str, log: str) -> None:
        super().__init__(f"{what}; its output: {log}")
        self.what = what
        self.log = log


@dataclass
class Daemon:
    contender: Contender
    popen: subprocess.Popen[bytes]
    tmp: Path
    token: str
    launched_ns: int

    @property
    def pid(self) -> int:
        return self.popen.pid


class Bench:
    def __init__(self, plan: Plan, observer: cnproc.Observer | None, workdir: Path) -> None:
        self.plan = plan
        self.observer = observer
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:8]
        self.launches = 0
        self.strays = 0
        self.forced: list[str] = []
        self.resent: dict[str, int] = {}  # SIGTERMs sent again, per contender
        self.live: list[Daemon] = []  # launched and not stopped yet: stopped if the run is cut short
        self.notes: list[str] = []

    # -- lifecycle --

    def launch(self, contender: Contender, command: list[str], tmp: Path) -> Daemon:
        self.launches += 1
        token = f"{self.run_id}-{self.launches}"
        env = dict(os.environ, **{MARKER: token, "PYTHONUNBUFFERED": "1"})
        out = open(tmp / "daemon.log", "ab")  # noqa: SIM115
        launched = time.monotonic_ns()
        popen = subprocess.Popen(
            command, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
        out.close()
        daemon = Daemon(contender, popen, tmp, token, launched)
        self.live.append(daemon)
        return daemon

    def stop(self, daemon: Daemon, timeout: float = 60.0) -> int:
        """SIGTERM and wait, as an init system would; returns when SIGTERM was sent.

        Circus alone gets SIGTERM again (``Contender.resend``) while it has not stopped:
        it drops a quit that arrives while its ``manage_watchers`` holds the arbiter's
        lock (``ConflictError``), which at a 1 ms ``check_delay`` during a crash loop
        is nearly always. Past ``timeout`` the process group is killed (and reported)."""
        sent = time.monotonic_ns()
        popen = daemon.popen
        if daemon in self.live:
            self.live.remove(daemon)
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        resend = daemon.contender.resend
        wait = 1.0 if resend else timeout
        with contextlib.closing(_pidfd(popen.pid)) as fd:
            while popen.poll() is None and time.monotonic() < deadline:
                if not select.select([fd], [], [], min(wait, max(0.0, deadline - time.monotonic())))[0] and resend:
                    popen.send_signal(signal.SIGTERM)
                    self.resent[daemon.contender.key] = self.resent.get(daemon.contender.key, 0) + 1
                    wait = resend
        if popen.poll() is None:
            self.forced.append(f"{daemon.contender.key} did not stop within {timeout:g} s of SIGTERM: killed")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
            popen.wait()
        self.sweep(daemon)
        return sent

    def sweep(self, daemon: Daemon) -> None:
        """Count and kill what the daemon left behind (nothing, if it stopped in order)."""
        deadline = time.monotonic() + 2.0
        left = marked(daemon.token)
        while left and time.monotonic() < deadline:  # children with pdeathsig may still be dying
            time.sleep(0.02)
            left = marked(daemon.token)
        if left:
            self.strays += len(left)
            self.notes.append(f"{daemon.contender.key} left {len(left)} process(es) behind; killed")
            for pid in left:
                _kill_marked(pid, daemon.token)

    def keep_log(self, daemon: Daemon) -> str:
        """Copy a failed daemon's output to bench/results/ (its temp dir goes away)."""
        RESULTS.mkdir(exist_ok=True)
        kept = RESULTS / f"failed-{daemon.contender.key}-{daemon.token}.log"
        with contextlib.suppress(OSError):
            shutil.copyfile(daemon.tmp / "daemon.log", kept)
        return str(kept.relative_to(BENCH.parent))

    @contextlib.contextmanager
    def tempdir(self, name: str) -> Iterator[Path]:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def settle(self) -> None:
        if self.observer is not None:
            self.observer.settle()

    # -- (1) crash -> respawn --

    def respawn(self, contender: Contender, crasher: str, wanted: int) -> dict[str, list[float]]:
        """One run of a crash loop: ``wanted`` cycles after the warm-up, as samples
        (seconds) of exit → fork, exit → exec and exec → exec, and one sample of the
        supervisor's CPU time per restart over the cycles after the warm-up."""
        plan = self.plan
        argv = CRASHERS[crasher][1]
        if self.observer is None:
            return self._respawn_own_timestamps(contender, wanted) if crasher == "python" else {}
        warmup = 1 if contender.cycle else plan.warmup  # the slow ones: one cycle a second or slower
        total = warmup + wanted + 1
        cap = plan.respawn_cap if not contender.cycle else (total + 3) * contender.cycle * 1.2
        # a floor stops by itself after its cycles: give it more, so that it still runs
        # when its CPU time is read at the end of the window, then stop it like the others
        cycles = total + max(10, total // 2) if contender.floor else total
        cpu: list[tuple[int, int]] = []  # (restarts seen, CPU ns) at the window's start and end
        with self.tempdir(f"respawn-{contender.key}-{crasher}") as tmp:
            daemon = self.launch(contender, contender.respawn_command(argv, cycles, tmp), tmp)
            deadline = time.monotonic() + cap + 5.0
            while time.monotonic() < deadline:
                if contender.floor and daemon.popen.poll() is not None:
                    break
                exits = sum(1 for kid in self.observer.children(daemon.pid) if kid.exit_ns)
                if (not cpu and exits >= warmup) or exits >= total:
                    used = process_cpu(daemon.pid)
                    if used is not None:
                        cpu.append((exits, used))
                if exits >= total:
                    break
                time.sleep(0.02 if contender.cycle else 0.005)
            self.stop(daemon)
            self.settle()
            kids = self.observer.children(daemon.pid)
            self.observer.forget()
        exit_fork, exit_exec, start_start = [], [], []
        for before, after in itertools.pairwise(kids):
            if before.exit_ns is None or after.exec_ns is None or before.exec_ns is None:
                continue
            if after.fork_ns < before.exit_ns:
                continue  # not a respawn of this one (cannot happen with one child)
            exit_fork.append((after.fork_ns - before.exit_ns) / 1e9)
            exit_exec.append((after.exec_ns - before.exit_ns) / 1e9)
            start_start.append((after.exec_ns - before.exec_ns) / 1e9)
        skip, end = warmup, warmup + wanted
        found = {
            "exit_fork": exit_fork[skip:end],
            "exit_exec": exit_exec[skip:end],
            "start_start": start_start[skip:end],
        }
        if len(cpu) >= 2 and cpu[-1][0] > cpu[0][0]:
            found["cpu_per_restart"] = [(cpu[-1][1] - cpu[0][1]) / 1e9 / (cpu[-1][0] - cpu[0][0])]
        return found

    def _respawn_own_timestamps(self, contender: Contender, wanted: int) -> dict[str, list[float]]:
        """Without the proc connector: the Python child writes its own monotonic clock
        at its first statement and right before it exits ("exec" is then the child's
        first statement, after the interpreter's start-up)."""
        plan = self.plan
        total = plan.warmup + wanted + 1
        with self.tempdir(f"respawn-{contender.key}-own") as tmp:
            stamps = tmp / "stamps"
            code = (
                "import os, time\n"
                f"fd = os.open({str(stamps)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
                "os.write(fd, b'start %d\\n' % time.monotonic_ns())\n"
                "os.write(fd, b'exit %d\\n' % time.monotonic_ns())\n"
                "os._exit(1)\n"
            )
            argv = [PYTHON_CHILD[0], "-c", code]
            daemon = self.launch(contender, contender.respawn_command(argv, total, tmp), tmp)
            deadline = time.monotonic() + plan.respawn_cap + total * contender.cycle
            while time.monotonic() < deadline:
                if contender.floor and daemon.popen.poll() is not None:
                    break
                if stamps.exists() and stamps.read_text().count("exit") >= total:
                    break
                time.sleep(0.02)
            self.stop(daemon)
            lines = [line.split() for line in stamps.read_text().splitlines()] if stamps.exists() else []
        starts = [int(v) for k, v in lines if k == "start"]
        exits = [int(v) for k, v in lines if k == "exit"]
        exit_start = [(b - a) / 1e9 for a, b in zip(exits, starts[1:], strict=False)]
        start_start = [(b - a) / 1e9 for a, b in itertools.pairwise(starts)]
        skip = plan.warmup
        return {"exit_exec": exit_start[skip:], "start_start": start_start[skip:]}

    # -- (2, 3, 4) bring-up, idle, stop --

    def bring_up(self, contender: Contender, count: int, tmp: Path) -> tuple[Daemon, dict[str, Any]]:
        """Start ``count`` sleep children under ``contender``; wait until all have exec'd."""
        daemon = self.launch(contender, contender.hold_command(count, SLEEP, tmp), tmp)
        if isinstance(contender, contenders.Circus):
            time.sleep(0.3)
            if contenders.udp_sockets(daemon.pid):
                self.stop(daemon)
                raise RuntimeError("circusd opened a UDP (multicast) socket: refusing to go on")
        # The kernel's timestamps say when; this loop only notices that all are there,
        # so it looks seldom (and costs the machine little) when the observer runs.
        deadline = time.monotonic() + 120.0
        confirmed: set[int] = set()
        result: dict[str, Any] = {}
        while True:
            if daemon.popen.poll() is not None:
                self.stop(daemon)
                raise Failed(f"exited during bring-up (status {daemon.popen.returncode})", self.keep_log(daemon))
            if time.monotonic() > deadline:
                self.stop(daemon)
                raise Failed(f"only {len(confirmed)} of {count} children started in 120 s", self.keep_log(daemon))
            if self.observer is not None:
                live = [kid.pid for kid in self.observer.children(daemon.pid) if kid.execs and kid.exit_ns is None]
            else:
                live = proc_children(daemon.pid)
            if len(live) >= count:
                # the last exec is the program's, past an exec helper: check by name
                confirmed |= {pid for pid in live if pid not in confirmed and comm(pid) == "sleep"}
                if len(confirmed) >= count:
                    if self.observer is None:
                        result["all_execd_ns"] = time.monotonic_ns()
                    break
            time.sleep(0.05 if self.observer is not None else 0.002)
        if self.observer is not None:
            self.settle()
            kids = [kid for kid in self.observer.children(daemon.pid) if kid.pid in confirmed and kid.exec_ns]
            result["first_fork_ns"] = min(kid.fork_ns for kid in kids)
            result["all_execd_ns"] = max(kid.exec_ns for kid in kids if kid.exec_ns)
            result["bringup"] = (result["all_execd_ns"] - result["first_fork_ns"]) / 1e9
        result["launch_to_all"] = (result["all_execd_ns"] - daemon.launched_ns) / 1e9
        return daemon, result

    def take_down(self, daemon: Daemon) -> dict[str, Any]:
        """Orderly stop (SIGTERM), timed to the last child's exit and the daemon's own."""
        pids = set(proc_children(daemon.pid))
        sent = self.stop(daemon)
        result: dict[str, Any] = {}
        if self.observer is not None:
            self.settle()
            kids = [kid for kid in self.observer.children(daemon.pid) if kid.pid in pids and kid.exit_ns]
            me = [proc for proc in self.observer.children(os.getpid()) if proc.pid == daemon.pid]
            if kids:
                result["stop_children"] = (max(kid.exit_ns for kid in kids if kid.exit_ns) - sent) / 1e9
            if me and me[-1].exit_ns:
                result["stop_daemon"] = (me[-1].exit_ns - sent) / 1e9
            self.observer.forget()
        else:
            result["stop_daemon"] = (time.monotonic_ns() - sent) / 1e9  # after popen.wait()
        return result

    def hold_runs(self, runs: list[Contender], count: int) -> dict[str, list[dict[str, Any]]]:
        """Bring-up then orderly stop of ``count`` children, one contender at a time."""
        found: dict[str, list[dict[str, Any]]] = {c.key: [] for c in runs}
        for contender in runs:
            with self.tempdir(f"hold{count}-{contender.key}") as tmp:
                try:
                    daemon, up = self.bring_up(contender, count, tmp)
                except Failed as exc:
                    self.notes.append(f"{contender.key}, bring-up of {count}: {exc}")
                    continue
                time.sleep(0.3)
                up.update(self.take_down(daemon))
                found[contender.key].append(up)
        return found

    def idle(self, runs: list[Contender], count: int, seconds: float) -> dict[str, dict[str, Any]]:
        """Bring up ``count`` children under each contender (one after the other, each
        measured alone), then measure all of them idle over the same window."""
        found: dict[str, dict[str, Any]] = {}
        daemons: list[tuple[Daemon, contextlib.ExitStack]] = []
        try:
            for contender in runs:
                stack = contextlib.ExitStack()
                tmp = stack.enter_context(self.tempdir(f"idle-{contender.key}"))
                try:
                    daemon, up = self.bring_up(contender, count, tmp)
                except Failed as exc:
                    stack.close()
                    self.notes.append(f"{contender.key}, bring-up of {count} before the idle window: {exc}")
                    continue
                daemons.append((daemon, stack))
                found[contender.key] = up
            time.sleep(2.0)  # let every supervisor settle (supervisord: startsecs = 1 s)
            before = {d.contender.key: cpu_of(d.pid) for d, _ in daemons}
            time.sleep(seconds)
            for daemon, _ in daemons:
                cpu, slices = cpu_of(daemon.pid)
                key = daemon.contender.key
                found[key]["idle_cpu"] = (cpu - before[key][0]) / 1e9 / seconds
                found[key]["idle_wakeups"] = (slices - before[key][1]) / seconds
                found[key]["rss"] = rss_of(daemon.pid)
        finally:
            for daemon, stack in reversed(daemons):
                with stack:
                    found[daemon.contender.key].update(self.take_down(daemon))
        return found


# -- (5) in-process, (6) reload, (7) re-exec ----------------------------------------


def inproc_rows(plan: Plan) -> list[dict[str, Any]]:
    import inproc  # bench/inproc.py: each case in a fresh interpreter, best of --repeat

    rows = []
    n, repeat = plan.inproc_n, plan.inproc_repeat
    for what, label in (("restart", f"crash→restart ×{n:,}"), ("start", f"start {n:,} idle workers")):
        floor_time, floor_mem = inproc.measure(f"{what}-floor", n, repeat)
        sv_time, sv_mem = inproc.measure(f"{what}-supervision", n, repeat)
        row: dict[str, Any] = {
            "id": f"inproc/{what}",
            "scenario": label,
            "n": n,
            "floor": {"median": floor_time, "n": repeat, "best_of": repeat},
            "supervision": {"median": sv_time, "n": repeat, "best_of": repeat},
        }
        if what == "start":
            row["memory"] = f"{floor_mem / n:,.0f} B / {sv_mem / n:,.0f} B per worker"
            row["floor_bytes"], row["sv_bytes"] = floor_mem / n, sv_mem / n
        rows.append(row)
    return rows


RELOAD_TREE = """\
import asyncio

import supervision as sv


async def idle(ctx: sv.Context) -> None:
    await asyncio.get_running_loop().create_future()


async def changed(ctx: sv.Context) -> None:
    version = {version}
    await asyncio.get_running_loop().create_future()


def build() -> sv.Supervisor:
    ids = [f"w{{i}}" for i in range({n})]
    return sv.Supervisor([sv.child(i, changed if i == "w{middle}" else idle) for i in ids])
"""


async def _replacement(ctx: Any) -> None:
    await asyncio.get_running_loop().create_future()


async def _reload_child(n: int) -> dict[str, Any]:
    """In a fresh interpreter: start an n-worker tree from a file, edit one worker's
    code, reload; then the same change through ``tree.update`` (no import)."""
    import logging

    import supervision as sv

    logging.getLogger("supervision").setLevel(logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="sv-reload-"))
    try:
        source = folder / "bigtree.py"
        source.write_text(RELOAD_TREE.format(version=1, n=n, middle=n // 2))
        began = time.perf_counter()
        tree = await sv.start(f"{source}:build")
        cold = time.perf_counter() - began
        source.write_text(RELOAD_TREE.format(version=22, n=n, middle=n // 2))
        began = time.perf_counter()
        applied = await tree.reload()
        reload_time = time.perf_counter() - began
        restarted = [list(path) for path in applied.restarted]
        # the same change handed over as a spec: the running spec with one child replaced
        children = list(tree.spec.children)
        children[n // 2] = sv.child(children[n // 2].id, _replacement)
        began = time.perf_counter()
        updated = await tree.update(sv.Supervisor(children))
        update_time = time.perf_counter() - began
        running = sum(1 for c in tree.which_children() if c.status == "running")
        await tree.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "cold_start": cold,
        "reload": reload_time,
        "update": update_time,
        "restarted": restarted[:5],
        "restarted_count": len(restarted),
        "update_restarted": [list(path) for path in updated.restarted[:5]],
        "update_restarted_count": len(updated.restarted),
        "running": running,
    }


def reload_rows(plan: Plan) -> tuple[list[dict[str, Any]], str | None]:
    """Rows for the reload scenario, and ``bench/reload.py``'s own report when it is there.

    ``bench/reload.py`` (its author's benchmark: reload and update against a full
    restart, in a fresh interpreter) is run as its own command and its table kept
    whole; without it, a smaller measurement of the same change runs here."""
    n = plan.reload_n
    script = BENCH / "reload.py"
    if script.exists():
        return _reload_script(script, plan)
    out = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--child-reload", str(n)], capture_output=True, text=True, timeout=300
    )
    scenario = f"`tree.reload()` of a {n:,}-worker tree, one function edited"
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1:] or ["failed"]
        return [{"id": "reload/file", "scenario": scenario, "value": report.na("failed"), "note": last[0]}], None
    found = json.loads(out.stdout)

    def changed(prefix: str) -> str:
        count, first = found[f"{prefix}restarted_count"], found[f"{prefix}restarted"]
        if count == 1:
            return f"only `{'/'.join(first[0])}` restarted"
        return f"{count} restarted (expected exactly one)"

    rows = [
        {
            "id": "reload/file",
            "scenario": scenario,
            "value": {"median": found["reload"], "n": 1},
            "compared": f"cold start of the same tree: {report.fmt_time(found['cold_start'])}",
            "ratio": found["reload"] / found["cold_start"],
            "note": f"re-import + fingerprint + diff; {changed('')}; {found['running']:,} running after",
        },
        {
            "id": "reload/update",
            "scenario": "`tree.update(spec)` of the same tree, one change",
            "value": {"median": found["update"], "n": 1},
            "compared": "cold start",
            "ratio": found["update"] / found["cold_start"],
            "note": f"diff and apply only (no import); {changed('update_')}",
        },
    ]
    return rows, None


def _reload_script(script: Path, plan: Plan) -> tuple[list[dict[str, Any]], str | None]:
    repeat = 1 if plan.quick else 5
    command = [sys.executable, str(script), "-n", str(plan.reload_n), "--repeat", str(repeat)]
    scenario = f"reload of a {plan.reload_n:,}-worker tree, one change (`bench/reload.py`, best of {repeat})"
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return [{"id": "reload/script", "scenario": scenario, "value": report.na("timed out"), "note": ""}], None
    # exit status 1: its own target (update < 5 % of a full restart) was missed; the table is still there
    table = parse_markdown_table(out.stdout)
    if not table:
        last = (out.stderr.strip() or out.stdout.strip()).splitlines()[-1:] or ["no output"]
        return [{"id": "reload/script", "scenario": scenario, "value": report.na("failed"), "note": last[0]}], None
    times = {row[0].strip(): _parse_ms(row[1]) for row in table}

    def find(prefix: str) -> float | None:
        return next((value for label, value in times.items() if label.startswith(prefix)), None)

    full, full_given = find("full restart: "), find("full restart, spec given")
    rows = []
    for label, key, against, against_label in (
        ("`tree.reload()`: re-import the file, build, diff, apply", "tree.reload()", full, "full restart"),
        ("`tree.update(spec)`, spec given: diff, apply", "tree.update(spec)", full_given, "full restart, spec given"),
    ):
        value = find(key)
        rows.append(
            {
                "id": f"reload/{key}",
                "scenario": f"{label} — {plan.reload_n:,} workers, one changed",
                "value": {"median": value, "n": repeat} if value is not None else report.na("not found"),
                "compared": f"{against_label}: {report.fmt_time(against)}" if against else "",
                "ratio": value / against if value is not None and against else None,
                "note": f"bench/reload.py, best of {repeat}; exactly one child restarted (checked there)",
            }
        )
    return rows, out.stdout.strip()


def parse_markdown_table(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``text``, as cells."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:]  # without the header


def _parse_ms(text: str) -> float | None:
    number, _, unit = text.strip().partition(" ")
    try:
        return float(number) * {"ms": 1e-3, "s": 1.0, "µs": 1e-6}.get(unit, 1e-3)
    except ValueError:
        return None


def reexec_row(bench: Bench) -> dict[str, Any]:
    """Scenario 7: ``bench/reexec.py``'s ``measure()`` when it is there (checked from
    outside by the kernel's record), else a measurement of our own, else "not measured"."""
    import supervision as sv

    scenario = "re-exec handover, 100 OS children"
    if not hasattr(sv.Tree, "reexec"):
        return {
            "id": "reexec",
            "scenario": scenario,
            "value": report.na("re-exec not implemented yet"),
            "note": "**not measured: re-exec not implemented yet** (measured automatically once `Tree.reexec` exists)",
        }
    try:
        if (BENCH / "reexec.py").exists():
            return _reexec_script(bench, scenario)
        return _measure_reexec(bench, scenario)
    except Exception as exc:
        return {"id": "reexec", "scenario": scenario, "value": report.na("failed"), "note": f"{exc!r}"[:200]}


def _reexec_script(bench: Bench, scenario: str) -> dict[str, Any]:
    import reexec  # bench/reexec.py: a `supervision run` of N sleep children, re-executed through its socket

    repeat = 1 if bench.plan.quick else 3
    began = time.monotonic_ns()
    found = reexec.measure(100, repeat)
    note = (
        f"bench/reexec.py, median of {repeat}: pre-exec check {report.fmt_time(_median(found['check']))}, "
        f"exec → new image reads the handover {report.fmt_time(_median(found['startup']))}, "
        f"exec → all children re-adopted {report.fmt_time(_median(found['handover']))}; "
        f"{found['kept']} of 100 children kept their pid"
    )
    if bench.observer is not None:
        bench.settle()
        runs = [p for p in bench.observer.children(os.getpid()) if p.fork_ns >= began and len(p.execs) > 1]
        if runs:
            daemon = runs[0]
            first, last = daemon.execs[1], daemon.execs[-1]
            kids = bench.observer.children(daemon.pid)
            across = sum(1 for kid in kids if kid.fork_ns < first and (kid.exit_ns is None or kid.exit_ns > last))
            # a restarted child: a new fork of the daemon that exec'd its program and still ran
            # after the last exec (the pre-exec check's interpreter, forked before each re-exec,
            # has exited by then)
            respawned = sum(
                1 for kid in kids if kid.fork_ns > first and kid.execs and (kid.exit_ns is None or kid.exit_ns > last)
            )
            note += (
                f"; kernel: {len(daemon.execs) - 1} exec(s) of the same pid, {across} children alive across them,"
                f" {respawned} spawned anew"
            )
            left = bench.observer.alive(daemon.pid)
            if left:
                bench.strays += len(left)
                bench.notes.append(f"bench/reexec.py left {len(left)} process(es) behind")
    note += "; supervisord's and circus's `reload` restart every child instead"
    return {
        "id": "reexec",
        "scenario": scenario,
        "value": {"median": _median(found["request"]), "n": repeat},
        "compared": "the whole `reexec` request, as the client sees it",
        "note": note,
    }


def dynamic_section(plan: Plan) -> dict[str, str]:
    """Scenario 8: ``bench/dynamic.py`` in a process of its own; its Markdown report."""
    argv = [sys.executable, str(BENCH / "dynamic.py"), *(["--quick"] if plan.quick else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    text = done.stdout.strip() if done.returncode == 0 else f"bench/dynamic.py failed:\n\n    {done.stderr[-500:]}"
    return {"title": "Many identical children (`bench/dynamic.py`)", "text": text}


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _measure_reexec(bench: Bench, scenario: str) -> dict[str, Any]:
    """``reexec`` through the control socket (the request ``supervision reexec`` sends,
    from this process so that no client start-up is timed): request → the new image's
    reply, the kernel's exec of the new image, and a check that the 100 children were
    kept: the same pids, none exited."""
    from supervision._service.client import Client

    contender = contenders.SUPERVISION
    with bench.tempdir("reexec") as tmp:
        daemon, _up = bench.bring_up(contender, 100, tmp)
        time.sleep(0.5)
        before = set(proc_children(daemon.pid))
        error = None
        result: dict[str, Any] = {}
        began = time.monotonic_ns()
        try:
            with Client(str(tmp / "sv.sock"), timeout=60) as client:
                result = client.call("reexec") or {}
        except Exception as exc:  # refused, or the connection lost: reported in the row
            error = f"{type(exc).__name__}: {exc}"
        replied = time.monotonic_ns()
        time.sleep(0.2)
        after = set(proc_children(daemon.pid))
        exec_ns = exited = None
        if bench.observer is not None:
            bench.settle()
            me = [p for p in bench.observer.children(os.getpid()) if p.pid == daemon.pid]
            later = [stamp for stamp in (me[-1].execs if me else []) if stamp > began]
            exec_ns = later[0] if later else None
            exited = sum(
                1 for kid in bench.observer.children(daemon.pid) if kid.pid in before and kid.exit_ns is not None
            )
        bench.take_down(daemon)
    if error is not None:
        return {"id": "reexec", "scenario": scenario, "value": report.na("failed"), "note": error[:200]}
    kept = len(before & after)
    note = f"{kept} of {len(before)} children kept (same pids)"
    if exited is not None:
        note += f", {exited} exited (kernel)"
    if exec_ns is not None:
        note += f"; request → exec of the new image: {report.fmt_time((exec_ns - began) / 1e9)} (kernel)"
    if "handover_ms" in result:
        note += f"; exec → serving, as the new image counts it: {result['handover_ms']:g} ms"
    note += "; supervisord's and circus's `reload` restart every child instead"
    return {
        "id": "reexec",
        "scenario": scenario,
        "value": {"median": (replied - began) / 1e9, "n": 1},
        "compared": "request → reply from the new image",
        "note": note,
    }


def respawn_all(bench: Bench, plan: Plan) -> dict[str, dict[str, dict[str, report.Cell]]]:
    """Every crash loop under every contender, in rounds (round-robin, so that the
    machine's changing load falls on all alike); samples of all rounds pooled."""
    pooled: dict[str, dict[str, dict[str, list[float]]]] = {c: {} for c in CRASHERS}
    for round_ in range(plan.rounds):
        for crasher in CRASHERS:
            for contender in contenders.ALL:
                if contender.cycle:
                    # a second or more per cycle: a few cycles, all in the first round
                    if round_:
                        continue
                    wanted = plan.glacial_cycles if contender.cycle > 1 else plan.slow_cycles
                else:
                    total = plan.python_cycles if crasher == "python" else plan.cycles
                    wanted = max(1, -(-total // plan.rounds))
                log(f"respawn {crasher} under {contender.key} (round {round_ + 1} of {plan.rounds})")
                found = bench.respawn(contender, crasher, wanted)
                into = pooled[crasher].setdefault(contender.key, {})
                for metric, samples in found.items():
                    into.setdefault(metric, []).extend(samples)
    cells: dict[str, dict[str, dict[str, report.Cell]]] = {}
    for crasher, by_contender in pooled.items():
        cells[crasher] = {}
        for key, metrics in by_contender.items():
            cells[crasher][key] = {
                metric: (
                    report.cell(metrics[metric], p95=metric != "cpu_per_restart")
                    if metrics.get(metric)
                    else report.na("needs the proc connector" if bench.observer is None else "no samples")
                )
                for metric in RESPAWN_METRICS
            }
    return cells


def breakdown(bench: Bench, plan: Plan) -> list[dict[str, Any]]:
    """Crash → respawn of ``/bin/false`` under supervision with one cost turned off at a
    time, next to the floors: where the gap to the floor goes."""
    runs = [contenders.FLOORS[1], contenders.FLOORS[2], contenders.SUPERVISION, *contenders.BREAKDOWN]
    pooled: dict[str, dict[str, list[float]]] = {c.key: {} for c in runs}
    for round_ in range(plan.rounds):
        for contender in runs:
            log(f"breakdown: respawn false under {contender.key} (round {round_ + 1} of {plan.rounds})")
            for metric, samples in bench.respawn(contender, "false", -(-plan.cycles // plan.rounds)).items():
                pooled[contender.key].setdefault(metric, []).extend(samples)
    return [
        {
            "key": c.key,
            "label": c.label,
            "settings": c.settings,
            **{metric: report.cell(pooled[c.key].get(metric, [])) for metric in ("exit_fork", "exit_exec")},
        }
        for c in runs
    ]


# -- assembling the report ----------------------------------------------------------

RESPAWN_METRICS = {
    "exit_fork": "exit → fork of the next",
    "exit_exec": "exit → exec of the next (reaction)",
    "start_start": "start → start (exec to exec)",
    "cpu_per_restart": "supervisor CPU per restart (user+sys, all threads)",
}


def process_rows(
    respawn: dict[str, dict[str, dict[str, report.Cell]]],
    holds: dict[int, dict[str, list[dict[str, Any]]]],
    idle: dict[str, dict[str, Any]],
    idle_seconds: float,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for crasher, (label, _argv) in CRASHERS.items():
        for metric, metric_label in RESPAWN_METRICS.items():
            values = {key: found[metric] for key, found in respawn.get(crasher, {}).items() if metric in found}
            rows.append(
                {
                    "id": f"respawn/{crasher}/{metric}",
                    "scenario": f"crash→respawn {label}",
                    "metric": metric_label,
                    "unit": "s",
                    "values": values,
                }
            )
    for count, found in holds.items():
        for metric, metric_label in (
            ("bringup", "first fork → all exec'd"),
            ("launch_to_all", "daemon launch → all exec'd"),
        ):
            values = {
                key: report.cell([r[metric] for r in runs if metric in r], p95=False) for key, runs in found.items()
            }
            rows += _with_separate(
                {
                    "id": f"bringup/{count}/{metric}",
                    "scenario": f"bring-up of {count} `sleep`",
                    "metric": metric_label,
                    "unit": "s",
                    "values": values,
                },
                count,
            )
    for metric, metric_label, unit in (
        ("idle_cpu", f"CPU over {idle_seconds:g} s (% of one core)", "cpu"),
        ("idle_wakeups", "times scheduled in", "/s"),
        ("rss", "RSS of the supervisor", "bytes"),
    ):
        values = {key: ({"median": r[metric], "n": 1} if metric in r else report.na("—")) for key, r in idle.items()}
        rows.append(
            {
                "id": f"idle/{metric}",
                "scenario": "idle, 100 children",
                "metric": metric_label,
                "unit": unit,
                "values": values,
            }
        )
    stops = holds.get(500, {})
    for metric, metric_label in (
        ("stop_children", "SIGTERM → last child exited"),
        ("stop_daemon", "SIGTERM → supervisor exited"),
    ):
        values = {key: report.cell([r[metric] for r in runs if metric in r], p95=False) for key, runs in stops.items()}
        rows += _with_separate(
            {
                "id": f"stop/500/{metric}",
                "scenario": "orderly stop of 500",
                "metric": metric_label,
                "unit": "s",
                "values": values,
            },
            500,
        )
    return rows


SEPARATE = contenders.SUPERVISION_SEPARATE.key


def _with_separate(row: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The row (supervision: one instance group of ``count``), and, when it was
    measured, the same row with supervision running ``count`` separate children
    (the other columns repeat the same runs)."""
    values = row["values"]
    separate = values.pop(SEPARATE, None)
    if separate is None:
        return [row]
    extra = dict(
        row,
        id=row["id"].replace(f"/{count}/", f"/{count}sep/"),
        scenario=f"{row['scenario']}: supervision as {count} separate children",
        values=dict(values, supervision=separate),
        separate=True,
    )
    return [row, extra]


# -- goals ---------------------------------------------------------------------------

# The peer scenarios: one verdict each per peer and setting (peer ÷ supervision ≥ 1:
# lower is better in every one of them, time, CPU alike).
PEER_SCENARIOS = {
    **{f"respawn/{c}/exit_exec": f"crash→respawn {label}: reaction" for c, (label, _) in CRASHERS.items()},
    "bringup/100/bringup": "bring-up of 100 (first fork → all exec'd)",
    "bringup/500/bringup": "bring-up of 500 (first fork → all exec'd)",
    "idle/idle_cpu": "idle, 100 children: CPU",
    "stop/500/stop_daemon": "orderly stop of 500 (SIGTERM → supervisor exited)",
}
# Shown in the verdicts' table, not counted in the goal: supervision as 500 separate
# children (one at a time, OTP order) against the peers' one program of 500.
PEER_EXTRA_SCENARIOS = {
    "bringup/500sep/bringup": "bring-up of 500, supervision as 500 separate children (not counted)",
    "stop/500sep/stop_daemon": "orderly stop of 500, supervision as 500 separate children (not counted)",
}
CPU_SCENARIOS = {f"respawn/{c}/cpu_per_restart": f"CPU per restart, {label}" for c, (label, _) in CRASHERS.items()}


def peer_verdicts(rows: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per scenario × peer × setting, with the numbers that explain a miss."""
    found = []
    for row_id, label in {**PEER_SCENARIOS, **PEER_EXTRA_SCENARIOS, **CPU_SCENARIOS}.items():
        if row_id not in rows:
            continue
        values = rows[row_id]["values"]
        for peer in contenders.PEERS:
            value = report.peer_ratio(values.get(peer.key), values.get("supervision"))
            verdict: dict[str, Any] = {
                "row": row_id,
                "scenario": label,
                "peer": peer.key,
                "ratio": value,
                "met": None if value is None else value >= 1.0,
            }
            if verdict["met"] is False:
                verdict["why"] = explain_peer(row_id, peer, rows)
            found.append(verdict)
    return found


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {row["id"]: row for row in results["process_rows"]}
    found: list[dict[str, Any]] = []

    def value(row_id: str, key: str) -> report.Cell | None:
        found: report.Cell | None = rows.get(row_id, {}).get("values", {}).get(key)
        return found

    def at_most(name: str, short: str, row_id: str, limit: float, ratio: float | None, target: str) -> None:
        found.append(
            {
                "name": name,
                "short": short,
                "row": row_id,
                "target": f"{target} ≤ {limit:g}",
                "kind": "at_most",
                "limit": limit,
                "ratio": ratio,
            }
        )

    for crasher in CRASHERS:
        row_id = f"respawn/{crasher}/exit_exec"
        sv = value(row_id, "supervision")
        at_most(
            f"respawn reaction, {crasher}: within 1.5× the asyncio+pidfd floor",
            "≤1.5× floor",
            row_id,
            1.5,
            report.ratio(sv, value(row_id, "pidfd")),
            "sv ÷ floor",
        )
        at_most(
            f"respawn reaction, {crasher}: within 1.15× the same-work floor",
            "≤1.15× same work",
            row_id,
            1.15,
            report.ratio(sv, value(row_id, "same_work")),
            "sv ÷ same work",
        )
    inproc = {row["id"]: row for row in results.get("inproc_rows", [])}
    if "inproc/restart" in inproc:
        row = inproc["inproc/restart"]
        at_most(
            "in-process restart within 1.7× the bare-task floor (bench/inproc.py)",
            "≤1.7× floor",
            row["id"],
            1.7,
            report.ratio(row["supervision"], row["floor"]),
            "sv ÷ floor",
        )
    if "inproc/start" in inproc:
        row = inproc["inproc/start"]
        n = f"{row['n']:,}" + ("" if row["n"] >= 100_000 else " (the goal is set at 100,000)")
        at_most(
            f"start {n} workers within 1.8× bare tasks",
            "≤1.8× floor",
            row["id"],
            1.8,
            report.ratio(row["supervision"], row["floor"]),
            "sv ÷ floor",
        )
        if row.get("floor_bytes") and row.get("sv_bytes"):
            at_most(
                f"memory per worker ({n} workers) within 1.5× a bare task's",
                "memory ≤1.5×",
                row["id"],
                1.5,
                row["sv_bytes"] / row["floor_bytes"],
                "sv ÷ floor (bytes per worker)",
            )
    for row_id, what in (
        ("bringup/500/bringup", "one instance group of 500"),
        ("bringup/500sep/bringup", "500 separate children"),
    ):
        if row_id in rows:
            at_most(
                f"bring-up of 500 ({what}) within 1.2× the floor",
                "≤1.2× floor",
                row_id,
                1.2,
                report.ratio(value(row_id, "supervision"), value(row_id, "pidfd")),
                "sv ÷ floor",
            )
    evaluated = [report.evaluate(goal) for goal in found]
    for goal in evaluated:
        if goal["met"] is False:
            goal["why"] = explain(goal, rows, results)
    verdicts = results.setdefault("peer_verdicts", peer_verdicts(rows))
    for name, short, scenarios in (
        (
            "faster than circus and supervisord in every scenario, at their fastest and default settings",
            "peers",
            PEER_SCENARIOS,
        ),
        ("supervisor CPU per restart no more than each peer's, at both settings", "CPU per restart", CPU_SCENARIOS),
    ):
        mine = [v for v in verdicts if v["row"] in scenarios and v["met"] is not None]
        missed = [v for v in mine if not v["met"]]
        goal = {
            "name": name,
            "short": short,
            "row": "",
            "target": "peer ÷ sv ≥ 1, each scenario × peer × setting (table above)",
            "kind": "count",
            "measured": f"{len(mine) - len(missed)} of {len(mine)} met" if mine else "—",
            "met": (not missed) if mine else None,
        }
        if missed:
            goal["why"] = "; ".join(
                f"{v['scenario']} vs {PEER_LABELS[v['peer']]} ({report.fmt_ratio(v['ratio'])}): {v['why']}"
                for v in missed
            )
        evaluated.append(goal)
    return evaluated


PEER_LABELS = {peer.key: peer.label for peer in contenders.PEERS}


def explain_peer(row_id: str, peer: Contender, rows: dict[str, Any]) -> str:
    """Why supervision lost a peer scenario, from this run's numbers."""
    t = report.fmt_time

    def m(rid: str, key: str) -> float | None:
        return report.median(rows.get(rid, {}).get("values", {}).get(key))

    sv, other = m(row_id, "supervision"), m(row_id, peer.key)
    if sv is None or other is None:
        return "not measured"
    if row_id.startswith("respawn/") and row_id.endswith("/exit_exec"):
        base = row_id.rsplit("/", 1)[0]
        why = f"supervision {t(sv)}, {peer.label} {t(other)}"
        sv_fork, peer_fork = m(f"{base}/exit_fork", "supervision"), m(f"{base}/exit_fork", peer.key)
        if sv_fork is not None and peer_fork is not None:
            why += (
                f"; exit → fork {t(sv_fork)} against {t(peer_fork)}, fork → exec (the spawn) "
                f"{t(sv - sv_fork)} against {t(other - peer_fork)}"
            )
        floor = m(row_id, "pidfd")
        if floor is not None:
            why += f"; the asyncio+pidfd floor {t(floor)}"
        return why
    if row_id.startswith("respawn/") and row_id.endswith("/cpu_per_restart"):
        why = f"supervision {t(sv)} of CPU per restart, {peer.label} {t(other)}"
        same, floor = m(row_id, "same_work"), m(row_id, "pidfd")
        if floor is not None and same is not None:
            why += (
                f"; the floors {t(floor)} (asyncio+pidfd) and {t(same)} (same work):"
                f" the tree's own share ≈ {t(sv - same)}"
            )
        return why
    if row_id.startswith("bringup/"):
        count = int(row_id.split("/")[1].rstrip("sep"))
        why = (
            f"supervision {t(sv)} ({t(sv / count)} a child), {peer.label} {t(other)} ({t(other / count)} a child); "
            "supervision starts the instances one at a time, each awaited until it runs"
        )
        floor = m(row_id, "pidfd")
        if floor is not None:
            why += f"; the floor (also one at a time) {t(floor)}"
        return why
    if row_id == "idle/idle_cpu":
        wake_sv, wake_peer = m("idle/idle_wakeups", "supervision"), m("idle/idle_wakeups", peer.key)
        why = f"supervision {sv * 100:.3g} % of a core, {peer.label} {other * 100:.3g} %"
        if wake_sv is not None and wake_peer is not None:
            why += f"; woken {wake_sv:.3g}/s against {wake_peer:.3g}/s"
        return why
    if row_id.startswith("stop/"):
        kids = row_id.replace("stop_daemon", "stop_children")
        kids_sv, kids_peer = m(kids, "supervision"), m(kids, peer.key)
        why = f"supervision {t(sv)}, {peer.label} {t(other)}"
        if kids_sv is not None and kids_peer is not None:
            why += (
                f"; the last child was gone after {t(kids_sv)} against {t(kids_peer)}, the supervisor exited"
                f" {t(sv - kids_sv)} later against {t(other - kids_peer)}"
            )
            floor, kids_floor = m(row_id, "pidfd"), m(kids, "pidfd")
            if floor is not None and kids_floor is not None:
                why += f" (the asyncio+pidfd floor: {t(floor - kids_floor)} later)"
        return why
    return f"supervision {t(sv)}, {peer.label} {t(other)}"


def explain(goal: dict[str, Any], rows: dict[str, Any], results: dict[str, Any]) -> str:
    """By how much a goal was missed, and the numbers of this run that say why."""
    t = report.fmt_time
    limit, got = goal["limit"], goal["ratio"]
    by = f"missed by {got / limit:.2f}× ({report.fmt_ratio(got)} against {limit:g}×)"
    row = rows.get(goal["row"], {})
    values = row.get("values", {})
    m = {key: value for key, cell in values.items() if (value := report.median(cell)) is not None}
    short = goal["short"]
    breakdown = {r["key"]: report.median(r["exit_exec"]) for r in results.get("breakdown_rows", [])}
    if goal["row"].startswith("respawn/") and "supervision" in m and "pidfd" in m:
        sv, floor, same = m["supervision"], m["pidfd"], m.get("same_work")
        if short.startswith("≤1.15") and same is not None:
            why = (
                f"supervision {t(sv)} against the same-work floor's {t(same)} (which spawns the same way, with the"
                f" exec helper's code in a vfork child, without a tree): the tree's own work per restart (reap,"
                f" core, events, two log lines, new output pipes) is about {t(sv - same)}"
            )
        else:
            why = f"supervision {t(sv)} against the floor's {t(floor)}"
        if short.startswith("≤1.15"):
            pass
        elif same is not None and same >= sv:
            why += (
                f"; the same-work floor took {t(same)}, no less than supervision: its share and the tree's cannot be"
                " told apart in this run (a shared machine's noise)"
            )
        elif same is not None:
            why += (
                f"; the same-work floor (spawning as supervision does, no tree) takes {t(same)}:"
                f" the spawn's own steps (PR_SET_PDEATHSIG, setsid, /dev/null, the parent check) are about"
                f" {t(max(0.0, same - floor))}, the tree's own work per restart"
                f" (reap, core, events, two log lines, new output pipes) about {t(sv - same)}"
            )
        base = breakdown.get("supervision")
        if goal["row"] == "respawn/false/exit_exec" and base is not None:
            others = [
                f"{label} {t(value)}"
                for key, label in (
                    ("sv_quiet", "no log lines"),
                    ("sv_inherit", "output=inherit"),
                    ("sv_bare", "both"),
                    ("sv_nopdeathsig", "both and pdeathsig=False"),
                )
                if (value := breakdown.get(key)) is not None
            ]
            if others:
                why += f"; the breakdown run (exit → exec): defaults {t(base)}, " + ", ".join(others)
        return f"{by}: {why}"
    if goal["row"].startswith("bringup/") and "supervision" in m and "pidfd" in m:
        sv, floor, same = m["supervision"], m["pidfd"], m.get("same_work")
        count = 500
        why = f"supervision {t(sv)} against the floor's {t(floor)} ({t((sv - floor) / count)} more a child)"
        if same is not None:
            why += f" and the same-work floor's {t(same)} (the spawn's own steps: {t((same - floor) / count)} a child)"
        return (
            f"{by}: {why}; children start one at a time, each waited for until its program runs (OTP start order;"
            " the floor too), and each gets two output pipes, a pidfd, events and a log line"
        )
    if goal["row"].startswith("inproc/"):
        inproc = next((r for r in results.get("inproc_rows", []) if r["id"] == goal["row"]), None)
        if inproc is not None:
            n = inproc["n"]
            floor, sv = report.median(inproc["floor"]), report.median(inproc["supervision"])
            if short.startswith("memory"):
                return (
                    f"{by}: {inproc['sv_bytes']:,.0f} B against {inproc['floor_bytes']:,.0f} B per worker: the core's"
                    " record of the child, the incarnation and the Context beside the task"
                )
            if floor is not None and sv is not None:
                what = "restart" if goal["row"] == "inproc/restart" else "start"
                return f"{by}: {t(sv / n)} per {what} against {t(floor / n)} for a bare task"
    return by


# -- main ---------------------------------------------------------------------------


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run(plan: Plan, only: set[str] | None = None, observe: bool = True) -> dict[str, Any]:
    began = time.monotonic()
    load_before = loadavg()
    RESULTS.mkdir(exist_ok=True)
    log("peers: bench/.peers-venv (supervisor, circus)")
    versions = contenders.ensure_peers(RESULTS / "peers-install.log")
    ok, how = cnproc.available() if observe else (False, "turned off by --no-observer")
    observer = cnproc.Observer() if ok else None
    if not ok:
        how = f"NOT the proc connector ({how}): children's own timestamps and /proc polling instead"
    log(f"observer: {how}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    workdir = Path(tempfile.mkdtemp(prefix="sv-bench-"))
    bench = Bench(plan, observer, workdir)
    wanted = only or {"respawn", "breakdown", "bringup", "idle", "inproc", "reload", "reexec", "dynamic"}
    results: dict[str, Any] = {"process_rows": [], "inproc_rows": [], "other_rows": []}
    try:
        respawn: dict[str, dict[str, dict[str, report.Cell]]] = {}
        if "respawn" in wanted:
            respawn = respawn_all(bench, plan)
        if "breakdown" in wanted:
            results["breakdown_rows"] = breakdown(bench, plan)
        holds: dict[int, dict[str, list[dict[str, Any]]]] = {}
        idle: dict[str, dict[str, Any]] = {}
        if "idle" in wanted:
            # floors and the quiet supervisors first: circus (1 ms polling) is brought up last
            log(f"bring-up of 100, then all idle together for {plan.idle_seconds:g} s")
            idle = bench.idle(list(contenders.ALL), 100, plan.idle_seconds)
            holds[100] = {key: [dict(found)] for key, found in idle.items()}
        if "bringup" in wanted:
            for count in (100, 500):
                # at 500, supervision also as 500 separate children (OTP order: one at a time)
                runs = list(contenders.ALL)
                if count == 500:
                    runs.insert(runs.index(contenders.SUPERVISION) + 1, contenders.SUPERVISION_SEPARATE)
                holds.setdefault(count, {c.key: [] for c in runs})
                extra = plan.repeat - (1 if count == 100 and "idle" in wanted else 0)
                for round_ in range(extra):
                    log(f"bring-up and stop of {count}, round {round_ + 1} of {extra}")
                    for key, runs_of in bench.hold_runs(runs, count).items():
                        holds[count].setdefault(key, []).extend(runs_of)
        results["process_rows"] = process_rows(respawn, holds, idle, plan.idle_seconds)
        if "inproc" in wanted:
            log(f"in-process: {plan.inproc_n:,} restarts / workers (bench/inproc.py)")
            results["inproc_rows"] = inproc_rows(plan)
        if "reload" in wanted:
            log(f"reload of a {plan.reload_n:,}-worker tree")
            rows, script_report = reload_rows(plan)
            results["other_rows"] += rows
            if script_report:
                results["sections"] = [{"title": "Reload in detail (`bench/reload.py`)", "text": script_report}]
        if "reexec" in wanted:
            results["other_rows"].append(reexec_row(bench))
        if "dynamic" in wanted:
            log("many identical children (bench/dynamic.py)")
            results.setdefault("sections", []).append(dynamic_section(plan))
        if "scale" in wanted:
            import scale  # bench/scale.py

            results["scale"] = scale.scenario(bench, plan.quick)
            text = scale.markdown(results["scale"])
            results.setdefault("sections", []).append({"title": "How the cost grows with the tree", "text": text})

    finally:
        for daemon in list(bench.live):  # the run was cut short (an error, ^C, SIGTERM)
            bench.stop(daemon, timeout=10.0)
        if observer is not None:
            observer.close()
        shutil.rmtree(workdir, ignore_errors=True)
    results["goals"] = goals(results)
    results["notes"] = bench.notes + bench.forced
    for key, count in bench.resent.items():
        results["notes"].append(
            f"{key} needed SIGTERM sent again {count} time(s) in all before it stopped"
            + (
                ": circus drops a quit that arrives while `manage_watchers` holds its lock (ConflictError)"
                if key == "circus"
                else ""
            )
        )
    if observer is None:
        results["notes"].append(
            "no proc connector: respawn is timed by the Python child's own clock (its first statement, after the"
            " interpreter's start-up, stands for the exec); `/bin/false` and `sh` are not measured; bring-up is"
            " timed by polling /proc every 2 ms"
        )
    results["notes"].append(
        "the floors' RSS includes the supervision package: bench/floor.py reuses bench/process.py, which imports it"
    )
    if observer is not None and observer.lost:
        results["notes"].append(f"the observer lost {observer.lost} datagram(s) (ENOBUFS): some counts may be short")
    results["meta"] = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "quick": plan.quick,
        "machine": f"{os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}, "
        f"supervisor {versions['supervisord']}, circus {versions['circus']}",
        "observer": how,
        "duration": time.monotonic() - began,
        "load": f"{load_before} before, {loadavg()} after (1, 5, 15 min)",
        "strays": bench.strays,
        "priority": priority(),
        "peers": versions,
        "settings": {c.key: c.settings for c in (*contenders.ALL, contenders.SUPERVISION_SEPARATE)},
        "samples": samples_text(plan),
        "plan": plan.__dict__,
    }
    return results


def samples_text(plan: Plan) -> list[str]:
    return [
        f"crash→respawn: {plan.cycles} cycles for `/bin/false` and `sh`, {plan.python_cycles} for the Python child, "
        f"in {plan.rounds} round(s), after {plan.warmup} warm-up cycles; the slow peers in the first round only, after"
        f" 1 warm-up cycle: {plan.slow_cycles} under each supervisord (about 1 s a cycle), {plan.glacial_cycles} under"
        f" circus at its default check_delay (about {contenders.CIRCUS_DEFAULT_CHECK_DELAY:g} s a cycle); at most"
        f" {plan.respawn_cap:g} s per run for the fast ones",
        "CPU per restart: the supervisor's CPU time (user + system, all its threads, those that exited too: its"
        " process CPU clock, in ns) over the cycles after the warm-up, divided by the exits the observer counted"
        " in that window; one sample per run, median over runs",
        f"bring-up / stop: {plan.repeat} run(s) per contender and size, median; the first bring-up of 100 is the one "
        "measured before the idle window",
        f"idle: one {plan.idle_seconds:g} s window, all contenders idle side by side"
        + (" (shortened by --quick; the full run uses 30 s)" if plan.quick else ""),
        f"in-process: n = {plan.inproc_n:,}, best of {plan.inproc_repeat} fresh interpreters (bench/inproc.py)",
    ]


def set_priority(choice: str) -> None:
    """Raise this process's scheduling priority; every daemon and child inherits it."""
    try:
        if choice == "fifo":
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        elif choice == "nice":
            os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError as exc:
        log(f"could not set priority {choice!r} ({exc}): running as started")


def priority() -> str:
    policy = os.sched_getscheduler(0)
    if policy == os.SCHED_FIFO:
        return f"SCHED_FIFO {os.sched_getparam(0).sched_priority}, inherited by every contender and child"
    return f"normal scheduling, nice {os.nice(0)}, inherited by every contender and child"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~2-minute pass with fewer samples")
    parser.add_argument(
        "--only",
        help="comma-separated, of: respawn, breakdown (where supervision's respawn time goes), bringup, idle,"
        " inproc, reload, reexec, dynamic, scale (bench/scale.py: not in the default set)",
    )
    parser.add_argument(
        "--plot",
        action="store_true",
        help="draw the scale results (this run's, else bench/results/scale.json) as PNGs in docs/performance/"
        " (needs matplotlib: pip install -e '.[bench]')",
    )
    parser.add_argument(
        "--priority",
        choices=("fifo", "nice", "normal"),
        default="normal",
        help="scheduling of the whole run, inherited by every contender and child alike: SCHED_FIFO 1 (needs"
        " root; the published table uses it, so other load on a shared machine does not decide the latencies),"
        " nice -10, or as started (default: a busy-polling peer at real-time priority can starve a desktop)",
    )
    parser.add_argument("--no-observer", action="store_true", help="time without the proc connector, as when not root")
    parser.add_argument("--child-reload", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_reload:
        print(json.dumps(asyncio.run(_reload_child(args.child_reload))))
        return
    plan = Plan.make(args.quick)
    set_priority(args.priority)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up (stop every daemon) on SIGTERM
    results = run(plan, set(args.only.split(",")) if args.only else None, observe=not args.no_observer)
    if args.plot:
        import scale

        found = results.get("scale") or scale.last()
        if found is None:
            log("--plot: no scale results (run with --only scale)")
        else:
            log(f"plots: {', '.join(str(path) for path in scale.plot(found))}")
    text = report.markdown(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    print(text)


if __name__ == "__main__":
    main()
