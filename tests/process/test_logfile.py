"""Log files the supervisor writes: rotation that never loses or splits a line,
timestamps, reopening after an external rotation, and a stuck disk that never
blocks the event loop. Real child processes write through real pipes."""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import sys
import threading
from pathlib import Path

import pytest

import supervision as sv
from supervision._core.errors import SpecError
from supervision._core.settings import LogFile
from supervision._process import logfile as _logfile
from supervision._process.logfile import FileOutput, Writer, log_file, parse_size
from supervision._process.output import Output, PrefixedOutput, write_prefixed

PY = sys.executable


async def _run_child(output: FileOutput, argv: list[str]) -> None:
    """Spawn ``argv`` writing into ``output``, wait for its exit, drain its pipes."""
    loop = asyncio.get_running_loop()
    pid = os.posix_spawn(
        argv[0],
        argv,
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_DUP2, output.child_stdout, 1),
            (os.POSIX_SPAWN_DUP2, output.child_stderr, 2),
        ],
    )
    output.started()
    pidfd = os.pidfd_open(pid)
    exited = loop.create_future()
    loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
    try:
        await asyncio.wait_for(exited, 60)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        os.waitpid(pid, 0)
    output.drain_and_close()


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True) if path.exists() else []


@pytest.mark.timeout(120)
async def test_rotation_of_10mb_through_1mb_with_3_backups_keeps_every_line_once(tmp_path: Path) -> None:
    target = tmp_path / "web.log"
    count = 100_000  # 100-byte lines: 10 MB, from stdout and stderr alike
    script = (
        "import sys\n"
        f"for i in range({count}):\n"
        "    stream = sys.stderr if i % 7 == 0 else sys.stdout\n"
        "    stream.write(f'{i:08d} ' + 'x' * 90 + '\\n')\n"
        "    if i % 7 == 0: stream.flush()\n"
    )
    spec = log_file(target, max_bytes="1MB", backups=3)
    output = FileOutput(asyncio.get_running_loop(), ("web",), spec)
    await _run_child(output, [PY, "-c", script])
    assert _logfile.drain(30)
    files = [tmp_path / "web.log.3", tmp_path / "web.log.2", tmp_path / "web.log.1", target]
    assert not (tmp_path / "web.log.4").exists()
    for file in files:
        assert 0 < file.stat().st_size <= 1 << 20
    kept = [line for file in files for line in _lines(file)]
    assert all(len(line) == 100 and line.endswith(b"\n") for line in kept), "a line was split"
    numbers = [int(line[:8]) for line in kept]
    assert len(numbers) > 3 * (1 << 20) // 100  # the backups are nearly full
    # Oldest backup first, the kept lines of each stream are exactly the last lines
    # that stream wrote, in order, each once. (The two streams interleave by when
    # the child flushed them, so the cut-off point differs between them.)
    for stream in (lambda i: i % 7 == 0, lambda i: i % 7 != 0):
        written = [i for i in range(count) if stream(i)]
        seen = [i for i in numbers if stream(i)]
        assert seen == written[len(written) - len(seen) :], "a line was lost, repeated or reordered"


async def test_timestamps_begin_each_line(tmp_path: Path) -> None:
    target = tmp_path / "app.log"
    output = FileOutput(asyncio.get_running_loop(), ("app",), log_file(target, timestamps=True))
    await _run_child(output, ["/bin/sh", "-c", "echo one; echo two >&2; printf 'no newline'"])
    assert _logfile.drain(10)
    lines = target.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two", "no newline"]
    for line in lines:
        stamp = datetime.datetime.fromisoformat(line.split(" ", 1)[0])
        assert stamp.tzinfo is not None
        assert abs((datetime.datetime.now(datetime.UTC) - stamp).total_seconds()) < 60


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    target = tmp_path / "big.log"
    writer = Writer()
    file = writer.open(str(target), 100, 2)
    file.write(b"a" * 50 + b"\n")
    file.write(b"b" * 300 + b"\n" + b"c" * 10 + b"\n")
    file.close()
    assert writer.drain(10)
    assert _lines(tmp_path / "big.log.2") == [b"a" * 50 + b"\n"]
    assert _lines(tmp_path / "big.log.1") == [b"b" * 300 + b"\n"]
    assert _lines(target) == [b"c" * 10 + b"\n"]


