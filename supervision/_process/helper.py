"""The exec helper that prepares a process child before exec.

The spawner (``_spawn``) prepares process children with a tiny static x86-64
program kept in a memfd, run with no fork of the interpreter: its code in a
child made by ``clone(CLONE_VM|CLONE_VFORK)`` from this process
(:class:`InProcess`, the ``vfork`` entry below), or, where that cannot be (no
executable mapping, no ``close_range``: Linux before 5.9), exec'd as a program
by ``Popen``'s vfork path (:func:`spawn`). Code then runs
in the child before the target: ``PR_SET_PDEATHSIG``, the child's own pid in
``LISTEN_PID`` and ``WATCHDOG_PID`` (socket activation), the child's settings
(``settings``: limits, nice, OOM score, umask, groups, gid, uid), its fds, working
directory and signals, and the closing of every fd it must not inherit. The helper
knows nothing of sockets or settings: it runs a **list of system calls** the
supervisor encodes (:func:`encode`), then the parent check and ``execve``. Each
step is a few bytes and a system call or two in the child, with no Python; a
failing step is reported with its index and ``errno``, so the start error says
which step failed and why.

The order of the steps in this process's child: ``setsid``, ``/dev/null`` at fd 0,
the output at 1 and 2 and the held sockets at 3, 4, ... (``dup2`` from
close-on-exec sources), ``chdir`` (with the supervisor's credentials, where
``Popen`` did it), ``SIGPIPE`` and ``SIGXFSZ`` at their defaults, the pid
variables, the settings (credentials last: each needs the privilege the next
drops), ``close_range`` of every other fd but the error pipe; then
``PR_SET_PDEATHSIG``, which a credential change would clear. When the helper is
exec'd, ``Popen`` does the first ones (session, stdin, output, ``cwd``, signals,
``close_fds``), and the program places the sockets itself (:class:`PlaceFd`:
``dup2`` and ``close`` of a copy), as the ``preexec_fn`` fallback does.

Called as ``helper PARENT_PID ERRFD PROGRAM PATH ARGV0 ARGS...``:

1. ``fcntl(ERRFD, F_SETFD, FD_CLOEXEC)``: the error pipe closes at exec.
2. ``PROGRAM`` (hex) is decoded onto the stack (at most :data:`MAX_PROGRAM`
   bytes): a count ``n``, then ``n`` entries of 8 little-endian u64s
   ``nr, a0..a5, flags``, then data the entries point into. ``flags`` bit i
   (0..5) adds the program's address to ``a_i`` (a pointer into the data);
   bit 6 replaces ``a0`` by the previous call's result (an fd just opened).
   Each entry is one ``syscall``; a result in ``-4095..-1`` stops there. An
   entry with ``nr`` -1 is not a system call: it writes the helper's pid (the
   program's too: ``execve`` keeps it) in decimal, NUL-terminated, after the
   first ``=`` of environment variable number ``a0``, whose value the supervisor
   made wide enough (:data:`PID_WIDTH`).
3. If ``PARENT_PID`` is not 0: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (after the
   credential changes, which clear it), then exit 1 if ``getppid()`` is not
   ``PARENT_PID`` (the supervisor died before the prctl).
4. ``execve(PATH, &ARGV0, envp)``.

In this process, ``vfork(frame, stack_top)`` (System V ABI, from ``ctypes``) blocks
every signal, calls ``clone(CLONE_VM|CLONE_VFORK|SIGCHLD)`` onto ``stack_top``,
restores the mask and returns the pid (or ``-errno``) once the child has exec'd
or exited. The child, which shares this memory, sets each caught signal to
``SIG_DFL`` (no handler of ours may run in it), restores the signal mask, and
runs the above from step 1 with ``frame`` laid out as the kernel lays out
``argc``, ``argv`` and ``envp``; ``ERRFD`` is then our close-on-exec pipe, whose
report is written before the child exits: there when ``clone`` returns.

On a failure (a step or ``execve``) it writes 8 bytes to ``ERRFD``: ``errno``
(i32) and the step's index (i32, ``-1`` for ``execve``), and exits 127.

Source (GNU as, intel syntax; ``;`` separates statements), assembled with ``as --64`` and checked with
objdump; ``tests/test_exec_helper.py`` assembles it again when ``as`` is
installed and compares::

    _start: mov r12, rsp  # [r12] argc, [r12+8+8i] argv[i]
    body:   mov rsi, [r12+24]; call atoi; mov r13, rax  # ERRFD
            mov rdi, r13; mov esi, 2; mov edx, 1; mov eax, 72; syscall  # fcntl
            mov rsi, [r12+32]; sub rsp, 32768; mov r15, rsp; mov rdi, rsp
    decode: movzx eax, byte ptr [rsi]; test eax, eax; jz decoded  # hex pairs
            movzx ecx, byte ptr [rsi+1]
            mov edx, eax; shr edx, 6; lea edx, [rdx+rdx*8]; and eax, 15; add eax, edx
            mov edx, ecx; shr edx, 6; lea edx, [rdx+rdx*8]; and ecx, 15; add ecx, edx
            shl eax, 4; or eax, ecx; mov byte ptr [rdi], al; inc rdi; add rsi, 2
            jmp decode
    decoded: lea rbx, [r15+8]; mov rbp, [r15]; shl rbp, 6; add rbp, rbx
            xor r14d, r14d  # last result
    step:   cmp rbx, rbp; jae steps_done
            mov r8, [rbx+56]; xor ecx, ecx  # flags
    reloc:  bt r8, rcx; jnc 1f; add [rbx+rcx*8+8], r15
    1:      inc ecx; cmp ecx, 6; jb reloc
            bt r8, 6; jnc 2f; mov [rbx+8], r14
    2:      mov rax, [rbx]; mov rdi, [rbx+8]; mov rsi, [rbx+16]; mov rdx, [rbx+24]
            mov r10, [rbx+32]; mov r8, [rbx+40]; mov r9, [rbx+48]
            cmp rax, -1; je pid  # not a system call: the pid into a variable
            syscall
    result: cmp rax, -4095; jae failed
            mov r14, rax; add rbx, 64; jmp step
    failed: mov rcx, rbx; sub rcx, r15; shr rcx, 6; jmp report  # step index
    steps_done: mov rsi, [r12+16]; call atoi; test rax, rax; jz exec  # PARENT_PID
            mov r14, rax
            mov edi, 1; mov esi, 9; xor edx, edx; xor r10d, r10d; xor r8d, r8d
            mov eax, 157; syscall  # prctl
            mov eax, 110; syscall; cmp rax, r14; jne orphaned  # getppid
    exec:   mov rdi, [r12+40]; lea rsi, [r12+48]  # PATH, &ARGV0
            mov rax, [r12]; lea rdx, [r12+rax*8+16]  # envp
            mov eax, 59; syscall; mov ecx, -1  # execve
    report: neg eax; shl rcx, 32; or rax, rcx; push rax
            mov rdi, r13; mov rsi, rsp; mov edx, 8; mov eax, 1; syscall
            mov edi, 127; jmp exit
    orphaned: mov edi, 1
    exit:   mov eax, 231; syscall  # exit_group
    atoi:   xor eax, eax
    3:      movzx ecx, byte ptr [rsi]; test ecx, ecx; jz 4f
            imul rax, rax, 10; sub ecx, 48; add rax, rcx; inc rsi; jmp 3b
    4:      ret
    pid:    mov eax, 39; syscall  # getpid
            mov rcx, [r12]; lea rcx, [r12+rcx*8+16]; mov rdi, [rcx+rdi*8]  # envp[a0]
    5:      inc rdi; cmp byte ptr [rdi-1], 61; jne 5b  # past the first '='
            mov rsi, rax; mov ecx, 10
    6:      inc rdi; xor edx, edx; div rcx; test rax, rax; jnz 6b  # a place per digit
            mov byte ptr [rdi], 0; mov rax, rsi
    7:      xor edx, edx; div rcx; add edx, 48; dec rdi; mov [rdi], dl; test rax, rax; jnz 7b
            jmp result  # rax is 0: done
    vfork:  push rbx; push rbp; push r12; push r13; push r14; push r15  # (frame, stack top)
            mov r12, rdi; mov r13, rsi; sub rsp, 24
            mov qword ptr [rsp], -1; xor edi, edi; mov rsi, rsp; lea rdx, [rsp+8]; mov r10d, 8
            mov eax, 14; syscall  # rt_sigprocmask: block all, the old mask at [rsp+8]
            lea rbp, [rsp+8]
            mov edi, 0x4111; mov rsi, r13; xor edx, edx; xor r10d, r10d; xor r8d, r8d
            mov eax, 56; syscall  # clone(CLONE_VM|CLONE_VFORK|SIGCHLD): back at exec or exit
            test rax, rax; jz child
            mov rbx, rax
            mov edi, 2; mov rsi, rbp; xor edx, edx; mov r10d, 8; mov eax, 14; syscall  # the mask
            mov rax, rbx; add rsp, 24
            pop r15; pop r14; pop r13; pop r12; pop rbp; pop rbx; ret  # the pid, or -errno
    child:  sub rsp, 32; mov ebx, 1  # on its own stack: each caught signal to SIG_DFL
    8:      mov qword ptr [rsp], 0; mov edi, ebx; xor esi, esi; mov rdx, rsp; mov r10d, 8
            mov eax, 13; syscall  # rt_sigaction(sig, NULL, &old)
            cmp qword ptr [rsp], 1; jbe 9f  # SIG_DFL, SIG_IGN: kept
            xor eax, eax; mov [rsp], rax; mov [rsp+8], rax; mov [rsp+16], rax; mov [rsp+24], rax
            mov edi, ebx; mov rsi, rsp; xor edx, edx; mov r10d, 8; mov eax, 13; syscall
    9:      inc ebx; cmp ebx, 64; jbe 8b
            mov edi, 2; mov rsi, rbp; xor edx, edx; mov r10d, 8; mov eax, 14; syscall  # the mask
            jmp body  # r12: the frame, as the kernel lays out argc, argv, envp
"""

