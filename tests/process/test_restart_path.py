"""The lean restart path keeps its guarantees: what a service leaves behind is still
found (the scan now runs only when we have an unwatched child), start times taken
from the clock agree with /proc, and the log lines and output written through the
sinks still come out, in order, when the loop defers them to its next turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import supervision as sv
from supervision._process.output import Sink
from supervision._process.proc import boot_ticks, start_time
from supervision._process.reaper import Reaper, reaper, spawner
from tests.helpers import WAIT, is_, next_event
from tests.process_helpers import PY, descendants, exists, open_fds, start_watched, until

# A service that puts a sleep in the background (its own group and session) and
# exits: the sleep comes back to us, and must be killed before the exit is reported.
LEAVER = [PY, "-c", "import subprocess, sys; print(subprocess.Popen(['sleep', '1000'], start_new_session=True).pid)"]


def test_a_start_time_from_the_clock_is_the_child_s_or_a_tick_before() -> None:
    for _ in range(20):
        before = boot_ticks()
        pid = spawner().spawn(["/bin/sleep", "10"], None, None, None, None, pdeathsig=True)
        after = boot_ticks()
        try:
            found = start_time(pid)
            assert found is not None
            assert before <= found <= after
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


@contextlib.contextmanager
def an_unwatched_child() -> Iterator[subprocess.Popen[bytes]]:
    """A child of ours in a session of its own that no reaper watches, for its life."""
    other = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        yield other
    finally:
        other.kill()
        other.wait()


def _next_poll(found: Reaper) -> None:
    """As if the poller had polled again: a "no" of the quick check holds until then."""
    found._poller.generation += 1


async def test_the_quick_check_sees_unwatched_children_only() -> None:
    found = reaper()
    assert not found._unwatched_children()
    _next_poll(found)
    with an_unwatched_child():
        assert found._unwatched_children()
    assert not found._unwatched_children()
    pid = spawner().spawn(["/bin/sleep", "10"], None, None, None, None, pdeathsig=True)
    exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    found.watch(pid, lambda code, status: exited.set_result(None))
    _next_poll(found)
    assert not found._unwatched_children()  # watched: not a leftover
    os.kill(pid, 9)
    await asyncio.wait_for(exited, WAIT)


async def test_a_no_holds_until_the_next_poll() -> None:
    """Exits reported by one poll of the poller exited before it, and their orphans
    were ours before that: one count serves them all (a walk of the children in the
    kernel each). The next poll counts again; so does a fresh check (the clean-up
    of leftovers, which may have forked)."""
    found = reaper()
    _next_poll(found)
    assert not found._unwatched_children()
    with an_unwatched_child():
        assert not found._unwatched_children()  # the count made before it came
        assert found._unwatched_children(fresh=True)
        _next_poll(found)
        assert found._unwatched_children()
        assert found._unwatched_children()  # a yes is never remembered
    assert not found._unwatched_children()


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2048, reason="needs 800 pidfds")
async def test_the_count_reads_a_children_file_longer_than_a_page() -> None:
    """A read of a children file returns one page at most (some 600 pids): 800
    watched children and one unwatched still say yes."""
    found = reaper()
    loop = asyncio.get_running_loop()
    watched: list[asyncio.Future[None]] = []
    pids = []
    try:
        for _ in range(800):
            pid = spawner().spawn(["/bin/sleep", "1000"], None, None, None, None, pdeathsig=True)
            pids.append(pid)
            exited: asyncio.Future[None] = loop.create_future()
            found.watch(pid, lambda code, status, done=exited: done.set_result(None))
            watched.append(exited)
        _next_poll(found)
        assert not found._unwatched_children()
        _next_poll(found)
        with an_unwatched_child():
            assert found._unwatched_children()
    finally:
        for start in range(0, len(pids), 50):  # a few at a time: 800 SIGCHLDs at once fill the wake-up pipe
            for pid in pids[start : start + 50]:
                os.kill(pid, 9)
            await asyncio.wait_for(asyncio.gather(*watched[start : start + 50]), WAIT)


def _ended(tid: int) -> bool:
    """Whether the kernel is done with this thread of ours (``join`` returns before:
    until then, its children are still its own)."""
    return not os.path.exists(f"/proc/{os.getpid()}/task/{tid}")


async def test_a_thread_that_spawned_watched_children_may_end() -> None:
    """A watched child of a thread that ends goes to the first thread: still counted
    against its watch, and the ended thread's children file is let go."""
    found = reaper()
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    started: list[int] = []

    def spawn_and_watch() -> None:  # the loop waits in join meanwhile
        pid = spawner().spawn(["/bin/sleep", "1000"], None, None, None, None, pdeathsig=False)
        found.watch(pid, lambda code, status: exited.set_result(None))
        started.append(pid)

    thread = threading.Thread(target=spawn_and_watch)
    thread.start()
    thread.join()
    tid = thread.native_id
    assert tid is not None and tid in found._threads
    try:
        _next_poll(found)
        assert not found._unwatched_children()
        await until(lambda: _ended(tid))
        _next_poll(found)
        assert not found._unwatched_children()  # the child is the first thread's now
        assert tid not in found._threads and tid not in found._children_files
    finally:
        os.kill(started[0], 9)
        await asyncio.wait_for(exited, WAIT)


