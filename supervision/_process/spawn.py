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

The cheapest correct way is an *exec helper*: a 478-byte static x86-64 program,
kept in a memfd, that the vfork fast path execs instead of the target. It calls
``prctl(PR_SET_PDEATHSIG, SIGKILL)``, checks that its parent is still the
supervisor (closing the race where the supervisor dies before the prctl: then
it exits without running the program), marks the error pipe close-on-exec and
``execve``\\ s the target; if that fails it writes ``errno`` to the error pipe, so a
missing program is still a start failure with the OS error, as with ``Popen``.
It costs one extra ``execve`` of a tiny static image (~60-90 us) instead of a
full ``fork``. ``setpriv`` would cost 4x more (dynamic linking) and has the race.

The same helper does what socket activation needs in the child (held sockets,
``sockets=[sv.listen(...)]``): it places the sockets at fds 3, 4, ... and writes
its own pid (which the program keeps across ``execve``) into ``LISTEN_PID`` and
``WATCHDOG_PID``, which ``sd_listen_fds(3)`` and ``sd_watchdog_enabled(3)``
compare with ``getpid()``. Nothing else in the spawn path can: the pid is
unknown until the fork, and ``Popen`` cannot reorder fds.

Where the helper cannot run (another architecture, memfd exec forbidden), we
fall back to ``preexec_fn`` with a ctypes ``prctl`` and the same parent check;
with sockets or pid variables, that ``preexec_fn`` places the fds and calls
``execve`` itself, with the same error pipe as the helper. With
``pdeathsig=False`` and nothing to place we take the plain vfork path.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
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

