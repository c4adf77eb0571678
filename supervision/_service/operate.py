"""What an operator does to a running tree beyond one child at a time:
``signal SIG PATH...`` and ``start|stop|restart PATH... | all``.

These read and drive the tree through its public handles only (``which_children``,
``at``, ``spec``), so the control commands that serve them stay thin.

- :func:`signal_processes` sends a signal to the OS processes at or under a
  path (a process child: its pid; a supervisor: every running process below
  it, in start order), as ``supervisorctl signal`` does: to the process itself,
  not its group (a stop signals the whole group; a signal is a message to the
  program, e.g. SIGHUP to reload its configuration, SIGUSR1 to reopen its logs).
- :func:`select` expands ``all`` to the root's children, in the order an action
  should take them (stop: right to left; start, restart: left to right).

(``reload --dry-run`` is ``Tree.plan_reload``, see ``_plan``.)
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._core.errors import NotAProcess, NotFound, SupervisionError
from .._core.paths import Path
from .._core.status import Status

if TYPE_CHECKING:  # the client imports this module: it needs no runtime
    from .._runtime.tree import Handle


@dataclass(frozen=True)
class Signalled:
    """A process a signal was sent to."""

    path: Path
    pid: int


def parse_signal(text: str) -> int:
    """``"HUP"``, ``"SIGHUP"``, ``"hup"`` or ``"1"`` -> ``signal.SIGHUP``; ``ValueError`` otherwise."""
    name = text.strip().upper()
    if name.isdigit():
        number = int(name)
        if number in signal.valid_signals() and number != 0:
            return number
        raise ValueError(f"not a signal number: {text!r}")
    name = name if name.startswith("SIG") else "SIG" + name
    found = getattr(signal.Signals, name, None)
    if found is None:
        raise ValueError(f"unknown signal {text!r}; expected a name like HUP, USR1, TERM, or a number")
    return int(found)


def signal_processes(tree: Handle, path: Path, signum: int) -> list[Signalled]:
    """Send ``signum`` to the process at ``path``, or to every running process
    under the supervisor at ``path`` (``()``: the whole tree). ``NotFound`` for
    a path the tree does not have, ``NotAProcess`` when nothing there runs an
    OS process."""
    targets: list[Signalled] = []
    if path:
        parent = tree.at(path[:-1])
        info = next((child for child in parent.which_children() if child.id == path[-1]), None)
        if info is None:
            raise NotFound.at(path, "no such child")
        if info.kind == "worker":
            raise NotAProcess.at(path, "a worker runs in the supervisor's process; it takes no signal")
        if info.kind == "process":
            if info.pid is None or info.status is not Status.RUNNING:
                raise NotAProcess.at(path, f"not running ({info.status})")
            targets.append(Signalled(path, info.pid))
        elif info.status is Status.RUNNING:
            targets.extend(_processes(tree.at(path)))
    else:
        targets.extend(_processes(tree))
    if not targets:
        raise NotAProcess.at(path, "no OS process runs there")
    sent = []
    for target in targets:
        try:
            os.kill(target.pid, signum)
        except ProcessLookupError:  # it exited meanwhile: the reaper will say so
            continue
        sent.append(target)
    return sent


def _processes(handle: Handle) -> list[Signalled]:
    found = []
    for info in handle.which_children():
        path = (*handle.path, info.id)
        if info.kind == "process" and info.pid is not None and info.status is Status.RUNNING:
            found.append(Signalled(path, info.pid))
        elif info.kind == "supervisor" and info.status is Status.RUNNING:
            try:
                found.extend(_processes(handle.at(info.id)))
            except SupervisionError:
                continue  # it stopped meanwhile
    return found


def select(names: Sequence[str], top: Sequence[str], action: str) -> list[str]:
    """The paths an action takes, in order: ``all`` is every child of the root
    (``top``, in start order), right to left for ``stop``. Duplicates are dropped."""
    if not names:
        raise ValueError("name at least one PATH, or all")
    chosen: list[str] = []
    for name in names:
        if name == "all":
            chosen.extend(reversed(top) if action == "stop" else top)
        else:
            chosen.append(name)
    return list(dict.fromkeys(chosen))
