"""The central reaper: one per event loop, for every process child of every tree.

* Exits of our own children are observed with ``pidfd_open``, through the event
  loop (its ``Poller``: no thread per child, no polling, no wake-up while nothing
  happens) and reaped
  with ``waitid(P_PIDFD)``, so we only ever collect the pid we were told about.
* The process is a child subreaper (``PR_SET_CHILD_SUBREAPER``): descendants
  orphaned by a service (daemons that double-forked, children of a crashed
  service) come back to us instead of to init.
* A ``SIGCHLD`` handler (through the loop, so it runs as a normal callback)
  schedules one sweep for the next turn of the loop, however many signals came
  in, and the sweep reaps at most a batch of orphans: the loop keeps turning
  (signals, the control socket, timers) whatever the rate of exits. It peeks with
  ``waitid(P_ALL, WNOWAIT)`` first and only reaps what is ours to reap: a watched
  child is left to its pidfd (never reaped, never restarted from the sweep); an
  unwatched child in *another session* than ours is an orphan that came back to
  the subreaper (every service runs in a session of its own) and is reaped; an
  unwatched child in our own session belongs to other code in this process
  (``subprocess.run`` ...) and is left alone, its status not stolen (the orphans
  a watched or foreign zombie hides from the peek are found through ``/proc``).
* After a service's main process exits (or is stopped), what it left behind is
  killed and reaped: members of its session that came back to us, orphans whose
  initial environment carries its ``SUPERVISION_INVOCATION_ID`` (a daemon that
  called ``setsid``), orphans that carry nothing (``setsid -f env -i``) but
  started during its life while no other running child had started yet, and all
  their descendants. Found through ``/proc``, killed with ``pidfd_send_signal``
  (no pid-reuse race), awaited through their pidfds. What is still held when a
  tree stops (:meth:`Reaper.orphans`) is killed by ``sv.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable

from . import proc
from .poller import poller
from .proc import _environ_has, children_of, read_stat, set_done, start_time
from .signals import quiet_wakeup
from .spawn import Spawner, set_child_subreaper

logger = logging.getLogger("supervision")

ExitCallback = Callable[[int, int], None]
"""Called with ``(si_code, si_status)`` of ``waitid`` once the child is reaped."""

_SWEEP_BATCH = 64
"""Orphans reaped per turn of the event loop at most."""

_PAGE_END = 4096 - 8
"""A read of a children file shorter than this is its end: the kernel fills a page
(4 KiB at least) but for the room of one more pid and its space."""

_ABANDONED_AFTER = 1.0
"""Seconds a zombie in our own session is left to its owner before ``sv.run`` reaps it."""

_orphans_ours = False
"""Set by ``sv.run``: the whole process is the supervisor, so an orphan that carries
nothing naming its service is still ours to end (see :meth:`Reaper.leftovers`).
Not with ``sv.start``: a process the application starts in a session of its own
(``Popen(start_new_session=True)``) looks the same as such an orphan in ``/proc``."""

_spawner: Spawner | None = None
_subreaper: bool | None = None
_reapers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Reaper] = weakref.WeakKeyDictionary()


def spawner() -> Spawner:
    """The process-wide spawner (it holds the exec helper's memfd)."""
    global _spawner
    if _spawner is None:
        _spawner = Spawner()
    return _spawner


def reaper() -> Reaper:
    """The reaper of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _reapers.get(loop)
    if found is None:
        found = _reapers[loop] = Reaper(loop)
    return found


def claim_orphans() -> None:
    """``sv.run``: every orphan the subreaper inherits is the supervisor's."""
    global _orphans_ours
    _orphans_ours = True


def existing_reaper() -> Reaper | None:
    """The reaper of the running event loop, if it has one (no process child ever
    started from it otherwise)."""
    return _reapers.get(asyncio.get_running_loop())


class _Watch:
    __slots__ = ("_born", "callback", "pid", "pidfd")

    def __init__(self, pid: int, pidfd: int, callback: ExitCallback, born: int | None) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.callback = callback
        self._born = born

    @property
    def born(self) -> int:
        """Its start time: given, or read from ``/proc`` when first needed (a watched
        child is not reaped yet: a zombie at worst, its pid not reused)."""
        if self._born is None:
            self._born = start_time(self.pid) or 0
        return self._born


class Reaper:
    """Watches and reaps the process children started from one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        global _subreaper
        self.loop = loop
        self._watches: dict[int, _Watch] = {}
        self._poller = poller(loop)
        self._own_pid = os.getpid()
        self._own_session = os.getsid(0)
        # The threads whose children files say whether a service may have left
        # something behind (see ``_unwatched_children``): the first thread, which
        # the kernel gives orphans to (always read, last), and each other thread that
        # spawned a watched child (these). Their files are opened when first read,
        # read with pread, closed with the reaper.
        self._threads: set[int] = set()
        self._children_files: dict[int, int] = {}
        self._clear_at = -1  # the poll of the poller when no child was unwatched (see _unwatched_children)
        weakref.finalize(self, _close_all, self._children_files)
        if _subreaper is None:
            _subreaper = set_child_subreaper()
            if not _subreaper:
                logger.warning("PR_SET_CHILD_SUBREAPER refused: orphaned descendants will go to init")
        self._sweep_pending = False
        self._stale: dict[int, tuple[int | None, float]] = {}  # zombie of our session: (start time, first seen)
        self._stale_timer: asyncio.TimerHandle | None = None
        self.sigchld = False
        try:
            loop.add_signal_handler(signal.SIGCHLD, self._on_sigchld)
            quiet_wakeup()  # a crash storm's SIGCHLDs fill the wakeup socket: no warning per byte
            self.sigchld = True
        except (RuntimeError, ValueError):  # not the main thread: orphans are reaped at cleanups only
            logger.debug("no SIGCHLD handler (event loop not in the main thread)")

    # -- our own children ---------------------------------------------------------

    def watch(self, pid: int, callback: ExitCallback, born: int | None = None) -> None:
        """Call ``callback`` once ``pid`` (our child) has exited and been reaped.
        ``born``: its start time (see :func:`start_time`; :func:`boot_ticks` taken
        before the spawn will do), read from ``/proc`` when needed if not given.
        Called in the thread that spawned ``pid`` (see ``_unwatched_children``)."""
        pidfd = os.pidfd_open(pid)
        if pidfd >= proc._fd_room:
            proc.make_room(pidfd)
        self.adopt(pid, pidfd, callback, born)

    def adopt(self, pid: int, pidfd: int, callback: ExitCallback, born: int | None = None) -> None:
        """Watch a child through a pidfd opened already (re-exec: a child the
        previous image of this process started, see ``adopt``). The watch owns
        ``pidfd`` from now on."""
        tid = threading.get_native_id()
        if tid != self._own_pid:
            self._threads.add(tid)
        self._watches[pid] = _Watch(pid, pidfd, callback, born)
        self._poller.add(pidfd, self._collect, pid)

    def _collect(self, pid: int) -> None:
        watch = self._watches.get(pid)
        if watch is None:
            return
        try:
            info = os.waitid(os.P_PIDFD, watch.pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:  # reaped behind our back (SIGCHLD set to SIG_IGN?)
            code, status = os.CLD_KILLED, int(signal.SIGKILL)
        else:
            if info is None:
                return  # not exited yet
            code, status = info.si_code, info.si_status
        del self._watches[pid]
        self._poller.remove(watch.pidfd)
        os.close(watch.pidfd)
        watch.callback(code, status)

    # -- orphans ------------------------------------------------------------------

    def _on_sigchld(self) -> None:
        # One sweep per turn of the loop, however many SIGCHLDs came in: a crash
        # storm sends thousands, and each sweep is work.
        if not self._sweep_pending:
            self._sweep_pending = True
            self.loop.call_soon(self._sweep)

    def _sweep(self) -> None:
        """Reap orphans that exited: at most ``_SWEEP_BATCH`` per turn of the loop
        (the rest in the next turn, after signals, sockets and timers had theirs).
        Never a watched child: those come through their pidfds, one callback each,
        so a restart is never made from inside this loop."""
        self._sweep_pending = False
        for _ in range(_SWEEP_BATCH):
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            stat = None if pid in self._watches else read_stat(pid)
            if stat is None or stat[3] == self._own_session:
                # A watched child (its pidfd reports it) or a child another part of
                # this process owns (not ours to reap) hides the zombies behind it
                # from the peek: look for orphans through /proc instead — if there
                # can be any (a crash storm's SIGCHLDs find watched zombies: a scan
                # of every child each time was O(children) per signal).
                if self._unwatched_children(fresh=True):
                    self._reap_orphans_by_scan()
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        self._on_sigchld()  # more than a batch: carry on in the next turn

    def _reap_orphans_by_scan(self) -> None:
        reaped = 0
        now = self.loop.time()
        stale: dict[int, tuple[int | None, float]] = {}
        for pid in children_of(self._own_pid, all_threads=True):
            if pid in self._watches:
                continue
            stat = read_stat(pid)
            if stat is None or stat[0] != "Z":
                continue
            if stat[3] == self._own_session:
                # Under sv.run, a zombie in our session that its owner (subprocess...)
                # has not collected for a while is an orphan that came back to us:
                # of code of this process, or entered from outside (nsenter, as PID 1).
                if not _orphans_ours:
                    continue
                born = start_time(pid)
                seen = self._stale.get(pid)
                first = seen[1] if seen is not None and seen[0] == born else now
                if now - first < _ABANDONED_AFTER:
                    stale[pid] = (born, first)
                    continue
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            reaped += 1
            if reaped == _SWEEP_BATCH:
                self._on_sigchld()  # the rest in the next turn
                break
        self._stale = stale
        if stale and self._stale_timer is None:
            self._stale_timer = self.loop.call_later(_ABANDONED_AFTER, self._on_stale_timer)

    def _on_stale_timer(self) -> None:
        self._stale_timer = None
        self._on_sigchld()

    def _unwatched_children(self, fresh: bool = False) -> bool:
        """Whether we have a child that is not watched: without one, no service can
        have left anything behind (what a service leaves behind comes back to us, to
        the first thread of this process, before its pidfd says it exited).

        Counted, not parsed: a watched pid is a child of the thread that spawned it
        (or of the first thread, once that thread has ended) until its watch is
        collected, so there is an unwatched child among the children of those
        threads exactly when they have more children than we have watches. A
        ``pread`` of each of their children files (kept open; a page, some 600
        children, at a time), a ``count`` of the separators: little Python per exit
        however many children run,
        where parsing every pid cost O(children) per exit and O(n²) to stop n. The
        first thread is read last: a child moving to it from a thread that ends
        meanwhile is counted twice, never missed. True if it cannot tell (another
        event loop of this process watches children too).

        The kernel still walks the children to list them, so a "no" is remembered
        until the poller polls again (unless ``fresh``): every exit it reports
        was polled before the count was made, and the kernel gives a service's
        orphans to us before its pidfd says it exited: they were counted. An exit
        after the count is reported by a later poll, and counted again; a restart
        meanwhile adds a child and its watch together. Exits that come together
        (an orderly stop) pay one walk."""
        generation = self._poller.generation
        if self._clear_at == generation and not fresh:
            return False
        if len(_reapers) > 1 and any(other is not self and other._watches for other in _all_reapers()):
            return True
        files = self._children_files
        count = 0
        for tid in (*self._threads, self._own_pid):  # the first thread last
            fd = files.get(tid)
            try:
                if fd is None:
                    fd = files[tid] = os.open(f"/proc/{self._own_pid}/task/{tid}/children", os.O_RDONLY | os.O_CLOEXEC)
                # A read returns one page at most (some 600 pids), as full as the
                # entries allow: a shorter one is the end.
                offset = 0
                while chunk := os.pread(fd, 65536, offset):
                    count += chunk.count(b" ")
                    offset += len(chunk)
                    if len(chunk) < _PAGE_END:
                        break
            except OSError:  # it ended before its file was opened: its children are the first thread's
                if tid == self._own_pid:
                    return True
                self._forget_thread(tid)
                continue
            if not offset and tid != self._own_pid and not os.path.exists(f"/proc/{self._own_pid}/task/{tid}"):
                self._forget_thread(tid)  # an ended thread's file reads empty
        if count > len(self._watches):
            return True
        self._clear_at = generation
        return False

    def _forget_thread(self, tid: int) -> None:
        fd = self._children_files.pop(tid, None)
        if fd is not None:
            os.close(fd)
        self._threads.discard(tid)

    def leftovers(self, leader: int, marker: bytes, born: int | None = None, *, fresh: bool = False) -> list[int]:
        """Live or zombie processes a service left behind, and their descendants:
        orphans that came back to us from its session or process group, or
        carrying its invocation id; and, under ``sv.run`` (:func:`claim_orphans`)
        given ``born`` (the service's start time), the orphans nobody else can have
        started: an orphan in a session of its own
        and without the marker (``setsid -f env -i daemon``) that started after the
        service did, while no other watched child that started before it still
        runs. (One that might be another running child's is left to that child's
        exit, or to :meth:`orphans` at the end.) ``fresh``: count the children
        again (after killing leftovers, which may have forked meanwhile)."""
        if not self._unwatched_children(fresh):
            return []
        others = sorted(w.born for w in self._watches.values() if w.pid != leader)
        roots = []
        for pid in children_of(self._own_pid, all_threads=True):
            if pid in self._watches:
                continue
            stat = read_stat(pid)
            if stat is None or stat[3] == self._own_session:
                continue
            if stat[3] == leader or stat[2] == leader or _environ_has(pid, marker) or _only_theirs(pid, born, others):
                roots.append(pid)
        return _with_descendants(roots)

    def orphans(self) -> list[int]:
        """Every process the subreaper inherited and still holds (not a watched
        child, not in our own session), with its descendants: what is left when
        the last tree of this loop has stopped."""
        roots = []
        for pid in children_of(self._own_pid, all_threads=True):
            if pid in self._watches:
                continue
            stat = read_stat(pid)
            if stat is not None and stat[3] != self._own_session:
                roots.append(pid)
        return _with_descendants(roots)

    async def kill_and_reap(self, pids: list[int], timeout: float = 5.0) -> None:
        """SIGKILL these processes (a snapshot of descendants), wait until they are
        gone and reap those that are (or became) our children."""
        fds = []
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except OSError:  # gone already
                continue
            fds.append(fd)
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        try:
            waiters = []
            for fd in fds:
                future: asyncio.Future[None] = self.loop.create_future()
                self.loop.add_reader(fd, set_done, future)
                waiters.append(future)
            if waiters:
                _, pending = await asyncio.wait(waiters, timeout=timeout)
                if pending:
                    logger.warning("%d process(es) still alive %gs after SIGKILL", len(pending), timeout)
        finally:
            for fd in fds:
                self.loop.remove_reader(fd)
                # Not our child: its parent (one of these, or us later) reaps it.
                with contextlib.suppress(ChildProcessError):
                    os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
                os.close(fd)


def _all_reapers() -> list[Reaper]:
    """The reapers of every event loop: a copy, made again if another thread
    added one meanwhile (a ``WeakKeyDictionary`` iterates in Python)."""
    while True:
        try:
            return list(_reapers.values())
        except RuntimeError:  # dictionary changed size during iteration
            continue


def _only_theirs(pid: int, born: int | None, others: list[int]) -> bool:
    """True if ``pid`` started after ``born`` and before any of ``others`` (start
    times of the other running children, sorted): only that child can be its ancestor.
    A start time taken before the spawn (:func:`boot_ticks`) may be a tick early:
    for ``born`` that errs on the side of killing what may be its leftover, for
    ``others`` on the side of leaving an orphan to :meth:`Reaper.orphans`."""
    if born is None or not _orphans_ours:
        return False
    started = start_time(pid)
    return started is not None and started >= born and (not others or others[0] > started)


def _close_all(fds: dict[int, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)


def _with_descendants(roots: list[int]) -> list[int]:
    found: list[int] = []
    while roots:
        pid = roots.pop()
        found.append(pid)
        roots.extend(children_of(pid))
    return found
