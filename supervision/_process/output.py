"""A process child's stdout and stderr, read line by line through the event loop, as
structured records.

With ``output="prefix"`` each stream is a pipe whose read end is watched by the
event loop (through the loop's ``Poller``): the supervisor never blocks on a child, reads only when there is
data, and hands each batch of complete lines to an output sink as an :class:`Output`
record (the child's path, the stream, the lines). The default sink,
:func:`write_prefixed`, writes them as ``path | line`` to the supervisor's own stdout
(or stderr, for the child's stderr); ``sv.run`` also keeps them in its log of recent
lines (what ``supervision logs`` reads), from the records themselves, never by
parsing text back. A partial line waits for its end, for EOF, or for 64 KiB to pile
up. When the child exits, the pipes are drained before its exit is reported, so the
last lines of a crashed child come out first.

Lines go out through a :class:`Sink` per stream (stdout, stderr), never with a
blocking write on the event loop: see there.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime
import fcntl
import os
import select
import sys
import termios
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TextIO, cast

from .._core.paths import Path, format_path
from .poller import poller

_CHUNK = 65536
_MAX_LINE = 65536
"""The longest line written out, in bytes of the child's output (before the prefix):
a longer line is cut in pieces of this size."""

DRAIN_AT_EXIT = 0.5  # seconds given to queued output at exit; a blocked stream is given up on

SINK_CAPACITY = 1 << 20
"""Bytes a sink holds for a slow or blocked stream before it drops output."""


class Sink:
    """The supervisor's own stdout or stderr, written without ever blocking the caller.

    The event loop must not block on its output: a pipe nobody reads (``cmd | less``
    left in the background, a stuck log collector) would freeze the tree, so no
    restart, no control request, no SIGTERM. Two designs keep it running: write
    non-blocking from the loop and drop what does not fit, or write from a thread
    through a bounded buffer. This is the second, because the first needs
    ``O_NONBLOCK`` on the fd, and that flag belongs to the *open file description*,
    which is shared with whoever else holds it (the shell, and children with
    ``output="inherit"``, which would get ``EAGAIN`` on their own writes). A thread
    blocked in ``write`` harms nobody: the loop only appends to a buffer of at most
    :data:`SINK_CAPACITY` bytes, under a lock held for an append. When the buffer is
    full, the data is dropped and counted; once the stream drains, the thread writes
    one line saying how much was lost, where it was lost (after what was queued
    before), and the counters stay in :attr:`dropped_bytes` and :attr:`dropped_writes`. The thread is a daemon: a
    process stopping while its stdout is blocked exits all the same (see :meth:`drain`).
    """

    def __init__(self, fd: int, capacity: int = SINK_CAPACITY) -> None:
        self.fd = fd
        self.capacity = capacity
        self.dropped_bytes = 0
        self.dropped_writes = 0
        # Output to write, and [bytes, writes] for what was dropped right there.
        self._chunks: deque[bytes | list[int]] = deque()
        self._size = 0  # bytes in _chunks, plus the batch being written
        self._busy = False  # the thread is writing a batch
        self._broken = False  # EPIPE, EBADF...: the stream is gone, drop silently
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._deferred: asyncio.AbstractEventLoop | None = None  # wakes the thread at its next turn

    def write(self, data: bytes) -> None:
        """Queue ``data``; drop it (counted) if the buffer is full. Never blocks."""
        with self._lock:
            if self._broken:
                return
            if self._size + len(data) > self.capacity:
                self.dropped_bytes += len(data)
                self.dropped_writes += 1
                last = self._chunks[-1] if self._chunks else None
                if isinstance(last, list):  # one note for consecutive drops
                    last[0] += len(data)
                    last[1] += 1
                    return
                self._chunks.append([len(data), 1])  # said where it happened, after what came before
            else:
                self._chunks.append(data)
                self._size += len(data)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"supervision output fd {self.fd}", daemon=True)
                self._thread.start()
            self._wake_soon()

    def _wake_soon(self) -> None:
        """Wake the thread; from an event loop, at the loop's next turn (once per
        turn, however many writes): a thread woken now would contend for the GIL
        with the callback that wrote (a restart, a spawn). Called with the lock held."""
        loop = asyncio._get_running_loop()
        if loop is None:
            self._wake.notify()
        elif self._deferred is not loop:
            try:
                loop.call_soon(self._wake_now)
            except RuntimeError:  # the loop is closing
                self._wake.notify()
            else:
                self._deferred = loop

    def _wake_now(self) -> None:
        with self._wake:
            self._deferred = None
            self._wake.notify()

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued is written, at most ``timeout`` seconds (at
        exit, before a re-exec). False if the stream is still blocked."""
        with self._wake:
            self._deferred = None  # a wake-up a loop still owes: due now
            self._wake.notify()
            return self._wake.wait_for(lambda: not (self._chunks or self._busy) or self._broken, timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: bool(self._chunks))
                items = list(self._chunks)
                self._chunks.clear()
                self._busy = True
            size = sum(len(item) for item in items if isinstance(item, bytes))
            batch = b"".join(item if isinstance(item, bytes) else _drop_note(*item) for item in items)
            self._write_all(batch)
            with self._wake:
                self._size -= size
                self._busy = False
                self._wake.notify_all()

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except InterruptedError:
                continue
            except BlockingIOError:  # someone made the fd non-blocking: wait for room
                _wait_writable(self.fd)
            except OSError:  # EPIPE, EBADF: our output is gone for good
                with self._lock:
                    self._broken = True
                    self._chunks.clear()
                return