from __future__ import annotations

import array
import ctypes
import errno as _errno
import fcntl
import itertools
import mmap
import os
import signal
import struct
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .settings import (
    OOM_SCORE_ADJ,
    ApplyFailed,
    SetGid,
    SetGroups,
    SetLimit,
    SetNice,
    SetOomScoreAdj,
    SettingFailed,
    SetUid,
    SetUmask,
    Step,
    apply,
)

PR_SET_PDEATHSIG = 1

HELPER_X86_64 = bytes.fromhex(
    "4989e4498b742418e8600100004989c54c89efbe02000000ba01000000b8480000000f05498b"
    "7424204881ec008000004989e74889e70fb60685c0742e0fb64e0189c2c1ea068d14d283e00f"
    "01d089cac1ea068d14d283e10f01d1c1e00409c8880748ffc74883c602ebcb498d5f08498b2f"
    "48c1e5064801dd4531f64839eb73674c8b433831c9490fa3c873054c017ccb08ffc183f90672"
    "ee490fbae00673044c897308488b03488b7b08488b7310488b53184c8b53204c8b43284c8b4b"
    "304883f8ff0f84bd0000000f05483d01f0ffff73094989c64883c340eba04889d94c29f948c1"
    "e906eb56498b742410e87b0000004885c074284989c6bf01000000be0900000031d24531d245"
    "31c0b89d0000000f05b86e0000000f054c39f07542498b7c2428498d742430498b0424498d54"
    "c410b83b0000000f05b9fffffffff7d848c1e1204809c8504c89ef4889e6ba08000000b80100"
    "00000f05bf7f000000eb05bf01000000b8e70000000f0531c00fb60e85c9740f486bc00a83e9"
    "304801c848ffc6ebeac3b8270000000f05498b0c24498d4ccc10488b3cf948ffc7807fff3d75"
    "f74889c6b90a00000048ffc731d248f7f14885c075f3c607004889f031d248f7f183c23048ff"
    "cf88174885c075eee9f6feffff535541544155415641574989fc4989f54883ec1848c70424ff"
    "ffffff31ff4889e6488d54240841ba08000000b80e0000000f05488d6c2408bf114100004c89"
    "ee31d24531d24531c0b8380000000f054885c0742c4889c3bf020000004889ee31d241ba0800"
    "0000b80e0000000f054889d84883c418415f415e415d415c5d5bc34883ec20bb0100000048c7"
    "04240000000089df31f64889e241ba08000000b80d0000000f0548833c2401762931c0488904"
    "2448894424084889442410488944241889df4889e631d241ba08000000b80d0000000f05ffc3"
    "83fb4076adbf020000004889ee31d241ba08000000b80e0000000f05e936fdffff"
)

