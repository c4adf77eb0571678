"""``supervision check TARGET``: build a tree's spec without starting anything, and show it.

:func:`load` builds the spec a target names (a tree file, ``pkg.module:build``
or a services file), as ``supervision run`` would, and turns every way that can
fail into a :class:`CheckError` whose message says where: ``file:line`` for a
services file (TOML) and for a Python file that raises or does not compile,
the child's path and field for an invalid spec. :func:`format_tree` draws the
tree that would run: each child's kind, what it runs and the settings that
differ from the defaults.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import traceback
from typing import Any

from .. import ready as _ready
from .._core.errors import CheckError, ServicesError, SupervisionError
from .._core.spec import INFINITY, AutoShutdown, Backoff, ChildSpec, Restart, Supervisor
from .._reload.target import Target, build


def load(target: Target) -> Supervisor:
    """The spec ``target`` builds, or ``CheckError``."""
    try:
        return build(target)
    except ServicesError as exc:  # file:line: key: message
        raise CheckError(str(exc)) from exc
    except SupervisionError as exc:  # SpecError: path: field: message, raised in the user's builder
        raise CheckError(f"{_where(exc, target)}: {type(exc).__name__}: {exc}") from exc
    except SyntaxError as exc:
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else str(target)
        raise CheckError(f"{where}: SyntaxError: {exc.msg}") from exc
    except Exception as exc:
        raise CheckError(f"{_where(exc, target)}: {type(exc).__name__}: {exc}") from exc


def _where(exc: BaseException, target: Target) -> str:
    """The innermost frame of the traceback outside supervision itself (the user's code)."""
    package = os.path.dirname(os.path.abspath(sys.modules[__name__.partition(".")[0]].__file__ or ""))
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not os.path.abspath(frame.filename).startswith(package + os.sep) and not frame.filename.startswith("<frozen")
    ]
    if frames:
        return f"{frames[-1].filename}:{frames[-1].lineno}"
    return str(target)


def format_tree(spec: Supervisor) -> str:
    """The tree as ``supervision check`` prints it."""
    lines = [f"/  supervisor  {_supervisor(spec)}"]
    _children(spec, "", lines)
    return "\n".join(lines)


def count(spec: Supervisor) -> dict[str, int]:
    """How many children of each kind the tree declares (nested ones included)."""
    counts = {"worker": 0, "process": 0, "supervisor": 0}
    for child in spec.children:
        counts[child.kind] += 1
        if isinstance(child.start, Supervisor):
            for kind, n in count(child.start).items():
                counts[kind] += n
    return counts


def _children(spec: Supervisor, indent: str, lines: list[str]) -> None:
    for n, child in enumerate(spec.children):
        last = n == len(spec.children) - 1
        lines.append(f"{indent}{'└─' if last else '├─'} {child.id}  {child.kind}  {_child(child)}".rstrip())
        if isinstance(child.start, Supervisor):
            _children(child.start, indent + ("   " if last else "│  "), lines)


def _supervisor(spec: Supervisor) -> str:
    parts = [str(spec.strategy), f"at most {spec.intensity} restarts in {spec.period:g}s"]
    if type(spec).plan is not Supervisor.plan:
        parts[0] = f"{type(spec).__qualname__}.plan"
    if spec.auto_shutdown is not AutoShutdown.NEVER:
        parts.append(f"auto_shutdown {spec.auto_shutdown}")
    if spec.backoff is not None:
        parts.append(_backoff(spec.backoff))
    return ", ".join(parts)


def _backoff(backoff: Backoff) -> str:
    if backoff.initial == backoff.maximum:
        return f"restarts wait {backoff.initial:g}s"
    return f"restarts wait {backoff.initial:g}s x{backoff.factor:g} up to {backoff.maximum:g}s"


def _child(child: ChildSpec) -> str:
    start: Any = child.start
    if isinstance(start, Supervisor):
        what = _supervisor(start)
    elif child.kind == "process":
        what = shlex.join(start.argv)
    else:
        what = f"{getattr(start, '__module__', '?')}.{getattr(start, '__qualname__', repr(start))}"
    settings = []
    if child.restart is not Restart.PERMANENT:
        settings.append(f"restart {child.restart}")
    if child.significant:
        settings.append("significant")
    if child.intensity is not None:  # a restart limit of its own
        settings.append(f"at most {child.intensity} restarts in {child.period:g}s")
    if child.backoff is not None:
        settings.append(_backoff(child.backoff))
    default_shutdown = INFINITY if isinstance(start, Supervisor) else 5.0
    if child.shutdown != default_shutdown:
        settings.append(f"shutdown {_shutdown(child.shutdown)}")
    if child.kind == "process":
        settings.extend(_process(start))
    if child.kind == "process" and start.ready is not None:
        settings.append(f"ready {_ready_text(start.ready)} (within {child.ready_timeout:g}s)")
    elif child.ready:
        settings.append(f"ready when it calls ctx.ready() (within {child.ready_timeout:g}s)")
    return what + (f"  [{'; '.join(settings)}]" if settings else "")


def _process(process: Any) -> list[str]:
    settings = []
    if process.cwd is not None:
        settings.append(f"cwd {process.cwd}")
    if process.env:
        settings.append("env " + ", ".join(key for key, _ in process.env))
    if process.stop_signal != signal.SIGTERM:
        settings.append(f"stop with {signal.Signals(process.stop_signal).name}")
    if process.output != "prefix":
        settings.append(f"output {process.output}")
    return settings


def _ready_text(check: Any) -> str:
    if isinstance(check, _ready.Port):
        return f"once {check.host}:{check.port} accepts connections"
    if isinstance(check, _ready.Delay):
        return f"after {check.seconds:g}s up"
    if isinstance(check, _ready.Notify):
        return "on sd_notify READY=1"
    return repr(check)


def _shutdown(value: Any) -> str:
    if value == INFINITY:
        return "infinity"
    if isinstance(value, (int, float)):
        return f"{value:g}s"
    return str(value)
