"""How the cost grows with the tree: OS-process children and in-process workers, size by size.

    python bench/run.py --only scale --plot     # as docs/performance.md was made
    python bench/run.py --only scale --quick    # up to 1 000 children / 100 000 workers, one round
    python bench/scale.py --workers 10,1000 --restarts 50   # the in-process part alone

**OS processes** (10, 100, 1 000, 10 000 ``sleep`` children): each size is a real daemon,
``supervision run tree.py``, launched and timed from outside as the rest of ``bench/run.py``
does it (``Bench``: the kernel's proc connector, the marker in the environment, the stray
check after the stop). Per size and round:

- bring-up: first fork → all exec'd, and launch → all exec'd (the kernel's timestamps);
- RSS of the supervisor once up, per child; its threads and open fds;
- idle: CPU and times scheduled in per second (``/proc/PID/task/*/schedstat``, all threads)
  over a window;
- ``status``: the protocol request measured in this process (a connected ``Client`` sends
  ``{"cmd": "status"}`` and reads the reply: the server's work, the JSON and the socket),
  and the command line ``supervision status --control SOCK`` end to end (its interpreter's
  start-up, the request, the table printed to /dev/null); median of several each;
- reload with one change: ``tree.py`` is rewritten so that exactly one child runs another
  command, then ``{"cmd": "reload"}`` through the protocol (timed to the reply), then the
  change is reverted and ``supervision reload`` (the command line) is timed; after each,
  the children's pids before and after prove that exactly that one child was restarted;
- orderly stop: SIGTERM → last child exited, → supervisor exited.

The daemons are launched as systemd launches a service: soft ``RLIMIT_NOFILE`` 1 024, the
hard limit raised to 524 288 where this process may (``CAP_SYS_RESOURCE``), else as it is;
``supervision run`` raises its own soft limit to the hard one and gives its children 1 024
back. Ten thousand children need about 30 000 descriptors in the supervisor (a pidfd and two
output pipes each): a size that the hard limit cannot hold so runs with ``output="inherit"``
(one pidfd per child), marked † in the table. ``--quick`` stops at 1 000 children and
100 000 workers (about a minute); the full run takes about 10 minutes on 2 loaded cores,
most of it the 10 000-children daemon (one round at that size; three below).

**In-process workers** (10, 1 000, 100 000, 1 000 000): each size in a fresh interpreter,
against bare asyncio tasks in another: the start of N idle workers (``sv.start`` of a given
spec, to every worker's first await), the RSS it grew by per worker, and the restart latency
of one worker in the tree of N: it is made to raise (a future it awaits gets an exception)
and the next incarnation's first statement is timed; median of many single restarts, not a
throughput.

Growth is read as log-log slopes between successive sizes (1 = linear, 0 = flat) and flagged
where a series grows faster than it should: totals faster than linear, per-child costs and
restart latency faster than flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

RESULTS = BENCH / "results"
DOCS_IMAGES = BENCH.parent / "docs" / "performance"
SYSTEMD_SOFT_NOFILE = 1024  # what systemd gives a service (LimitNOFILE=1024:524288 since v240)
SYSTEMD_HARD_NOFILE = 1 << 19


@dataclass(frozen=True)
class ScalePlan:
    process_sizes: tuple[int, ...]
    worker_sizes: tuple[int, ...]
    rounds: int  # daemons per process size (one from 10 000 children on: minutes each)
    status_samples: int  # per daemon, each way (protocol, command line)
    idle_seconds: float
    restarts: int  # single restarts timed per worker size (after a few dropped)

    @classmethod
    def make(cls, quick: bool) -> ScalePlan:
        if quick:
            return cls((10, 100, 1_000), (10, 1_000, 100_000), 1, 3, 3.0, 105)
        return cls((10, 100, 1_000, 10_000), (10, 1_000, 100_000, 1_000_000), 3, 5, 5.0, 305)


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- growth --------------------------------------------------------------------------


def slopes(sizes: list[int], values: list[float | None]) -> list[float | None]:
    """The log-log slope between each size and the next (1: linear, 0: flat)."""
    found: list[float | None] = []
    points = list(zip(sizes, values, strict=True))
    for (n1, v1), (n2, v2) in itertools.pairwise(points):
        if v1 is None or v2 is None or v1 <= 0 or v2 <= 0:
            found.append(None)
        else:
            found.append(math.log(v2 / v1) / math.log(n2 / n1))
    return found


# a series may grow this much faster than it should (noise, a constant overhead fading) before it is flagged
SLACK = 0.2


def verdict(sizes: list[int], values: list[float | None], expected: float) -> tuple[str, bool]:
    """The slopes in words, and whether the growth is within ``expected`` (1 linear, 0 flat)."""
    if values and all(v == 0 for v in values):
        return "zero at every size", True
    found = slopes(sizes, values)
    known = [s for s in found if s is not None]
    if not known:
        return "not measured", True
    ok = all(s <= expected + SLACK for s in known)
    text = ", ".join("–" if s is None else f"{s:.2f}" for s in found)
    worst = max(known)
    if ok:
        what = "flat" if expected == 0 else "linear or better"
    else:
        steps = [f"{a:,}→{b:,}" for a, b, s in zip(sizes, sizes[1:], found, strict=False) if s and s > expected + SLACK]
        what = f"**grows faster than {'flat' if expected == 0 else 'linear'}** ({', '.join(steps)}: {worst:.2f})"
    return f"{what}; slopes {text}", ok


# -- OS processes ---------------------------------------------------------------------

SCALE_TREE = """\
import supervision as sv

