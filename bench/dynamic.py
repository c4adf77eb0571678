"""Many identical children: dynamic workers against bare tasks, scaling against circus.

    python bench/dynamic.py            # 100 000 workers, 100 instances, best of 3
    python bench/dynamic.py --quick    # 10 000 workers, 50 instances, best of 2

(a) ``start_child`` of N workers, one ``await`` each, under a
    ``DynamicSupervisor``, against N bare ``asyncio.create_task`` of the same
    coroutine; both until every task has run to its first ``await``. The ratio
    is the cost of supervision per child (goal: at most 2x). Then the stop of
    the N children (concurrent in a dynamic supervisor) against cancelling the
    N tasks and gathering them.
(b) scaling a service of ``sleep`` processes from 1 to M instances and back to
    1: ``supervision scale web M`` against circus's ``circusctl incr c M-1``
    (and ``decr``), each daemon started from a generated config. The time is
    from the command's start until the daemon has exactly the wanted number of
    live children (read from ``/proc``, 2 ms apart, the same for both).

Each in-process measurement runs in a fresh interpreter; the ``supervision``
logger is silenced. circus is installed by the benchmark into
``bench/.peers-venv`` (see ``contenders.py``); without it, (b) reports
supervision alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

SLEEP = ["/bin/sleep", "100000"]


# -- (a) in process -------------------------------------------------------------------------


async def start_floor(n: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()

    async def worker(i: int) -> None:
        await loop.create_future()

    began = time.perf_counter()
    tasks = [loop.create_task(worker(i)) for i in range(n)]
    await asyncio.sleep(0)  # every task has run to its first await
    started = time.perf_counter() - began
    began = time.perf_counter()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"start": started, "stop": time.perf_counter() - began}


async def start_supervised(n: int) -> dict[str, float]:
    import supervision as sv

    loop = asyncio.get_running_loop()

    async def worker(ctx: sv.Context, i: int) -> None:
        await loop.create_future()

    tree = await sv.start(sv.DynamicSupervisor(worker))
    start_child = tree.start_child
    began = time.perf_counter()
    for i in range(n):
        await start_child(i)
    await asyncio.sleep(0)
    started = time.perf_counter() - began
    assert tree.count_children().active == n
    began = time.perf_counter()
    await tree.stop()
    return {"start": started, "stop": time.perf_counter() - began}


CASES: dict[str, Callable[[int], Any]] = {"floor": start_floor, "supervision": start_supervised}


def child_main(name: str, n: int) -> None:
    logging.getLogger("supervision").setLevel(logging.CRITICAL)
    import supervision  # noqa: F401  (imported before measuring, in both cases)

    print(json.dumps(asyncio.run(CASES[name](n))))


def measure(name: str, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, "-n", str(n)], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def inproc(n: int, repeat: int) -> dict[str, Any]:
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeat):  # alternating, so a burst of load elsewhere hits both alike
        for name in CASES:
            found = measure(name, n)
            for key, value in found.items():
                best.setdefault(name, {})[key] = min(best.get(name, {}).get(key, float("inf")), value)
    return {
        "n": n,
        "floor": best["floor"],
        "supervision": best["supervision"],
        "start_ratio": best["supervision"]["start"] / best["floor"]["start"],
        "stop_ratio": best["supervision"]["stop"] / best["floor"]["stop"],
    }


# -- (b) scaling processes -----------------------------------------------------------------


def live_children(pid: int) -> int:
    """How many live (not zombie) children ``pid`` has, that run ``sleep``."""
    count = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as file:
                kids = file.read().split()
        except FileNotFoundError:
            continue
        for kid in kids:
            try:
                with open(f"/proc/{kid}/stat") as file:
                    stat = file.read()
                with open(f"/proc/{kid}/comm") as file:
                    comm = file.read().strip()
            except FileNotFoundError:
                continue
            if stat[stat.rindex(")") + 2] != "Z" and comm == "sleep":
                count += 1
    return count


def until_count(pid: int, wanted: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while live_children(pid) != wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{wanted} children never reached (have {live_children(pid)})")
        time.sleep(0.002)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def scale_supervision(count: int, tmp: Path) -> dict[str, float]:
    (tmp / "services.toml").write_text(f"[services.web]\ncommand = {json.dumps(SLEEP)}\nnumprocs = 1\n")
    control = str(tmp / "control.sock")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NOTIFY_SOCKET", None)
    argv = [sys.executable, "-m", "supervision", "run", str(tmp / "services.toml"), "--control", control]
    with open(tmp / "sv.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=log, stderr=log)
    try:
        until_count(proc.pid, 1)
        scale = [sys.executable, "-m", "supervision", "scale", "web"]
        began = time.perf_counter()
        subprocess.run([*scale, str(count), "--control", control], check=True, capture_output=True)
        until_count(proc.pid, count)
        up = time.perf_counter() - began
        began = time.perf_counter()
        subprocess.run([*scale, "1", "--control", control], check=True, capture_output=True)
        until_count(proc.pid, 1)
        down = time.perf_counter() - began
    finally:
        stop(proc)
    return {"up": up, "down": down}


def scale_circus(count: int, tmp: Path) -> dict[str, float]:
    from contenders import CIRCUS_CHECK_DELAY, PEERS_VENV

    endpoint = f"ipc://{tmp}/circus-ctl.sock"
    (tmp / "circus.ini").write_text(
        f"""\