def _drop_note(lost: int, writes: int) -> bytes:
    return f"supervision: output blocked: dropped {lost} bytes in {writes} write(s) here\n".encode()


def _wait_writable(fd: int) -> None:
    select.select([], [fd], [], 1.0)


_sinks: dict[int, Sink] = {}
_sinks_lock = threading.Lock()


def sink(fd: int) -> Sink:
    """The process-wide sink of ``fd`` (1 or 2)."""
    with _sinks_lock:
        found = _sinks.get(fd)
        if found is None:
            if not _sinks:  # an application using sv.start exits without sv.run's drain
                atexit.register(drain_sinks, DRAIN_AT_EXIT)
            found = _sinks[fd] = Sink(fd)
        return found


def drain_sinks(timeout: float) -> None:
    """Let queued output out before the process exits or re-execs: at most
    ``timeout`` seconds in all (a blocked stream is given up on)."""
    deadline = time.monotonic() + timeout
    for found in list(_sinks.values()):
        found.drain(max(0.0, deadline - time.monotonic()))


def sink_for(stream: TextIO | None) -> Sink | None:
    """The sink that writes for ``stream``, if it is this process's real stdout or
    stderr (not a replacement: a test's capture, an application's wrapper)."""
    if stream is None or not any(stream is real for real in (sys.__stdout__, sys.__stderr__)):
        return None
    try:
        return sink(stream.fileno())
    except (OSError, ValueError):
        return None


class SinkStream:
    """A text stream that writes through a :class:`Sink`: the supervisor's
    ``sys.stdout``/``sys.stderr`` (and its log handler) while a tree runs. Anything
    but writing (``fileno``, ``isatty``, ``buffer``...) is the original stream's."""

    def __init__(self, target: Sink, original: TextIO) -> None:
        self.sink = target
        self.original = original

    def write(self, text: str) -> int:
        self.sink.write(text.encode(self.original.encoding or "utf-8", "replace"))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass  # the sink's thread writes as soon as it can; see ``drain_sinks``

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def non_blocking(stream: TextIO | None) -> TextIO | None:
    """``stream`` itself, or a :class:`SinkStream` for it if it is this process's
    real stdout or stderr."""
    found = sink_for(stream)
    if found is None or stream is None:
        return stream
    return cast(TextIO, SinkStream(found, stream))


