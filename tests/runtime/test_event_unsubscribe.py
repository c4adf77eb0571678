"""An ``events()`` stream unsubscribes when its reader is done with it: on
``break``, on garbage collection and on ``aclose()``, so an abandoned stream
holds neither events nor a place in the tree's fan-out."""

from __future__ import annotations

import asyncio
import gc
import weakref

import supervision as sv
from supervision._runtime.hub import EventHub


async def idle(ctx: sv.Context) -> None:
    await asyncio.Event().wait()


def tree_spec() -> sv.Supervisor:
    return sv.Supervisor([sv.child("a", idle)], intensity=1_000, period=1.0)


def hub_of(tree: sv.Tree) -> EventHub:
    return tree._runtime.hub  # the only way to count subscribers from outside


async def crash_and_read(tree: sv.Tree, stream: sv.EventStream) -> sv.Event:
    sv.testing.crash(tree, "a", RuntimeError("boom"))
    async for event in stream:
        return event
    raise AssertionError("the stream ended")


async def test_break_unsubscribes() -> None:
    async with sv.start(tree_spec()) as tree:
        hub = hub_of(tree)
        refs = []
        for _ in range(3):
            sv.testing.crash(tree, "a", RuntimeError("boom"))
            stream = tree.events()
            refs.append(weakref.ref(stream))
            async for _event in stream:
                break  # the documented way to stop reading
            del stream
        assert [ref() for ref in refs] == [None, None, None]
        assert hub.subscribers == 0
        # and the tree goes on publishing to nobody
        await crash_and_read(tree, tree.events())
        assert hub.subscribers == 0


async def test_the_async_for_idiom_unsubscribes() -> None:
    async with sv.start(tree_spec()) as tree:
        hub = hub_of(tree)
        sv.testing.crash(tree, "a", RuntimeError("boom"))
        async for event in tree.events():
            assert isinstance(event, sv.Event)
            break
        assert hub.subscribers == 0


async def test_garbage_collection_unsubscribes_a_stream_in_a_cycle() -> None:
    async with sv.start(tree_spec()) as tree:
        hub = hub_of(tree)
        stream = tree.events()
        cycle: list[object] = [stream]
        cycle.append(cycle)
        ref = weakref.ref(stream)
        await crash_and_read(tree, stream)
        del stream, cycle
        assert hub.subscribers == 1 or ref() is None  # CPython frees a cycle only in gc
        gc.collect()
        assert ref() is None
        assert hub.subscribers == 0


async def test_aclose_unsubscribes_and_ends_after_the_queued_events() -> None:
    async with sv.start(tree_spec()) as tree:
        hub = hub_of(tree)
        stream = tree.events()
        assert stream.subscribed
        sv.testing.crash(tree, "a", RuntimeError("boom"))
        first = await stream.__anext__()  # ChildExited, then (queued) ChildStarted
        await asyncio.sleep(0)
        await stream.aclose()
        assert not stream.subscribed and hub.subscribers == 0
        queued = [event async for event in stream]  # what was queued before, then the end
        await crash_and_read(tree, tree.events())
        assert [event async for event in stream] == []
        assert isinstance(first, sv.ChildExited)
        assert all(isinstance(event, sv.Event) for event in queued)


async def test_a_stream_taken_before_the_start_unsubscribes_on_break() -> None:
    starting = sv.start(tree_spec())
    stream = starting.events()
    ref = weakref.ref(stream)
    async with starting as tree:
        async for event in stream:
            assert isinstance(event, sv.ChildStarted)
            break
        del stream
        assert ref() is None
        assert hub_of(tree).subscribers == 0


async def test_abandoned_streams_hold_no_events() -> None:
    """200 streams abandoned after one event each: none of them is kept, so the
    events that follow are queued nowhere."""
    async with sv.start(tree_spec()) as tree:
        hub = hub_of(tree)
        refs = []
        for _ in range(200):
            stream = tree.events()
            refs.append(weakref.ref(stream))
            await crash_and_read(tree, stream)
            del stream
        assert all(ref() is None for ref in refs)
        assert hub.subscribers == 0


async def test_a_reader_task_nobody_keeps_is_not_collected_while_it_waits() -> None:
    """The hub holds a stream strongly while a reader awaits it: a fire-and-forget
    consumer task (no reference kept) goes on receiving events after a collection."""
    seen: list[sv.Event] = []
    async with sv.start(tree_spec()) as tree:
        hub = hub_of(tree)

        async def consume() -> None:
            async for event in tree.events():
                seen.append(event)

        asyncio.ensure_future(consume())  # noqa: RUF006 - the point: no reference kept
        await asyncio.sleep(0)
        gc.collect()
        assert hub.subscribers == 1
        sv.testing.crash(tree, "a", RuntimeError("boom"))
        for _ in range(100):
            if len(seen) >= 2:
                break
            await asyncio.sleep(0)
        assert [type(event) for event in seen[:2]] == [sv.ChildExited, sv.ChildStarted]
    await asyncio.sleep(0)  # the tree stopped: the stream ended, and so did the task
    assert hub.subscribers == 0