async def test_the_quick_check_counts_every_child_against_the_watches() -> None:
    """It counts children instead of parsing their pids: many watched children and
    one orphan that came back (through a thread that ended, so to the first thread)
    still say yes; the watches alone say no, and so does a reaped orphan."""
    found = reaper()
    loop = asyncio.get_running_loop()
    watched: list[asyncio.Future[None]] = []
    pids = []
    for _ in range(30):
        pid = spawner().spawn(["/bin/sleep", "1000"], None, None, None, None, pdeathsig=True)
        exited: asyncio.Future[None] = loop.create_future()
        found.watch(pid, lambda code, status, done=exited: done.set_result(None))
        watched.append(exited)
        pids.append(pid)
    try:
        _next_poll(found)
        assert not found._unwatched_children()
        started: list[subprocess.Popen[bytes]] = []
        thread = threading.Thread(
            target=lambda: started.append(subprocess.Popen(["sleep", "1000"], start_new_session=True))
        )
        thread.start()
        thread.join()
        orphan = started[0]
        tid = thread.native_id
        assert tid is not None
        try:
            await until(lambda: _ended(tid))
            _next_poll(found)
            assert found._unwatched_children()
            assert found._unwatched_children()  # and again, through the first thread's file
        finally:
            orphan.kill()
            orphan.wait()
        assert not found._unwatched_children()
    finally:
        for pid in pids:
            os.kill(pid, 9)
        await asyncio.wait_for(asyncio.gather(*watched), WAIT)
    _next_poll(found)
    assert not found._unwatched_children()


async def _leftover_is_killed_before_the_exit(tmp_path: Path) -> None:
    spec = sv.Supervisor([sv.process("svc", LEAVER, restart="temporary", output=str(tmp_path / "out"))])
    async with start_watched(spec) as (_tree, events):
        await next_event(events, is_(sv.ChildExited, "svc"))
        leftover = int((tmp_path / "out").read_text())
        assert not exists(leftover)  # killed and reaped before the exit was reported
    assert not descendants()


async def test_what_a_service_leaves_behind_is_killed_before_its_exit_is_reported(tmp_path: Path) -> None:
    await _leftover_is_killed_before_the_exit(tmp_path)


def test_leftovers_are_found_with_the_loop_in_another_thread(tmp_path: Path) -> None:
    # Orphans come back to the first thread, the services are spawned from the loop's.
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_leftover_is_killed_before_the_exit(tmp_path))
        except BaseException as exc:  # reported by the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    if failure:
        raise failure[0]


async def test_event_log_lines_come_out_in_order_one_turn_later(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="supervision")
    spec = sv.Supervisor([sv.process("f", ["/bin/false"])], intensity=100, period=1.0)
    async with start_watched(spec) as (_tree, events):
        await next_event(events, is_(sv.ChildStarted, "f", starts=3))
        await asyncio.sleep(0)  # the turn that logs what the last callback emitted
        lines = [r.getMessage() for r in caplog.records if r.name == "supervision" and "f:" in r.getMessage()]
    kinds = [line.split()[1] for line in lines]
    # started, exited, started, exited, started...: each line once, in the events' order
    assert kinds[:5] == ["ChildStarted", "ChildExited", "ChildStarted", "ChildExited", "ChildStarted"]
    starts = [line.split("starts=")[1].split(",")[0] for line in lines if "ChildStarted" in line]
    assert starts[:3] == ["1", "2", "3"]


async def test_the_event_log_is_flushed_when_the_tree_stops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="supervision")
    async with sv.start(sv.Supervisor([sv.process("s", ["sleep", "1000"])])):
        pass
    messages = [r.getMessage() for r in caplog.records if r.name == "supervision"]
    assert any("SupervisorStopped" in m for m in messages)
    assert messages.index(next(m for m in messages if "s: ChildStarted" in m)) < messages.index(
        next(m for m in messages if "s: ChildExited" in m)
    )


