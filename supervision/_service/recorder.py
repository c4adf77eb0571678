"""What ``supervision status`` and ``supervision logs`` show beyond ``which_children()``:
per-path start time (uptime) and last exit, recorded from the tree's events as
the tree emits them, and the recent output lines of each process child.

Output: the tree hands each process child's lines (``output="prefix"``, the default)
to ``sv.run`` as structured records (``_process.output.Output``: path, stream,
lines); :class:`OutputLog` keeps a bounded ring buffer of them per path, while they
are also written out as ``path | line``. Nothing is parsed back from text, so a
line that a program prints as ``web | ...`` is never credited to the child ``web``.
Lines of children started with ``output="inherit"`` or a file are not seen.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._core.events import ChildExited, ChildStarted, Event
from .._core.paths import Path, format_path
from .._process.output import Output


@dataclass(frozen=True, slots=True)
class LastExit:
    """How a child last exited, and when (tree clock)."""

    reason: str
    time: float
    exit_status: int | None = None
    signal: int | None = None
    error: str | None = None

    def to_state(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "time": self.time,
            "exit_status": self.exit_status,
            "signal": self.signal,
            "error": self.error,
        }

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "exit_status": self.exit_status,
            "signal": self.signal,
            "error": self.error,
            "ago": round(now - self.time, 3),
        }


class Recorder:
    """Per-path start times and last exits, fed with the tree's events
    synchronously, as the core emits them (``Tree._observe``), so that they
    agree with the tree's state at any moment: a lagging ``events()`` reader
    would show a new pid with the last exit not recorded yet.

    Bounded: at most ``max_paths`` paths are remembered, least recently
    changed first out (dynamic children may come and go for ever).
    """

    def __init__(self, since: float, max_paths: int = 10_000) -> None:
        self.since = since
        """When the recorder began: the start time of children already running then."""
        self.max_paths = max_paths
        self._started: OrderedDict[Path, float] = OrderedDict()
        self._exits: OrderedDict[Path, LastExit] = OrderedDict()
        self.processes: set[Path] = set()
        """Paths seen running with a pid."""

    def observe(self, event: Event) -> None:
        if isinstance(event, ChildStarted):
            _put(self._started, event.path, event.time, self.max_paths)
            if event.pid is not None:
                self.processes.add(event.path)
        elif isinstance(event, ChildExited):
            error = None if event.error is None else str(event.error) or type(event.error).__name__
            last = LastExit(str(event.reason), event.time, event.exit_status, event.signal, error)
            _put(self._exits, event.path, last, self.max_paths)

    def started(self, path: Path) -> float:
        return self._started.get(path, self.since)

    def handover(self) -> dict[str, Any]:
        """Re-exec: start times and last exits as JSON values (times are the
        loop's monotonic clock, which an exec does not reset)."""
        return {
            "since": self.since,
            "started": [[list(path), since] for path, since in self._started.items()],
            "exits": [[list(path), exit.to_state()] for path, exit in self._exits.items()],
            "processes": [list(path) for path in self.processes],
        }

    def restore(self, state: dict[str, Any], kept: Iterable[Path]) -> None:
        """Re-exec: take back the last exits, and the start times of the paths
        ``kept`` that still run the same incarnation (adopted processes, supervisors)."""
        started = {tuple(path): since for path, since in state["started"]}
        for path in kept:
            if path not in self._started:
                _put(self._started, path, started.get(path, state["since"]), self.max_paths)
        for raw, exit in state["exits"]:
            path = tuple(raw)
            if path not in self._exits:
                _put(self._exits, path, LastExit(**exit), self.max_paths)
        self.processes.update(tuple(path) for path in state["processes"])

    def last_exit(self, path: Path) -> LastExit | None:
        return self._exits.get(path)


def _put(table: OrderedDict[Path, Any], key: Path, value: Any, limit: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Line:
    seq: int
    time: float  # wall clock: shown to people
    path: str
    stream: str  # "stdout" or "stderr"
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "path": self.path, "stream": self.stream, "text": self.text}


class OutputLog:
    """The last ``lines_per_path`` output lines of each process child.

    Fed with the children's output records (:meth:`record`), by path: a line is
    credited to the child that wrote it, whatever its text says. Memory is bounded:
    lines are cut at ``max_line`` characters, and beyond ``max_bytes`` in all the
    oldest lines of the least recently active paths go first.
    """

    def __init__(
        self, lines_per_path: int = 500, max_paths: int = 1024, max_line: int = 8192, max_bytes: int = 16 << 20
    ) -> None:
        self.lines_per_path = lines_per_path
        self.max_paths = max_paths
        self.max_line = max_line
        self.max_bytes = max_bytes
        self._lines: OrderedDict[str, deque[Line]] = OrderedDict()
        self._bytes = 0
        self._seq = 0
        self.epoch = secrets.token_hex(8)
        """Names this log: the sequence numbers of another (a re-exec's new image) start again."""

    @property
    def seq(self) -> int:
        """The sequence number of the last line kept (``supervision logs -f`` asks for what follows)."""
        return self._seq

    def record(self, output: Output) -> None:
        """Keep the lines of one output record (an ``OutputSink``)."""
        path = format_path(output.path)
        for text in output.lines:
            self.add(path, output.stream, text)

    def add(self, path: str, stream: str, text: str, *, at: float | None = None) -> None:
        if len(text) > self.max_line:
            text = text[: self.max_line] + "..."
        lines = self._lines.get(path)
        if lines is None:
            lines = self._lines[path] = deque()
            while len(self._lines) > self.max_paths:
                self._drop(next(iter(self._lines)))
        self._lines.move_to_end(path)
        if len(lines) >= self.lines_per_path:
            self._bytes -= len(lines.popleft().text)
        self._seq += 1
        lines.append(Line(self._seq, time.time() if at is None else at, path, stream, text))
        self._bytes += len(text)
        while self._bytes > self.max_bytes:
            oldest = next(iter(self._lines))
            queue = self._lines[oldest]
            self._bytes -= len(queue.popleft().text)
            if not queue:
                del self._lines[oldest]

    def _drop(self, path: str) -> None:
        self._bytes -= sum(len(line.text) for line in self._lines.pop(path))

    def handover(self) -> list[list[Any]]:
        """Re-exec: every line kept, oldest first, as JSON values."""
        lines = sorted((line for queue in self._lines.values() for line in queue), key=lambda line: line.seq)
        return [[line.time, line.path, line.stream, line.text] for line in lines]

    def restore(self, lines: list[list[Any]]) -> None:
        """Re-exec: put back the lines of the previous image, before the new ones."""
        kept = self._lines
        self._lines = OrderedDict()
        self._bytes = 0
        for time_, path, stream, text in lines:
            self.add(path, stream, text, at=time_)
        for queue in kept.values():
            for line in queue:
                self.add(line.path, line.stream, line.text, at=line.time)

    def lines(self, path: str, limit: int, after: int = 0) -> list[Line]:
        """The last ``limit`` lines of ``path`` and of the process children under it
        (every process child for ``""``), in order; only those after sequence
        number ``after``, if given."""
        if path in ("", "/"):
            selected = list(self._lines.values())
        else:
            selected = [lines for p, lines in self._lines.items() if p == path or p.startswith(path + "/")]
        merged = sorted((line for lines in selected for line in lines if line.seq > after), key=lambda line: line.seq)
        return merged[-limit:] if limit > 0 else []
