"""Abandoned event streams and long restart runs: what they cost the supervisor.

    python bench/streams.py                 # 200 streams, 20 000 + 100 000 restarts
    python bench/streams.py --quick         # 200 streams, 2 000 + 10 000 restarts
    PYTHONPATH=/path/to/other/checkout python bench/streams.py   # compare a version

(a) restart throughput of one crashing worker (one_for_one, an intensity that
    never gives up) with no stream, then after 200 streams were each read once
    and abandoned with ``break``, as the docs show; the "supervision" logger is
    silenced, so what is measured is the fan-out.
(b) the supervisor's RSS before and after 100 000 restarts of that worker, with
    a reader that keeps up subscribed (every event is built and delivered).

Each part runs in a fresh interpreter; prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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


async def _restarts(tree: Any, n: int) -> float:
    import supervision as sv

    begin = time.perf_counter()
    for _ in range(n):
        starts = tree.which_children()[0].starts
        sv.testing.crash(tree, "w", RuntimeError("boom"))
        while tree.which_children()[0].starts == starts:
            await asyncio.sleep(0)
    return n / (time.perf_counter() - begin)


async def _idle(ctx: Any) -> None:
    await asyncio.Event().wait()


async def throughput(n: int, streams: int) -> dict[str, Any]:
    import supervision as sv

    spec = sv.Supervisor([sv.child("w", _idle)], intensity=10**9, period=1.0)
    async with sv.start(spec) as tree:
        await _restarts(tree, 200)
        none = await _restarts(tree, n)
        for _ in range(streams):
            sv.testing.crash(tree, "w", RuntimeError("boom"))
            async for _event in tree.events():
                break
        gc.collect()
        before = rss()
        abandoned = await _restarts(tree, n)
        grown = rss() - before
    return {"none": none, "abandoned": abandoned, "rss_growth": grown}


async def long_run(n: int) -> dict[str, Any]:
    import supervision as sv

    async def crashing(ctx: sv.Context) -> None:
        raise RuntimeError("crash")

    done = asyncio.Event()

    spec = sv.Supervisor([sv.child("w", crashing)], intensity=10**9, period=1.0)
    async with sv.start(spec) as tree:
        events = tree.events()

        async def read() -> None:
            async for event in events:
                if isinstance(event, sv.ChildStarted) and event.starts >= n:
                    done.set()

        reader = asyncio.ensure_future(read())
        while tree.which_children()[0].starts < 1_000:
            await asyncio.sleep(0.01)
        gc.collect()
        before = rss()
        begin = time.perf_counter()
        await done.wait()
        seconds = time.perf_counter() - begin
        gc.collect()
        after = rss()
    await reader
    return {"restarts": n, "rss_before": before, "rss_after": after, "seconds": seconds}


def child_main(part: str, n: int, streams: int) -> None:
    logging.getLogger("supervision").setLevel(logging.CRITICAL)
    result = asyncio.run(throughput(n, streams) if part == "throughput" else long_run(n))
    print(json.dumps(result))


def run_part(part: str, n: int, streams: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", part, str(n), str(streams)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    n, long_n = (2_000, 10_000) if args.quick else (20_000, 100_000)
    import supervision

    print(f"supervision from {os.path.dirname(supervision.__file__)}")
    runs = [run_part("throughput", n, args.streams) for _ in range(args.repeat)]
    best_none = max(r["none"] for r in runs)
    best_abandoned = max(r["abandoned"] for r in runs)
    print(f"\n(a) restart throughput, {n} restarts, best of {args.repeat}")
    print(f"{'streams':<26}{'restarts/s':>12}{'ratio':>8}{'RSS growth':>14}")
    print(f"{'none':<26}{best_none:>12.0f}{1.0:>8.2f}{'':>14}")
    growth = min(r["rss_growth"] for r in runs) / 1e6
    label = f"{args.streams} abandoned"
    print(f"{label:<26}{best_abandoned:>12.0f}{best_abandoned / best_none:>8.2f}{growth:>11.1f} MB")
    long = run_part("long", long_n, 0)
    print(f"\n(b) RSS over {long['restarts']} restarts ({long['seconds']:.1f} s, a reader subscribed)")
    print(f"{'before':<26}{long['rss_before'] / 1e6:>9.1f} MB")
    print(f"{'after':<26}{long['rss_after'] / 1e6:>9.1f} MB")
    print(f"{'growth':<26}{(long['rss_after'] - long['rss_before']) / 1e6:>9.1f} MB")


if __name__ == "__main__":
    main()
