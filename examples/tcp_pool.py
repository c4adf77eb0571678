"""A TCP server with one supervised worker per connection (see docs/howto-tcp-server.md).

    python examples/tcp_pool.py --port 8765      # then: nc 127.0.0.1 8765

Each line a client sends comes back upper-cased, with the number of lines the
server has answered so far. The tree:

    conns      a DynamicSupervisor: one temporary worker per connection, at most 1000
    stats      a worker that counts lines, registered under the name "stats"
    listener   accepts connections and starts a child of conns for each

A connection's worker that crashes closes that connection only; its siblings and
the listener never notice. Stopping the tree stops the listener first (no new
connections), then every connection at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import supervision as sv


class Stats:
    """The counter every connection reports to, found through the registry."""

    def __init__(self) -> None:
        self.lines = 0


async def stats(ctx: sv.Context) -> None:
    ctx.register(Stats(), name="stats")  # gone with this incarnation: never a stale object
    await asyncio.Event().wait()


async def connection(ctx: sv.Context, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One client: echo each line upper-cased until it hangs up."""
    try:
        while line := await reader.readline():
            counter: Stats = await ctx.tree.wait_for("stats")
            counter.lines += 1
            writer.write(b"%d %s" % (counter.lines, line.upper()))
            await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def listener(port: int) -> sv.ChildSpec:
    async def listen(ctx: sv.Context) -> None:
        conns = ctx.tree.at("conns")

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await conns.start_child(reader, writer)
            except sv.TooManyChildren:
                writer.write(b"busy\n")
                writer.close()

        server = await asyncio.start_server(accepted, "127.0.0.1", port)
        async with server:
            ctx.ready()
            await server.serve_forever()

    return sv.child("listener", listen, ready=True)


def build(port: int = 8765) -> sv.Supervisor:
    return sv.Supervisor(
        [
            sv.child("conns", sv.DynamicSupervisor(connection, max_children=1000)),
            sv.child("stats", stats),
            listener(port),
        ],
        strategy="one_for_one",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    sv.run(lambda: build(args.port), control=None)


if __name__ == "__main__":
    main()
