"""An observer outside every supervisor: the kernel's process events connector.

The proc connector (``NETLINK_CONNECTOR``, ``CN_IDX_PROC``) multicasts an event for
every fork, exec and exit on the machine, stamped by the kernel with
``ktime_get_ns()``: ``CLOCK_MONOTONIC``, the clock of ``time.monotonic_ns()``.
Every supervisor under test is timed by this one clock, from outside, the same way:
the exit of one incarnation, the fork of the next, its exec.

Only the descendants of this process (the benchmark driver) are kept: every
supervisor under test is started by the driver, so its children are found by
following fork events down from here, with no race against the first fork and no
guessing by name. Threads (``pid != tgid``) are ignored.

Subscribing needs ``CAP_NET_ADMIN`` in the initial namespaces (root, here);
:func:`available` says whether it works, and why not.

>>> with Observer() as observer:                      # doctest: +SKIP
...     child = subprocess.Popen(["/bin/true"]); child.wait()
...     observer.settle()
...     observer.children(os.getpid())[-1].execs
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
NLMSG_DONE = 3

PROC_EVENT_NONE = 0x0  # the acknowledgement of a subscription
PROC_EVENT_FORK = 0x1
PROC_EVENT_EXEC = 0x2
PROC_EVENT_EXIT = 0x80000000

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_EVENT_HEAD = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_FORK = struct.Struct("=iiii")  # parent pid, parent tgid, child pid, child tgid
_EXEC = struct.Struct("=ii")  # pid, tgid
_EXIT = struct.Struct("=iiII")  # pid, tgid, exit_code (wait status), exit_signal
_ACK = struct.Struct("=I")  # err
_HEAD = _NLMSGHDR.size + _CN_MSG.size
_DATA = _HEAD + _EVENT_HEAD.size


@dataclass(slots=True)
class Proc:
    """One process (one incarnation of a pid), as the kernel told it."""

    pid: int
    ppid: int
    fork_ns: int
    execs: list[int] = field(default_factory=list)
    exit_ns: int | None = None
    status: int | None = None  # the wait status of the exit
    parent: Proc | None = field(default=None, repr=False, compare=False)

    @property
    def exec_ns(self) -> int | None:
        """The last exec: the program itself, past any exec helper or shell wrapper."""
        return self.execs[-1] if self.execs else None


def _message(op: int, pid: int) -> bytes:
    payload = struct.pack("=I", op)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, pid) + cn


def parse(data: bytes) -> list[tuple[int, int, tuple[int, ...]]]:
    """The ``(what, timestamp_ns, fields)`` of each proc event in a datagram."""
    events = []
    offset = 0
    while offset + _DATA <= len(data):
        length = _NLMSGHDR.unpack_from(data, offset)[0]
        if length < _DATA:
            break
        what, _cpu, stamp = _EVENT_HEAD.unpack_from(data, offset + _HEAD)
        body = offset + _DATA
        if what == PROC_EVENT_FORK:
            events.append((what, stamp, _FORK.unpack_from(data, body)))
        elif what == PROC_EVENT_EXEC:
            events.append((what, stamp, _EXEC.unpack_from(data, body)))
        elif what == PROC_EVENT_EXIT:
            events.append((what, stamp, _EXIT.unpack_from(data, body)))
        elif what == PROC_EVENT_NONE:
            events.append((what, stamp, _ACK.unpack_from(data, body)))
        offset += (length + 3) & ~3
    return events


def available() -> tuple[bool, str]:
    """Whether the proc connector can be used here, and if not, why."""
    if os.geteuid() != 0:
        return False, "not root: the proc connector needs CAP_NET_ADMIN"
    try:
        with Observer():
            pass
    except OSError as exc:
        return False, f"proc connector unavailable: {exc}"
    return True, "kernel proc connector (CN_PROC), CLOCK_MONOTONIC timestamps"


class Observer:
    """Records fork, exec and exit of every descendant of this process, with the
    kernel's timestamps, from a background thread (it only parses and files events,
    so it costs the driver little and the supervisors under test nothing)."""

    def __init__(self, rcvbuf: int = 64 << 20) -> None:
        self.lost = 0  # datagrams dropped by the kernel (ENOBUFS): counts may be short
        self._lock = threading.Lock()
        self._me = os.getpid()
        self._seed = Proc(self._me, os.getppid(), 0)
        self._live: dict[int, Proc] = {self._me: self._seed}
        self._all: list[Proc] = []
        self._last_ns = 0
        self._stop = False
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, rcvbuf)
                    break
            sock.bind((self._me, CN_IDX_PROC))
            sock.settimeout(2.0)
            sock.send(_message(PROC_CN_MCAST_LISTEN, self._me))
            self._await_ack(sock)
            sock.settimeout(0.1)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._read, name="cnproc", daemon=True)
        self._thread.start()

    def _await_ack(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            for what, _stamp, fields in parse(sock.recv(65536)):
                if what == PROC_EVENT_NONE:
                    if fields[0]:
                        raise OSError(fields[0], f"subscription refused: {os.strerror(fields[0])}")
                    return
                self._file(what, _stamp, fields)
        raise OSError(errno.ETIMEDOUT, "no acknowledgement from the proc connector")

    def _read(self) -> None:
        sock = self._sock
        while not self._stop:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.lost += 1
                    continue
                if self._stop:
                    return
                raise
            with self._lock:
                for what, stamp, fields in parse(data):
                    self._file(what, stamp, fields)

    def _file(self, what: int, stamp: int, fields: tuple[int, ...]) -> None:
        self._last_ns = max(self._last_ns, stamp)
        if what == PROC_EVENT_FORK:
            _ppid, ptgid, pid, tgid = fields
            if pid == tgid and ptgid in self._live:
                proc = Proc(pid, ptgid, stamp, parent=self._live[ptgid])
                self._live[pid] = proc
                self._all.append(proc)
        elif what == PROC_EVENT_EXEC:
            pid, tgid = fields
            execd = self._live.get(tgid)
            if execd is not None and pid == tgid:
                execd.execs.append(stamp)
        elif what == PROC_EVENT_EXIT:
            pid, tgid, code, _signal = fields
            if pid == tgid and pid != self._me:
                exited = self._live.pop(pid, None)
                if exited is not None:
                    exited.exit_ns = stamp
                    exited.status = code

    # -- queries ------------------------------------------------------------------

    def settle(self, timeout: float = 1.0) -> None:
        """Wait until every event up to now has been read (the kernel stamps events
        when they happen; an event of ours marks where "now" is)."""
        mark = time.monotonic_ns()
        os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], {}), 0)
        deadline = time.monotonic() + timeout
        while self._last_ns < mark and time.monotonic() < deadline:
            time.sleep(0.001)

    def _root(self, pid: int) -> Proc | None:
        found = next((proc for proc in reversed(self._all) if proc.pid == pid), None)
        return self._seed if found is None and pid == self._me else found

    def children(self, pid: int) -> list[Proc]:
        """The processes that ``pid`` (its latest incarnation) forked, in fork order."""
        with self._lock:
            root = self._root(pid)
            return [proc for proc in self._all if proc.parent is root and root is not None]

    def descendants(self, pid: int) -> list[Proc]:
        """Every process forked below ``pid`` (its latest incarnation), in fork order."""
        with self._lock:
            root = self._root(pid)
            if root is None:
                return []
            tree = {id(root)}  # ids of the records in the tree: pids get reused
            found = []
            for proc in self._all:  # fork order: a parent is filed before its children
                if id(proc.parent) in tree:
                    tree.add(id(proc))
                    found.append(proc)
        return found

    def alive(self, pid: int) -> list[Proc]:
        """Descendants of ``pid`` that have not exited (as far as the kernel said)."""
        return [proc for proc in self.descendants(pid) if proc.exit_ns is None]

    def forget(self) -> None:
        """Drop the records of processes that have exited (between scenarios)."""
        with self._lock:
            self._all = [proc for proc in self._all if proc.exit_ns is None]

    def close(self) -> None:
        if self._stop:
            return
        self._stop = True
        with contextlib.suppress(OSError):
            self._sock.send(_message(PROC_CN_MCAST_IGNORE, self._me))
        self._thread.join(timeout=2.0)
        self._sock.close()

    def __enter__(self) -> Observer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
