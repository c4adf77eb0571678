"""The exec helper that applies a process child's settings before exec.

The spawner (``_spawn``) runs process children through a tiny static x86-64
program kept in a memfd, so that CPython's vfork fast path still applies while
code runs in the child before the target: ``PR_SET_PDEATHSIG``, and here, the
child's settings (``_settings``: limits, nice, OOM score, umask, groups, gid,
uid). The helper knows nothing of settings: it runs a **list of system calls**
the supervisor encodes (:func:`encode`), then the parent check and ``execve``.
Each step is a few bytes and one system call in the child, with no Python and no
``fork`` of the interpreter; a failing step is reported with its index and
``errno``, so the start error says which setting failed and why.

Called as ``helper PARENT_PID ERRFD PROGRAM PATH ARGV0 ARGS...``:

1. ``fcntl(ERRFD, F_SETFD, FD_CLOEXEC)``: the error pipe closes at exec.
2. ``PROGRAM`` (hex) is decoded onto the stack (at most :data:`MAX_PROGRAM`
   bytes): a count ``n``, then ``n`` entries of 8 little-endian u64s
   ``nr, a0..a5, flags``, then data the entries point into. ``flags`` bit i
   (0..5) adds the program's address to ``a_i`` (a pointer into the data);
   bit 6 replaces ``a0`` by the previous call's result (an fd just opened).
   Each entry is one ``syscall``; a result in ``-4095..-1`` stops there.
3. If ``PARENT_PID`` is not 0: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (after the
   credential changes, which clear it), then exit 1 if ``getppid()`` is not
   ``PARENT_PID`` (the supervisor died before the prctl).
4. ``execve(PATH, &ARGV0, envp)``.

On a failure (a step or ``execve``) it writes 8 bytes to ``ERRFD``: ``errno``
(i32) and the step's index (i32, ``-1`` for ``execve``), and exits 127.

Source (GNU as, intel syntax; ``;`` separates statements), assembled with ``as --64`` and checked with
objdump; ``tests/test_exec_helper.py`` assembles it again when ``as`` is
installed and compares::

    _start: mov r12, rsp  # [r12] argc, [r12+8+8i] argv[i]
            mov rsi, [r12+24]; call atoi; mov r13, rax  # ERRFD
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
            mov r10, [rbx+32]; mov r8, [rbx+40]; mov r9, [rbx+48]; syscall
            cmp rax, -4095; jae failed
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
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
from collections.abc import Callable, Sequence
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
    "4989e4498b742418e8560100004989c54c89efbe02000000ba01000000b8480000000f05498b"
    "7424204881ec008000004989e74889e70fb60685c0742e0fb64e0189c2c1ea068d14d283e00f"
    "01d089cac1ea068d14d283e10f01d1c1e00409c8880748ffc74883c602ebcb498d5f08498b2f"
    "48c1e5064801dd4531f64839eb735d4c8b433831c9490fa3c873054c017ccb08ffc183f90672"
    "ee490fbae00673044c897308488b03488b7b08488b7310488b53184c8b53204c8b43284c8b4b"
    "300f05483d01f0ffff73094989c64883c340ebaa4889d94c29f948c1e906eb56498b742410e8"
    "7b0000004885c074284989c6bf01000000be0900000031d24531d24531c0b89d0000000f05b8"
    "6e0000000f054c39f07542498b7c2428498d742430498b0424498d54c410b83b0000000f05b9"
    "fffffffff7d848c1e1204809c8504c89ef4889e6ba08000000b8010000000f05bf7f000000eb"
    "05bf01000000b8e70000000f0531c00fb60e85c9740f486bc00a83e9304801c848ffc6ebeac3"
)

MAX_PROGRAM = 32768
"""Bytes of program the helper decodes (its stack buffer)."""

EMPTY = "00" * 8
"""The program with no steps."""

REPORT = struct.Struct("<ii")
"""What the helper writes on a failure: errno, and the step's index (-1: execve)."""
EXEC_STEP = -1

