"""Helpers for tests with real OS processes: /proc inspection and child programs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import supervision as sv
from supervision._process.proc import read_stat

PY = sys.executable

# A Python snippet a child runs to speak sd_notify.
NOTIFY = """
import os, socket
def notify(message):
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
"""


def once(path: str, then: str, first: str) -> list[str]:
    """A child that runs ``first`` on its first start (marking ``path``), ``then`` after."""
    script = f'if [ -e "{path}" ]; then {then}; fi; : > "{path}"; {first}'
    return ["sh", "-c", script]


stat = read_stat  # ``(state, ppid, pgrp, session)`` or None if there is no such process


def exists(pid: int) -> bool:
    """True while the pid names a process, zombies included."""
    return stat(pid) is not None


def state(pid: int) -> str:
    """The state letter of ``pid`` in ``/proc`` (``R``, ``S``, ``Z``...), or ``"gone"``."""
    found = stat(pid)
    return "gone" if found is None else found[0]


def alive(pid: int) -> bool:
    """True for a running (not zombie) process."""
    found = stat(pid)
    return found is not None and found[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as file:
                found.extend(int(p) for p in file.read().split())
        except OSError:
            pass
    return found


def descendants(pid: int | None = None) -> list[int]:
    """Every descendant of ``pid`` (default: this process), zombies included."""
    stack = children(os.getpid() if pid is None else pid)
    found: list[int] = []
    while stack:
        p = stack.pop()
        found.append(p)
        stack.extend(children(p))
    return found


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait for a condition on the outside world (/proc) that no event announces."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Block until ``pid`` has exited (via its pidfd); reap it if it is ours."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            return False
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
        return True
    finally:
        os.close(fd)


class start_watched:
    """``async with start_watched(spec) as (tree, events)``: the tree of ``spec``, with an
    event stream subscribed *before* its children start (so a child that exits at
    once is not missed). The children are added in order with ``start_child``."""

    def __init__(self, spec: sv.Supervisor, **options: Any) -> None:
        self.spec = spec
        self.options = options
        self.starting: Any = None

    async def __aenter__(self) -> tuple[sv.Tree, sv.EventStream]:
        self.starting = sv.start(self.spec.replace(children=()), **self.options)
        tree = await self.starting.__aenter__()
        events = tree.events()
        try:
            for child in self.spec.children:
                await tree.start_child(child)
        except BaseException:
            await tree.stop()
            raise
        return tree, events

    async def __aexit__(self, *exc: Any) -> None:
        await self.starting.__aexit__(*exc)
