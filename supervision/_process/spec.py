"""``sv.process``: declaring an OS process child, validated with what the OS allows.

The spec's value (``Process``) is the core's (``_core.spec``); this builder checks
what only the OS knows (signal numbers, absolute paths) and normalises the rest. How
a process runs is ``_runtime.process`` (one incarnation) on top of this layer's
spawner, reaper, output pipes and notify socket.
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from .. import ready as _ready
from .._core.errors import SpecError
from .._core.paths import Path
from .._core.spec import Backoff, ChildSpec, Process, Restart, ShutdownSpec

OUTPUT_MODES = ("prefix", "inherit")


def check(spec: Process, path: Path) -> None:
    """Validate a :class:`Process`; ``SpecError`` names ``path`` and the field."""
    check_argv(spec.argv, path)
    if spec.cwd is not None and (not isinstance(spec.cwd, str) or not spec.cwd or "\0" in spec.cwd):
        raise SpecError(path, "cwd", f"must be a non-empty path, got {spec.cwd!r}")
    if spec.env is not None:
        env_items(dict(spec.env), path)
    for flag in ("inherit_env", "pdeathsig"):
        if not isinstance(getattr(spec, flag), bool):
            raise SpecError(path, flag, f"must be True or False, got {getattr(spec, flag)!r}")
    stop = spec.stop_signal
    if isinstance(stop, bool) or not isinstance(stop, int) or stop not in _signal.valid_signals():
        raise SpecError(path, "stop_signal", f"must be a signal number, got {stop!r}")
    if spec.ready is not None:
        if not isinstance(spec.ready, (_ready.Notify, _ready.Port, _ready.Delay)):
            raise SpecError(
                path, "ready", f"must be sv.ready.notify(), .port(n), .delay(s) or None, got {spec.ready!r}"
            )
        spec.ready.check(path)
    out = spec.output
    if not isinstance(out, str) or not out or "\0" in out:
        raise SpecError(path, "output", f"must be 'prefix', 'inherit' or a file path, got {out!r}")
    if out not in OUTPUT_MODES and not os.path.isabs(out):
        raise SpecError(path, "output", f"a file path must be absolute here, got {out!r}")


def check_argv(argv: Sequence[str], path: Path) -> None:
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
        raise SpecError(path, "argv", f"must be a list of strings, got {argv!r}")
    if not argv:
        raise SpecError(path, "argv", "must not be empty")
    for item in argv:
        if not isinstance(item, str) or "\0" in item:
            raise SpecError(path, "argv", f"must be a list of strings without NUL, got item {item!r}")
    if not argv[0]:
        raise SpecError(path, "argv", "the program (argv[0]) must not be empty")


def env_items(env: Mapping[str, str] | None, path: Path) -> tuple[tuple[str, str], ...] | None:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise SpecError(path, "env", f"must be a mapping of strings, got {env!r}")
    for key, value in env.items():
        if (
            not isinstance(key, str)
            or not isinstance(value, str)
            or not key
            or "=" in key
            or "\0" in key
            or "\0" in value
        ):
            raise SpecError(path, "env", f"bad entry {key!r}={value!r}")
    return tuple(sorted(env.items()))


def process(
    id: str,
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    restart: Restart | str = Restart.PERMANENT,
    shutdown: ShutdownSpec | str = 5.0,
    stop_signal: int = _signal.SIGTERM,
    ready: _ready.Check | None = None,
    ready_timeout: float = 30.0,
    output: Literal["prefix", "inherit"] | str | os.PathLike[str] = "prefix",
    pdeathsig: bool = True,
    significant: bool = False,
    state: Any = None,
    state_version: int = 0,
    migrate: Callable[[Any, int], Any] | None = None,
    intensity: int | None = None,
    period: float = 5.0,
    backoff: Backoff | None = None,
) -> ChildSpec:
    """Declare an OS process child.

    ``argv`` is the program and its arguments (the program is looked up in
    ``PATH`` when it has no ``/``). The process runs in its own session and
    process group, with ``/dev/null`` as stdin.

    - ``cwd``: its working directory (default: the supervisor's).
    - ``env``: variables merged over the supervisor's environment, or the whole
      environment with ``inherit_env=False``.
    - ``shutdown``: seconds between ``stop_signal`` (sent to the process group)
      and ``SIGKILL``; :data:`~supervision.BRUTAL_KILL` kills at once,
      :data:`~supervision.INFINITY` waits for ever.
    - ``ready``: :func:`sv.ready.notify() <supervision.ready.notify>`,
      ``sv.ready.port(n)``, ``sv.ready.delay(s)`` or None (ready once ``exec``
      succeeded); ``ready_timeout`` bounds the wait.
    - ``output``: ``"prefix"`` (stdout and stderr written line by line to the
      supervisor's, prefixed with the child's path), ``"inherit"``, or a file
      path the two streams are appended to.
    - ``pdeathsig``: the child gets SIGKILL if the supervisor dies (set
      ``False`` for services that must outlive it).
    - ``intensity``, ``period``, ``backoff``: a restart limit and a backoff of the
      child's own, as for :func:`~supervision.child`.

    >>> import supervision as sv
    >>> spec = process("web", ["python", "-m", "http.server", "8000"], ready=sv.ready.port(8000))
    >>> spec.kind == "process"
    True
    """
    path: Path = (id,) if isinstance(id, str) else ()
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
        check_argv(argv, path)  # raises
    if cwd is not None and isinstance(cwd, os.PathLike):
        cwd = os.fspath(cwd)
    if isinstance(output, os.PathLike):
        output = os.fspath(output)
    if isinstance(output, str) and output and output not in OUTPUT_MODES and "\0" not in output:
        output = os.path.abspath(output)  # relative to the directory the spec is built in
    if isinstance(stop_signal, _signal.Signals):
        stop_signal = int(stop_signal)
    values: dict[str, Any] = {
        "argv": tuple(argv),
        "cwd": cwd,
        "env": env_items(env, path),
        "inherit_env": inherit_env,
        "stop_signal": stop_signal,
        "ready": ready,
        "output": output,
        "pdeathsig": pdeathsig,
    }
    start = object.__new__(Process)
    for name, value in values.items():
        object.__setattr__(start, name, value)
    check(start, path)  # validated once, with the child's path in the errors
    spec = ChildSpec(
        id=id,
        start=start,
        restart=restart,  # type: ignore[arg-type]  # normalised by ChildSpec
        shutdown=shutdown,  # type: ignore[arg-type]
        significant=significant,
        ready=ready is not None,
        ready_timeout=ready_timeout,
        state=state,
        state_version=state_version,
        migrate=migrate,
        intensity=intensity,
        period=period,
        backoff=backoff,
    )
    if isinstance(ready, _ready.Delay) and ready.seconds >= spec.ready_timeout:
        raise SpecError(path, "ready", f"a delay of {ready.seconds:g}s never ends before ready_timeout")
    return spec