ARGV = {argv!r}
CHANGED = {changed!r}  # the one child that runs another command (the reload scenario), or None


def build() -> sv.Supervisor:
    return sv.Supervisor(
        [
            sv.process(f"s{{i}}", [*ARGV, "{other}"] if i == CHANGED else [*ARGV, "100000"]{options})
            for i in range({count})
        ],
    )
"""
FDS_PER_CHILD = {"prefix": 3, "inherit": 1}  # a pidfd, and two output pipes with output="prefix"
FDS_SPARE = 200  # the supervisor's own: the interpreter, the control socket, the log, the store


def output_for(count: int, hard: int) -> str:
    """The defaults (``output="prefix"``) where the hard NOFILE limit allows them, else
    ``"inherit"`` (no pipes): said in the table."""
    if hard == resource.RLIM_INFINITY or FDS_PER_CHILD["prefix"] * count + FDS_SPARE <= hard:
        return "prefix"
    return "inherit"


def write_tree(tmp: Path, count: int, changed: int | None, output: str = "prefix") -> None:
    options = "" if output == "prefix" else f", output={output!r}"
    source = SCALE_TREE.format(argv=["/bin/sleep"], changed=changed, count=count, other="100001", options=options)
    (tmp / "tree.py").write_text(source)


def _contender(output: str) -> Any:
    import contenders

    @dataclass(frozen=True)
    class Scaled(contenders.Supervision):
        def hold_command(self, count: int, argv: list[str], tmp: Path) -> list[str]:
            write_tree(tmp, count, None, self.output)
            return [sys.executable, "-m", "supervision", "run", str(tmp / "tree.py"), "--control", str(tmp / "sv.sock")]

    return Scaled(
        "supervision", "supervision", f"`supervision run tree.py`, N `sleep` children, output={output}", output=output
    )


def _client(sock: Path, deadline: float) -> Any:
    from supervision._service.client import Client

    while True:
        try:
            client = Client(str(sock))
            client.call("ping")
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _pids(client: Any) -> dict[str, int | None]:
    found = client.call("status", resources=False)
    return {child["path"]: child["pid"] for child in found["children"]}


def _one_restarted(before: dict[str, int | None], after: dict[str, int | None], which: str) -> str | None:
    """None if exactly ``which`` got a new pid and no other did; else what went wrong."""
    changed = sorted(path for path in before if before[path] != after.get(path))
    if set(after) != set(before):
        return f"the children changed: {len(before)} before, {len(after)} after"
    if changed != [which]:
        return f"restarted {changed[:5]}{'...' if len(changed) > 5 else ''} ({len(changed)}), expected only {which}"
    if after[which] is None:
        return f"{which} is not running after the reload"
    return None


def _timed_cli(command: list[str]) -> tuple[float, int]:
    began = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    return time.perf_counter() - began, done.returncode


def one_daemon(bench: Any, contender: Any, count: int, plan: ScalePlan) -> dict[str, Any]:
    import run

    found: dict[str, Any] = {"n": count}
    output = contender.output
    with bench.tempdir(f"scale{count}") as tmp:
        daemon, up = bench.bring_up(contender, count, tmp)
        found.update({k: up[k] for k in ("bringup", "launch_to_all") if k in up})
        sock = tmp / "sv.sock"
        try:
            client = _client(sock, time.monotonic() + 60.0)
        except Exception as exc:
            take_down(bench, daemon)
            raise run.Failed(f"no control socket: {exc!r}", bench.keep_log(daemon)) from exc
        with contextlib.closing(client):
            time.sleep(1.0)  # the last children's output pipes, events and log lines
            pid = daemon.pid
            found["rss"] = run.rss_of(pid)
            found["threads"] = len(os.listdir(f"/proc/{pid}/task"))
            found["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
            cpu0, slices0 = run.cpu_of(pid)
            time.sleep(plan.idle_seconds)
            cpu1, slices1 = run.cpu_of(pid)
            found["idle_cpu"] = (cpu1 - cpu0) / 1e9 / plan.idle_seconds
            found["idle_wakeups"] = (slices1 - slices0) / plan.idle_seconds
            # status, through the protocol (the server's own work) and the command line
            samples = []
            for _ in range(plan.status_samples):
                began = time.perf_counter()
                status = client.call("status")
                samples.append(time.perf_counter() - began)
            if len(status["children"]) != count:
                bench.notes.append(f"scale {count}: status listed {len(status['children'])} children")
            found["status_protocol"] = statistics.median(samples)
            cli = [sys.executable, "-m", "supervision", "status", "--control", str(sock)]
            runs = [_timed_cli(cli) for _ in range(plan.status_samples)]
            found["status_cli"] = statistics.median(t for t, _ in runs)
            if any(code for _, code in runs):
                bench.notes.append(f"scale {count}: `supervision status` exited with {[c for _, c in runs]}")
            # reload with one change: through the protocol, then back through the command line
            which = f"s{count // 2}"
            before = _pids(client)
            write_tree(tmp, count, count // 2, output)
            began = time.perf_counter()
            reply = client.call("reload")
            found["reload_protocol"] = time.perf_counter() - began
            after = _pids(client)
            wrong = _one_restarted(before, after, which)
            if reply.get("restarted") != [which]:
                wrong = (wrong or "") + f" reply said restarted {reply.get('restarted')!r}"
            write_tree(tmp, count, None, output)
            elapsed, code = _timed_cli([sys.executable, "-m", "supervision", "reload", "--control", str(sock)])
            found["reload_cli"] = elapsed
            again = _pids(client)
            wrong_back = _one_restarted(after, again, which)
            if code:
                wrong_back = f"`supervision reload` exited with {code}"
            found["reload_checked"] = wrong is None and wrong_back is None
            for problem in (wrong, wrong_back):
                if problem:
                    bench.notes.append(f"scale {count}, reload: {problem}")
        found.update(take_down(bench, daemon))
    return found


def take_down(bench: Any, daemon: Any) -> dict[str, Any]:
    """``Bench.take_down`` with room for 10 000 children: SIGTERM, timed to the last
    child's exit and the daemon's own, killed (and reported) only after 10 minutes."""
    import run

    pids = set(run.proc_children(daemon.pid))
    sent = bench.stop(daemon, timeout=600.0)
    result: dict[str, Any] = {}
    observer = bench.observer
    if observer is not None:
        bench.settle()
        kids = [kid for kid in observer.children(daemon.pid) if kid.pid in pids and kid.exit_ns]
        me = [proc for proc in observer.children(os.getpid()) if proc.pid == daemon.pid]
        if kids:
            result["stop_children"] = (max(kid.exit_ns for kid in kids) - sent) / 1e9
        if me and me[-1].exit_ns:
            result["stop_daemon"] = (me[-1].exit_ns - sent) / 1e9
        observer.forget()
    else:
        result["stop_daemon"] = (time.monotonic_ns() - sent) / 1e9  # after popen.wait()
    return result


@contextlib.contextmanager
def _nofile_as_systemd() -> Any:
    """Launch the daemons as systemd starts a service: a soft NOFILE limit of 1 024 and
    the hard one raised to 524 288 where this process may (CAP_SYS_RESOURCE), else as it is.
    ``supervision run`` raises its soft limit to the hard one and gives its children 1 024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted_hard = hard
    if hard != resource.RLIM_INFINITY and hard < SYSTEMD_HARD_NOFILE:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, SYSTEMD_HARD_NOFILE))
            wanted_hard = SYSTEMD_HARD_NOFILE
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(SYSTEMD_SOFT_NOFILE, soft), wanted_hard))
    try:
        yield resource.getrlimit(resource.RLIMIT_NOFILE)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def processes(bench: Any, plan: ScalePlan) -> dict[str, Any]:
    """Every size, ``plan.rounds`` daemons each (sizes interleaved round by round)."""
    import run

    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in plan.process_sizes}
    failures: dict[int, str] = {}
    with _nofile_as_systemd() as (soft, hard):
        outputs = {count: output_for(count, hard) for count in plan.process_sizes}
        for round_ in range(plan.rounds):
            for count in plan.process_sizes:
                if count in failures or (count >= 10_000 and round_ > 0):
                    continue
                log(f"processes: {count:,} sleep children (output={outputs[count]}), round {round_ + 1}/{plan.rounds}")
                try:
                    runs[count].append(one_daemon(bench, _contender(outputs[count]), count, plan))
                except run.Failed as exc:
                    failures[count] = exc.what
                    bench.notes.append(f"scale, {count:,} children: {exc}")
    rows = []
    for count in plan.process_sizes:
        row: dict[str, Any] = {"n": count, "runs": len(runs[count]), "output": outputs[count]}
        if count in failures:
            row["failed"] = failures[count]
        for key in (
            "bringup",
            "launch_to_all",
            "rss",
            "threads",
            "fds",
            "idle_cpu",
            "idle_wakeups",
            "status_protocol",
            "status_cli",
            "reload_protocol",
            "reload_cli",
            "stop_children",
            "stop_daemon",
        ):
            values = [r[key] for r in runs[count] if r.get(key) is not None]
            row[key] = statistics.median(values) if values else None
        row["reload_checked"] = bool(runs[count]) and all(r.get("reload_checked") for r in runs[count])
        rows.append(row)
    return {"rows": rows, "nofile": [soft, hard], "rounds": plan.rounds, "status_samples": plan.status_samples}


