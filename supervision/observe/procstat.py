"""CPU, memory, fds and threads of process children, from ``/proc``, on request.

Each process child runs in a session of its own (see ``docs/processes.md``). Its
figures are summed over its whole process tree: the child, its descendants
(found through ``/proc/PID/task/TID/children``), and the members of its session
that came back to the supervisor as orphans (we are a child subreaper), with
their descendants. A daemon that left the session with ``setsid`` is not counted.

Nothing here runs by itself: figures are read when someone asks (``supervision
status``, a scrape, ``top``), so an idle tree is never woken. A read costs a few
system calls per process (``stat``, ``fd/``, ``children``); :meth:`Sampler.sample_async`
runs it in a worker thread so a large tree never holds up the event loop.

The figures are those ``ps`` and ``top`` show: CPU time is user + system time
of the live members plus what they collected from children they reaped
(``cutime``/``cstime``); RSS is resident pages, summed (pages shared between
members are counted once per member, as ``ps`` does).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Stat(NamedTuple):
    """What one read of ``/proc/PID/stat`` tells about a process (a named tuple:
    a reading makes thousands of these)."""

    pid: int
    state: str
    ppid: int
    session: int
    cpu_ticks: int  # utime + stime + cutime + cstime
    threads: int
    start_ticks: int  # since boot
    rss_pages: int


def _read(path: str, proc: int | None) -> bytes | None:
    """A small /proc file in one read, ``path`` relative to ``/proc`` (opened
    as ``proc``, or by name). No buffered file object: a reading of a tree of a
    thousand children makes thousands of these."""
    try:
        fd = os.open(path if proc is not None else f"/proc/{path}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_stat(pid: int, proc: int | None = None) -> Stat | None:
    """``/proc/PID/stat`` of a process, or None if it is gone."""
    data = _read(f"{pid}/stat", proc)
    if data is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = data[data.rfind(b")") + 2 :].split(None, 22)  # up to rss (field 24), not the 28 after it
    try:
        return Stat(
            pid,
            fields[0].decode(),
            int(fields[1]),
            int(fields[3]),
            int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14]),
            int(fields[17]),
            int(fields[19]),
            int(fields[21]),
        )
    except (IndexError, ValueError):
        return None


def children(pid: int, threads: int = 1, proc: int | None = None) -> list[int]:
    """The children of ``pid``: of its main thread, or of every thread when it has several."""
    if threads <= 1:
        data = _read(f"{pid}/task/{pid}/children", proc)
        return [int(p) for p in data.split()] if data else []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tids:
        data = _read(f"{pid}/task/{tid}/children", proc)
        if data:
            found.extend(int(p) for p in data.split())
    return found


def open_fds(pid: int, proc: int | None = None) -> int:
    """How many file descriptors ``pid`` has open (0 if it is gone or a zombie).

    Since Linux 6.2 the size of ``/proc/PID/fd`` is that number: one ``stat``
    instead of listing the directory (which older kernels need)."""
    try:
        if _FD_COUNT_IN_SIZE:
            return os.stat(f"{pid}/fd", dir_fd=proc).st_size if proc is not None else os.stat(f"/proc/{pid}/fd").st_size
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _fd_count_in_size() -> bool:
    try:
        return os.stat("/proc/self/fd").st_size > 0  # 0 before Linux 6.2
    except OSError:
        return False


_FD_COUNT_IN_SIZE = _fd_count_in_size()


def uptime() -> float:
    """Seconds since boot (``/proc/uptime``), the clock of a process's start time."""
    with open("/proc/uptime", "rb") as file:
        return float(file.read().split()[0])


class Usage(NamedTuple):
    """The figures of one process child, summed over its process tree.

    ``cpu_percent`` is over the interval since an earlier reading of the same
    incarnation (at least ``min_interval`` old when there is one), else over
    its whole life so far; 100 is one CPU.
    """

    pid: int
    processes: int
    cpu_seconds: float
    cpu_percent: float
    rss_bytes: int
    fds: int
    threads: int

    def to_json(self) -> dict[str, float | int]:
        return {
            "processes": self.processes,
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_percent": round(self.cpu_percent, 1),
            "rss_bytes": self.rss_bytes,
            "fds": self.fds,
            "threads": self.threads,
        }