@dataclass(frozen=True, slots=True)
class Output:
    """Complete lines a process child wrote on one of its streams (a line longer
    than 64 KiB comes in pieces of that size)."""

    path: Path
    stream: Literal["stdout", "stderr"]
    lines: tuple[str, ...]
    time: str | None = None
    """When the lines were read (ISO 8601), if the child's output asks for timestamps."""
    file: str | None = None
    """The log file the lines were written to (``sv.log_file``): the terminal sink
    leaves them out, ``supervision logs`` still shows them."""


OutputSink = Callable[[Output], None]
"""Where a child's output records go."""


def write_prefixed(record: Output) -> None:
    """The default sink: each line as ``path | line`` on our stdout (stderr for the
    child's stderr), never blocking the event loop under ``sv.run``. Output is
    dropped, never raised, if our own stream is gone."""
    target: TextIO | None = sys.stderr if record.stream == "stderr" else sys.stdout
    if target is None or record.file is not None:  # pythonw, or written to a log file
        return
    prefix = format_path(record.path)
    if record.time is not None:  # after the prefix, as `docker compose logs -t` writes it
        prefix = f"{prefix} | {record.time}"
        text = "".join(f"{prefix} {line}\n" for line in record.lines)
    else:
        text = "".join(f"{prefix} | {line}\n" for line in record.lines)
    if isinstance(target, SinkStream):  # sv.run's stdout/stderr: never blocks the loop
        target.sink.write(text.encode("utf-8", "replace"))
        return
    # Under sv.start the application owns its stdout: write through its own stream,
    # so that its print() calls and our lines never cut into each other (a second
    # writer on the same fd, such as a sink's thread, would split a print mid-line).
    try:
        target.write(text)
        target.flush()
    except (OSError, ValueError):  # our own stdout is gone: drop, never crash the tree
        pass


def timestamp() -> str:
    """Now, in ISO 8601 with milliseconds and the local UTC offset
    (``2025-01-31T12:00:00.123+01:00``)."""
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


class _Stream:
    __slots__ = ("fd", "partial", "to_stderr")

    def __init__(self, fd: int, to_stderr: bool) -> None:
        self.fd = fd
        self.to_stderr = to_stderr
        self.partial = b""


