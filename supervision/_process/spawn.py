"""Spawning process children with ``PR_SET_PDEATHSIG`` at the lowest cost.

Why this module exists
----------------------
A child must die if the supervisor is killed hard, so it needs
``prctl(PR_SET_PDEATHSIG, SIGKILL)`` *in the child, before exec*. CPython's fast
path (``subprocess.Popen`` without ``preexec_fn``, ``os.posix_spawn``) uses
``vfork`` and runs no code of ours in the child; ``preexec_fn`` disables it: the
interpreter is fully ``fork``\\ ed (page tables copied) and Python code runs in the
child. Measured on the development machine (2 vCPUs, Linux 6.18, Python 3.11;
spawn + exit + reap of ``/bin/true``, per process):

=====================================  ==========  ===========================
method                                  small RSS   with 200 MB resident
=====================================  ==========  ===========================
``os.posix_spawn`` (no pdeathsig)         350 us        440 us
``Popen`` vfork path (no pdeathsig)       385 us        465 us
``Popen`` + ``preexec_fn`` (ctypes)      1400 us       8000 us
``os.fork`` + ctypes prctl + ``execve``  1080 us       5200 us
``setpriv --pdeathsig KILL`` (vfork)      730 us        780 us
this module's exec helper (vfork)         440 us        510 us
=====================================  ==========  ===========================

The cheapest correct way is an *exec helper*: a 469-byte static x86-64 program
(``helper``), kept in a memfd, that the vfork fast path execs instead of the
target. It runs a list of system calls the supervisor encodes: the held sockets
of socket activation (``sockets=[sv.listen(...)]``) placed at fds 3, 4, ...; its
own pid (which the program keeps across ``execve``) written into ``LISTEN_PID``
and ``WATCHDOG_PID``, which ``sd_listen_fds(3)`` and ``sd_watchdog_enabled(3)``
compare with ``getpid()``; the child's settings (``settings``: limits, nice, OOM
score, umask, groups, uid). Then it calls ``prctl(PR_SET_PDEATHSIG, SIGKILL)``
(after the credential changes, which clear it), checks that its parent is still
the supervisor (closing the race where the supervisor dies before the prctl: then
it exits without running the program), and ``execve``\\ s the target; if a step or
the exec fails it writes ``errno`` and the step to the error pipe, so a missing
program is still a start failure with the OS error, as with ``Popen``, and a
setting that cannot be applied says which. It costs one extra ``execve`` of a
tiny static image (~60-90 us) instead of a full ``fork``. ``setpriv`` would cost
4x more (dynamic linking) and has the race. Nothing else in the spawn path could
write the pid (unknown until the fork) or reorder fds (``Popen`` cannot).

Where the helper cannot run (another architecture, memfd exec forbidden), we
fall back to ``preexec_fn`` with a ctypes ``prctl``, the same parent check and
the same actions, in Python (ending in its own ``execve`` with sockets or pid
variables). With ``pdeathsig=False`` and nothing to do in the child we take the
plain vfork path.
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