class Sampler:
    """Reads the figures of process children on request, and remembers a few
    earlier readings per incarnation (``(pid, start time)``) for CPU %.

    Thread-safe: one reading at a time. Memory is bounded: the readings of an
    incarnation not seen for ``forget_after`` seconds are dropped.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.5,
        forget_after: float = 600.0,
        own_pid: int | None = None,
    ) -> None:
        self.clock = clock
        self.min_interval = min_interval
        self.forget_after = forget_after
        self.own_pid = own_pid if own_pid is not None else os.getpid()
        self._history: dict[tuple[int, int], deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    async def sample_async(self, pids: Mapping[K, int]) -> dict[K, Usage]:
        """:meth:`sample` in a worker thread, so the event loop keeps running."""
        if not pids:
            return {}
        return await asyncio.to_thread(self.sample, pids)

    def sample(self, pids: Mapping[K, int]) -> dict[K, Usage]:
        """The figures of each process child, given its pid by key (a path, say).
        A child that is gone is left out of the result."""
        with self._lock:
            proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                return self._sample(pids, proc)
            finally:
                os.close(proc)

    def _sample(self, pids: Mapping[K, int], proc: int) -> dict[K, Usage]:
        now = self.clock()
        trees = self._trees(pids, proc)
        booted = uptime() if trees else 0.0
        result: dict[K, Usage] = {}
        for key, members in trees.items():
            ticks = rss = fds = threads = 0
            for member in members:
                ticks += member.cpu_ticks
                rss += member.rss_pages
                fds += open_fds(member.pid, proc)
                if member.state != "Z":
                    threads += member.threads
            root = members[0]
            result[key] = Usage(
                root.pid,
                len(members),
                ticks / CLOCK_TICKS,
                self._percent(root, ticks, now, booted),
                rss * PAGE_SIZE,
                fds,
                threads,
            )
        self._forget(now)
        return result

    def _trees(self, pids: Mapping[K, int], proc: int) -> dict[K, list[Stat]]:
        """The members of each child's process tree, the child first."""
        roots: dict[K, Stat] = {}
        for key, pid in pids.items():
            found = read_stat(pid, proc)
            if found is not None:
                roots[key] = found
        by_session = {stat.session: key for key, stat in roots.items()}
        root_pids = {stat.pid for stat in roots.values()}
        extra: dict[K, list[Stat]] = {}
        # Orphans of a child's session came back to us (the subreaper): count them with it.
        for pid in children(self.own_pid, 2, proc):
            if pid in root_pids:
                continue
            found = read_stat(pid, proc)
            if found is not None and found.session in by_session:
                extra.setdefault(by_session[found.session], []).append(found)
        trees: dict[K, list[Stat]] = {}
        for key, root in roots.items():
            found_children = children(root.pid, root.threads, proc)
            if not found_children and key not in extra:  # the common case: a child alone
                trees[key] = [root]
                continue
            members = [root]
            seen = {root.pid}
            queue = [*extra.get(key, ())]
            for pid in found_children:
                if (found := read_stat(pid, proc)) is not None:
                    queue.append(found)
            while queue:
                stat = queue.pop()
                if stat.pid in seen:
                    continue
                seen.add(stat.pid)
                members.append(stat)
                for pid in children(stat.pid, stat.threads, proc):
                    if pid not in seen and (found := read_stat(pid, proc)) is not None:
                        queue.append(found)
            trees[key] = members
        return trees

    def _percent(self, root: Stat, ticks: int, now: float, booted: float) -> float:
        incarnation = (root.pid, root.start_ticks)
        history = self._history.get(incarnation)
        if history is None:
            history = self._history[incarnation] = deque(maxlen=8)
        base: tuple[float, int] | None = None
        for when, earlier in reversed(history):
            if now - when >= self.min_interval:
                base = (when, earlier)
                break
        if base is None and history:
            base = history[0]
        history.append((now, ticks))
        if base is not None and now > base[0]:
            elapsed = now - base[0]
            used = (ticks - base[1]) / CLOCK_TICKS
        else:  # first reading: the average over the child's life
            elapsed = booted - root.start_ticks / CLOCK_TICKS
            used = ticks / CLOCK_TICKS
        if elapsed <= 0:
            return 0.0
        return max(0.0, used / elapsed * 100.0)

    def _forget(self, now: float) -> None:
        stale = [key for key, history in self._history.items() if now - history[-1][0] > self.forget_after]
        for key in stale:
            del self._history[key]
