"""Event delivery: to ``events()`` subscribers and to the ``"supervision"`` logger.

A subscriber has a bounded queue; a slow reader never blocks the tree. What a
full queue drops is counted (``EventStream.dropped``) and logged.

The hub holds its streams weakly. Breaking out of ``async for`` is the documented
way to stop reading, and it calls nothing on a class-based iterator: the stream
is simply dropped. A strong reference here would keep every abandoned stream
subscribed for the life of the tree, filling its queue with up to ``maxsize``
events (tracebacks included) and making every event cost one more offer. So a
stream unsubscribes when it is collected (at once in CPython, when the loop drops
it), when :meth:`EventStream.aclose` is called, and when the tree stops. Only
while a reader awaits the next event is its stream held strongly, so that a
consumer task nobody kept a reference to keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from typing import Any

from .._core.errors import SupervisionError
from .._core.events import ChildExited, ChildStartFailed, Event, ExitReason, ReloadRejected, SupervisorGaveUp, describe
from .._core.paths import Path

logger = logging.getLogger("supervision")

_CLOSED: Any = object()


class EventStream:
    """An async iterator over the events of one subtree, from its creation on.

    It ends when the tree stops. Break out of it (or call :meth:`aclose`) to
    unsubscribe early.

    >>> import asyncio, supervision as sv
    >>> from supervision.testing import crash
    >>> async def w(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("w", w)])) as tree:
    ...         events = tree.events()                 # subscribed from here on
    ...         crash(tree, "w")
    ...         async for event in events:
    ...             print(type(event).__name__, event.path)
    ...             if isinstance(event, sv.ChildStarted):
    ...                 break
    >>> asyncio.run(main())
    ChildExited ('w',)
    ChildStarted ('w',)

    """

    def __init__(self, hub: EventHub, prefix: Path, maxsize: int) -> None:
        self._hub = hub
        self._prefix = prefix
        self._depth = len(prefix)
        self._maxsize = maxsize
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0
        """How many events were dropped because the reader was too slow."""
        hub._subscribe(self)

    @property
    def subscribed(self) -> bool:
        """True while the stream receives the tree's events."""
        return self._hub._subscribed(self)

    def _offer(self, event: Event) -> None:
        if event.path[: self._depth] != self._prefix:
            return
        if len(self._queue) >= self._maxsize:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("events(): slow reader, %d event(s) dropped so far", self.dropped)
            return
        self._queue.append(event)
        self._wake()

    def _close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            # A reader waits: hold the stream (and through its waiter, the reading
            # task) strongly, so that a consumer task nobody kept a reference to is
            # not collected while it waits for the next event.
            self._hub._waiting.add(self)
            try:
                await self._waiter
            finally:
                self._waiter = None
                self._hub._waiting.discard(self)
        return self._queue.popleft()

    async def aclose(self) -> None:
        """Unsubscribe; iteration ends once the queued events are read."""
        self._hub._unsubscribe(self)
        self._close()


class EventHub:
    """Fans events out to subscribers and to the log."""

    def __init__(self) -> None:
        # id(stream) -> a weak reference whose callback unsubscribes the stream when
        # it is collected; a dict keeps the order of subscription.
        self._streams: dict[int, weakref.ref[EventStream]] = {}
        self._waiting: set[EventStream] = set()  # streams a reader awaits now: held strongly
        self.closed = False
        self._pending: list[tuple[int, Event, float]] = []  # logged at the loop's next turn, with their time

    def stream(self, prefix: Path, maxsize: int = 10_000) -> EventStream:
        stream = EventStream(self, prefix, maxsize)
        if self.closed:
            stream._close()
        return stream

    def _subscribe(self, stream: EventStream) -> None:
        key = id(stream)
        streams = self._streams

        def collected(ref: weakref.ref[EventStream]) -> None:
            if streams.get(key) is ref:  # not a later stream that reuses the id
                del streams[key]

        streams[key] = weakref.ref(stream, collected)

    def _unsubscribe(self, stream: EventStream) -> None:
        ref = self._streams.get(id(stream))
        if ref is not None and ref() is stream:
            del self._streams[id(stream)]

    def _subscribed(self, stream: EventStream) -> bool:
        ref = self._streams.get(id(stream))
        return ref is not None and ref() is stream

    @property
    def subscribers(self) -> int:
        """How many streams are subscribed now."""
        return len(self._streams)

    @property
    def observed(self) -> bool:
        """False when no stream listens and the logger would drop every event."""
        return bool(self._streams) or logger.isEnabledFor(logging.ERROR)

    def publish(self, event: Event) -> None:
        if self._streams:
            # A copy: offering may log, and a collection meanwhile may unsubscribe.
            for ref in list(self._streams.values()):
                stream = ref()
                if stream is not None:
                    stream._offer(event)
        if not logger.isEnabledFor(logging.ERROR):  # nothing is logged above ERROR
            return
        level = _level(event)
        if logger.isEnabledFor(level):
            self._log_soon(level, event)

    def _log_soon(self, level: int, event: Event) -> None:
        """Log the event at the loop's next turn (in order, all of one turn at
        once): a restart goes from the old process's exit to the new one's spawn
        without stopping to make and write a log record on the way. The record
        carries the time the event happened, not the time it was written (a
        group of 500 instances starts in one go: its lines come after it, each
        with its own time). Synchronous without a running loop."""
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush_log)
            except RuntimeError:  # no running loop (or it is closing)
                _log(level, event)
                return
        self._pending.append((level, event, time.time()))

    def flush_log(self) -> None:
        """Log the events still waiting for the loop's next turn."""
        pending, self._pending = self._pending, []
        for level, event, created in pending:
            _log(level, event, created)

    def close(self) -> None:
        """The tree has stopped: every stream ends after its queued events."""
        self.closed = True
        self.flush_log()
        refs = list(self._streams.values())
        self._streams.clear()
        for ref in refs:
            stream = ref()
            if stream is not None:
                stream._close()


def _log(level: int, event: Event, created: float | None = None) -> None:
    """One record for ``event``, made with the time it happened (``created``, now
    if None). The event travels with the record: --log-format json/journal show
    its fields."""
    if created is None:
        created = time.time()
    error = _traceback(event, level)
    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    extra = {"supervision_event": event}
    message = (describe(event),)
    record = logger.makeRecord(logger.name, level, __file__, _LOG_LINE, "%s", message, exc_info, "_log", extra)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    record.relativeCreated = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
    logger.handle(record)


_LOG_LINE = _log.__code__.co_firstlineno
"""The line the records of events name as theirs (journald's CODE_LINE)."""


def _level(event: Event) -> int:
    if isinstance(event, ChildExited):
        return logging.ERROR if event.reason is ExitReason.CRASH else logging.INFO
    if isinstance(event, (ChildStartFailed, SupervisorGaveUp, ReloadRejected)):
        return logging.ERROR
    return logging.INFO


def _traceback(event: Event, level: int) -> BaseException | None:
    """The exception whose traceback is worth logging: a user's, not our own."""
    error = getattr(event, "error", None)
    while isinstance(error, SupervisionError):
        error = error.__cause__  # our own errors say everything in one line
    return error if level >= logging.ERROR and isinstance(error, BaseException) else None
