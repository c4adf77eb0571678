"""A process child's stdout and stderr, read line by line through the event loop.

With ``output="prefix"`` each stream is a pipe whose read end is registered with
``loop.add_reader``: the supervisor never blocks on a child, reads only when
there is data, and writes each complete line as ``path | line`` to its own
stdout (or stderr, for the child's stderr). A partial line waits for its end,
for EOF, or for 64 KiB to pile up. When the child exits, the pipes are drained
before its exit is reported, so the last lines of a crashed child come out
first.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TextIO

_CHUNK = 65536
_MAX_LINE = 65536


class _Stream:
    __slots__ = ("fd", "partial", "to_stderr")

    def __init__(self, fd: int, to_stderr: bool) -> None:
        self.fd = fd
        self.to_stderr = to_stderr
        self.partial = b""


class PrefixedOutput:
    """Pipes for a child's stdout and stderr, forwarded with a prefix."""

    def __init__(self, loop: asyncio.AbstractEventLoop, prefix: str) -> None:
        self.loop = loop
        self.prefix = prefix
        out_read, self.child_stdout = os.pipe2(os.O_CLOEXEC)
        err_read, self.child_stderr = os.pipe2(os.O_CLOEXEC)
        self._streams = [_Stream(out_read, False), _Stream(err_read, True)]
        for stream in self._streams:
            os.set_blocking(stream.fd, False)

    @classmethod
    def adopt(
        cls, loop: asyncio.AbstractEventLoop, prefix: str, fds: tuple[int, int], partial: tuple[bytes, bytes]
    ) -> PrefixedOutput:
        """Re-exec: take over the read ends (``-1``: closed already) the previous
        image of this process read from, and the partial lines it held. Reading
        begins at once; the fds are made close-on-exec again."""
        self = cls.__new__(cls)
        self.loop = loop
        self.prefix = prefix
        self.child_stdout = self.child_stderr = -1
        self._streams = []
        for fd, rest, to_stderr in zip(fds, partial, (False, True), strict=True):
            stream = _Stream(fd, to_stderr)
            stream.partial = rest
            if fd >= 0:
                os.set_inheritable(fd, False)
                os.set_blocking(fd, False)
                loop.add_reader(fd, self._on_readable, stream)
            self._streams.append(stream)
        return self

    def handover(self) -> tuple[tuple[int, int], tuple[bytes, bytes]]:
        """Re-exec: the read ends (``-1`` once closed) and the partial lines held."""
        out, err = self._streams
        return (out.fd, err.fd), (out.partial, err.partial)

    def started(self) -> None:
        """The child has its copies of the write ends: close ours, start reading."""
        self.close_child_ends()
        for stream in self._streams:
            self.loop.add_reader(stream.fd, self._on_readable, stream)

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
        target: TextIO = sys.stderr if stream.to_stderr else sys.stdout
        if target is None:  # pythonw, or closed by the application
            return
        prefix = self.prefix
        text = "".join(f"{prefix} | {line.decode('utf-8', 'replace')}\n" for line in lines)
        try:
            target.write(text)
            target.flush()
        except (OSError, ValueError):  # our own stdout is gone: drop, never crash the tree
            pass

    def _close(self, stream: _Stream) -> None:
        if stream.fd >= 0:
            self.loop.remove_reader(stream.fd)
            os.close(stream.fd)
            stream.fd = -1

    def drain_and_close(self) -> None:
        """Read what the pipes hold now, write it out (partial lines too), close."""
        self.close_child_ends()
        for stream in self._streams:
            if stream.fd >= 0:
                self._read(stream, once=False)
                self._flush(stream)
                self._close(stream)
