"""Reading ``/proc`` and signalling process groups: what the reaper, re-exec and the
service's forced stop know about processes they did not start themselves.

One parser of ``/proc/PID/stat`` (:func:`stat_fields`) serves :func:`read_stat` and
:func:`start_time`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio


def children_of(pid: int, *, all_threads: bool = False) -> list[int]:
    """The children of ``pid`` (of every thread with ``all_threads``), from /proc."""
    tids = os.listdir(f"/proc/{pid}/task") if all_threads else [str(pid)]
    found: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as file:
                found.extend(int(p) for p in file.read().split())
        except OSError:
            continue
    return found


def _stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` from the third on (state, ppid, pgrp,
    session...), or None if the process is gone. The command before them may hold
    spaces and parentheses: the fields start after its last ``)``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()


def read_stat(pid: int) -> tuple[str, int, int, int] | None:
    """``(state, ppid, pgrp, session)`` of a process, or None if it is gone."""
    fields = _stat(pid)
    if fields is None:
        return None
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])


def signal_group(pid: int, signum: int) -> None:
    """Signal the process group a child leads, or the child alone if it left its
    group. Call it only while the child is not reaped: then neither its pid nor
    its group id can have been reused."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def start_time(pid: int) -> int | None:
    """When a process started (``/proc/PID/stat`` field 22, in clock ticks since
    boot), or None if it is gone. With the pid, it names one process for good:
    a recycled pid has another start time."""
    fields = _stat(pid)
    return None if fields is None else int(fields[22 - 3])


_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def boot_ticks() -> int:
    """Now, in the unit and from the origin of :func:`start_time` (clock ticks since
    boot, from the same clock). Taken right before a spawn, it is the child's start
    time or a tick before it, never after: no ``/proc`` read per spawn."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // _TICK_NS


def kill_other_sessions(*, reap: bool = False) -> int:
    """SIGKILL the process group of each of our children that runs in a session of
    its own (every process child does; what other code in this process started, in
    our session, is left alone); with ``reap``, wait for each such child too.
    Returns how many groups were signalled.

    Safe from pid reuse: a child's pid cannot be recycled before we reap it, and
    reaping happens on this thread, not during this call.
    """
    own_session = os.getsid(0)
    groups: dict[int, list[int]] = {}
    for pid in children_of(os.getpid(), all_threads=True):
        found = read_stat(pid)
        if found is not None and found[3] != own_session:
            groups.setdefault(found[2], []).append(pid)
    for group, pids in groups.items():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        if reap:
            for pid in pids:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
    return len(groups)


_fd_room = 48
"""Below this fd number, no new fd needs the fd table to grow (see :func:`make_room`)."""


def reserve_fds(count: int) -> int:
    """Grow this process's fd table at once to hold fds up to ``count`` (at most
    the soft ``RLIMIT_NOFILE``); returns how many it holds now (or more).

    The kernel grows the table by doubling, as fds are opened, and a process with
    more than one thread waits for an RCU grace period at each growth (8 to 16 ms
    measured): a tree of 500 process children (a pidfd and two pipes each) paid
    that three to five times during its start. Grown here in one step, that wait
    is paid once, and not at all while the process has a single thread (``sv.run``
    reserves room before any thread starts). An empty table costs 8 bytes per
    fd of kernel memory, and nothing per spawn (a child's copy holds the open
    fds only). 0 if it could not."""
    global _fd_room
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY:
        count = min(count, soft)
    source = os.open("/", os.O_PATH | os.O_CLOEXEC)
    try:
        try:
            os.close(fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, count - 1))
        except OSError:  # no free fd up there (EMFILE), or beyond the limit (EINVAL)
            return 0
    finally:
        os.close(source)
    _fd_room = max(_fd_room, count * 3 // 4)
    return count


def make_room(fd: int) -> None:
    """Called with each new long-lived fd (a child's pidfd): when fds come near
    what was reserved, reserve four times as many (see :func:`reserve_fds`), so
    that a growing tree makes the table grow a few times, not at each doubling."""
    global _fd_room
    if fd >= _fd_room:
        wanted = max(4 * fd, 1024)
        if reserve_fds(wanted) < wanted:  # the limit: the kernel grows it from here on
            _fd_room = 1 << 31


def _environ_has(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return marker in file.read().split(b"\0")
    except OSError:
        return False


def signal_name(number: int) -> str:
    """``9`` -> ``"SIGKILL"``; a number without a name -> ``"signal 99"``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def set_done(future: asyncio.Future[None]) -> None:
    """Resolve ``future`` unless it is done already (a callback for timers and readers)."""
    if not future.done():
        future.set_result(None)
