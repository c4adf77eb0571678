"""A small real stack under one supervisor: OS processes and a worker, side by side.

- ``web``: ``python -m http.server`` on a free port; ready once the port accepts
  connections (``sv.ready.port``), so nothing after it starts before it serves.
- ``poller``: a dependent process that fetches a page from ``web`` every 0.2 s and
  announces itself ready (``sv.ready.notify()``) after its first successful fetch.
  It dies if ``web`` is gone; ``rest_for_one`` restarts it after ``web`` is ready again.
- ``flaky``: an in-process worker that crashes now and then, and is restarted.
- halfway through, the example kills ``web`` itself (SIGKILL) to show the
  dependency restart.

Run it::

    python examples/process_stack.py --seconds 5

It stops the tree by itself after ``--seconds`` and prints what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import socket
import sys
import tempfile
from collections import Counter

import supervision as sv

POLLER = """
import os, socket, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/"
def notify(message):
    address = os.environ["NOTIFY_SOCKET"]
    address = "\\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
ready = False
while True:
    with urllib.request.urlopen(url, timeout=2) as response:  # raises once web is gone
        size = len(response.read())
    if not ready:
        notify(f"READY=1\\nSTATUS=fetched {size} bytes")
        print(f"first fetch: {size} bytes", flush=True)
        ready = True
    time.sleep(0.2)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def build(port: int, root: str, rng: random.Random) -> sv.Supervisor:
    async def flaky(ctx: sv.Context) -> None:
        """A worker that crashes now and then (0.2 to 0.8 s after each start)."""
        await asyncio.sleep(rng.uniform(0.2, 0.8))
        raise RuntimeError(f"flaky crashed (start #{ctx.starts})")

    python = sys.executable
    return sv.Supervisor(
        [
            sv.process(
                "web",
                [python, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", root],
                ready=sv.ready.port(port),
                ready_timeout=10,
                shutdown=2.0,
            ),
            sv.process("poller", [python, "-c", POLLER, str(port)], ready=sv.ready.notify(), ready_timeout=10),
            sv.child("flaky", flaky),
        ],
        strategy="rest_for_one",
        intensity=10,
        period=2.0,
    )


async def main(seconds: float, seed: int) -> int:
    logging.getLogger("supervision").setLevel(logging.CRITICAL)  # we print the events ourselves
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as root:
        with open(f"{root}/index.html", "w") as page:
            page.write("<h1>supervised</h1>\n")
        port = free_port()
        restarts: Counter[str] = Counter()
        async with sv.start(build(port, root, rng)) as tree:
            print("started:", " ".join(f"{c.id}(pid={c.pid})" for c in tree.which_children()), flush=True)

            async def watch() -> None:
                async for event in tree.events():
                    if isinstance(event, sv.ChildStarted) and event.starts > 1:
                        restarts["/".join(event.path)] += 1
                    path = "/".join(event.path)
                    if isinstance(event, sv.ChildStarted):
                        print(f"event: {path} started (#{event.starts}, pid {event.pid})", flush=True)
                    elif isinstance(event, sv.ChildExited):
                        how = f"status {event.exit_status}" if event.exit_status is not None else ""
                        how = f"signal {event.signal}" if event.signal is not None else how
                        print(f"event: {path} exited: {event.reason} {how} {event.error or ''}".rstrip(), flush=True)

            watcher = asyncio.create_task(watch())
            await asyncio.sleep(seconds / 2)
            web = tree.which_children()[0].pid
            if web is not None:
                print(f"killing web (pid {web}) with SIGKILL", flush=True)
                os.kill(web, signal.SIGKILL)  # a running child's pid is not reused until reaped
            await asyncio.sleep(seconds / 2)
            final = tree.which_children()
        await watcher
        print("final:", " ".join(f"{c.id}={c.pid}" for c in final if c.pid is not None), flush=True)
        print("restarts:", dict(sorted(restarts.items())), flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the flaky worker's crashes")
    options = parser.parse_args()
    sys.exit(asyncio.run(main(options.seconds, options.seed if options.seed is not None else random.randrange(2**32))))