# The exec helper (x86-64, Linux). Called as
#   helper PARENT_PID ERRFD FDS PIDVARS PATH ARGV0 ARGS...
# It runs, in the child, before the program:
#   - fcntl(ERRFD, F_SETFD, FD_CLOEXEC);
#   - unless PARENT_PID is 0: prctl(PR_SET_PDEATHSIG, SIGKILL), and exit(1) if
#     getppid() != PARENT_PID (the supervisor died before the prctl);
#   - FDS ("7,9,12" or ""): the sockets to pass, placed at fds 3, 4, 5 ... (each
#     first copied above the targets, close-on-exec, so that any permutation
#     works; the error pipe is moved above them too);
#   - PIDVARS = n: the first n environment variables get the helper's own pid
#     as their value (LISTEN_PID, WATCHDOG_PID: the helper's pid is the
#     program's, since execve keeps it);
#   - execve(PATH, &ARGV0, envp); on any failure write(ERRFD, &errno, 4), exit(127).
# Source (GNU as, intel syntax), assembled with `as` and extracted with
# `objcopy -O binary -j .text` (no relocations: position-independent):
#   # helper PARENT_PID ERRFD FDS PIDVARS PATH ARGV0 ARGS...
#   _start:
#       mov r12, rsp
#       mov rsi, [r12+24]          # ERRFD
#       call atoi
#       mov r13, rax
#       mov rdi, r13               # fcntl(ERRFD, F_SETFD, FD_CLOEXEC)
#       mov esi, 2
#       mov edx, 1
#       mov eax, 72
#       syscall
#       mov rsi, [r12+16]          # PARENT_PID (0: no pdeathsig)
#       call atoi
#       mov rbx, rax
#       test rbx, rbx
#       jz 1f
#       mov edi, 1                 # prctl(PR_SET_PDEATHSIG, SIGKILL)
#       mov esi, 9
#       xor edx, edx
#       xor r10d, r10d
#       xor r8d, r8d
#       mov eax, 157
#       syscall
#       mov eax, 110               # getppid
#       syscall
#       cmp rax, rbx
#       jne orphaned
#   1:
#       sub rsp, 512               # up to 64 fds
#       mov r15, rsp
#       xor r14d, r14d
#       mov rsi, [r12+32]          # FDS: "7,9,12" or ""
#   2:  cmp byte ptr [rsi], 0
#       je 3f
#       call atoi
#       mov [r15+r14*8], rax
#       inc r14
#       cmp byte ptr [rsi], 44     # ','
#       jne 3f
#       inc rsi
#       jmp 2b
#   3:  lea rbx, [r14+3]           # first fd above the targets
#       mov rdi, r13               # the error pipe moves above them too
#       mov esi, 1030              # F_DUPFD_CLOEXEC
#       mov rdx, rbx
#       mov eax, 72
#       syscall
#       test rax, rax
#       js fail
#       mov r13, rax
#       xor ebp, ebp
#   4:  cmp rbp, r14
#       jae 5f
#       mov rdi, [r15+rbp*8]       # each source: close-on-exec, copied above the targets
#       mov esi, 2
#       mov edx, 1
#       mov eax, 72
#       syscall
#       test rax, rax
#       js fail
#       mov rdi, [r15+rbp*8]
#       mov esi, 1030
#       mov rdx, rbx
#       mov eax, 72
#       syscall
#       test rax, rax
#       js fail
#       mov [r15+rbp*8], rax
#       inc rbp
#       jmp 4b
#   5:  xor ebp, ebp
#   6:  cmp rbp, r14
#       jae 7f
#       mov rdi, [r15+rbp*8]       # dup2(copy, 3 + i): inheritable
#       lea rsi, [rbp+3]
#       mov eax, 33
#       syscall
#       test rax, rax
#       js fail
#       inc rbp
#       jmp 6b
#   7:  mov eax, 39                # getpid, in decimal, NUL-terminated
#       syscall
#       sub rsp, 32
#       lea r8, [rsp+31]
#       mov byte ptr [r8], 0
#       mov ecx, 10
#   8:  xor edx, edx
#       div rcx
#       add edx, 48
#       dec r8
#       mov [r8], dl
#       test rax, rax
#       jnz 8b
#       mov rax, [r12]             # envp = argv + argc + 1
#       lea r9, [r12+rax*8+16]
#       mov rsi, [r12+40]          # PIDVARS: the first n variables get the pid as value
#       call atoi
#       mov r10, rax
#       xor ebp, ebp
#   9:  cmp rbp, r10
#       jae 12f
#       mov rdi, [r9+rbp*8]
#   10: mov al, [rdi]              # find '='
#       inc rdi
#       cmp al, 61
#       jne 10b
#       mov rsi, r8
#   11: mov al, [rsi]
#       mov [rdi], al
#       inc rsi
#       inc rdi
#       test al, al
#       jnz 11b
#       inc rbp
#       jmp 9b
#   12: mov rdi, [r12+48]          # execve(PATH, &ARGV0, envp)
#       lea rsi, [r12+56]
#       mov rdx, r9
#       mov eax, 59
#       syscall
#   fail:
#       neg eax
#       push rax
#       mov rdi, r13               # write(ERRFD, &errno, 4)
#       mov rsi, rsp
#       mov edx, 4
#       mov eax, 1
#       syscall
#       mov edi, 127
#       jmp exit
#   orphaned:
#       mov edi, 1
#   exit:
#       mov eax, 231
#       syscall
#   atoi:                          # rsi -> digits; stops at the first non-digit
#       xor eax, eax
#   13: movzx ecx, byte ptr [rsi]
#       sub ecx, 48
#       cmp ecx, 9
#       ja 14f
#       imul rax, rax, 10
#       add rax, rcx
#       inc rsi
#       jmp 13b
#   14: ret
_HELPER_X86_64 = bytes.fromhex(
    "4989e4498b742418e8b70100004989c54c89efbe02000000ba01000000b8480000000f05498b"
    "742410e8960100004889c34885db7429bf01000000be0900000031d24531d24531c0b89d0000"
    "000f05b86e0000000f054839d80f85590100004881ec000200004989e74531f6498b74242080"
    "3e007416e8490100004b8904f749ffc6803e2c750548ffc6ebe5498d5e034c89efbe06040000"
    "4889dab8480000000f054885c00f88f10000004989c531ed4c39f57343498b3cefbe02000000"
    "ba01000000b8480000000f054885c00f88c9000000498b3cefbe060400004889dab848000000"
    "0f054885c00f88ad000000498904ef48ffc5ebb831ed4c39f5731d498b3cef488d7503b82100"
    "00000f054885c00f888500000048ffc5ebdeb8270000000f054883ec204c8d44241f41c60000"
    "b90a00000031d248f7f183c23049ffc84188104885c075ed498b04244d8d4cc410498b742428"
    "e8690000004989c231ed4c39d57323498b3ce98a0748ffc73c3d75f74c89c68a06880748ffc6"
    "48ffc784c075f248ffc5ebd8498b7c2430498d7424384c89cab83b0000000f05f7d8504c89ef"
    "4889e6ba04000000b8010000000f05bf7f000000eb05bf01000000b8e70000000f0531c00fb6"
    "0e83e93083f909770c486bc00a4801c848ffc6ebe9c3"
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
        listen: Sequence[int] = (),
        pid_variables: int = 0,
    ) -> int:
        """Start ``argv`` in a new session; return its pid. The child's stdin is
        ``/dev/null``. Raises ``OSError`` if the program cannot be executed or
        ``cwd`` is bad (nothing is left running then).

        ``listen``: fds the child gets at 3, 4, ... (socket activation).
        ``pid_variables``: the first that many variables of ``env`` (an
        insertion-ordered mapping) get the child's pid as their value."""
        method = method or self.method
        if listen or pid_variables:
            assert env is not None and len(listen) <= 64
            return self._spawn_activated(argv, cwd, env, stdout, stderr, pdeathsig, method, listen, pid_variables)
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
                    [helper, str(parent), str(write_end), "", "0", path, *argv],
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

    def _spawn_activated(
        self,
        argv: Sequence[str],
        cwd: str | None,
        env: Mapping[bytes, bytes] | Mapping[str, str],
        stdout: int | None,
        stderr: int | None,
        pdeathsig: bool,
        method: str,
        listen: Sequence[int],
        pid_variables: int,
    ) -> int:
        parent = os.getpid()
        path = _resolve(argv[0], cwd, env)
        common = {
            "cwd": cwd,
            "stdin": subprocess.DEVNULL,
            "stdout": stdout,
            "stderr": stderr,
            "start_new_session": True,
        }
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                if method == "helper":
                    assert self._helper_fd is not None
                    helper = f"/proc/{parent}/fd/{self._helper_fd}"
                    fds = ",".join(str(fd) for fd in listen)
                    boss = str(parent) if pdeathsig else "0"
                    popen = subprocess.Popen(  # type: ignore[call-overload]
                        [helper, boss, str(write_end), fds, str(pid_variables), path, *argv],
                        executable=helper,
                        env=env,
                        pass_fds=(write_end, *listen),
                        close_fds=True,
                        **common,
                    )
                else:
                    activate = _activator(
                        self._prctl() if pdeathsig else None, parent, write_end, listen, pid_variables, path, argv, env
                    )
                    popen = subprocess.Popen(  # type: ignore[call-overload]
                        [path], preexec_fn=activate, pass_fds=(write_end, *listen), close_fds=True, **common
                    )
            finally:
                os.close(write_end)
            pid = _released(popen)
            data = os.read(read_end, 4)
        finally:
            os.close(read_end)
        if data:
            os.waitpid(pid, 0)
            code = struct.unpack("<i", data.ljust(4, b"\0"))[0]
            raise OSError(code, os.strerror(code), argv[0])
        return pid

    def _prctl(self) -> Callable[..., int]:
        if self._libc is None:
            self._libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = self._libc.prctl
        return prctl