class PrefixedOutput:
    """Pipes for a child's stdout and stderr, read into :class:`Output` records.

    The pipes may serve the next incarnation too: a child restarted at once after
    an exit gets the same pipes (see ``ProcessIncarnation``), which saves their
    making and, since the write ends are kept open for it (:meth:`started` with
    ``keep_child_ends``), the wake-ups at each exit to read EOF and close. The
    exit drains what the pipes hold all the same (:meth:`drain`), partial lines
    included, before it is reported."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, path: Path, sink: OutputSink = write_prefixed, timestamps: bool = False
    ) -> None:
        self.loop = loop
        self.path = path
        self.sink = sink
        self.timestamps = timestamps
        self._reading = False
        out_read, self.child_stdout = os.pipe2(os.O_CLOEXEC)
        err_read, self.child_stderr = os.pipe2(os.O_CLOEXEC)
        self._streams = [_Stream(out_read, False), _Stream(err_read, True)]
        for stream in self._streams:
            fcntl.fcntl(stream.fd, fcntl.F_SETFL, os.O_NONBLOCK)  # a new pipe's read end: no other flag to keep

    @classmethod
    def adopt(
        cls,
        loop: asyncio.AbstractEventLoop,
        path: Path,
        fds: tuple[int, int],
        partial: tuple[bytes, bytes],
        sink: OutputSink = write_prefixed,
        timestamps: bool = False,
    ) -> PrefixedOutput:
        """Re-exec: take over the read ends (``-1``: closed already) the previous
        image of this process read from, and the partial lines it held. Reading
        begins at once; the fds are made close-on-exec again."""
        self = cls.__new__(cls)
        self.loop = loop
        self.path = path
        self.sink = sink
        self.timestamps = timestamps
        self.child_stdout = self.child_stderr = -1
        self._reading = True
        self._streams = []
        for fd, rest, to_stderr in zip(fds, partial, (False, True), strict=True):
            stream = _Stream(fd, to_stderr)
            stream.partial = rest
            if fd >= 0:
                os.set_inheritable(fd, False)
                os.set_blocking(fd, False)
                self._watch(stream)
            self._streams.append(stream)
        return self

    def handover(self) -> tuple[tuple[int, int], tuple[bytes, bytes]]:
        """Re-exec: the read ends (``-1`` once closed) and the partial lines held."""
        out, err = self._streams
        return (out.fd, err.fd), (out.partial, err.partial)

    def started(self, keep_child_ends: bool = False) -> None:
        """The child has its copies of the write ends: close ours (unless kept for a
        next incarnation: then no EOF comes at its exit), start reading (going on
        reading, for pipes that served an earlier incarnation)."""
        if not keep_child_ends:
            self.close_child_ends()
        if not self._reading:
            self._reading = True
            for stream in self._streams:
                self._watch(stream)

    @property
    def reusable(self) -> bool:
        """Whether a next incarnation can have these pipes: both still open, and
        our write ends with them."""
        out, err = self._streams
        return self.child_stdout >= 0 and self.child_stderr >= 0 and out.fd >= 0 and err.fd >= 0

    def close_child_ends(self) -> None:
        for fd in (self.child_stdout, self.child_stderr):
            if fd >= 0:
                os.close(fd)
        self.child_stdout = self.child_stderr = -1

    def _on_readable(self, stream: _Stream) -> None:
        self._read(stream, once=True)

    def _read(self, stream: _Stream, *, once: bool) -> None:
        # Draining is bounded: a pipe holds at most 1 MiB, and what a dead
        # child's leftovers might still be writing is not worth looping on.
        for _ in range(1 if once else 32):
            try:
                data = os.read(stream.fd, _CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._flush(stream)
                self._close(stream)
                return
            self._write(stream, stream.partial + data)

    def _write(self, stream: _Stream, data: bytes) -> None:
        *lines, rest = data.split(b"\n")
        if len(rest) >= _MAX_LINE:
            lines.append(rest)
            rest = b""
        stream.partial = rest
        if lines:
            self._emit(stream, lines)

    def _flush(self, stream: _Stream) -> None:
        if stream.partial:
            self._emit(stream, [stream.partial])
            stream.partial = b""

    def _emit(self, stream: _Stream, lines: list[bytes]) -> None:
        pieces = tuple(
            line[i : i + _MAX_LINE].decode("utf-8", "replace")
            for line in lines
            for i in range(0, max(len(line), 1), _MAX_LINE)
        )
        stamp = timestamp() if self.timestamps else None
        self.sink(Output(self.path, "stderr" if stream.to_stderr else "stdout", pieces, stamp))

    def _watch(self, stream: _Stream) -> None:
        """Read ``stream`` whenever it is readable (through the loop's ``Poller``)."""
        poller(self.loop).add(stream.fd, self._on_readable, stream)

    def _unwatch(self, stream: _Stream) -> None:
        poller(self.loop).remove(stream.fd)

    def _close(self, stream: _Stream) -> None:
        if stream.fd >= 0:
            self._unwatch(stream)
            os.close(stream.fd)
            stream.fd = -1

    def drain(self) -> None:
        """Read what the pipes hold now and write it out, partial lines too (the
        child has exited: its last line ends there)."""
        held = bytearray(4)
        for stream in self._streams:
            if stream.fd >= 0:
                fcntl.ioctl(stream.fd, termios.FIONREAD, held)  # empty, mostly: no read ending in EAGAIN
                if held != b"\0\0\0\0":
                    self._read(stream, once=False)
                self._flush(stream)

    def drain_and_close(self) -> None:
        """Read what the pipes hold now, write it out (partial lines too), close."""
        self.close_child_ends()
        for stream in self._streams:
            if stream.fd >= 0:
                self._read(stream, once=False)
                self._flush(stream)
                self._close(stream)
