"""Helpers for runtime tests: a puppet worker the test drives, and event waits."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import supervision as sv

WAIT = 5.0  # seconds: an upper bound for things that take milliseconds


class Died(Exception):
    """The error a puppet crashes with."""


class Puppet:
    """A worker whose every incarnation waits for the test to tell it how to exit.

    ``puppet.exit("a", "crash")`` makes the running incarnation of path ``a``
    crash; ``"normal"`` returns; ``"shutdown"`` raises ``sv.Shutdown``.
    ``puppet.fail_starts["a"] = n`` makes the next n starts of ``a`` fail
    (a ``ready=True`` child crashes before it is ready).
    """

    def __init__(self) -> None:
        self.orders: dict[str, asyncio.Queue[str]] = defaultdict(asyncio.Queue)
        self.fail_starts: dict[str, int] = defaultdict(int)
        self.running: set[str] = set()
        self.log: list[tuple[str, str]] = []  # (event, path) in the order they happened

    async def __call__(self, ctx: sv.Context) -> None:
        name = "/".join(ctx.path)
        self.log.append(("start", name))
        if self.fail_starts[name] > 0:
            self.fail_starts[name] -= 1
            raise Died(f"{name} fails to start")
        ctx.ready()
        self.running.add(name)
        try:
            order = await self.orders[name].get()
        finally:
            self.running.discard(name)
            self.log.append(("stop", name))
        if order == "normal":
            return
        if order == "shutdown":
            raise sv.Shutdown("asked to")
        raise Died(f"{name} died")

    def exit(self, path: str, how: str) -> None:
        self.orders[path].put_nowait(how)

    def starts(self) -> list[str]:
        return [path for event, path in self.log if event == "start"]

    def stops(self) -> list[str]:
        return [path for event, path in self.log if event == "stop"]


async def forever(ctx: sv.Context) -> None:
    await asyncio.Event().wait()


async def next_event(stream: sv.EventStream, match: Callable[[sv.Event], bool], timeout: float = WAIT) -> sv.Event:
    """Read events until one matches; fail the test after ``timeout`` seconds."""

    async def find() -> sv.Event:
        async for event in stream:
            if match(event):
                return event
        raise AssertionError("the event stream ended before the event came")

    return await asyncio.wait_for(find(), timeout)


def is_(kind: type[sv.Event], path: tuple[str, ...] | str | None = None, **fields: Any) -> Callable[[sv.Event], bool]:
    """A predicate for :func:`next_event`: an event of this type, path and fields."""
    if isinstance(path, str):
        path = tuple(p for p in path.split("/") if p)

    def match(event: sv.Event) -> bool:
        if not isinstance(event, kind):
            return False
        if path is not None and event.path != path:
            return False
        return all(getattr(event, k) == v for k, v in fields.items())

    return match


def statuses(handle: sv.Handle) -> dict[str, str]:
    return {c.id: c.status.value for c in handle.which_children()}
