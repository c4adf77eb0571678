"""The daemon's stdout or stderr is a pipe nobody reads while a child prints 10 MB
(and 8 others crash for ever, logging each crash): the tree keeps restarting, the
control socket answers, SIGTERM stops it within 2 s and nothing is left."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from supervision._process.output import Sink
from tests.cli_helpers import ping

from .common import BlockedRun, assert_nothing_left, kill_if_running, restarts, stop_timed, storm_tree, wait_storming

pytestmark = pytest.mark.slow

# 10 MB in lines of 100 bytes, on stdout or stderr, then a crash: restarted for ever.
TALKER = 'sv.process("talker", ["sh", "-c", "yes {line} | head -c 10000000 >&{fd}; exit 1"])'


@pytest.mark.parametrize("blocked", ["stdout", "stderr"])
def test_a_blocked_output_stream_does_not_freeze_the_tree(tmp_path: Path, blocked: str) -> None:
    fd = 1 if blocked == "stdout" else 2
    talker = TALKER.format(line="x" * 99, fd=fd)
    run = BlockedRun(tmp_path, storm_tree(tmp_path, 8, extra=talker), blocked=blocked)
    try:
        run.wait_running()
        from tests.cli_helpers import wait_until

        wait_until(run.pipe_is_full, f"the daemon's {blocked} to be full")
        seen = restarts(run)
        wait_storming(run, at_least=seen + 200)  # restarts go on while the pipe is full
        assert ping(run.control) is not None
        assert run.pipe_is_full()
        before = run.pids()
        took = stop_timed(run, "SIGTERM")
        assert took < 2.0, f"stopped after {took:.2f}s with a blocked {blocked}"
        assert_nothing_left(run, before)
        assert b"talker | " + b"x" * 99 in run.read_blocked()
    finally:
        kill_if_running(run)


def test_a_sink_drops_what_does_not_fit_and_says_how_much() -> None:
    read_end, write_end = os.pipe()
    sink = Sink(write_end, capacity=100_000)
    try:
        line = b"y" * 99 + b"\n"
        for _ in range(10_000):  # 1 MB into a pipe of 64 KiB and a buffer of 100 kB
            sink.write(line)
        assert sink.dropped_bytes > 0 and sink.dropped_writes == sink.dropped_bytes // len(line)
        received = bytearray()

        def read_all() -> None:
            while data := os.read(read_end, 65536):
                received.extend(data)

        reader = threading.Thread(target=read_all)
        reader.start()
        assert sink.drain(timeout=10)
        os.close(write_end)
        write_end = -1
        reader.join(10)
        # Each run of drops is said once, in its place: the notes add up to the counters.
        notes = re.findall(rb"supervision: output blocked: dropped (\d+) bytes in (\d+) write\(s\) here\n", received)
        assert notes and sum(int(lost) for lost, _ in notes) == sink.dropped_bytes
        assert sum(int(writes) for _, writes in notes) == sink.dropped_writes
        kept = re.sub(rb"supervision: output blocked: [^\n]*\n", b"", bytes(received))
        assert len(kept) + sink.dropped_bytes == 10_000 * len(line)  # nothing lost unsaid
        assert kept == line * (len(kept) // len(line))  # whole writes only
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
