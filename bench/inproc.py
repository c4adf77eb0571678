"""In-process benchmarks: supervision against the raw asyncio floor, side by side.

    python bench/inproc.py            # full: 100 000 restarts, 100 000 children
    python bench/inproc.py --quick    # 10 000 of each

(a) crash -> restart: a worker that raises at once, under one_for_one with an
    intensity high enough never to give up, restarted N times; the floor is a
    bare asyncio task re-created from its own done-callback.
(b) start N idle workers under one supervisor; the floor creates N bare tasks
    that wait on an event. Memory per child is the RSS growth divided by N.
(c) with --sizes: the cost of one crash -> restart in a tree of N idle workers
    (one_for_one), for each N given, against the same floor as (a) run among N
    bare tasks waiting: it must not grow with N.

For other benchmarks (bench/scale.py): ``restart_floor_among(n, restarts)`` and
``restart_supervised_among(n, restarts)`` return the seconds per restart among
``n`` idle tasks / workers; ``start_floor(n)`` and ``start_supervised(n)`` return
(seconds, bytes of RSS grown) for ``n`` tasks / workers. Each is a coroutine to
run in a fresh interpreter (``measure_among`` does that for the first two).

Each measurement runs in a fresh interpreter (clean memory), best of --repeat.
The "supervision" logger is silenced: logging 100 000 crash tracebacks would
measure the logging module, not the supervisor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from typing import Any


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Boom(Exception):
    pass


async def restart_floor(n: int) -> float:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    async def crasher() -> None:
        raise Boom

    def on_done(task: asyncio.Task[None]) -> None:
        nonlocal count
        task.exception()
        count += 1
        if count >= n:
            done.set_result(None)
        else:
            loop.create_task(crasher()).add_done_callback(on_done)

    began = time.perf_counter()
    loop.create_task(crasher()).add_done_callback(on_done)
    await done
    return time.perf_counter() - began


async def restart_supervised(n: int) -> float:
    import supervision as sv

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    async def crasher(ctx: sv.Context) -> None:
        nonlocal count
        count += 1
        if count > n:  # the first start is not a restart
            done.set_result(None)
            await asyncio.Event().wait()
        raise Boom

    spec = sv.Supervisor([sv.child("crasher", crasher)], intensity=10 * n, period=3600)
    start = sv.start  # loads the runtime (import supervision is lazy): not part of the measurement
    began = time.perf_counter()
    async with start(spec):
        await done
        elapsed = time.perf_counter() - began
    return elapsed


async def start_floor(n: int) -> tuple[float, int]:
    async def idle() -> None:
        await asyncio.get_running_loop().create_future()  # its own: cancelling it is O(1)

    before = rss()
    began = time.perf_counter()
    tasks = [asyncio.get_running_loop().create_task(idle()) for _ in range(n)]
    await asyncio.sleep(0)  # every task has run to its first await
    elapsed = time.perf_counter() - began
    grown = rss() - before
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return elapsed, grown


async def start_supervised(n: int) -> tuple[float, int]:
    import supervision as sv

    async def idle(ctx: sv.Context) -> None:
        await asyncio.get_running_loop().create_future()

    spec = sv.Supervisor([sv.child(f"w{i}", idle) for i in range(n)])
    start = sv.start  # loads the runtime (import supervision is lazy): not part of the measurement
    before = rss()
    began = time.perf_counter()
    tree = await start(spec)
    await asyncio.sleep(0)
    elapsed = time.perf_counter() - began
    grown = rss() - before
    await tree.stop()
    return elapsed, grown


async def _idle_forever() -> None:
    await asyncio.get_running_loop().create_future()


async def restart_floor_among(n: int, restarts: int = 10_000) -> float:
    """Seconds per restart of a bare task re-created from its done-callback,
    while ``n`` other bare tasks wait."""
    loop = asyncio.get_running_loop()
    idle = [loop.create_task(_idle_forever()) for _ in range(n)]
    await asyncio.sleep(0)
    try:
        return await restart_floor(restarts) / restarts
    finally:
        for task in idle:
            task.cancel()
        await asyncio.gather(*idle, return_exceptions=True)


async def restart_supervised_among(n: int, restarts: int = 10_000) -> float:
    """Seconds per crash -> restart of one worker of a one_for_one supervisor
    that also runs ``n`` idle workers (started before the crasher)."""
    import supervision as sv

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0
    began = 0.0

    async def idle(ctx: sv.Context) -> None:
        await asyncio.get_running_loop().create_future()

    async def crasher(ctx: sv.Context) -> None:
        nonlocal count, began
        count += 1
        if count == 1:  # the first start is not a restart: the clock starts here
            began = time.perf_counter()
        elif count > restarts:
            done.set_result(time.perf_counter() - began)
            await asyncio.Event().wait()
        raise Boom

    children = [sv.child(f"w{i}", idle) for i in range(n)]
    spec = sv.Supervisor([*children, sv.child("crasher", crasher)], intensity=10 * restarts, period=3600)
    tree = await sv.start(spec)
    try:
        elapsed: float = await done
    finally:
        await tree.stop()
    return elapsed / restarts


SCENARIOS: dict[str, Any] = {
    "restart-floor": restart_floor,
    "restart-supervision": restart_supervised,
    "start-floor": start_floor,
    "start-supervision": start_supervised,
    "restart-floor-among": restart_floor_among,
    "restart-supervision-among": restart_supervised_among,
}


def child_main(name: str, n: int, restarts: int = 10_000) -> None:
    logging.getLogger("supervision").setLevel(logging.CRITICAL)
    import supervision  # noqa: F401  (imported before measuring, in both cases)

    scenario = SCENARIOS[name]
    result = asyncio.run(scenario(n, restarts) if name.endswith("-among") else scenario(n))
    print(json.dumps(result))


def among(sizes: list[int], restarts: int, repeat: int) -> None:
    """(c): the cost of one restart among N, for each N; floor and supervision alternate."""
    version = sys.version.split()[0]
    print(f"\ncrash -> restart among N idle, {restarts:,} restarts, best of {repeat}, Python {version}\n")
    print("| N | floor | supervision | ratio |")
    print("|---|---|---|---|")
    for size in sizes:
        floor, sup = float("inf"), float("inf")
        for _ in range(repeat):
            floor = min(floor, measure_among("restart-floor-among", size, restarts))
            sup = min(sup, measure_among("restart-supervision-among", size, restarts))
        print(f"| {size:,} | {floor * 1e6:.2f} µs | {sup * 1e6:.2f} µs | {sup / floor:.2f}× |")


def measure(name: str, n: int, repeat: int) -> tuple[float, int]:
    best_time, best_mem = float("inf"), 0
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "-n", str(n)], check=True, capture_output=True, text=True
        ).stdout
        result = json.loads(out)
        elapsed, mem = (result, 0) if isinstance(result, float) else result
        if elapsed < best_time:
            best_time, best_mem = elapsed, mem
    return best_time, best_mem


def measure_among(name: str, n: int, restarts: int = 10_000) -> float:
    """``restart-floor-among`` or ``restart-supervision-among`` among ``n``, in a
    fresh interpreter: seconds per restart."""
    argv = [sys.executable, __file__, "--child", name, "-n", str(n), "--restarts", str(restarts)]
    result: float = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 000 instead of 100 000")
    parser.add_argument("-n", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default=None, help="(c): tree sizes, e.g. 10,1000,100000")
    parser.add_argument("--restarts", type=int, default=10_000, help="(c): restarts measured per size")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    if args.child:
        child_main(args.child, n, args.restarts)
        return
    if args.sizes:
        among(sorted(int(size) for size in args.sizes.split(",")), args.restarts, args.repeat)
        return

    rows = []
    for what, unit in (("restart", "restarts"), ("start", "children")):
        # floor and supervision alternate, so a burst of load elsewhere hits both alike
        floor_time, floor_mem, sup_time, sup_mem = float("inf"), 0, float("inf"), 0
        for _ in range(args.repeat):
            elapsed, mem = measure(f"{what}-floor", n, 1)
            if elapsed < floor_time:
                floor_time, floor_mem = elapsed, mem
            elapsed, mem = measure(f"{what}-supervision", n, 1)
            if elapsed < sup_time:
                sup_time, sup_mem = elapsed, mem
        rows.append((what, unit, floor_time, sup_time, floor_mem, sup_mem))

    print(f"\nin-process benchmark, n = {n:,}, best of {args.repeat}, Python {sys.version.split()[0]}\n")
    print("| scenario | floor (raw asyncio) | supervision | ratio | per item (floor / supervision) | memory/child |")
    print("|---|---|---|---|---|---|")
    for what, _unit, floor_time, sup_time, floor_mem, sup_mem in rows:
        per = f"{floor_time / n * 1e6:.2f} µs / {sup_time / n * 1e6:.2f} µs"
        memory = f"{floor_mem / n:,.0f} B / {sup_mem / n:,.0f} B" if what == "start" else "-"
        label = f"crash→restart ×{n:,}" if what == "restart" else f"start {n:,} idle workers"
        print(f"| {label} | {floor_time:.3f} s | {sup_time:.3f} s | {sup_time / floor_time:.2f}× | {per} | {memory} |")


if __name__ == "__main__":
    main()
