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

The cheapest correct way is an *exec helper*: a 177-byte static x86-64 program,
kept in a memfd, that the vfork fast path execs instead of the target. It calls
``prctl(PR_SET_PDEATHSIG, SIGKILL)``, checks that its parent is still the
supervisor (closing the race where the supervisor dies before the prctl: then
it exits without running the program), marks the error pipe close-on-exec and
``execve``\\ s the target; if that fails it writes ``errno`` to the error pipe, so a
missing program is still a start failure with the OS error, as with ``Popen``.
It costs one extra ``execve`` of a tiny static image (~60-90 us) instead of a
full ``fork``. ``setpriv`` would cost 4x more (dynamic linking) and has the race.

Where the helper cannot run (another architecture, memfd exec forbidden), we
fall back to ``preexec_fn`` with a ctypes ``prctl`` and the same parent check.
With ``pdeathsig=False`` we take the plain vfork path.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import logging
import os
import platform
import signal
import stat
import struct
import subprocess
from collections.abc import Callable, Mapping, Sequence

logger = logging.getLogger("supervision")

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

# The exec helper (x86-64, Linux). Called as
#   helper PARENT_PID ERRFD PATH ARGV0 ARGS...
# It runs: prctl(PR_SET_PDEATHSIG, SIGKILL); fcntl(ERRFD, F_SETFD, FD_CLOEXEC);
# if getppid() != PARENT_PID: exit(1); execve(PATH, &ARGV0, envp);
# on failure: write(ERRFD, &errno, 4); exit(127).
# Source (GNU as, intel syntax), assembled and checked with objdump:
#   _start: mov r12, rsp                  ; r12 -> argc, argv[0..], NULL, envp
#           mov edi, 1; mov esi, 9; xor edx, edx; xor r10d, r10d; xor r8d, r8d
#           mov eax, 157; syscall         ; prctl(PR_SET_PDEATHSIG, SIGKILL)
#           mov rsi, [r12+24]; call atoi; mov r13, rax        ; ERRFD
#           mov rdi, r13; mov esi, 2; mov edx, 1; mov eax, 72; syscall  ; fcntl
#           mov rsi, [r12+16]; call atoi; mov r14, rax        ; PARENT_PID
#           mov eax, 110; syscall; cmp rax, r14; jne orphaned ; getppid
#           mov rdi, [r12+32]; lea rsi, [r12+40]              ; PATH, &ARGV0
#           mov rax, [r12]; lea rdx, [r12+rax*8+16]           ; envp
#           mov eax, 59; syscall                              ; execve
#           neg eax; push rax; mov rdi, r13; mov rsi, rsp; mov edx, 4
#           mov eax, 1; syscall; mov edi, 127; jmp exit       ; write errno
#   orphaned: mov edi, 1
#   exit:   mov eax, 231; syscall                             ; exit_group
#   atoi:   xor eax, eax
#     1:    movzx ecx, byte ptr [rsi]; test ecx, ecx; jz 2f
#           imul rax, rax, 10; sub ecx, 48; add rax, rcx; inc rsi; jmp 1b
#     2:    ret
_HELPER_X86_64 = bytes.fromhex(
    "4989e4bf01000000be0900000031d24531d24531c0b89d0000000f05498b742418e872000000"
    "4989c54c89efbe02000000ba01000000b8480000000f05498b742410e8510000004989c6b86e"
    "0000000f054c39f07536498b7c2420498d742428498b0424498d54c410b83b0000000f05f7d8"
    "504c89ef4889e6ba04000000b8010000000f05bf7f000000eb05bf01000000b8e70000000f05"
    "31c00fb60e85c9740f486bc00a83e9304801c848ffc6ebeac3"
)


def _elf(code: bytes, machine: int) -> bytes:
    """A minimal static ELF64 executable: header, one PT_LOAD segment, ``code``."""
    base = 0x400000
    headers = 64 + 56
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
        self._libc: ctypes.CDLL | None = None
        self.method = self._choose()

    def _choose(self) -> str:
        if os.environ.get("SUPERVISION_SPAWN_METHOD") == "preexec":  # an escape hatch, and for tests
            return "preexec"
        if platform.machine() in ("x86_64", "AMD64") and hasattr(os, "memfd_create"):
            try:
                fd = os.memfd_create("supervision-exec-helper", os.MFD_CLOEXEC)
                os.write(fd, _elf(_HELPER_X86_64, 0x3E))
                self._helper_fd = fd
                self._probe()
                return "helper"
            except OSError as exc:
                logger.debug("exec helper unavailable (%s); using preexec_fn", exc)
                if self._helper_fd is not None:
                    os.close(self._helper_fd)
                    self._helper_fd = None
        return "preexec"

    def _probe(self) -> None:
        """Run the helper once on a missing program: it must report ENOENT."""
        try:
            self.spawn(["/nonexistent/supervision-probe"], None, None, None, None, pdeathsig=True, method="helper")
        except FileNotFoundError:
            return
        raise OSError(_errno.ENOEXEC, "exec helper probe did not report ENOENT")

    def close(self) -> None:
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
    ) -> int:
        """Start ``argv`` in a new session; return its pid. The child's stdin is
        ``/dev/null``. Raises ``OSError`` if the program cannot be executed or
        ``cwd`` is bad (nothing is left running then)."""
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
        if not pdeathsig:
            return _released(subprocess.Popen(list(argv), **common))  # type: ignore[call-overload]
        if method == "preexec":
            prctl = self._prctl()

            def set_pdeathsig() -> None:  # runs in the forked child
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:  # the supervisor died before the prctl
                    os._exit(1)

            return _released(subprocess.Popen(list(argv), preexec_fn=set_pdeathsig, **common))  # type: ignore[call-overload]
        assert self._helper_fd is not None
        path = _resolve(argv[0], cwd, env)
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            helper = f"/proc/{parent}/fd/{self._helper_fd}"
            try:
                popen = subprocess.Popen(  # type: ignore[call-overload]
                    [helper, str(parent), str(write_end), path, *argv],
                    executable=helper,
                    pass_fds=(write_end,),
                    **common,
                )
            finally:
                os.close(write_end)
            pid = _released(popen)
            # EOF: the target was exec'd (the helper made the pipe close-on-exec).
            data = os.read(read_end, 4)
        finally:
            os.close(read_end)
        if data:
            os.waitpid(pid, 0)  # the helper exits at once after reporting
            code = struct.unpack("<i", data.ljust(4, b"\0"))[0]
            raise OSError(code, os.strerror(code), argv[0])
        return pid

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