def _read_all(fd: int, until: bytes, timeout: float = WAIT) -> bytes:
    os.set_blocking(fd, False)
    got = b""
    deadline = time.monotonic() + timeout
    while until not in got and time.monotonic() < deadline:
        try:
            got += os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.005)
    return got


async def test_a_sink_written_from_the_loop_writes_after_the_loop_s_turn() -> None:
    read_end, write_end = os.pipe()
    sink = Sink(write_end)
    try:
        sink.write(b"one\n")
        sink.write(b"two\n")
        await asyncio.sleep(0)  # the turn that wakes the thread
        assert _read_all(read_end, b"two\n") == b"one\ntwo\n"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_sink_whose_loop_never_turns_again_is_drained_all_the_same() -> None:
    read_end, write_end = os.pipe()
    sink = Sink(write_end)
    loop = asyncio.new_event_loop()
    try:

        async def write_and_leave() -> None:
            sink.write(b"last words\n")
            asyncio.get_running_loop().stop()  # the wake-up it owes is never run

        task = loop.create_task(write_and_leave())
        loop.run_forever()
        assert task.done()
        assert sink.drain(WAIT)
        assert _read_all(read_end, b"\n") == b"last words\n"
        sink.write(b"from a thread without a loop\n")  # woken at once
        assert _read_all(read_end, b"loop\n") == b"from a thread without a loop\n"
    finally:
        loop.close()
        os.close(read_end)
        os.close(write_end)


# Each run prints a line and a partial line, then crashes; the fifth stays up.
COUNTER = """
n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}
echo "line $n"; echo "err $n" >&2; printf "partial $n"
[ $n -ge 5 ] && exec sleep 1000
exit 1
"""


async def test_a_restarted_child_s_output_is_complete_and_prefixed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    script = COUNTER.format(count=tmp_path / "count")
    spec = sv.Supervisor([sv.process("c", ["sh", "-c", script])], intensity=100, period=1.0)
    async with start_watched(spec) as (tree, events):
        await next_event(events, is_(sv.ChildStarted, "c", starts=5))
        fds = open_fds()
        text = ""
        for _ in range(500):  # the fifth run's lines (its partial line comes at its stop)
            out, err = capfd.readouterr()
            text += out + err
            if "line 5" in text:
                break
            await asyncio.sleep(0.01)
        assert tree.which_children()[0].pid is not None
    assert not (open_fds() - fds)  # nothing opened since, and the pipes are gone with the child
    out, err = capfd.readouterr()
    text += out + err
    assert "c | partial 5\n" in text
    for n in range(1, 5):
        assert f"c | line {n}\n" in text
        assert f"c | err {n}\n" in text
        assert f"c | partial {n}\n" in text  # the last partial line of a run ends with it


async def test_a_grandchild_holding_the_pipes_does_not_hold_up_the_restarts(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A grandchild in a session of its own, without the marker: it may stay (under
    # sv.start nothing names it), holding the output pipes of the run that started it.
    script = 'setsid env -i /bin/sleep 1000 & echo "run $$"; exit 1'
    spec = sv.Supervisor([sv.process("g", ["sh", "-c", script])], intensity=100, period=1.0)
    try:
        async with start_watched(spec) as (_tree, events):
            await next_event(events, is_(sv.ChildStarted, "g", starts=4))
            await next_event(events, is_(sv.ChildExited, "g"))
        out = capfd.readouterr().out
        assert out.count("g | run ") >= 3
        assert all(line.startswith("g | run ") for line in out.splitlines() if "run" in line)
    finally:
        for pid in descendants():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        await until(lambda: not descendants(), what="the sleeps to be gone")


async def test_a_sweep_behind_a_watched_zombie_scans_only_if_an_orphan_can_be_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = reaper()
    scans: list[None] = []
    monkeypatch.setattr(found, "_reap_orphans_by_scan", lambda: scans.append(None))

    def watched_zombie() -> asyncio.Future[None]:
        pid = spawner().spawn(["/bin/true"], None, None, None, None, pdeathsig=True)
        exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        found.watch(pid, lambda code, status: exited.set_result(None))
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # a zombie now, its pidfd not read yet
        return exited

    exited = watched_zombie()
    found._sweep()  # the peek finds the watched zombie first
    assert scans == []  # only watched children: nothing to look for
    await asyncio.wait_for(exited, WAIT)
    with an_unwatched_child():
        exited = watched_zombie()
        found._sweep()  # counts afresh: a "no" remembered since the last poll does not serve it
        assert scans == [None]  # an unwatched child too: the scan looks
        await asyncio.wait_for(exited, WAIT)
