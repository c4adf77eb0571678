"""What the events say beyond ``which_children()``, kept for status, metrics and
the termination message: start failures per path, reloads by outcome, the times
of recent restarts (the sparkline of ``top``), the root's give-up, and the last
events as JSON.

Fed with the tree's events (:meth:`Counters.follow`), never by a timer. Bounded:
at most ``max_paths`` paths (least recently changed first out), ``max_restarts``
restart times per path and ``max_events`` recent events.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterable
from typing import Any

from .._core.events import (
    ChildStarted,
    ChildStartFailed,
    Event,
    ReloadApplied,
    ReloadRejected,
    SupervisorGaveUp,
)
from .figures import event_json


class Counters:
    """Counts and recent history, from the tree's events, by path as the status
    JSON writes it (``"db/pool"``)."""

    def __init__(self, *, max_paths: int = 10_000, max_restarts: int = 32, max_events: int = 64) -> None:
        self.max_paths = max_paths
        self.max_restarts = max_restarts
        self.start_failures: OrderedDict[str, int] = OrderedDict()
        self.restarts: OrderedDict[str, deque[float]] = OrderedDict()
        self.reloads = {"applied": 0, "rejected": 0}
        self._events: deque[tuple[Event, float]] = deque(maxlen=max_events)
        self.gave_up: BaseException | None = None
        """The ``TooManyRestarts`` of the root, once it gave up."""

    @property
    def events(self) -> list[dict[str, Any]]:
        """The last events as JSON (``figures.event_json``), each with ``"at"``, the
        wall clock when it happened; made when asked for, not at each event (a crash
        loop would pay for it twice per restart)."""
        return [{**event_json(event), "at": at} for event, at in self._events]

    def observe(self, event: Event) -> None:
        # wall clock: shown to people (the event's time is monotonic)
        self._events.append((event, time.time()))
        if isinstance(event, ChildStarted):
            if event.starts > 1:
                path = "/".join(event.path) or "/"
                times = self.restarts.get(path)
                if times is None:
                    times = self.restarts[path] = deque(maxlen=self.max_restarts)
                times.append(event.time)
                _touch(self.restarts, path, self.max_paths)
        elif isinstance(event, ChildStartFailed):
            path = "/".join(event.path) or "/"
            self.start_failures[path] = self.start_failures.get(path, 0) + 1
            _touch(self.start_failures, path, self.max_paths)
        elif isinstance(event, ReloadApplied):
            self.reloads["applied"] += 1
        elif isinstance(event, ReloadRejected):
            self.reloads["rejected"] += 1
        elif isinstance(event, SupervisorGaveUp) and event.path == ():
            self.gave_up = event.error

    async def follow(self, events: AsyncIterable[Event]) -> None:
        """Observe every event of ``events`` until it ends."""
        async for event in events:
            self.observe(event)

    def recent_restarts(self, path: str, now: float, window: float = 600.0) -> list[float]:
        """How long ago (seconds, newest last) the restarts of ``path`` within ``window`` happened."""
        times = self.restarts.get(path)
        if not times:
            return []
        return [round(now - when, 3) for when in times if now - when <= window]

    def figures(self, path: str, now: float) -> dict[str, Any]:
        """The fields this adds to a child's node in the status JSON."""
        return {
            "start_failures": self.start_failures.get(path, 0),
            "recent_restarts": self.recent_restarts(path, now),
        }


def _touch(table: OrderedDict[str, Any], key: str, limit: int) -> None:
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)