def test_no_backups_empties_the_file(tmp_path: Path) -> None:
    target = tmp_path / "x.log"
    writer = Writer()
    file = writer.open(str(target), 10, 0)
    for word in (b"12345\n", b"67890\n", b"abc\n"):
        file.write(word)
    file.close()
    assert writer.drain(10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.log"]
    assert target.read_bytes() in (b"67890\nabc\n", b"abc\n")


def test_reopen_after_an_external_rotation(tmp_path: Path) -> None:
    target = tmp_path / "svc.log"
    writer = Writer()
    file = writer.open(str(target), None, 5)
    file.write(b"before\n")
    assert writer.drain(10)
    os.rename(target, tmp_path / "svc.log.1")  # what logrotate does
    file.write(b"still the old file\n")  # not reopened yet: the descriptor follows the rename
    assert writer.drain(10)
    writer.reopen()  # SIGUSR1
    file.write(b"after\n")
    file.close()
    assert writer.drain(10)
    assert _lines(tmp_path / "svc.log.1") == [b"before\n", b"still the old file\n"]
    assert _lines(target) == [b"after\n"]


@pytest.mark.timeout(60)
async def test_a_stuck_disk_neither_blocks_the_loop_nor_loses_lines(tmp_path: Path) -> None:
    """The file is a FIFO nobody reads at first: the writer thread blocks in its
    open, as on a hung disk. The child's output fills the queue, reading stops
    (the child then blocks in its own write), the loop keeps turning; once the
    "disk" comes back, every line arrives."""
    fifo = tmp_path / "stuck.log"
    os.mkfifo(fifo)
    loop = asyncio.get_running_loop()
    output = FileOutput(loop, ("stuck",), log_file(fifo))
    count = 50_000  # 5 MB: more than the queue, the pipe and the FIFO hold together
    script = f"import sys\nfor i in range({count}): sys.stdout.write(f'{{i:08d}} ' + 'y' * 90 + '\\n')\n"
    child = asyncio.ensure_future(_run_child(output, [PY, "-c", script]))
    # The loop keeps turning (a loop blocked on the file would never wake up
    # again: nobody reads the FIFO) while the child fills the queue.
    late = 0.0
    deadline = loop.time() + 30
    paused_turns = 0
    while paused_turns < 10 and loop.time() < deadline:
        before = loop.time()
        await asyncio.sleep(0.02)
        late = max(late, loop.time() - before - 0.02)
        paused_turns += output._paused
    assert output._paused, "reading should have stopped at the high-water mark"
    assert output.file.pending <= _logfile.HIGH_WATER + 2 * 65536
    assert late < 5
    received = bytearray()

    def read_all() -> None:
        with open(fifo, "rb") as reader:
            while chunk := reader.read(1 << 16):
                received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    await asyncio.wait_for(child, 60)
    assert _logfile.drain(30)
    _logfile.writer().reopen()  # closes the FIFO's write end: the reader sees EOF
    assert _logfile.drain(10)
    await loop.run_in_executor(None, reader.join, 30)
    lines = bytes(received).splitlines()
    assert [int(line[:8]) for line in lines] == list(range(count))


def test_log_file_checks_its_arguments(tmp_path: Path) -> None:
    spec = log_file(tmp_path / "a.log", max_bytes="10MB", backups=3, timestamps=True)
    assert spec == LogFile(str(tmp_path / "a.log"), 10 << 20, 3, True)
    assert parse_size((), "x", "512KB") == 512 << 10
    assert parse_size((), "x", "1 gib") == 1 << 30
    for bad in ({"max_bytes": "ten"}, {"max_bytes": 0}, {"backups": -1}, {"backups": True}, {"timestamps": 1}):
        with pytest.raises(SpecError):
            log_file(tmp_path / "a.log", **bad)  # type: ignore[arg-type]
    with pytest.raises(SpecError):
        log_file("")


async def test_prefixed_lines_with_timestamps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records: list[Output] = []
    output = PrefixedOutput(asyncio.get_running_loop(), ("api",), records.append, timestamps=True)
    pid = os.posix_spawn(
        "/bin/sh", ["sh", "-c", "echo hello; echo oops >&2"], dict(os.environ),
        file_actions=[(os.POSIX_SPAWN_DUP2, output.child_stdout, 1), (os.POSIX_SPAWN_DUP2, output.child_stderr, 2)],
    )  # fmt: skip
    output.started()
    await asyncio.get_running_loop().run_in_executor(None, os.waitpid, pid, 0)
    output.drain_and_close()
    assert sorted((r.stream, r.lines) for r in records) == [("stderr", ("oops",)), ("stdout", ("hello",))]
    for record in records:
        assert record.time is not None and datetime.datetime.fromisoformat(record.time).tzinfo is not None
        write_prefixed(record)
    captured = capsys.readouterr()
    assert re.fullmatch(r"api \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d hello\n", captured.out)
    assert captured.err.startswith("api | ") and captured.err.endswith(" oops\n")


async def test_a_log_file_that_cannot_be_opened_fails_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory" / "web.log"
    spec = sv.Supervisor([sv.process("web", ["true"], output=log_file(missing))])
    with pytest.raises(sv.StartError) as caught:
        async with sv.start(spec):
            pass
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert caught.value.__cause__.filename == str(missing)