VFORK_ENTRY = 469
"""Where ``vfork`` begins in :data:`HELPER_X86_64` (the in-process entry, see :func:`spawn_vfork`)."""

MAX_PROGRAM = 32768
"""Bytes of program the helper decodes (its stack buffer)."""

EMPTY = "00" * 8
"""The program with no steps."""

PID_WIDTH = 10
"""The least width of a pid variable's value (its placeholder): a pid has at most
7 digits (``PID_MAX_LIMIT`` is 2**22), and the helper writes it in place."""

RESTORED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name))
"""Signals the child gets at their defaults, as ``Popen(restore_signals=True)``
does: Python ignores them, and an ignored signal stays ignored across exec."""


REPORT = struct.Struct("<ii")
"""What the helper writes on a failure: errno, and the step's index (-1: execve)."""
EXEC_STEP = -1

# x86-64 system call numbers
_WRITE, _OPEN, _CLOSE, _RT_SIGACTION, _DUP2, _CHDIR, _UMASK, _SETSID, _CLOSE_RANGE = 1, 2, 3, 13, 33, 80, 95, 112, 436
_SETGROUPS, _SETRESUID, _SETRESGID, _SETPRIORITY, _SETRLIMIT = 116, 117, 119, 141, 160
_PID = 2**64 - 1  # not a system call: the helper's pid into a variable
_O_WRONLY_CLOEXEC = 0o1 | 0o2000000
_PRIO_PROCESS = 0
_RLIM_INFINITY = 2**64 - 1
_ENTRY = struct.Struct("<8Q")
_ARGUMENT = struct.Struct("<Q")
_PLUS_ONE = (1).__add__
_POINTER = [1 << i for i in range(6)]  # flags: a_i points into the data
_PREVIOUS = 1 << 6  # flags: a0 is the previous call's result
_MAX_FD = 1 << 20  # above any RLIMIT_NOFILE; closerange uses close_range(2)
CLOSE_RANGE_CLOEXEC = 1 << 2


