"""Spawning process children with ``PR_SET_PDEATHSIG`` at the lowest cost.

Why this module exists
----------------------
A child must die if the supervisor is killed hard, so it needs
``prctl(PR_SET_PDEATHSIG, SIGKILL)`` *in the child, before exec*. CPython's fast
paths (``subprocess.Popen`` without ``preexec_fn``, ``os.posix_spawn``) use
``vfork`` and run no code of ours in the child; ``preexec_fn`` disables them: the
interpreter is fully ``fork``\\ ed (page tables copied) and Python code runs in the
child. Measured with ``bench/spawn_methods.py`` on the development machine (2 vCPUs
shared with other work, Linux 6.18, Python 3.11, glibc 2.36; spawn + exit + reap of
``/bin/true``, SCHED_FIFO, medians of 40 interleaved rounds of 50; ratio: the median
of each round's ratio to ``os.posix_spawn``; "blocked": in the spawn call, the event
loop stopped; "CPU": the supervisor's)::

    method                                  wall   ratio  blocked   CPU
    os.posix_spawn (no pdeathsig)          672 us  1.00x   169 us  112 us
    Popen, vfork path (no pdeathsig)       704 us  1.07x   227 us  185 us
    exec helper started by Popen (before)  788 us  1.20x   353 us  226 us
    the helper's code in-process (vfork)   695 us  1.05x   212 us  169 us
    ... with pdeathsig=False               696 us  1.04x   210 us  165 us
    Popen + preexec_fn (ctypes prctl)     2483 us  3.62x  2046 us  935 us

The cheapest correct way runs the *exec helper*'s code (``helper``: a 717-byte
static x86-64 program, kept in a memfd) in a child made by
``clone(CLONE_VM|CLONE_VFORK)`` from this process (``helper.InProcess``: its
``vfork`` entry, mapped from the memfd and called through ``ctypes``), the way
``posix_spawn`` makes one, so that the target is the only ``execve``. The child
runs a list of system calls the supervisor encodes: a new session, ``/dev/null``
at fd 0, the output at 1 and 2 and the held sockets of socket activation
(``sockets=[sv.listen(...)]``) at 3, 4, ..., the working directory, ``SIGPIPE``
and ``SIGXFSZ`` at their defaults (as ``Popen(restore_signals=True)``), its own pid
(which the program keeps across ``execve``) written into ``LISTEN_PID`` and
``WATCHDOG_PID``, the child's settings (``settings``: limits, nice, OOM score,
umask, groups, uid), and ``close_range`` of every other fd (``close_fds``). Then
it calls ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (after the credential changes, which
clear it), checks that its parent is still the supervisor (closing the race where
the supervisor dies before the prctl: then it exits without running the program),
and ``execve``\\ s the target; if a step or the exec fails it writes ``errno`` and
the step to the error pipe before it exits, so a missing program or a bad ``cwd``
is still a start failure with the OS error, as with ``Popen``, and a setting that
cannot be applied says which. The supervisor is blocked only until the target's
``execve`` (``CLONE_VFORK``), not through a second one; every fd it hands the child
is close-on-exec here, so a spawn in another thread never inherits one.

Where the helper's code cannot run so (no executable mapping of the memfd, or no
``close_range``: Linux before 5.9), the helper itself is exec'd by ``Popen``'s
vfork path, as before (``SUPERVISION_SPAWN_METHOD=helper`` forces it): one more
``execve`` of a tiny static image (~80 us), and ``Popen``'s own Python.
(``os.posix_spawn`` with file actions would start it in the same time, for a
little less of our CPU, but could not close the other fds without
``close_range`` either.) On another architecture, or where memfd execution is
forbidden, we fall back to ``preexec_fn`` with a ctypes ``prctl``, the same
parent check and the same actions, in Python (``SUPERVISION_SPAWN_METHOD=preexec``
forces it). With
``pdeathsig=False`` the in-process path is still the cheapest: ``Popen``'s vfork
path would cost its Python and ``close_fds`` work; with the exec'd helper and
nothing to do in the child, ``Popen`` is taken (cheaper than the extra exec).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import logging
import os
import platform
import stat
import struct
import subprocess
from collections.abc import Callable, Mapping, Sequence

from .helper import HELPER_X86_64, InProcess, spawn_preexec
from .helper import spawn as spawn_helper
from .settings import Step

logger = logging.getLogger("supervision")

PR_SET_PDEATHSIG = 1
PRIVATE_VARIABLES = (
    b"NOTIFY_SOCKET",
    b"LISTEN_PID",
    b"LISTEN_FDS",
    b"LISTEN_FDNAMES",
    b"WATCHDOG_PID",
    b"WATCHDOG_USEC",
)
"""Environment variables meant for one process each (the supervisor's own came from
systemd): never inherited by a child; a child that needs them gets its own."""
PR_SET_CHILD_SUBREAPER = 36


ELF_HEADERS = 64 + 56
"""Where the code begins in :func:`_elf`'s image."""


