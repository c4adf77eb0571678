"""The supervisor's own log, for machines: JSON lines, or journald's native fields.

- ``text``: ``2026-01-02 10:00:00,123 INFO supervision: web: ChildExited ...`` (the default);
- ``json``: one JSON object per line: ``time``, ``level``, ``logger``, ``message``
  and, for a log line about an event, the event's fields (``path``, ``event``,
  ``pid``, ``reason``, ``exit_status``, ``signal``, ``error`` ...);
- ``journal``: journald's native protocol, the event's fields as
  ``SUPERVISION_PATH``, ``SUPERVISION_EVENT``, ``SUPERVISION_PID`` ... next to
  ``MESSAGE`` and ``PRIORITY``, so ``journalctl SUPERVISION_PATH=web`` finds them;
- ``auto``: ``journal`` when stderr is connected to the journal (systemd sets
  ``JOURNAL_STREAM`` to its device and inode), else ``text``.

A log record is about an event when it carries it as ``record.supervision_event``
(``logger.log(level, ..., extra={"supervision_event": event})``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import sys
import time
from typing import Any, TextIO

from .figures import event_json

FORMATS = ("auto", "text", "json", "journal")
JOURNAL_SOCKET = "/run/systemd/journal/socket"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of the event a record is about (empty if it is about none)."""
    event = getattr(record, "supervision_event", None)
    if event is None:
        return {}
    fields = event_json(event)
    fields.pop("time", None)  # the tree's monotonic clock: meaningless outside the process
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in event_fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class JournalHandler(logging.Handler):
    """Sends records to journald with the native protocol (one datagram each).

    A record too large for a datagram has its message cut to ``max_message``
    bytes; one that cannot be sent is written to ``fallback`` as text.
    """

    def __init__(
        self,
        path: str = JOURNAL_SOCKET,
        *,
        identifier: str = "supervision",
        fallback: TextIO | None = None,
        max_message: int = 60_000,
    ) -> None:
        super().__init__()
        self.path = path
        self.identifier = identifier
        self.fallback = fallback
        self.max_message = max_message
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def fields(self, record: logging.LogRecord) -> list[tuple[str, str]]:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        found = [
            ("MESSAGE", message[: self.max_message]),
            ("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
            ("SYSLOG_IDENTIFIER", self.identifier),
            ("LOGGER", record.name),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", str(record.lineno)),
            ("CODE_FUNC", record.funcName or ""),
        ]
        for key, value in event_fields(record).items():
            if value is not None and value != []:
                text = ",".join(value) if isinstance(value, list) else str(value)
                found.append((f"SUPERVISION_{key.upper()}", text))
        return found

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._socket.sendto(encode(self.fields(record)), self.path)
        except OSError:
            if self.fallback is not None:
                self.fallback.write(logging.Formatter(TEXT_FORMAT).format(record) + "\n")
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._socket.close()
        super().close()


def encode(fields: list[tuple[str, str]]) -> bytes:
    """journald's native format: ``KEY=value\\n``, or for a value with a newline
    ``KEY\\n``, its length (64-bit little endian), the value and ``\\n``."""
    out = bytearray()
    for key, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def decode(datagram: bytes) -> dict[str, str]:
    """The fields of a native-protocol datagram (for tests and tools)."""
    found: dict[str, str] = {}
    at = 0
    while at < len(datagram):
        end = datagram.index(b"\n", at)
        line = datagram[at:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            found[key.decode()] = value.decode()
            at = end + 1
        else:
            (size,) = struct.unpack("<Q", datagram[end + 1 : end + 9])
            found[line.decode()] = datagram[end + 9 : end + 9 + size].decode()
            at = end + 9 + size + 1
    return found


def journal_stream(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default stderr) is connected to the journal:
    ``JOURNAL_STREAM`` (``DEVICE:INODE``) names the file it writes to."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = expected.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    stream = stream if stream is not None else sys.stderr
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def handler(format: str, stream: TextIO | None = None, *, identifier: str = "supervision") -> logging.Handler:
    """The handler for ``--log-format FORMAT`` (one of :data:`FORMATS`)."""
    if format not in FORMATS:
        raise ValueError(f"a log format is one of {', '.join(FORMATS)}; got {format!r}")
    stream = stream if stream is not None else sys.stderr
    if format == "auto":
        format = "journal" if journal_stream(stream) and os.path.exists(JOURNAL_SOCKET) else "text"
    if format == "journal":
        return JournalHandler(identifier=identifier, fallback=stream)
    found: logging.Handler = logging.StreamHandler(stream)
    found.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    return found
