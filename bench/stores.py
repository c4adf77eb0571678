"""Restart latency with 1 000 children saving continuously: SQLite store against memory store.

    python bench/stores.py            # 1 000 savers, 300 restarts, best of 3 runs each
    python bench/stores.py --quick    # 200 savers, 100 restarts, 1 run

Each saver saves a new snapshot (a pmap with a counter and a short string) every
``--interval`` seconds (100 ms: 10 000 saves a second in all, staggered); one
more child, the victim, is crashed by the benchmark and restarted by its
one_for_one supervisor. Restart latency is the time from the crash to the
victim's next incarnation running. The goal (issue 18): the median with the
SQLite store within 1.2x of the memory store, i.e. encoding the snapshots and
writing them off the event loop costs the loop little.

Each store runs in a fresh interpreter; the two alternate, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

GOAL = 1.2


async def scenario(store_kind: str, savers: int, restarts: int, interval: float, directory: str) -> dict[str, Any]:
    from pyrsistent import pmap

    import supervision as sv
    from supervision.testing import crash

    loop = asyncio.get_running_loop()
    started: asyncio.Queue[float] = asyncio.Queue()

    async def saver(ctx: sv.Context) -> None:
        n = ctx.state.get("n", 0)
        await asyncio.sleep(interval * (hash(ctx.id) % 1000) / 1000)  # staggered
        while True:
            n += 1
            ctx.save(pmap({"n": n, "who": ctx.id}))
            await asyncio.sleep(interval)

    async def victim(ctx: sv.Context) -> None:
        started.put_nowait(time.perf_counter())
        await asyncio.Event().wait()

    children = [sv.child(f"s{i}", saver) for i in range(savers)]
    spec = sv.Supervisor([*children, sv.child("victim", victim)], intensity=10 * restarts, period=3600)
    store = sv.stores.memory() if store_kind == "memory" else sv.stores.sqlite(os.path.join(directory, "bench.db"))
    latencies: list[float] = []
    saved_before = 0
    async with sv.start(spec, store=store) as tree:
        await started.get()
        await asyncio.sleep(2 * interval)  # every saver is saving
        for _ in range(restarts):
            began = time.perf_counter()
            crash(tree, "victim")
            await started.get()
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(0.005)
        saved_before = sum(tree.state(f"s{i}")["n"] for i in range(savers))
    del loop
    latencies.sort()
    return {
        "median": statistics.median(latencies),
        "p95": latencies[int(0.95 * (len(latencies) - 1))],
        "saves": saved_before,
    }


def child_main(store_kind: str, savers: int, restarts: int, interval: float) -> None:
    logging.getLogger("supervision").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as directory:
        result = asyncio.run(scenario(store_kind, savers, restarts, interval, directory))
    print(json.dumps(result))


def measure(store_kind: str, args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable, __file__, "--child", store_kind, "--savers", str(args.savers),
            "--restarts", str(args.restarts), "--interval", str(args.interval),
        ],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return dict(json.loads(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--savers", type=int, default=1_000)
    parser.add_argument("--restarts", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--child", choices=["memory", "sqlite"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.savers, args.restarts, args.interval)
        return
    if args.quick:
        args.savers, args.restarts, args.repeat = 200, 100, 1
    best: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeat):
        for kind in ("memory", "sqlite"):  # alternate, so load on the machine hits both alike
            result = measure(kind, args)
            if kind not in best or result["median"] < best[kind]["median"]:
                best[kind] = result
    ratio = best["sqlite"]["median"] / best["memory"]["median"]
    results = {"savers": args.savers, "restarts": args.restarts, "interval": args.interval, **best, "ratio": ratio}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"restart latency with {args.savers} children saving every {args.interval * 1000:.0f} ms")
    for kind in ("memory", "sqlite"):
        cell = best[kind]
        print(f"  {kind:7} median {cell['median'] * 1e6:8.1f} us   p95 {cell['p95'] * 1e6:8.1f} us")
    verdict = "met" if ratio <= GOAL else "missed"
    print(f"  sqlite / memory: {ratio:.2f}x (goal <= {GOAL}x: {verdict})")


if __name__ == "__main__":
    main()