# x86-64 system call numbers
_WRITE, _OPEN, _UMASK, _SETGROUPS, _SETRESUID, _SETRESGID, _SETPRIORITY, _SETRLIMIT = 1, 2, 95, 116, 117, 119, 141, 160
_O_WRONLY_CLOEXEC = 0o1 | 0o2000000
_PRIO_PROCESS = 0
_RLIM_INFINITY = 2**64 - 1
_ENTRY = struct.Struct("<8Q")
_POINTER = [1 << i for i in range(6)]  # flags: a_i points into the data
_PREVIOUS = 1 << 6  # flags: a0 is the previous call's result


class ProgramTooLarge(ValueError):
    """The encoded settings do not fit the helper's buffer (thousands of groups)."""


def encode(steps: Sequence[Step]) -> tuple[str, list[int]]:
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
        if isinstance(step, SetLimit):
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


# -- spawning through the helper, or with preexec_fn where it cannot run ---------


def spawn(
    helper: str,
    argv: Sequence[str],
    path: str,
    common: dict[str, Any],
    *,
    parent: int,
    steps: Sequence[Step] = (),
) -> int:
    """Run ``argv`` (its program resolved to ``path``) through the helper at
    ``helper``, applying ``steps`` first and, with ``parent`` not 0, setting
    ``PR_SET_PDEATHSIG``. ``common`` holds the other ``Popen`` arguments. Returns
    the pid once the target is exec'd; raises ``OSError`` (``SettingFailed``
    for a step) with nothing left running otherwise."""
    program, owners = encode(steps) if steps else (EMPTY, [])
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            popen = subprocess.Popen(
                [helper, str(parent), str(write_end), program, path, *argv],
                executable=helper,
                pass_fds=(write_end,),
                **common,
            )
        finally:
            os.close(write_end)
        pid = released(popen)
        data = os.read(read_end, REPORT.size)  # EOF: the target was exec'd
    finally:
        os.close(read_end)
    if data:
        _fail(pid, data, argv, steps, owners)
    return pid


def spawn_preexec(
    argv: Sequence[str],
    common: dict[str, Any],
    *,
    parent: int,
    steps: Sequence[Step],
    prctl: Callable[..., int] | None,
) -> int:
    """The same with ``preexec_fn`` (another architecture, or memfd exec
    forbidden): ``steps`` applied in the forked child, a failure reported on a
    pipe the same way. ``prctl`` (with ``parent``) sets ``PR_SET_PDEATHSIG``."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)  # closed in the child before exec

    def in_child() -> None:
        try:
            apply(steps)
        except ApplyFailed as failed:
            os.write(write_end, REPORT.pack(failed.code, failed.index))
            os._exit(127)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the supervisor died before the prctl
                os._exit(1)

    try:
        try:
            popen = subprocess.Popen(list(argv), preexec_fn=in_child, **common)
        finally:
            os.close(write_end)
        pid = released(popen)
        data = os.read(read_end, REPORT.size)
    finally:
        os.close(read_end)
    if data:
        _fail(pid, data, argv, steps, list(range(len(steps))))
    return pid


def _fail(pid: int, data: bytes, argv: Sequence[str], steps: Sequence[Step], owners: list[int]) -> None:
    os.waitpid(pid, 0)  # the child exits at once after reporting
    code, index = REPORT.unpack(data.ljust(REPORT.size, b"\0"))
    if index == EXEC_STEP or not 0 <= index < len(owners):
        raise OSError(code, os.strerror(code), argv[0])
    raise SettingFailed(steps[owners[index]], code)


def released(popen: subprocess.Popen[bytes]) -> int:
    # We reap the child ourselves (pidfd + waitid). A Popen object collected with
    # returncode None would be put on subprocess._active and waitpid()ed by the
    # next Popen, stealing the exit status: mark it as done.
    popen.returncode = 0
    return popen.pid
