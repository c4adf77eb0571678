"""The poller of process fds: one epoll of ours, a reader of the loop."""

from __future__ import annotations

import asyncio
import os

from supervision._process.poller import poller


async def test_callbacks_run_for_readable_fds_until_removed() -> None:
    loop = asyncio.get_running_loop()
    found = poller(loop)
    read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    got: list[bytes] = []
    try:
        found.add(read, lambda fd: got.append(os.read(fd, 100)), read)
        os.write(write, b"one")
        for _ in range(100):
            await asyncio.sleep(0.001)
            if got:
                break
        assert got == [b"one"]
        found.remove(read)
        os.write(write, b"two")
        await asyncio.sleep(0.02)
        assert got == [b"one"]
    finally:
        os.close(read)
        os.close(write)


async def test_a_registration_that_outlived_its_fd_does_not_spin_the_loop() -> None:
    """An fd closed without remove() while a copy keeps the file open stays in the
    epoll under its old number, readable forever: the poller starts a new epoll."""
    loop = asyncio.get_running_loop()
    found = poller(loop)
    read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    copy = os.dup(read)  # as a child forked without exec would hold it
    calls: list[int] = []
    try:
        found.add(read, calls.append, read)
        os.write(write, b"x")  # never read: level-triggered, reported at every poll
        found._callbacks.pop(read)  # forgotten without remove(), then closed
        os.close(read)
        before = found.generation
        for _ in range(10):
            await asyncio.sleep(0)
        polls = found.generation - before
        assert polls <= 3  # renewed after two polls that reported it; the loop is quiet since
        await asyncio.sleep(0.02)
        assert found.generation - before == polls
        assert calls == []
        # and the poller still serves the fds it watches
        other_read, other_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            found.add(other_read, calls.append, other_read)
            os.write(other_write, b"y")
            for _ in range(100):
                await asyncio.sleep(0.001)
                if calls:
                    break
            assert calls[:1] == [other_read]
        finally:
            found.remove(other_read)
            os.close(other_read)
            os.close(other_write)
    finally:
        os.close(copy)
        os.close(write)
