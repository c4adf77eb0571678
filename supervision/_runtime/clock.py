"""Clocks: where the runtime reads time and sets timers.

The core never reads a clock; the runtime asks one of these. Tests inject a
``supervision.testing.ManualClock`` so restart windows and backoff delays pass
without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the runtime needs of a clock: the time, and callbacks at a time.

    >>> import supervision as sv
    >>> from supervision.testing import ManualClock
    >>> clock: sv.Clock = ManualClock()        # any object with now() and call_at()
    >>> fired = []
    >>> handle = clock.call_at(2.0, lambda: fired.append(clock.now()))
    >>> clock.advance(3.0); fired
    [2.0]
    """

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` (from the event loop) once ``now() >= when``."""
        ...


class LoopClock:
    """The default clock: the running event loop's monotonic time and timers.

    >>> import asyncio, supervision as sv
    >>> async def main():
    ...     clock = sv.LoopClock()                    # the running loop's time and timers
    ...     fired = asyncio.Event()
    ...     clock.call_at(clock.now() + 0.01, fired.set)
    ...     await fired.wait()
    ...     print(clock.now() <= asyncio.get_running_loop().time())
    >>> asyncio.run(main())
    True
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        # Read at each restart: no frame of our own, nor the loop's where its time()
        # is asyncio's own (which returns time.monotonic()).
        plain = type(self._loop).time is asyncio.BaseEventLoop.time
        self.now = time.monotonic if plain else self._loop.time  # type: ignore[method-assign]

    def now(self) -> float:
        return self._loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return self._loop.call_at(when, callback)