@dataclass(frozen=True, slots=True)
class PlaceFd:
    """A held socket for the child, where the helper is exec'd or ``preexec_fn``
    runs: ``source`` (a copy above the targets, see :func:`spawn`) duplicated to
    ``target`` (3, 4, ...), then closed."""

    source: int
    target: int

    def describe(self) -> str:
        return f"passing a socket as fd {self.target}"


@dataclass(frozen=True, slots=True)
class WritePid:
    """The child's pid as the value of the ``index``-th environment variable
    (``LISTEN_PID``, ``WATCHDOG_PID``: compared with ``getpid()`` by the program)."""

    index: int
    name: str

    def describe(self) -> str:
        return f"writing the pid into {self.name}"


@dataclass(frozen=True, slots=True)
class ChangeDir:
    """``chdir(path)``: the child's working directory (first, with the supervisor's
    credentials, as ``Popen(cwd=...)`` did before the helper ran)."""

    path: str | bytes

    def describe(self) -> str:
        return f"changing directory to {os.fsdecode(self.path)!r}"


@dataclass(frozen=True, slots=True)
class CloseFrom:
    """``close_range(fd, ~0U, 0)``: every fd from ``fd`` up is closed (what
    ``close_fds=True`` did), so an inheritable fd the application leaked, or one
    another thread's spawn made, never reaches the child.

    With ``cloexec`` (``CLOSE_RANGE_CLOEXEC``, Linux 5.11), they are only marked
    close-on-exec, a bitmap operation: the target's ``execve`` closes them, after
    it has released the supervisor (``CLONE_VFORK``) instead of before. Closing
    them one by one took ~70 ns each, with the supervisor waiting: 100 us per
    spawn with 1 500 fds open (a pidfd and two pipes per running child)."""

    fd: int
    last: int = 2**32 - 1  # close_range's ~0U: all
    cloexec: bool = False

    def describe(self) -> str:
        return f"closing the fds from {self.fd} up"


@dataclass(frozen=True, slots=True)
class DefaultSignal:
    """``signal`` at its default action (``rt_sigaction``): ``SIGPIPE`` and
    ``SIGXFSZ``, which Python ignores and an ignored signal keeps across exec, as
    ``Popen(restore_signals=True)`` restores them."""

    signal: int

    def describe(self) -> str:
        return f"restoring the default action of signal {self.signal}"


@dataclass(frozen=True, slots=True)
class SetSid:
    """``setsid()``: the child leads a new session (``start_new_session``)."""

    def describe(self) -> str:
        return "starting a new session"


@dataclass(frozen=True, slots=True)
class DevNullStdin:
    """``/dev/null`` at fd 0 (read-write, as ``Popen``'s ``DEVNULL``): ``close_range(0, 0)``,
    then ``open`` takes the lowest fd."""

    def describe(self) -> str:
        return "opening /dev/null as stdin"


@dataclass(frozen=True, slots=True)
class Dup2:
    """``dup2(source, target)``: the child's output at 1 and 2, a socket at 3, 4, ..."""

    source: int
    target: int

    def describe(self) -> str:
        return f"placing fd {self.target}"


Action = PlaceFd | WritePid | ChangeDir | CloseFrom | DefaultSignal | SetSid | DevNullStdin | Dup2 | Step
"""What the helper does before the parent check and exec, in order."""


class ProgramTooLarge(ValueError):
    """The encoded settings do not fit the helper's buffer (thousands of groups)."""


