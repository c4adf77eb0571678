"""JSON log lines, journald's native protocol on a real datagram socket, and the
termination message."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import sys

import pytest

import supervision as sv
from supervision.observe import logs, termination
from supervision.observe.counters import Counters
from supervision.observe.logs import JournalHandler, JsonFormatter, decode, encode, journal_stream


def record(event: sv.Event | None = None, level: int = logging.WARNING) -> logging.LogRecord:
    made = logging.LogRecord("supervision", level, __file__, 10, "%s: crashed", ("web",), None)
    if event is not None:
        made.supervision_event = event
    return made


CRASH = sv.ChildExited(
    path=("db", "pool"),
    time=12.5,
    reason=sv.ExitReason.CRASH,
    error=sv.ProcessExited(("db", "pool"), 3, None),
    exit_status=3,
)


def test_json_lines_carry_the_event_fields() -> None:
    line = JsonFormatter().format(record(CRASH))
    assert "\n" not in line
    found = json.loads(line)
    assert found["level"] == "warning" and found["logger"] == "supervision" and found["message"] == "web: crashed"
    assert found["path"] == "db/pool" and found["event"] == "ChildExited"
    assert found["reason"] == "crash" and found["exit_status"] == 3 and found["signal"] is None
    assert found["error"] == "ProcessExited: db/pool: exited with status 3"
    assert found["time"].endswith("Z") and "T" in found["time"]
    started = json.loads(JsonFormatter().format(record(sv.ChildStarted(path=("web",), time=1.0, starts=2, pid=42))))
    assert (started["event"], started["pid"], started["starts"]) == ("ChildStarted", 42, 2)
    plain = json.loads(JsonFormatter().format(record()))
    assert "path" not in plain
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("supervision", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(JsonFormatter().format(failed))["traceback"]


def test_native_journal_protocol_round_trips() -> None:
    fields = [("MESSAGE", "two\nlines"), ("PRIORITY", "3"), ("EMPTY", "")]
    assert decode(encode(fields)) == {"MESSAGE": "two\nlines", "PRIORITY": "3", "EMPTY": ""}


def test_journal_handler_sends_fields_to_the_socket(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "journal.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
        journal.bind(path)
        journal.settimeout(5)
        handler = JournalHandler(path, identifier="myapp")
        try:
            handler.emit(record(CRASH))
            found = decode(journal.recv(65536))
        finally:
            handler.close()
    assert found["MESSAGE"] == "web: crashed" and found["PRIORITY"] == "4"
    assert found["SYSLOG_IDENTIFIER"] == "myapp"
    assert found["SUPERVISION_PATH"] == "db/pool" and found["SUPERVISION_EVENT"] == "ChildExited"
    assert found["SUPERVISION_EXIT_STATUS"] == "3" and found["SUPERVISION_REASON"] == "crash"
    assert "SUPERVISION_SIGNAL" not in found


def test_journal_handler_falls_back_to_text_without_a_journal(tmp_path: object) -> None:
    fallback = io.StringIO()
    handler = JournalHandler(os.path.join(str(tmp_path), "missing"), fallback=fallback)
    try:
        handler.emit(record(CRASH))
    finally:
        handler.close()
    assert "WARNING supervision: web: crashed" in fallback.getvalue()


def test_journal_stream_must_name_the_stream(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(os.path.join(str(tmp_path), "err"), "w") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert journal_stream(stream)
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino + 1}")
        assert not journal_stream(stream)
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not journal_stream(stream)
        assert isinstance(logs.handler("json", stream).formatter, JsonFormatter)
        assert isinstance(logs.handler("auto", stream), logging.StreamHandler)
    with pytest.raises(ValueError):
        logs.handler("xml")


def test_termination_message_has_the_reason_and_the_newest_events(tmp_path: object) -> None:
    counters = Counters()
    for n in range(200):
        counters.observe(sv.ChildStarted(path=("web",), time=float(n), starts=n + 1, pid=1000 + n))
        counters.observe(CRASH)
    reason = "TooManyRestarts: /: more than 3 restarts in 5s"
    path = os.path.join(str(tmp_path), "termination-log")
    assert termination.write(path, reason, counters.events)
    with open(path, "rb") as file:
        text = file.read()
    assert len(text) <= termination.LIMIT
    lines = text.decode().splitlines()
    assert lines[0] == reason and lines[1] == "last events:"
    assert lines[-1].endswith(
        "db/pool ChildExited reason=crash error=ProcessExited: db/pool: exited with status 3 exit_status=3"
    )
    assert "web ChildStarted starts=200 pid=1199" in lines[-2]
    assert not termination.write(os.path.join(str(tmp_path), "no", "such", "dir"), reason, ())
    assert termination.message("x" * 5000, ()) == "x" * 4096


def test_the_command_line_offers_every_log_format() -> None:
    from supervision.observe.cli import LOG_FORMATS

    assert LOG_FORMATS == logs.FORMATS
