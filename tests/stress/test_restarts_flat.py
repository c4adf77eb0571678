"""Restarts leave nothing behind: 10 000 restarts of a worker, and a few hundred
of an OS process, with the supervisor's memory and open fds flat."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import tracemalloc
from collections.abc import Iterator

import pytest

import supervision as sv


@pytest.fixture
def quiet() -> Iterator[None]:
    logger = logging.getLogger("supervision")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # pytest keeps every log record: that would grow
    yield
    logger.setLevel(level)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def crashing(ctx: sv.Context) -> None:
    ctx.save(ctx.state.set("n", ctx.state.get("n", 0) + 1))
    raise RuntimeError("crash, with a traceback to keep")


async def until_starts(tree: sv.Tree, starts: int, timeout: float = 50.0) -> None:
    async with asyncio.timeout(timeout):
        while tree.which_children()[0].starts < starts:
            await asyncio.sleep(0.001)


@pytest.mark.timeout(90)
async def test_10_000_worker_restarts_keep_memory_and_fds_flat(quiet: None) -> None:
    gate = asyncio.Event()

    async def worker(ctx: sv.Context) -> None:
        if ctx.starts in (1_000, 10_000):  # hold still while memory is measured
            await gate.wait()
        await crashing(ctx)

    spec = sv.Supervisor([sv.child("w", worker)], intensity=10**9, period=1.0)
    async with sv.start(spec) as tree:
        events = tree.events()  # a reader that keeps up: its queue stays short
        reading = asyncio.ensure_future(_drain(events))
        await until_starts(tree, 1_000)
        gc.collect()
        tracemalloc.start()
        try:
            before, open_before = tracemalloc.get_traced_memory()[0], fds()
            gate.set()
            await asyncio.sleep(0)
            gate.clear()
            await until_starts(tree, 10_000)
            await asyncio.sleep(0.01)
            gc.collect()
            grown, open_after = tracemalloc.get_traced_memory()[0] - before, fds()
        finally:
            tracemalloc.stop()
        assert tree.state("w")["n"] == 9_999
        gate.set()
    await reading
    assert grown < 256_000, f"{grown} bytes more after 9 000 restarts"
    assert open_after == open_before


async def _drain(events: sv.EventStream) -> None:
    async for _ in events:
        pass


@pytest.mark.timeout(90)
async def test_300_process_restarts_keep_fds_flat(quiet: None) -> None:
    spec = sv.Supervisor([sv.process("p", ["sh", "-c", "exit 3"])], intensity=10**9, period=1.0)
    async with sv.start(spec) as tree:
        await until_starts(tree, 20)
        open_before = fds()
        await until_starts(tree, 320)
        open_after = fds()
        starts = tree.which_children()[0].starts
    assert open_after <= open_before + 4, (open_before, open_after, starts)  # the one child in flight