def encode(steps: Sequence[Action]) -> tuple[str, list[int]]:
    """The helper's PROGRAM for ``steps`` (hex), and for each entry of it the
    index in ``steps`` it belongs to (one step may take two system calls)."""
    entries: list[tuple[int, list[int], int]] = []  # nr, args, flags (args may be data offsets)
    owners: list[int] = []
    data = bytearray()

    def add(owner: int, nr: int, args: Sequence[int], flags: int = 0) -> None:
        entries.append((nr, [*args, 0, 0, 0, 0, 0, 0][:6], flags))
        owners.append(owner)

    def datum(blob: bytes) -> int:  # an offset into the data, 8-byte aligned
        while len(data) % 8:
            data.append(0)
        offset = len(data)
        data.extend(blob)
        return offset

    for index, step in enumerate(steps):
        if isinstance(step, PlaceFd):
            add(index, _DUP2, [step.source, step.target])  # the target is inheritable
            add(index, _CLOSE, [step.source])  # pass_fds made the copy inheritable
        elif isinstance(step, WritePid):
            add(index, _PID, [step.index])
        elif isinstance(step, ChangeDir):
            path = os.fsencode(step.path)
            if b"\0" in path:
                raise ValueError("embedded null byte")
            add(index, _CHDIR, [datum(path + b"\0")], _POINTER[0])
        elif isinstance(step, CloseFrom):
            add(index, _CLOSE_RANGE, [step.fd, step.last, CLOSE_RANGE_CLOEXEC if step.cloexec else 0])
        elif isinstance(step, SetSid):
            add(index, _SETSID, [])
        elif isinstance(step, DevNullStdin):
            add(index, _CLOSE_RANGE, [0, 0, 0])
            add(index, _OPEN, [datum(b"/dev/null\0"), os.O_RDWR, 0], _POINTER[0])
        elif isinstance(step, Dup2):
            add(index, _DUP2, [step.source, step.target])
        elif isinstance(step, DefaultSignal):  # struct kernel_sigaction, all 0: SIG_DFL
            add(index, _RT_SIGACTION, [step.signal, datum(bytes(32)), 0, 8], _POINTER[1])
        elif isinstance(step, SetLimit):
            soft = _RLIM_INFINITY if step.soft is None else step.soft
            hard = _RLIM_INFINITY if step.hard is None else step.hard
            add(index, _SETRLIMIT, [step.resource, datum(struct.pack("<QQ", soft, hard))], _POINTER[1])
        elif isinstance(step, SetNice):
            add(index, _SETPRIORITY, [_PRIO_PROCESS, 0, step.value & (2**64 - 1)])
        elif isinstance(step, SetOomScoreAdj):
            add(index, _OPEN, [datum(OOM_SCORE_ADJ.encode() + b"\0"), _O_WRONLY_CLOEXEC, 0], _POINTER[0])
            value = str(step.value).encode()
            add(index, _WRITE, [0, datum(value), len(value)], _PREVIOUS | _POINTER[1])
        elif isinstance(step, SetUmask):
            add(index, _UMASK, [step.mask])
        elif isinstance(step, SetGroups):
            add(index, _SETGROUPS, [len(step.gids), datum(struct.pack(f"<{len(step.gids)}I", *step.gids))], _POINTER[1])
        elif isinstance(step, SetGid):
            add(index, _SETRESGID, [step.gid, step.gid, step.gid])
        else:
            assert isinstance(step, SetUid)
            add(index, _SETRESUID, [step.uid, step.uid, step.uid])
    start = 8 + _ENTRY.size * len(entries)  # where the data begins in the program
    program = bytearray(struct.pack("<Q", len(entries)))
    for nr, args, flags in entries:
        args = [arg + start if flags & _POINTER[i] else arg for i, arg in enumerate(args)]
        program += _ENTRY.pack(nr, *args, flags)
    program += data
    if len(program) > MAX_PROGRAM:
        raise ProgramTooLarge(f"the process settings take {len(program)} bytes, more than {MAX_PROGRAM}")
    return program.hex(), owners


# -- the helper's code run in this process: clone(CLONE_VM|CLONE_VFORK), no exec of it --


_SESSION: tuple[Action, ...] = (SetSid(), DevNullStdin())
_RESTORED: tuple[Action, ...] = tuple(DefaultSignal(number) for number in RESTORED_SIGNALS)
_FD = 2**31
"""Where an fd goes in the actions :class:`InProcess` encodes: no fd has that
number. The program is encoded once per shape and the fds of each spawn (new pipes
at each start of a group of instances) are written into a copy of it."""
_OUTPUT = (Dup2(_FD, 1), Dup2(_FD, 2))
_CLOSE_BELOW = {flag: CloseFrom(_FD, _FD, flag) for flag in (False, True)}
_CLOSE_ABOVE = {flag: CloseFrom(_FD, cloexec=flag) for flag in (False, True)}
_ENCODED: dict[tuple[Action, ...], tuple[bytes, list[int], dict[int, int]]] = {}


def _encoded(actions: Sequence[Action]) -> tuple[bytes, list[int], dict[int, int]]:
    """:func:`encode`, remembered: the program (bytes, not hex), the owner of each
    entry, and the first entry of each action (where :func:`_patched` writes)."""
    key = tuple(actions)
    found = _ENCODED.get(key)
    if found is None:
        program, owners = encode(actions)
        first: dict[int, int] = {}
        for entry, owner in enumerate(owners):
            first.setdefault(owner, entry)
        if len(_ENCODED) >= 256:
            _ENCODED.clear()
        found = _ENCODED[key] = bytes.fromhex(program), owners, first
    return found


def _patched(program: bytes, first: dict[int, int], fds: list[tuple[int, tuple[int, ...]]]) -> bytes:
    """The program (hex) with the fds of this spawn as the first arguments of the
    entries of the actions that hold :data:`_FD`."""
    patched = bytearray(program)
    for action, values in fds:
        at = 16 + (first[action] << 6)  # past the count, the entry's nr
        for value in values:
            _ARGUMENT.pack_into(patched, at, value)
            at += 8
    return patched.hex().encode()


def _real(actions: Sequence[Action], fds: list[tuple[int, tuple[int, ...]]]) -> list[Action]:
    """The actions with the fds of this spawn in place of :data:`_FD` (a failure names them)."""
    real = list(actions)
    for index, values in fds:
        action = real[index]
        if isinstance(action, Dup2):
            real[index] = Dup2(values[0], action.target)
        elif isinstance(action, CloseFrom):
            last = values[1] if len(values) > 1 else action.last
            real[index] = CloseFrom(values[0], last, action.cloexec)
    return real


