"""Log files the supervisor writes for its process children: rotation by size,
timestamps, and reopening for an external logrotate (SIGUSR1).

``output=sv.log_file(path, max_bytes=10 << 20, backups=3, timestamps=True)``:
the child's stdout and stderr are pipes, read line by line through the event
loop (the reading is :class:`~supervision._output.PrefixedOutput`'s), and the
lines are appended to ``path``. When the next lines would take the file past
``max_bytes``, it is rotated first: ``path.2`` becomes ``path.3``, ``path.1``
``path.2``, ``path`` ``path.1``, and a new ``path`` begins (``backups=0``:
the file is emptied instead). A rotation happens between two lines, never
inside one; a line longer than ``max_bytes`` gets a file of its own.

The event loop never writes to a file: a disk can be slow (NFS, a full
journal), and a ``write`` or ``rename`` that blocks would stop every restart,
signal and control request. Lines go to a bounded queue per file, written by
one thread for all files (:class:`Writer`). Nothing is dropped: when a file's
queue holds more than :data:`HIGH_WATER` bytes, its children's pipes are no
longer read until the queue is below :data:`LOW_WATER`, so a child that
outwrites the disk blocks in its own ``write``, as it would writing the file
itself, and the supervisor stays responsive.

SIGUSR1 (``reopen()``) closes every log file and opens it again by its name, so
that after logrotate has renamed ``web.log`` the supervisor writes to a new
``web.log``; supervisord and nginx do the same.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any

from .._core.errors import SpecError
from .._core.paths import Path
from .._core.settings import LogFile, Prefixed
from .output import _MAX_LINE, Output, OutputSink, PrefixedOutput, timestamp, write_prefixed

logger = logging.getLogger("supervision")

HIGH_WATER = 1 << 20
"""Bytes queued for one file beyond which its children's output is not read."""
LOW_WATER = 256 << 10
"""Bytes queued below which reading resumes."""
DRAIN_AT_EXIT = 5.0
"""Seconds given to queued lines at exit (a disk is slow, not gone: more than a terminal gets)."""

_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}
_SIZE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


def log_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int | str | None = None,
    backups: int = 5,
    timestamps: bool = False,
) -> LogFile:
    """Write a process child's output (stdout and stderr) to the file ``path``.

    - ``max_bytes``: rotate the file before it would grow past this size (an
      integer, or a string like ``"10MB"``, ``"512KB"``, ``"1GB"``: powers of
      1024, as supervisord reads them); None: never (rotate externally, then send
      SIGUSR1 to the supervisor to reopen it).
    - ``backups``: how many rotated files to keep (``path.1`` is the newest);
      0 empties the file instead.
    - ``timestamps``: begin each line with the time it was read, in ISO 8601
      (``2025-01-31T12:00:00.123+01:00 ...``).

    A relative path is taken from the current directory.

    >>> import supervision as sv
    >>> sv.log_file("/var/log/web.log", max_bytes="10MB", backups=3)
    LogFile(path='/var/log/web.log', max_bytes=10485760, backups=3, timestamps=False)
    >>> spec = sv.process("web", ["./web"], output=sv.log_file("/var/log/web.log", timestamps=True))
    """
    where: Path = ()
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path or "\0" in path or path.endswith("/"):
        raise SpecError(where, "output", f"a log file must be a file path, got {path!r}")
    size = parse_size(where, "output.max_bytes", max_bytes)
    if size is not None and size <= 0:
        raise SpecError(where, "output.max_bytes", f"must be > 0, got {max_bytes!r}")
    if isinstance(backups, bool) or not isinstance(backups, int) or not 0 <= backups <= 1000:
        raise SpecError(where, "output.backups", f"must be an integer in 0..1000, got {backups!r}")
    if not isinstance(timestamps, bool):
        raise SpecError(where, "output.timestamps", f"must be True or False, got {timestamps!r}")
    return LogFile(os.path.abspath(path), size, backups, timestamps)


def prefixed(*, timestamps: bool = False) -> Prefixed | str:
    """Write a process child's lines to the supervisor's stdout and stderr, with
    its path as prefix (what ``output="prefix"`` does), each line with the time it
    was read in ISO 8601 after the prefix, as ``docker compose logs -t`` writes
    them::

        web | 2025-01-31T12:00:00.123+01:00 listening on :8000

    >>> import supervision as sv
    >>> spec = sv.process("web", ["./web"], output=sv.prefixed(timestamps=True))
    >>> sv.prefixed()  # without timestamps: the default output
    'prefix'
    """
    if not isinstance(timestamps, bool):
        raise SpecError((), "output.timestamps", f"must be True or False, got {timestamps!r}")
    return Prefixed(True) if timestamps else "prefix"