# -- in-process workers ----------------------------------------------------------------


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Boom(Exception):
    pass


async def _workers_floor(n: int, restarts: int) -> dict[str, Any]:
    """Bare tasks: n idle ones; one of them re-created from its done-callback when it fails."""
    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {}

    async def idle() -> None:
        await loop.create_future()

    async def crashing() -> None:
        started = state.get("started")
        if started is not None and not started.done():
            started.set_result(time.perf_counter_ns())
        state["fut"] = fut = loop.create_future()
        await fut

    def again(task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()
            state["task"] = loop.create_task(crashing())
            state["task"].add_done_callback(again)

    before = rss()
    began = time.perf_counter()
    tasks = [loop.create_task(crashing() if i == n // 2 else idle()) for i in range(n)]
    tasks[n // 2].add_done_callback(again)
    await asyncio.sleep(0)
    elapsed = time.perf_counter() - began
    grown = rss() - before
    samples = await _restarts(state, restarts)
    return {"start": elapsed, "bytes": grown, "restart": samples}


async def _restarts(state: dict[str, Any], count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(count):
        started = state["started"] = loop.create_future()
        began = time.perf_counter_ns()
        state["fut"].set_exception(Boom())
        samples.append((await started - began) / 1e9)
    return samples


async def _workers_supervised(n: int, restarts: int) -> dict[str, Any]:
    import supervision as sv

    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {}

    async def idle(ctx: sv.Context) -> None:
        await loop.create_future()

    async def crashing(ctx: sv.Context) -> None:
        started = state.get("started")
        if started is not None and not started.done():
            started.set_result(time.perf_counter_ns())
        state["fut"] = fut = loop.create_future()
        await fut

    before_spec = rss()
    began = time.perf_counter()
    spec = sv.Supervisor(
        [sv.child(f"w{i}", crashing if i == n // 2 else idle) for i in range(n)], intensity=10**9, period=1.0
    )
    spec_time = time.perf_counter() - began
    start = sv.start  # loads the runtime (import supervision is lazy): not part of the measurement
    before = rss()
    began = time.perf_counter()
    tree = await start(spec)
    await asyncio.sleep(0)
    elapsed = time.perf_counter() - began
    grown = rss() - before
    samples = await _restarts(state, restarts)
    stop = None
    if n <= 100_000:  # a million take a minute to stop, one by one, right to left: not measured
        began = time.perf_counter()
        await tree.stop()
        stop = time.perf_counter() - began
    return {
        "start": elapsed,
        "bytes": grown,
        "spec": spec_time,
        "spec_bytes": before - before_spec,
        "restart": samples,
        "stop": stop,
    }


def _child(which: str, n: int, restarts: int) -> None:
    import logging

    logging.getLogger("supervision").setLevel(logging.CRITICAL)  # no 300 tracebacks in the measurement
    import supervision  # noqa: F401  (imported before measuring, in both cases)

    scenario = _workers_supervised if which == "supervision" else _workers_floor
    result = asyncio.run(scenario(n, restarts))
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # a million tasks need no orderly teardown of the interpreter


def _measure_workers(which: str, n: int, restarts: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__)), "--child", which, "-n", str(n), "--restarts", str(restarts)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout
    result: dict[str, Any] = json.loads(out)
    samples = result.pop("restart")[5:]  # the first few warm the path up
    result["restart"] = statistics.median(samples)
    result["restart_p95"] = sorted(samples)[int(0.95 * (len(samples) - 1))]
    result["restarts"] = len(samples)
    return result


def workers(plan: ScalePlan) -> dict[str, Any]:
    rows = []
    for n in plan.worker_sizes:
        log(f"in-process: {n:,} workers, {plan.restarts} single restarts (floor, then supervision)")
        floor = _measure_workers("floor", n, plan.restarts)
        sup = _measure_workers("supervision", n, plan.restarts)
        rows.append({"n": n, "floor": floor, "supervision": sup})
    return {"rows": rows, "restarts": plan.restarts - 5}


# -- report ------------------------------------------------------------------------------


def _t(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def _b(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1 << 20:
        return f"{value / (1 << 20):,.1f} MiB"
    if value >= 10 << 10:
        return f"{value / 1024:,.0f} KiB"
    return f"{value:,.0f} B"


def _per(value: float | None, n: int) -> float | None:
    return None if value is None else value / n


PROCESS_SERIES = (
    # key, label, expected growth (1 linear, 0 flat), per child?
    ("bringup", "bring-up, first fork → all exec'd", 1),
    ("launch_to_all", "bring-up, launch → all exec'd", 1),
    ("rss", "supervisor RSS", 1),
    ("status_protocol", "`status` request (protocol)", 1),
    ("status_cli", "`supervision status` (command line)", 1),
    ("reload_protocol", "reload, one change (protocol)", 1),
    ("reload_cli", "`supervision reload`, one change", 1),
    ("stop_children", "orderly stop, SIGTERM → last child exited", 1),
    ("stop_daemon", "orderly stop, SIGTERM → supervisor exited", 1),
    ("idle_wakeups", "idle wake-ups", 0),
    ("idle_cpu", "idle CPU", 0),
)


def growth(found: dict[str, Any]) -> list[dict[str, Any]]:
    """Each series' verdict: totals against linear, per-child and per-restart costs against flat."""
    verdicts = []
    if "processes" in found:
        rows = [r for r in found["processes"]["rows"] if not r.get("failed")]
        sizes = [r["n"] for r in rows]
        other = [f"{r['n']:,}" for r in rows if r.get("output") != "prefix"]
        for key, label, expected in PROCESS_SERIES:
            text, ok = verdict(sizes, [r.get(key) for r in rows], expected)
            if other:
                text += f" († {', '.join(other)}: output=inherit)"
            verdicts.append({"series": f"processes: {label}", "verdict": text, "ok": ok})
    if "workers" in found:
        rows = found["workers"]["rows"]
        sizes = [r["n"] for r in rows]
        for key, label, expected in (("start", "start", 1), ("bytes", "memory", 1), ("restart", "restart latency", 0)):
            # memory: from 1 000 workers on (below, the growth is a few pages: RSS moves by 4 KiB)
            keep = [i for i, k in enumerate(sizes) if key != "bytes" or k >= 1000]
            for who in ("supervision", "floor"):
                values = [rows[i][who].get(key) for i in keep]
                text, ok = verdict([sizes[i] for i in keep], values, expected)
                if key == "bytes" and len(keep) < len(sizes):
                    text += " (from 1,000 on)"
                verdicts.append({"series": f"workers ({who}): {label}", "verdict": text, "ok": ok})
    return verdicts


def markdown(found: dict[str, Any]) -> str:
    parts = []
    if "processes" in found:
        p = found["processes"]
        rows = p["rows"]
        head = ["", *(f"{r['n']:,}" + (" †" if r.get("output") != "prefix" else "") for r in rows)]

        def line(label: str, cells: list[str]) -> str:
            return "| " + " | ".join([label, *cells]) + " |"

        out = [
            f"OS-process children (`sleep`) under `supervision run tree.py`; median of {p['rounds']} daemon(s) per"
            f" size (one from 10,000 on); `status`: median of {p['status_samples']} each way; NOFILE the daemons"
            f" are started with (soft, hard): {p['nofile'][0]:,}, {p['nofile'][1]:,}.",
            "",
            line("children", head[1:]),
            "|---" * len(head) + "|",
        ]
        n = [r["n"] for r in rows]
        out.append(line("bring-up, first fork → all exec'd", [_t(r["bringup"]) for r in rows]))
        out.append(line("  per child", [_t(_per(r["bringup"], k)) for r, k in zip(rows, n, strict=True)]))
        out.append(line("bring-up, launch → all exec'd", [_t(r["launch_to_all"]) for r in rows]))
        out.append(line("supervisor RSS", [_b(r["rss"]) for r in rows]))
        out.append(line("  per child", [_b(_per(r["rss"], k)) for r, k in zip(rows, n, strict=True)]))
        base = rows[0]["rss"]
        marginal = [
            _b((r["rss"] - base) / (k - n[0])) if r["rss"] and base and k > n[0] else "–"
            for r, k in zip(rows, n, strict=True)
        ]
        out.append(line(f"  per child added (over {n[0]:,})", marginal))
        out.append(
            line("supervisor threads / fds", [f"{r['threads']} / {r['fds']:,}" if r["fds"] else "–" for r in rows])
        )
        out.append(
            line(
                "idle wake-ups", [f"{r['idle_wakeups']:.1f}/s" if r["idle_wakeups"] is not None else "–" for r in rows]
            )
        )
        out.append(
            line("idle CPU", [f"{r['idle_cpu'] * 100:.2f} %" if r["idle_cpu"] is not None else "–" for r in rows])
        )
        out.append(line("`status` request (protocol, in-process client)", [_t(r["status_protocol"]) for r in rows]))
        out.append(line("`supervision status` (command line, end to end)", [_t(r["status_cli"]) for r in rows]))
        out.append(line("reload, one change (protocol, to the reply)", [_t(r["reload_protocol"]) for r in rows]))
        out.append(line("`supervision reload`, one change (command line)", [_t(r["reload_cli"]) for r in rows]))
        out.append(
            line("  exactly one child restarted (pids)", ["yes" if r["reload_checked"] else "**no**" for r in rows])
        )
        out.append(line("orderly stop, SIGTERM → last child exited", [_t(r["stop_children"]) for r in rows]))
        out.append(line("  per child", [_t(_per(r["stop_children"], k)) for r, k in zip(rows, n, strict=True)]))
        out.append(line("orderly stop, SIGTERM → supervisor exited", [_t(r["stop_daemon"]) for r in rows]))
        failed = [f"{r['n']:,}: {r['failed']}" for r in rows if r.get("failed")]
        if failed:
            out += ["", "Failed: " + "; ".join(failed)]
        if any(r.get("output") != "prefix" for r in rows):
            out += [
                "",
                f'† `output="inherit"` (a pidfd per child, no output pipes): with the defaults (a pidfd and two'
                f" pipes per child) these children need more descriptors than the hard NOFILE limit"
                f" ({p['nofile'][1]:,}) allows.",
            ]
        parts.append("\n".join(out))
    if "workers" in found:
        w = found["workers"]
        rows = w["rows"]
        out = [
            f"In-process workers, each size in a fresh interpreter; restart latency: median (p95) of {w['restarts']}"
            " single restarts of one worker in the tree of N.",
            "",
            "| workers | start (supervision / bare tasks) | per worker | memory per worker (supervision / bare tasks)"
            " | spec: build, memory per child | restart latency (supervision / bare task) | stop |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            s, f, k = r["supervision"], r["floor"], r["n"]
            out.append(
                f"| {k:,} | {_t(s['start'])} / {_t(f['start'])} | {_t(s['start'] / k)} / {_t(f['start'] / k)}"
                f" | {_b(s['bytes'] / k)} / {_b(f['bytes'] / k)} | {_t(s['spec'])}, {_b(s['spec_bytes'] / k)}"
                f" | {_t(s['restart'])} ({_t(s['restart_p95'])}) / {_t(f['restart'])} ({_t(f['restart_p95'])})"
                f" | {_t(s.get('stop'))} |"
            )
        parts.append("\n".join(out))
    verdicts = growth(found)
    if verdicts:
        out = [
            "Growth (log-log slope between successive sizes: 1 linear, 0 flat):",
            "",
            "| series | growth |",
            "|---|---|",
        ]
        out += [f"| {v['series']} | {v['verdict']} |" for v in verdicts]
        parts.append("\n".join(out))
    return "\n\n".join(parts)


# -- plots -------------------------------------------------------------------------------


def plot(found: dict[str, Any], folder: Path = DOCS_IMAGES) -> list[Path]:
    """PNG plots of the scale results (matplotlib, Agg): one for processes, one for workers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if "processes" in found:
        rows = [r for r in found["processes"]["rows"] if not r.get("failed")]
        n = [r["n"] for r in rows]
        fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
        ax = axes[0][0]
        for key, label in (
            ("launch_to_all", "bring-up, launch → all exec'd"),
            ("bringup", "bring-up, first fork → all exec'd"),
            ("stop_daemon", "stop, SIGTERM → supervisor exited"),
            ("stop_children", "stop, SIGTERM → last child exited"),
        ):
            _series(ax, n, [r[key] for r in rows], label)
        _linear(ax, n, rows[-1]["launch_to_all"])
        _style(ax, "bring-up and orderly stop", "seconds")
        ax = axes[0][1]
        for key, label in (
            ("status_cli", "`supervision status` (command line)"),
            ("status_protocol", "status request (protocol)"),
            ("reload_cli", "`supervision reload`, one change"),
            ("reload_protocol", "reload request, one change"),
        ):
            _series(ax, n, [r[key] for r in rows], label)
        _linear(ax, n, rows[-1]["status_cli"])
        _style(ax, "control requests", "seconds")
        ax = axes[1][0]
        _series(ax, n, [r["rss"] / r["n"] / 1024 if r["rss"] else None for r in rows], "RSS / children")
        base = rows[0]
        _series(
            ax,
            n[1:],
            [(r["rss"] - base["rss"]) / (r["n"] - base["n"]) / 1024 for r in rows[1:]],
            f"RSS added per child (over {base['n']})",
        )
        _style(ax, "supervisor memory per child", "KiB", logy=True)
        ax = axes[1][1]
        wakeups = [r["idle_wakeups"] for r in rows]
        cpu = [r["idle_cpu"] * 1000 if r["idle_cpu"] is not None else None for r in rows]
        _series(ax, n, wakeups, "wake-ups / s", zero=True)
        _series(ax, n, cpu, "CPU, ms / s", zero=True)
        _style(ax, "idle supervisor", "per second", logy=False)
        ax.set_ylim(bottom=0, top=max([1.0, *(v * 1.2 for v in wakeups + cpu if v is not None)]))
        inherit = [f"{r['n']:,}" for r in rows if r.get("output") != "prefix"]
        note = f"; {', '.join(inherit)}: output=inherit (NOFILE hard limit)" if inherit else ""
        fig.suptitle(f"supervision run: N sleep children (log-log; dotted: linear growth{note})")
        fig.tight_layout()
        path = folder / "scale-processes.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    if "workers" in found:
        rows = found["workers"]["rows"]
        n = [r["n"] for r in rows]
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
        for ax, key, title, unit, scale_ in (
            (axes[0], "start", "start of N workers", "seconds", 1.0),
            (axes[1], "bytes", "memory per worker", "bytes", None),
            (axes[2], "restart", "restart latency of one worker (median)", "µs", 1e6),
        ):
            for who, label in (("supervision", "supervision"), ("floor", "bare asyncio tasks")):
                values = [r[who][key] / r["n"] if scale_ is None else r[who][key] * scale_ for r in rows]
                if key == "bytes":  # below 1 000 workers the RSS moves by whole 4 KiB pages: noise
                    values = [v if k >= 1000 else None for v, k in zip(values, n, strict=True)]
                _series(ax, n, values, label)
            if key == "start":
                _linear(ax, n, rows[-1]["supervision"]["start"])
            _style(ax, title, unit, logy=key == "start", xlabel="workers")
            if key != "start":
                ax.set_ylim(bottom=0)
        fig.suptitle("in-process workers (x: workers in the tree, log)")
        fig.tight_layout()
        path = folder / "scale-workers.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def _series(ax: Any, n: list[int], values: list[float | None], label: str, zero: bool = False) -> None:
    points = [(k, v) for k, v in zip(n, values, strict=True) if v is not None and (v > 0 or zero)]
    if points:
        ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=label)


def _linear(ax: Any, n: list[int], last: float | None) -> None:
    """A dotted line of slope 1 through the last point: where linear growth would be."""
    if last:
        ax.plot(n, [last * k / n[-1] for k in n], linestyle=":", color="grey", label="linear")


def _style(ax: Any, title: str, unit: str, logy: bool = True, xlabel: str = "children") -> None:
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(unit)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


# -- entry points ---------------------------------------------------------------------------


def scenario(bench: Any, quick: bool) -> dict[str, Any]:
    """The ``scale`` scenario of ``bench/run.py``: everything, as data (``markdown``, ``plot``)."""
    plan = ScalePlan.make(quick)
    found: dict[str, Any] = {"plan": plan.__dict__}
    found["processes"] = processes(bench, plan)
    found["workers"] = workers(plan)
    found["growth"] = growth(found)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(found, indent=2))
    return found


def last() -> dict[str, Any] | None:
    """The scale results of the last run (``bench/results/scale.json``), for ``--plot`` alone."""
    try:
        result: dict[str, Any] = json.loads((RESULTS / "scale.json").read_text())
    except (OSError, ValueError):
        return None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="10,1000,100000", help="comma-separated sizes of the in-process part")
    parser.add_argument("--restarts", type=int, default=105, help="single restarts timed per size (5 dropped)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.n, args.restarts)
        return
    plan = ScalePlan((), tuple(int(x) for x in args.workers.split(",")), 1, 1, 0.0, args.restarts)
    print(markdown({"workers": workers(plan)}))


if __name__ == "__main__":
    main()