def _environment(env: Env) -> list[bytes]:
    """``env`` as ``NAME=value`` strings, in its order."""
    try:
        entries: list[bytes] = list(map(b"=".join, env.items()))  # type: ignore[arg-type]
        names = b"".join(env)  # type: ignore[arg-type]
    except TypeError:  # str, or mixed
        entries = [os.fsencode(name) + b"=" + os.fsencode(value) for name, value in env.items()]
        names = b"".join(map(os.fsencode, env))
    if b"=" in names:  # in one of them
        raise ValueError("illegal environment variable name")
    return entries


class InProcess:
    """The helper's ``vfork`` entry (:data:`VFORK_ENTRY`), mapped executable from
    the memfd ``fd`` holding its ELF image (the code at ``offset``), called through
    ``ctypes`` (which releases the GIL). It blocks every signal, calls
    ``clone(CLONE_VM|CLONE_VFORK|SIGCHLD)`` onto a stack of ours, and returns the
    pid once the child has exec'd or exited; the child, sharing our memory, sets
    every caught signal to ``SIG_DFL`` (no handler of ours may run in it), restores
    the signal mask, and runs the helper's program from a frame laid out as the
    kernel lays out ``argc``, ``argv`` and ``envp``: the same steps, check and
    ``execve`` as the exec'd helper, without its ``execve``. A failure is in the
    error pipe by then (the child writes before it exits); otherwise the child has
    passed the point of no return of the target's ``execve`` (where the kernel
    releases a ``CLONE_VFORK`` parent): the pipe is read without waiting for the
    EOF that comes once the exec has closed the child's fds.

    The other fds are marked close-on-exec in the child where the kernel can
    (``CLOSE_RANGE_CLOEXEC``, :attr:`cloexec_range`), closed otherwise (see
    :class:`CloseFrom`)."""

    STACK = 65536
    """Bytes of each child stack: the program's buffer (:data:`MAX_PROGRAM`) and more."""

    def __init__(self, fd: int, size: int, offset: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._mmap, self._munmap = libc.mmap, libc.munmap
        self._mmap.restype = ctypes.c_void_p
        self._mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        self._munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        address = self._mmap(None, size, mmap.PROT_READ | mmap.PROT_EXEC, mmap.MAP_PRIVATE, fd, 0)
        if address is None or address == ctypes.c_void_p(-1).value:
            code = ctypes.get_errno()
            raise OSError(code, f"mapping the exec helper: {os.strerror(code)}")
        self._address, self._size = address, size
        self._call = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)(address + offset + VFORK_ENTRY)
        self._stacks: list[ctypes.Array[ctypes.c_char]] = []  # free ones (a spawn in each thread takes its own)
        self.cloexec_range = _cloexec_range_works(libc)

    def close(self) -> None:
        if self._address is not None:
            self._munmap(self._address, self._size)
            self._address = None

    def spawn(
        self,
        argv: Sequence[str],
        path: str,
        common: Mapping[str, Any],
        *,
        parent: int,
        steps: Sequence[Step] = (),
        listen: Sequence[int] = (),
        pid_variables: int = 0,
    ) -> int:
        """As :func:`spawn`, in this process."""
        env: Env = common.get("env") or os.environ
        cwd = common.get("cwd")
        made: list[int] = []  # our copies, closed at the end
        try:
            sources = _copies(listen, made)
            base = 3 + len(sources)
            actions: list[Action] = [*_SESSION]
            fds: list[tuple[int, tuple[int, ...]]] = []  # (action, its fds): written into the program
            for target, name in ((1, "stdout"), (2, "stderr")):
                fd = common.get(name)
                if fd is not None:
                    if fd < 3:  # it may be a target: from a copy above them
                        fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
                        made.append(fd)
                    fds.append((len(actions), (fd,)))
                    actions.append(_OUTPUT[target - 1])
            for index, fd in enumerate(sources):
                fds.append((len(actions), (fd,)))
                actions.append(Dup2(_FD, 3 + index))
            if cwd is not None:
                actions.append(ChangeDir(cwd))
            actions += _RESTORED
            if pid_variables:
                actions += _activation((), env, pid_variables)
            actions += steps
            read_end, write_end = _pipe(base, os.O_NONBLOCK)  # the child's error pipe: the same fd
            try:
                try:
                    cloexec = self.cloexec_range
                    if write_end > base:
                        fds.append((len(actions), (base, write_end - 1)))
                        actions.append(_CLOSE_BELOW[cloexec])
                    fds.append((len(actions), (write_end + 1,)))
                    actions.append(_CLOSE_ABOVE[cloexec])
                    program, owners, first = _encoded(actions)
                    strings = [b"", b"%d" % parent, b"%d" % write_end, _patched(program, first, fds), os.fsencode(path)]
                    strings += map(os.fsencode, argv)
                    count = len(strings)
                    strings += _environment(env)
                    blob = b"\0".join(strings)
                    if blob.count(0) != len(strings) - 1:
                        raise ValueError("embedded null byte")
                    text = array.array("B", blob + b"\0")  # writable: the pid variables
                    # where each string begins: past the one before and its NUL
                    offsets = list(
                        itertools.accumulate(map(_PLUS_ONE, map(len, strings)), initial=text.buffer_info()[0])
                    )
                    frame = array.array("Q", [count, *offsets[:count], 0, *offsets[count:-1], 0])
                    stack = self._stacks.pop() if self._stacks else ctypes.create_string_buffer(self.STACK)
                    try:
                        pid: int = self._call(frame.buffer_info()[0], (ctypes.addressof(stack) + self.STACK) & ~15)
                    finally:
                        self._stacks.append(stack)
                finally:
                    os.close(write_end)
                if pid < 0:
                    raise OSError(-pid, os.strerror(-pid))
                # A failure was written before the child exited; else the child is past
                # the point of no return of its execve: nothing will come but EOF.
                try:
                    data = os.read(read_end, REPORT.size)
                except BlockingIOError:
                    data = b""
            finally:
                os.close(read_end)
        finally:
            for fd in made:
                os.close(fd)
        if data:
            _fail(pid, data, argv, _real(actions, fds), owners)
        return pid