def parse_size(path: Path, field: str, value: Any) -> int | None:
    """A size in bytes: an integer, or a string like ``"10MB"`` (powers of 1024)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SpecError(path, field, f"must be a size like 1048576 or '10MB', got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        found = _SIZE.match(value)
        if found and found.group(2).upper() in _UNITS:
            return int(found.group(1)) * _UNITS[found.group(2).upper()]
    raise SpecError(path, field, f"must be a size like 1048576 or '10MB', got {value!r}")


# -- writing ---------------------------------------------------------------------


class RotatingFile:
    """One log file: its queue (filled by the event loop) and its descriptor
    (used by the writer thread only). Shared by the children that write the same
    path; :meth:`close` when the last one is done."""

    def __init__(self, writer: Writer, path: str, max_bytes: int | None, backups: int) -> None:
        self.writer = writer
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.users = 0
        self.pending = 0  # bytes queued, under the writer's lock
        self.chunks: list[bytes] = []
        self.paused: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []  # to resume below LOW_WATER
        self.closing = False
        # The writer thread's own:
        self._fd = -1
        self._size = 0
        self._broken: OSError | None = None

    def write(self, data: bytes) -> bool:
        """Queue whole lines (called on the event loop). True when the queue is
        past :data:`HIGH_WATER`: the caller stops reading until resumed."""
        return self.writer.queue(self, data)

    def pause_until_drained(self, loop: asyncio.AbstractEventLoop, resume: Callable[[], None]) -> None:
        """Call ``resume`` on ``loop`` once the queue is below :data:`LOW_WATER`."""
        self.writer.on_drained(self, loop, resume)

    def close(self) -> None:
        """One user fewer; the last one's close closes the file once written."""
        self.writer.release(self)

    # -- in the writer thread -------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._fd < 0:
            self._open()
        limit = self.max_bytes
        while data:
            if limit is None or self._size + len(data) <= limit:
                self._put(data)
                return
            room = limit - self._size
            cut = data.rfind(b"\n", 0, room) + 1  # whole lines that fit
            if cut == 0:
                if self._size > 0:  # not one more line fits: a new file
                    self._rotate()
                    continue
                cut = data.find(b"\n") + 1 or len(data)  # a line longer than max_bytes, alone
            self._put(data[:cut])
            data = data[cut:]
            self._rotate()

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            view = view[written:]
            self._size += written

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _rotate(self) -> None:
        self._close_fd()
        if self.backups == 0:
            os.truncate(self.path, 0)
        else:
            for n in range(self.backups - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.path}.{n}", f"{self.path}.{n + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._open()

    def _reopen(self) -> None:
        self._close_fd()  # opened again, by name, at the next write


class Writer:
    """The thread that writes every log file of this process (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._files: dict[str, RotatingFile] = {}
        self._ready: list[RotatingFile] = []  # files with queued chunks, or closing
        self._busy = 0  # files being written right now
        self._reopen = False
        self._thread: threading.Thread | None = None

    def open(self, path: str, max_bytes: int | None, backups: int) -> RotatingFile:
        """The file at ``path``, shared with other children writing it (the last
        settings given apply to all of them)."""
        with self._lock:
            found = self._files.get(path)
            if found is None:
                found = self._files[path] = RotatingFile(self, path, max_bytes, backups)
            found.max_bytes, found.backups = max_bytes, backups
            found.closing = False  # a restarted child takes its file back, still open
            found.users += 1
            return found

    def queue(self, file: RotatingFile, data: bytes) -> bool:
        with self._wake:
            file.chunks.append(data)
            file.pending += len(data)
            if file not in self._ready:
                self._ready.append(file)
            self._start()
            self._wake.notify()
            return file.pending > HIGH_WATER

    def on_drained(self, file: RotatingFile, loop: asyncio.AbstractEventLoop, resume: Callable[[], None]) -> None:
        with self._lock:
            if file.pending <= LOW_WATER:
                resume_now = True
            else:
                file.paused.append((loop, resume))
                resume_now = False
        if resume_now:
            resume()

    def release(self, file: RotatingFile) -> None:
        with self._wake:
            file.users -= 1
            if file.users > 0:
                return
            file.closing = True
            if file not in self._ready:
                self._ready.append(file)
            self._start()
            self._wake.notify()

    def reopen(self) -> None:
        """Close every log file and open it again by name (SIGUSR1): the writer
        does it before it writes anything more."""
        with self._wake:
            self._reopen = True
            self._start()
            self._wake.notify()

    def drain(self, timeout: float) -> bool:
        """Wait until every queued line is written, at most ``timeout`` seconds
        (at exit, before a re-exec). False if some are still queued."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._ready and not self._busy and not self._reopen, timeout)

    def _start(self) -> None:  # under the lock
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="supervision log files", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            files: list[RotatingFile] = []
            chunks: list[bytes] = []
            with self._wake:
                self._wake.wait_for(lambda: bool(self._ready) or self._reopen)
                reopening = self._reopen
                if reopening:
                    self._reopen = False
                    files = list(self._files.values())
                else:
                    files = [self._ready.pop(0)]
                    chunks, files[0].chunks = files[0].chunks, []
                self._busy += 1
            try:
                if reopening:
                    for file in files:
                        file._reopen()
                else:
                    self._write(files[0], chunks)
            finally:
                with self._wake:
                    self._busy -= 1
                    self._wake.notify_all()

    def _write(self, file: RotatingFile, chunks: list[bytes]) -> None:
        data = b"".join(chunks)
        if data and file._broken is None:
            try:
                file._write(data)
            except OSError as exc:  # a full disk, a directory gone: said once, then dropped
                file._broken = exc
                logger.error("log file %s: %s; its output is dropped until it is reopened (SIGUSR1)", file.path, exc)
                file._close_fd()
        resumers: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        with self._lock:
            file.pending -= len(data)
            if file.pending <= LOW_WATER and file.paused:
                resumers, file.paused = file.paused, []
            closing = file.closing and not file.chunks
            if closing and self._files.get(file.path) is file:
                del self._files[file.path]
        if closing:
            file._close_fd()
        for loop, resume in resumers:
            if loop.is_closed():
                continue
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(resume)


_writer: Writer | None = None
_writer_lock = threading.Lock()


def writer() -> Writer:
    """The process-wide writer of log files."""
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = Writer()
            atexit.register(drain, DRAIN_AT_EXIT)
        return _writer


def reopen() -> None:
    """Reopen every log file by name (for SIGUSR1, after an external rotation);
    a file whose writes failed is tried again."""
    found = _writer
    if found is not None:
        with found._lock:
            for file in found._files.values():
                file._broken = None
        found.reopen()


def drain(timeout: float) -> bool:
    """Let queued lines reach their files before this process exits or re-execs."""
    found = _writer
    return True if found is None else found.drain(timeout)


# -- the output of one child -------------------------------------------------------


def _check_writable(path: str) -> None:
    """Fail the start, as ``output="/path"`` does, if the file cannot be written (no
    such directory, no permission): said at once, not by the writer later. Without
    opening it: an open can block (a FIFO without a reader), the writer's job."""
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if not os.access(directory, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


class FileOutput(PrefixedOutput):
    """A child's stdout and stderr, read as :class:`PrefixedOutput` reads them and
    written to a :class:`LogFile`: as bytes, unchanged, each line after an optional
    timestamp. The records still go to the sink, marked with the file (the terminal
    sink leaves them out; ``supervision logs`` shows them)."""

    file: RotatingFile
    spec: LogFile
    _paused: bool
    _released: bool

    def __init__(
        self, loop: asyncio.AbstractEventLoop, path: Path, spec: LogFile, sink: OutputSink = write_prefixed
    ) -> None:
        _check_writable(spec.path)
        super().__init__(loop, path, sink, spec.timestamps)
        self._attach(spec)

    @classmethod
    def adopt_file(
        cls,
        loop: asyncio.AbstractEventLoop,
        path: Path,
        fds: tuple[int, int],
        partial: tuple[bytes, bytes],
        spec: LogFile,
        sink: OutputSink = write_prefixed,
    ) -> FileOutput:
        """Re-exec: take over the pipes of the previous image (see ``PrefixedOutput.adopt``;
        its readers run from the next turn of the loop, once the file is attached)."""
        self = cls.adopt(loop, path, fds, partial, sink, spec.timestamps)
        assert isinstance(self, FileOutput)
        self._attach(spec)
        return self

    def _attach(self, spec: LogFile) -> None:
        found = writer()
        self.spec = spec
        self.file = found.open(spec.path, spec.max_bytes, spec.backups)
        self._paused = False
        self._released = False

    def _emit(self, stream: Any, lines: list[bytes]) -> None:
        stamp = timestamp() if self.timestamps else None
        head = (stamp + " ").encode() if stamp is not None else b""
        pieces = [line[i : i + _MAX_LINE] for line in lines for i in range(0, max(len(line), 1), _MAX_LINE)]
        if self.file.write(b"".join(head + piece + b"\n" for piece in pieces)):
            self._pause()
        text = tuple(piece.decode("utf-8", "replace") for piece in pieces)
        self.sink(Output(self.path, "stderr" if stream.to_stderr else "stdout", text, stamp, self.spec.path))

    def _pause(self) -> None:
        if self._paused:
            return
        self._paused = True
        for stream in self._streams:
            if stream.fd >= 0:
                self._unwatch(stream)
        self.file.pause_until_drained(self.loop, self._resume)

    def _resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        for stream in self._streams:
            if stream.fd >= 0:
                self._watch(stream)

    def drain_and_close(self) -> None:
        """Read what the pipes hold now, queue it for the file, close the pipes and
        let the file go (written and closed by the writer once it is the last user)."""
        self._paused = False
        super().drain_and_close()
        if not self._released:
            self._released = True
            self.file.close()
