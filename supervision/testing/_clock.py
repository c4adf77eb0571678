"""A clock that only moves when the test says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable


class _Timer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """An injectable clock for ``sv.start(spec, clock=...)`` and for the core.

    Time stands still until :meth:`advance`; timers due by then fire in order,
    synchronously, inside the call. A timer set for a time already reached (a
    retry without backoff) fires from the event loop right away.

    >>> clock = ManualClock()
    >>> fired = []
    >>> _ = clock.call_at(1.0, lambda: fired.append(clock.now()))
    >>> clock.advance(2.5); fired
    [1.0]
    >>> clock.now()
    2.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        """Store a timer. One already due (``when <= now()``) fires soon from the
        running event loop, if there is one, as a real clock's would."""
        timer = _Timer(callback)
        if when <= self._now:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                loop.call_soon(self._fire, timer)
                return timer
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    @staticmethod
    def _fire(timer: _Timer) -> None:
        if not timer.cancelled:
            timer.cancelled = True
            timer.callback()

    def advance(self, seconds: float) -> None:
        """Move time forward, firing each due timer at its own time."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            self._fire(timer)
        self._now = target

    @property
    def pending(self) -> int:
        """How many timers are still waiting."""
        return sum(1 for _, _, t in self._timers if not t.cancelled)

    def next_deadline(self) -> float | None:
        """When the next live timer is due, or None."""
        live = [when for when, _, t in self._timers if not t.cancelled]
        return min(live) if live else None