def _elf(code: bytes, machine: int) -> bytes:
    """A minimal static ELF64 executable: header, one PT_LOAD segment, ``code``."""
    base = 0x400000
    headers = ELF_HEADERS
    size = headers + len(code)
    # fmt: off
    ehdr = struct.pack(
        "<4sBBBBB7xHHIQQQIHHHHHH",
        b"\x7fELF", 2, 1, 1, 0, 0,  # 64-bit, little-endian, version 1, System V
        2, machine, 1,  # ET_EXEC, machine, version
        base + headers, 64, 0,  # entry, program headers offset, no section headers
        0, 64, 56, 1, 0, 0, 0,  # flags, sizes, one program header
    )
    # fmt: on
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)  # PT_LOAD, R+X
    return ehdr + phdr + code


class Spawner:
    """Starts processes; picks the cheapest way to set ``PR_SET_PDEATHSIG`` once."""

    def __init__(self) -> None:
        self._helper_fd: int | None = None
        self._in_process: InProcess | None = None
        self._libc: ctypes.CDLL | None = None
        self.method = self._choose()

    def _choose(self) -> str:
        forced = os.environ.get("SUPERVISION_SPAWN_METHOD")  # an escape hatch, and for tests
        if forced == "preexec":
            return "preexec"
        if platform.machine() not in ("x86_64", "AMD64") or not hasattr(os, "memfd_create"):
            return "preexec"
        try:
            fd = os.memfd_create("supervision-exec-helper", os.MFD_CLOEXEC)
            image = _elf(HELPER_X86_64, 0x3E)
            os.write(fd, image)
            self._helper_fd = fd
            self._probe("helper")
        except OSError as exc:
            logger.debug("exec helper unavailable (%s); using preexec_fn", exc)
            self.close()
            return "preexec"
        if forced == "helper":
            return "helper"
        try:
            self._in_process = InProcess(fd, len(image), ELF_HEADERS)
            self._probe("vfork")
        except OSError as exc:
            logger.debug("in-process vfork unavailable (%s); exec'ing the helper", exc)
            if self._in_process is not None:
                self._in_process.close()
                self._in_process = None
            return "helper"
        return "vfork"

    def _probe(self, method: str) -> None:
        """Run the helper once on a missing program: it must report ENOENT."""
        try:
            self.spawn(["/nonexistent/supervision-probe"], None, None, None, None, pdeathsig=True, method=method)
        except FileNotFoundError:
            return
        raise OSError(_errno.ENOEXEC, "exec helper probe did not report ENOENT")

    def close(self) -> None:
        if self._in_process is not None:
            self._in_process.close()
            self._in_process = None
        if self._helper_fd is not None:
            os.close(self._helper_fd)
            self._helper_fd = None

    def spawn(
        self,
        argv: Sequence[str],
        cwd: str | None,
        env: Mapping[bytes, bytes] | Mapping[str, str] | None,
        stdout: int | None,
        stderr: int | None,
        *,
        pdeathsig: bool,
        method: str | None = None,
        steps: Sequence[Step] = (),
        listen: Sequence[int] = (),
        pid_variables: int = 0,
    ) -> int:
        """Start ``argv`` in a new session; return its pid. The child's stdin is
        ``/dev/null``; ``steps`` (``settings.prepare``) are applied in it before
        exec. Raises ``OSError`` if the program cannot be executed, ``cwd`` is bad
        or a step fails (``SettingFailed``); nothing is left running then.

        ``listen``: fds the child gets at 3, 4, ... (socket activation).
        ``pid_variables``: the first that many variables of ``env`` (an
        insertion-ordered mapping) get the child's pid as their value."""
        method = method or self.method
        parent = os.getpid()
        common = {
            "cwd": cwd,
            "env": env,
            "stdin": subprocess.DEVNULL,
            "stdout": stdout,
            "stderr": stderr,
            "start_new_session": True,
            "close_fds": True,
        }
        if method == "preexec":
            if not pdeathsig and not steps and not listen and not pid_variables:
                return _released(subprocess.Popen(list(argv), **common))  # type: ignore[call-overload]
            prctl = self._prctl() if pdeathsig else None
            own = _resolve(argv[0], cwd, env) if listen or pid_variables else None  # it calls execve itself
            return spawn_preexec(
                argv,
                common,
                parent=parent,
                steps=steps,
                prctl=prctl,
                path=own,
                listen=listen,
                pid_variables=pid_variables,
            )
        boss = parent if pdeathsig else 0
        if method == "vfork":
            assert self._in_process is not None
            path = _resolve(argv[0], cwd, env)
            return self._in_process.spawn(
                argv, path, common, parent=boss, steps=steps, listen=listen, pid_variables=pid_variables
            )
        if not pdeathsig and not steps and not listen and not pid_variables:  # cheaper than exec'ing the helper
            return _released(subprocess.Popen(list(argv), **common))  # type: ignore[call-overload]
        assert self._helper_fd is not None
        path = _resolve(argv[0], cwd, env)
        helper = f"/proc/{parent}/fd/{self._helper_fd}"
        return spawn_helper(
            helper, argv, path, common, parent=boss, steps=steps, listen=listen, pid_variables=pid_variables
        )

    def _prctl(self) -> Callable[..., int]:
        if self._libc is None:
            self._libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = self._libc.prctl
        return prctl