[circus]
check_delay = {CIRCUS_CHECK_DELAY}
endpoint = {endpoint}
pubsub_endpoint = ipc://{tmp}/circus-pubsub.sock
multicast_endpoint =
statsd = false
httpd = false
logoutput = {tmp}/circusd.log

[watcher:c]
cmd = {shlex.join(SLEEP)}
numprocesses = 1
"""
    )
    with open(tmp / "circus.out", "wb") as log:
        proc = subprocess.Popen(
            [str(PEERS_VENV / "bin" / "circusd"), str(tmp / "circus.ini")], cwd=tmp, stdout=log, stderr=log
        )
    ctl = [str(PEERS_VENV / "bin" / "circusctl"), "--endpoint", endpoint, "--timeout", "60"]
    try:
        until_count(proc.pid, 1)
        began = time.perf_counter()
        subprocess.run([*ctl, "incr", "c", str(count - 1)], check=True, capture_output=True)
        until_count(proc.pid, count)
        up = time.perf_counter() - began
        began = time.perf_counter()
        subprocess.run([*ctl, "decr", "c", str(count - 1)], check=True, capture_output=True)
        until_count(proc.pid, 1)
        down = time.perf_counter() - began
    finally:
        stop(proc)
    return {"up": up, "down": down}


def scaling(count: int, repeat: int, with_circus: bool) -> dict[str, Any]:
    contenders: dict[str, Callable[[int, Path], dict[str, float]]] = {"supervision": scale_supervision}
    if with_circus:
        contenders["circus"] = scale_circus
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeat):
        for name, run in contenders.items():
            with tempfile.TemporaryDirectory(prefix="sv-bench-scale-") as tmp:
                found = run(count, Path(tmp))
            for key, value in found.items():
                best.setdefault(name, {})[key] = min(best.get(name, {}).get(key, float("inf")), value)
    return {"count": count, **best}


def circus_available() -> tuple[bool, str]:
    try:
        import contenders

        versions = contenders.ensure_peers()
    except Exception as exc:  # offline, no pip: report supervision alone
        return False, f"circus unavailable ({exc!r})"
    return True, f"circus {versions['circus']}"


# -- report ---------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    a = result["inproc"]
    n = a["n"]
    lines = [
        f"### Dynamic children (`bench/dynamic.py`), Python {sys.version.split()[0]}",
        "",
        "| scenario | floor | supervision | ratio | per child (floor / supervision) |",
        "|---|---|---|---|---|",
    ]
    for key, label, floor_label in (
        ("start", f"`start_child` x {n:,}", "`create_task`"),
        ("stop", f"stop {n:,} (concurrent)", "cancel + gather"),
    ):
        floor, sup = a["floor"][key], a["supervision"][key]
        per = f"{floor / n * 1e6:.2f} µs / {sup / n * 1e6:.2f} µs"
        lines.append(f"| {label} vs {floor_label} | {floor:.3f} s | {sup:.3f} s | {sup / floor:.2f}x | {per} |")
    b = result["scaling"]
    lines += [
        "",
        f"Scaling a service of `sleep` processes 1 -> {b['count']} -> 1 ({result['circus']}):",
        "",
        "| | up | down |",
        "|---|---|---|",
    ]
    for name in ("supervision", "circus"):
        if name in b:
            lines.append(f"| {name} | {b[name]['up'] * 1000:.0f} ms | {b[name]['down'] * 1000:.0f} ms |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 000 workers, 50 instances, best of 2")
    parser.add_argument("-n", type=int, default=None, help="workers for (a)")
    parser.add_argument("--instances", type=int, default=None, help="processes for (b)")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--no-circus", action="store_true", help="(b) for supervision alone")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    if args.child:
        child_main(args.child, n)
        return
    repeat = args.repeat or (2 if args.quick else 3)
    count = args.instances or (50 if args.quick else 100)
    with_circus, circus = (False, "circus not run") if args.no_circus else circus_available()
    result = {"inproc": inproc(n, repeat), "scaling": scaling(count, repeat, with_circus), "circus": circus}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