# -- spawning through the helper, or with preexec_fn where it cannot run ---------

Env = Mapping[bytes, bytes] | Mapping[str, str]


def spawn(
    helper: str,
    argv: Sequence[str],
    path: str,
    common: Mapping[str, Any],
    *,
    parent: int,
    steps: Sequence[Step] = (),
    listen: Sequence[int] = (),
    pid_variables: int = 0,
) -> int:
    """Run ``argv`` (its program resolved to ``path``) through the helper at
    ``helper``, exec'd by ``Popen``'s vfork path, applying ``steps`` first and, with
    ``parent`` not 0, setting ``PR_SET_PDEATHSIG``. ``common`` holds the other
    ``Popen`` arguments. ``listen``: fds the child gets at 3, 4, ... (socket
    activation); ``pid_variables``: the first that many variables of
    ``common["env"]`` (an insertion-ordered mapping, values at least
    :data:`PID_WIDTH` wide) get the child's pid as their value. Returns the pid once
    the target is exec'd; raises ``OSError`` (``SettingFailed`` for a step) with
    nothing left running otherwise.

    The fallback of :class:`InProcess`, which needs ``close_range`` (Linux 5.9):
    ``Popen`` closes the fds itself (``close_fds``), sets the ``cwd``, stdin, output
    and session, restores the signals, and makes ``pass_fds`` inheritable in the
    child only. ``os.posix_spawn`` with file actions would start the helper for the
    same cost (``bench/spawn_methods.py``) but could not close the other fds
    without ``close_range`` either."""
    made: list[int] = []
    try:
        copies = _copies(listen, made, reuse=False)  # each closed by the helper once placed
        actions = [*_activation(copies, common.get("env"), pid_variables), *steps]
        program, owners = encode(actions) if actions else (EMPTY, [])
        read_end, write_end = _pipe(3 + len(copies))
        try:
            try:
                popen = subprocess.Popen(
                    [helper, str(parent), str(write_end), program, path, *argv],
                    executable=helper,
                    pass_fds=(write_end, *copies),
                    **common,
                )
            finally:
                os.close(write_end)
            pid = released(popen)
            data = os.read(read_end, REPORT.size)  # EOF: the target was exec'd
        finally:
            os.close(read_end)
    finally:
        for fd in made:
            os.close(fd)
    if data:
        _fail(pid, data, argv, actions, owners)
    return pid


def spawn_preexec(
    argv: Sequence[str],
    common: dict[str, Any],
    *,
    parent: int,
    steps: Sequence[Step],
    prctl: Callable[..., int] | None,
    path: str | None = None,
    listen: Sequence[int] = (),
    pid_variables: int = 0,
) -> int:
    """The same with ``preexec_fn`` (another architecture, or memfd exec
    forbidden): the same actions in the forked child, a failure reported on a
    pipe the same way. ``prctl`` (with ``parent``) sets ``PR_SET_PDEATHSIG``.
    With sockets or pid variables, the child calls ``execve(path, ...)`` itself:
    ``Popen`` would close the placed fds after ``preexec_fn``, and its
    environment is fixed before the fork."""
    made: list[int] = []
    try:
        copies = _copies(listen, made, reuse=False)  # each closed in the child once placed
        actions = [*_activation(copies, common.get("env"), pid_variables), *steps]
        base = 3 + len(copies)
        read_end, write_end = _pipe(base)  # closed in the child at exec
        final: list[tuple[bytes, bytes]] | None = None
        if copies or pid_variables:
            assert path is not None
            final = [(os.fsencode(k), os.fsencode(v)) for k, v in (common.get("env") or {}).items()]

        def in_child() -> None:
            for index, action in enumerate(actions):
                try:
                    _apply(action)
                except OSError as exc:
                    os.write(write_end, REPORT.pack(exc.errno or _errno.EIO, index))
                    os._exit(127)
            if prctl is not None:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:  # the supervisor died before the prctl
                    os._exit(1)
            if final is not None:
                assert path is not None
                os.closerange(base, write_end)  # what Popen would close after preexec_fn
                os.closerange(write_end + 1, _MAX_FD)
                pid = str(os.getpid()).encode()
                env = {k: (pid if n < pid_variables else v) for n, (k, v) in enumerate(final)}
                try:
                    os.execve(path, list(argv), env)
                except OSError as exc:
                    os.write(write_end, REPORT.pack(exc.errno or _errno.EIO, EXEC_STEP))
                os._exit(127)

        try:
            try:
                popen = subprocess.Popen(list(argv), preexec_fn=in_child, **common)
            finally:
                os.close(write_end)
            pid = released(popen)
            data = os.read(read_end, REPORT.size)
        finally:
            os.close(read_end)
    finally:
        for fd in made:
            os.close(fd)
    if data:
        _fail(pid, data, argv, actions, list(range(len(actions))))
    return pid


