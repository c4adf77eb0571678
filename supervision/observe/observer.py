"""The observability of one running tree, in one object the service holds.

:class:`Observer` follows the tree's events (``counters``) and adds the figures
to a status JSON on request (``decorate``: resources from ``procstat`` in a
worker thread, start failures, recent restarts, reloads, escalation).
:class:`CommandSource` is what the HTTP endpoint serves: the control
commands' handler (``status``, ``restart``, ...) and the tree's events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .counters import Counters
from .figures import add_resources, process_pids, walk
from .procstat import Sampler

RECENT_EVENTS = 20
"""How many of the last events a status carries (``"events"``)."""

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class Observer:
    """Counts from events, figures on request. Nothing here runs by itself."""

    def __init__(self, now: Callable[[], float], *, sampler: Sampler | None = None) -> None:
        self.now = now
        self.sampler = sampler if sampler is not None else Sampler()
        self.counters = Counters()

    async def follow(self, events: Any) -> None:
        """Feed the counters with ``events`` (an ``EventStream``) until it ends."""
        await self.counters.follow(events)

    async def decorate(self, status: dict[str, Any], *, resources: bool = True) -> dict[str, Any]:
        """Add the figures of ``figures`` to a status JSON (in place; returned too)."""
        counters = self.counters
        now = self.now()
        status["escalating"] = counters.gave_up is not None
        status["reloads"] = dict(counters.reloads)
        status["events"] = list(counters.events)[-RECENT_EVENTS:]
        failures, restarts = counters.start_failures, counters.restarts
        for node, _ in walk(status):
            path = node["path"]
            node["start_failures"] = failures.get(path, 0)
            node["recent_restarts"] = counters.recent_restarts(path, now) if path in restarts else []
        if resources:
            usage = await self.sampler.sample_async(process_pids(status))
            add_resources(status, usage)
        return status


class CommandSource:
    """An ``http.Source`` over the control commands and the tree's events."""

    def __init__(self, handler: Handler, events: Callable[[], AsyncIterator[Any]]) -> None:
        self.handler = handler
        self._events = events

    async def status(self, *, resources: bool = True) -> dict[str, Any]:
        return await self.handler({"v": 1, "cmd": "status", "resources": resources})

    def events(self) -> AsyncIterator[Any]:
        return self._events()

    async def command(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.handler({"v": 1, **request})