_MAX_FD = 1 << 20  # above any RLIMIT_NOFILE; closerange uses close_range(2)


def _activator(
    prctl: Callable[..., int] | None,
    parent: int,
    errfd: int,
    listen: Sequence[int],
    pid_variables: int,
    path: str,
    argv: Sequence[str],
    env: Mapping[bytes, bytes] | Mapping[str, str],
) -> Callable[[], None]:
    """The exec helper's work in Python, for ``preexec_fn`` (the fallback): it
    runs in the forked child and ends in ``execve`` (or ``_exit(127)``)."""
    items = [(os.fsencode(k), os.fsencode(v)) for k, v in env.items()]

    def activate() -> None:
        fd = errfd
        try:
            if prctl is not None:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(1)
            base = 3 + len(listen)
            os.set_inheritable(errfd, False)  # pass_fds made it inheritable: the program must not keep it
            fd = fcntl.fcntl(errfd, fcntl.F_DUPFD_CLOEXEC, base)
            copies = [fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, base) for source in listen]
            for source in listen:
                os.set_inheritable(source, False)
            for index, copy in enumerate(copies):
                os.dup2(copy, 3 + index)
            # Popen closes the other fds after preexec_fn, which never returns here: close them now.
            os.closerange(base, fd)
            os.closerange(fd + 1, _MAX_FD)
            pid = str(os.getpid()).encode()
            final = {k: (pid if n < pid_variables else v) for n, (k, v) in enumerate(items)}
            os.execve(path, list(argv), final)
        except OSError as exc:
            os.write(fd, struct.pack("<i", exc.errno or _errno.EIO))
        os._exit(127)

    return activate


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