def _copies(listen: Sequence[int], made: list[int], reuse: bool = True) -> list[int]:
    """The sources of ``listen``'s targets 3, 4, ...: with ``reuse``, the fds
    themselves if all are above the targets; else copies above them (close-on-exec,
    appended to ``made``), so that placing them works for any sources: one may be
    another's target."""
    base = 3 + len(listen)
    if reuse and all(fd >= base for fd in listen):
        return list(listen)
    copies: list[int] = []
    for fd in listen:
        copies.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base + 1))
        made.append(copies[-1])
    return copies


def _cloexec_range_works(libc: ctypes.CDLL) -> bool:
    """Whether ``close_range`` takes ``CLOSE_RANGE_CLOEXEC`` here (Linux 5.11):
    tried on an fd of our own, close-on-exec already."""
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        result = syscall(ctypes.c_long(_CLOSE_RANGE), ctypes.c_uint(fd), ctypes.c_uint(fd), CLOSE_RANGE_CLOEXEC)
        return bool(result == 0)
    finally:
        os.close(fd)


def _pipe(base: int, flags: int = 0) -> tuple[int, int]:
    """The error pipe, its write end at ``base`` or above (clear of the targets)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC | flags)
    if write_end >= base:
        return read_end, write_end
    try:
        return read_end, fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, base)
    except OSError:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)


def _activation(copies: Sequence[int], env: Env | None, pid_variables: int) -> list[Action]:
    """The actions before the settings: the sockets placed, then the pid variables."""
    actions: list[Action] = [PlaceFd(copy, 3 + index) for index, copy in enumerate(copies)]
    if pid_variables:
        assert env is not None
        items: Iterable[tuple[str | bytes, str | bytes]] = env.items()
        for index, (name, value) in enumerate(itertools.islice(items, pid_variables)):
            if len(value) < PID_WIDTH:  # the helper would write past it
                raise ValueError(f"{name!r}: a pid variable's placeholder needs {PID_WIDTH} characters")
            actions.append(WritePid(index, os.fsdecode(name)))
    return actions


def _apply(action: Action) -> None:
    """One action in a forked child (``preexec_fn``); ``OSError`` if it fails."""
    if isinstance(action, PlaceFd):
        os.dup2(action.source, action.target)  # inheritable
        os.close(action.source)
    elif isinstance(action, WritePid):
        pass  # the environment is built at the execve
    elif isinstance(action, ChangeDir):
        os.chdir(action.path)
    elif isinstance(action, CloseFrom):
        os.closerange(action.fd, _MAX_FD)
    elif isinstance(action, DefaultSignal):
        signal.signal(action.signal, signal.SIG_DFL)
    elif isinstance(action, (SetSid, DevNullStdin, Dup2)):
        raise AssertionError(f"{action} is for the helper only")
    else:
        try:
            apply([action])
        except ApplyFailed as failed:
            raise OSError(failed.code, os.strerror(failed.code)) from None


def _fail(pid: int, data: bytes, argv: Sequence[str], actions: Sequence[Action], owners: list[int]) -> None:
    os.waitpid(pid, 0)  # the child exits at once after reporting
    code, index = REPORT.unpack(data.ljust(REPORT.size, b"\0"))
    if index == EXEC_STEP or not 0 <= index < len(owners):
        raise OSError(code, os.strerror(code), argv[0])
    action = actions[owners[index]]
    if isinstance(action, ChangeDir):  # as Popen reported a bad cwd
        raise OSError(code, os.strerror(code), action.path)
    if isinstance(action, (PlaceFd, WritePid, CloseFrom, DefaultSignal, SetSid, DevNullStdin, Dup2)):
        raise OSError(code, f"{action.describe()}: {os.strerror(code)}")
    raise SettingFailed(action, code)


def released(popen: subprocess.Popen[bytes]) -> int:
    # We reap the child ourselves (pidfd + waitid). A Popen object collected with
    # returncode None would be put on subprocess._active and waitpid()ed by the
    # next Popen, stealing the exit status: mark it as done.
    popen.returncode = 0
    return popen.pid
