"""Reading ``/proc`` and signalling process groups: what the reaper, re-exec and the
service's forced stop know about processes they did not start themselves.

One parser of ``/proc/PID/stat`` (:func:`stat_fields`) serves :func:`read_stat` and
:func:`start_time`.
"""

from __future__ import annotations

import contextlib
import os
import signal


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


def read_stat(pid: int) -> tuple[str, int, int, int] | None:
    """``(state, ppid, pgrp, session)`` of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
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
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    # Fields after the command (which may hold spaces and parentheses) start at field 3.
    return int(data[data.rfind(b")") + 2 :].split()[22 - 3])


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
