"""200 abandoned ``events()`` streams leave the tree as fast and as small as
none: each unsubscribes as soon as its reader drops it.

Speed is asserted through what decides it, not with a stopwatch (the machine is
shared): with no stream subscribed and the log silenced, the tree is
*unobserved* and builds no event at all, exactly as before the streams came.
``bench/streams.py`` measures the throughput itself (0.24x before the fix).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc
from collections.abc import Iterator

import pytest

import supervision as sv

RESTARTS = 2_000


@pytest.fixture
def quiet() -> Iterator[None]:
    """Crash logs off: they would cost more than the fan-out being measured."""
    logger = logging.getLogger("supervision")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


async def restart(tree: sv.Tree, n: int) -> None:
    """Crash the worker ``n`` times, each time waiting for its restart."""
    hub = tree._runtime.hub
    for _ in range(n):
        starts = tree.which_children()[0].starts
        sv.testing.crash(tree, "w", RuntimeError("boom"))
        while tree.which_children()[0].starts == starts:
            await asyncio.sleep(0)
    assert hub.subscribers == 0 and not hub.observed


async def idle(ctx: sv.Context) -> None:
    await asyncio.Event().wait()


@pytest.mark.timeout(60)
async def test_200_abandoned_streams_cost_nothing(quiet: None) -> None:
    spec = sv.Supervisor([sv.child("w", idle)], intensity=10**9, period=1.0)
    async with sv.start(spec) as tree:
        hub = tree._runtime.hub
        await restart(tree, 200)  # warm up
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await restart(tree, RESTARTS)
            for _ in range(200):  # each reads one event and breaks out, as the docs show
                sv.testing.crash(tree, "w", RuntimeError("boom"))
                async for _event in tree.events():
                    break
            assert hub.subscribers == 0
            await restart(tree, RESTARTS)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    # Before the fix: every stream held up to 10 000 events (about 17 MB in all here).
    assert grown < 1_000_000, grown
