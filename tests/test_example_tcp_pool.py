"""examples/tcp_pool.py, the how-to's server: one worker per connection under a
DynamicSupervisor; a crash closes one connection, not its siblings."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType

import supervision as sv
from supervision.testing import crash
from tests.helpers import WAIT, is_, next_event
from tests.process_helpers import free_port

ROOT = Path(__file__).resolve().parent.parent


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tcp_pool", ROOT / "examples" / "tcp_pool.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: bytes) -> bytes:
    writer.write(text + b"\n")
    await writer.drain()
    return (await asyncio.wait_for(reader.readline(), WAIT)).strip()


async def test_one_worker_per_connection_and_a_crash_closes_only_its_own() -> None:
    example = _example()
    port = free_port()
    async with sv.start(example.build(port)) as tree:
        events = tree.events()
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        answers = [await _ask(reader, writer, b"hi %d" % n) for n, (reader, writer) in enumerate(clients)]
        assert sorted(answer.split(b" ", 1)[1] for answer in answers) == [b"HI 0", b"HI 1", b"HI 2"]
        conns = tree.at("conns")
        assert [c.id for c in conns.which_children()] == ["1", "2", "3"]

        crash(tree, "conns/2")  # the second client's worker
        await next_event(events, is_(sv.ChildExited, "conns/2", reason=sv.ExitReason.CRASH))
        reader, writer = clients[1]
        assert await asyncio.wait_for(reader.read(), WAIT) == b""  # its connection is closed...
        for reader, writer in (clients[0], clients[2]):  # ...the others are served on
            assert (await _ask(reader, writer, b"still")).endswith(b"STILL")
        assert [c.id for c in conns.which_children()] == ["1", "3"]  # temporary: removed

        old = tree.whereis("stats")
        crash(tree, "stats")
        await next_event(events, is_(sv.ChildStarted, "stats", starts=2))
        new = await tree.wait_for("stats")
        assert new is not old and new.lines == 0
        reader, writer = clients[0]
        assert await _ask(reader, writer, b"again") == b"1 AGAIN"  # counted by the new Stats
        for _, writer in clients:
            writer.close()
    for _, writer in clients:
        await writer.wait_closed()