def _released(popen: subprocess.Popen[bytes]) -> int:
    # We reap the child ourselves (pidfd + waitid). A Popen object collected with
    # returncode None would be put on subprocess._active and waitpid()ed by the
    # next Popen, stealing the exit status: mark it as done.
    popen.returncode = 0
    return popen.pid


def _resolve(program: str, cwd: str | None, env: Mapping[bytes, bytes] | Mapping[str, str] | None) -> str:
    """The path ``execvpe`` would run (the helper calls plain ``execve``)."""
    if "/" in program:
        return program  # relative to the child's cwd, which Popen sets before the helper
    search = os.get_exec_path(env)  # type: ignore[arg-type]  # bytes or str keys, as execvpe
    return _search(program, cwd, search)


def _search(program: str, cwd: str | None, search: list[str]) -> str:
    denied: OSError | None = None
    for directory in search:
        candidate = os.path.join(directory or ".", program)
        where = candidate if os.path.isabs(candidate) or cwd is None else os.path.join(cwd, candidate)
        try:
            mode = os.stat(where).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and os.access(where, os.X_OK):
            return candidate
        denied = PermissionError(_errno.EACCES, os.strerror(_errno.EACCES), program)
    if denied is not None:
        raise denied
    raise FileNotFoundError(_errno.ENOENT, os.strerror(_errno.ENOENT), program)


def set_child_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants. False if refused."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
