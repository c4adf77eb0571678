"""The main demo: a small tree that crashes and recovers while you watch.

    python examples/demo.py              # runs 12 seconds (Ctrl-C stops it sooner)
    python examples/demo.py --seconds 4

The tree:

    root (one_for_one)
    ├── ticker        a worker that counts (saving a snapshot) and trips every 10 ticks
    ├── flaky         a worker that crashes now and then (permanent: restarted)
    ├── pipeline      a nested rest_for_one supervisor
    │   ├── source    produces items; crashes now and then
    │   └── sink      consumes them; restarted whenever source restarts
    └── clock         an OS process (a tiny Python script) that prints and sometimes dies

Every event is printed as it happens. The ticker's count survives the crashes
because it lives in its snapshot, not in the task.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import sys
import time

import supervision as sv

RNG = random.Random(42)  # the crashes are random but the same every run


async def ticker(ctx: sv.Context) -> None:
    count = ctx.state.get("count", 0)
    while True:
        await asyncio.sleep(0.25)
        count += 1
        ctx.save(ctx.state.set("count", count))
        if count % 10 == 0:
            raise RuntimeError(f"ticker tripped at {count}")


async def flaky(ctx: sv.Context) -> None:
    await asyncio.sleep(RNG.uniform(1.0, 3.0))
    raise RuntimeError(f"flaky gave up after its start #{ctx.starts}")


async def source(ctx: sv.Context) -> None:
    queue = items()
    n = ctx.state.get("produced", 0)
    ctx.ready()
    while True:
        await asyncio.sleep(0.2)
        n += 1
        await queue.put(n)
        ctx.save(ctx.state.set("produced", n))
        if RNG.random() < 0.06:
            raise ConnectionError("source lost its upstream")


async def sink(ctx: sv.Context) -> None:
    while True:
        await items().get()
        ctx.save(ctx.state.set("consumed", ctx.state.get("consumed", 0) + 1))


_queue: asyncio.Queue[int] | None = None


def items() -> asyncio.Queue[int]:
    """The queue between source and sink (made in the running loop, on first use)."""
    global _queue
    if _queue is None:
        _queue = asyncio.Queue()
    return _queue


CLOCK_SCRIPT = """
import random, sys, time
random.seed(int(sys.argv[1]))
for i in range(100):
    time.sleep(0.7)
    print("tick", i, flush=True)
    if random.random() < 0.25:
        sys.exit(3)
"""


def build() -> sv.Supervisor:
    children = [
        sv.child("ticker", ticker),
        sv.child("flaky", flaky),
        sv.child(
            "pipeline",
            sv.Supervisor(
                [sv.child("source", source, ready=True), sv.child("sink", sink)],
                strategy="rest_for_one",
                intensity=5,
                period=10,
            ),
        ),
    ]
    process = getattr(sv, "process", None)
    if process is not None:  # OS process children
        children.append(process("clock", [sys.executable, "-c", CLOCK_SCRIPT, "7"], shutdown=2.0))
    return sv.Supervisor(children, strategy="one_for_one", intensity=10, period=5)


def describe(event: sv.Event) -> str:
    where = "/".join(event.path) or "root"
    if isinstance(event, sv.ChildStarted):
        pid = f" pid {event.pid}" if event.pid else ""
        return f"started    {where} (start #{event.starts}{pid})"
    if isinstance(event, sv.ChildExited):
        why = f": {event.error}" if event.error is not None else ""
        return f"exited     {where} [{event.reason}]{why}"
    if isinstance(event, sv.ChildStartFailed):
        return f"start fail {where}: {event.error.__cause__ or event.error}"
    if isinstance(event, sv.RestartScheduled):
        return f"retry      {where} in {event.delay:.2f}s"
    if isinstance(event, sv.SupervisorGaveUp):
        return f"GAVE UP    {where}: {event.error}"
    return f"{type(event).__name__} {where}"


async def main(seconds: float) -> None:
    began = time.monotonic()
    async with sv.start(build) as tree:
        events = tree.events()
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: done.done() or done.set_result(None))
        loop.call_later(seconds, lambda: done.done() or done.set_result(None))
        print(f"tree up: {[c.id for c in tree.which_children()]}")

        async def show() -> None:
            async for event in events:
                print(f"{time.monotonic() - began:6.2f}s  {describe(event)}", flush=True)

        printer = asyncio.create_task(show())
        await done
        print(
            f"ticker counted {tree.state('ticker').get('count', 0)} across "
            f"{tree.which_children()[0].starts} start(s); pipeline: {dict(tree.state('pipeline/sink'))}"
        )
        print("stopping the tree (children right to left)")
    await printer
    print("stopped cleanly")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="supervision demo: crashes and recoveries")
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the demo prints events itself
    asyncio.run(main(args.seconds))
