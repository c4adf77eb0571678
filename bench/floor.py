"""The floors, run as supervisors of their own so the same outside observer times them.

    python bench/floor.py respawn --method pidfd --cycles 200 -- /bin/false
    python bench/floor.py hold --method posix --count 500 -- /bin/sleep 100000

``respawn``: start the program, wait for its exit, reap it, start it again, ``--cycles``
times, then exit. ``hold``: start ``--count`` copies, sit idle until SIGTERM, then send
SIGTERM to each, reap them all and exit.

Methods (the spawn functions and the pidfd loop come from ``bench/process.py``):

- ``posix``: a blocking ``os.posix_spawn`` (new session) + ``waitpid`` loop: the bare floor;
- ``pidfd``: ``os.posix_spawn`` (new session) + ``pidfd_open`` + ``loop.add_reader``:
  the raw asyncio floor the goals are set against;
- ``same``: as ``pidfd``, spawning the way supervision does, with its own spawn code
  (``spawner().spawn``: ``PR_SET_PDEATHSIG`` through the exec helper's code, run in a
  ``CLONE_VFORK`` child of this process where it can be, new session, ``/dev/null``
  stdin, no fd of ours inherited): the same work without a tree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import process  # bench/process.py

METHODS = ("posix", "pidfd", "same")


def _spawner(method: str, argv: list[str]) -> Callable[..., int]:
    """A spawn function for ``argv`` with the signature ``process._respawn_pidfd`` calls."""
    spawn = process._spawn_same if method == "same" else process._spawn_raw
    return lambda *_ignored: spawn(*argv)


def respawn(method: str, cycles: int, argv: list[str]) -> None:
    if method == "posix":
        spawn = _spawner(method, argv)
        for _ in range(cycles):
            os.waitpid(spawn(), 0)
    else:
        asyncio.run(process._respawn_pidfd(cycles, _spawner(method, argv)))


def hold_posix(count: int, argv: list[str]) -> None:
    stop = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)  # caught, so reset to the default in the children
    spawn = _spawner("posix", argv)
    pids = [spawn() for _ in range(count)]
    while not stop:
        signal.pause()
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for pid in pids:
        os.waitpid(pid, 0)


async def hold_pidfd(method: str, count: int, argv: list[str]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    spawn = _spawner(method, argv)
    live: dict[int, int] = {}  # pid -> pidfd
    gone = asyncio.Event()

    def on_exit(pid: int, fd: int) -> None:
        loop.remove_reader(fd)
        os.waitid(os.P_PIDFD, fd, os.WEXITED)
        os.close(fd)
        del live[pid]
        if not live:
            gone.set()

    for _ in range(count):
        pid = spawn()
        fd = os.pidfd_open(pid)
        live[pid] = fd
        loop.add_reader(fd, on_exit, pid, fd)
    await stop.wait()
    for fd in list(live.values()):
        signal.pidfd_send_signal(fd, signal.SIGTERM)
    if live:
        await gone.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("respawn", "hold"))
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("argv", nargs="+")
    args = parser.parse_args()
    if args.mode == "respawn":
        respawn(args.method, args.cycles, args.argv)
    elif args.method == "posix":
        hold_posix(args.count, args.argv)
    else:
        asyncio.run(hold_pidfd(args.method, args.count, args.argv))


if __name__ == "__main__":
    main()
