"""``sv.process``: declaring an OS process child, validated with what the OS allows.

The spec's value (``Process``) is the core's (``_core.spec``); this builder checks
what only the OS knows (signal numbers, absolute paths) and normalises the rest. How
a process runs is ``_runtime.process`` (one incarnation) on top of this layer's
spawner, reaper, output pipes and notify socket.
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from .. import ready as _ready
from .._core.dynamic import instance_group
from .._core.errors import SpecError
from .._core.listen import Listen
from .._core.paths import Path
from .._core.settings import LogFile, Prefixed, Settings
from .._core.spec import Backoff, ChildSpec, Process, Restart, RestartMode, ShutdownSpec
from ..health import Probe
from .settings import settings

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
    for field in ("stop_signal", "watchdog_signal"):
        number = getattr(spec, field)
        if isinstance(number, bool) or not isinstance(number, int) or number not in _signal.valid_signals():
            raise SpecError(path, field, f"must be a signal number, got {number!r}")
    if spec.ready is not None:
        if not isinstance(spec.ready, (_ready.Notify, _ready.Port, _ready.Delay)):
            raise SpecError(
                path, "ready", f"must be sv.ready.notify(), .port(n), .delay(s) or None, got {spec.ready!r}"
            )
        spec.ready.check(path)
    if not isinstance(spec.settings, Settings):
        raise SpecError(path, "settings", f"must be a Settings value, got {spec.settings!r}")
    out = spec.output
    if isinstance(out, (LogFile, Prefixed)):
        return
    if not isinstance(out, str) or not out or "\0" in out:
        raise SpecError(
            path,
            "output",
            f"must be 'prefix', 'inherit', a file path, sv.log_file(...) or sv.prefixed(...), got {out!r}",
        )
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
    output: Literal["prefix", "inherit"] | str | os.PathLike[str] | LogFile | Prefixed = "prefix",
    pdeathsig: bool = True,
    user: str | int | None = None,
    group: str | int | None = None,
    umask: int | str | None = None,
    limits: Mapping[str, Any] | None = None,
    env_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    nice: int | None = None,
    oom_score_adj: int | None = None,
    significant: bool = False,
    state: Any = None,
    state_version: int = 0,
    migrate: Callable[[Any, int], Any] | None = None,
    intensity: int | None = None,
    period: float = 5.0,
    backoff: Backoff | None = None,
    watchdog: float | None = None,
    watchdog_signal: int = _signal.SIGABRT,
    health: Probe | None = None,
    sockets: Iterable[Listen] = (),
    restart_mode: RestartMode | str = RestartMode.STOP_START,
    instances: int | None = None,
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
      supervisor's, prefixed with the child's path), :func:`sv.prefixed(timestamps=True)
      <supervision.prefixed>` (the same, with the time of each line),
      ``"inherit"``, a file path the child appends the two streams to, or
      :func:`sv.log_file(path, max_bytes=..., backups=..., timestamps=...)
      <supervision.log_file>` (the supervisor writes the file, rotates it by size,
      and reopens it on SIGUSR1).
    - ``pdeathsig``: the child gets SIGKILL if the supervisor dies (set
      ``False`` for services that must outlive it).
    - ``user``, ``group``: a name or a numeric id to run as (the supervisor must be
      root to run a child as another user); the supplementary groups are the user's.
    - ``umask``: an integer (``0o027``) or octal digits (``"027"``).
    - ``limits``: resource limits by name (``nofile``, ``nproc``, ``core``, ``as``,
      ``cpu``, ``memlock``, ``stack``...), each a value or a ``(soft, hard)`` pair;
      ``"infinity"`` for no limit.
    - ``env_file``: a file (or a list) of ``KEY=VALUE`` lines read at each start as
      systemd's ``EnvironmentFile=`` reads them; ``env`` wins over it; a missing
      file fails the start unless its path begins with ``-``.
    - ``nice`` (-20..19), ``oom_score_adj`` (-1000..1000).

    All the settings are applied in the child before it executes the program.
    - ``intensity``, ``period``, ``backoff``: a restart limit and a backoff of the
      child's own, as for :func:`~supervision.child`.
    - ``watchdog`` (seconds): once ready, the process must send ``WATCHDOG=1``
      on its ``NOTIFY_SOCKET`` at least that often (it gets ``WATCHDOG_USEC``
      and ``WATCHDOG_PID`` as from systemd), else it gets ``watchdog_signal``
      (SIGABRT: a core dump is possible), then SIGKILL after ``shutdown``, and
      is restarted as a crash (``sv.WatchdogTimeout``).
    - ``health``: a probe (``sv.health.http/tcp/exec(...)``) run while it runs.
    - ``sockets``: listening sockets (``sv.listen(...)``) the supervisor binds
      once and holds, passed by the systemd socket-activation protocol.
    - ``restart_mode="overlap"``: an operator's restart or a reload starts the
      new process and waits until it is ready before stopping the old one.
      See ``docs/health.md``.
    - ``instances``: run N copies (supervisord's ``numprocs``): the child ``id``
      is then a supervisor of the copies ``id/0`` ... ``id/N-1``, each with
      ``{instance}`` substituted in ``argv``, ``env``, ``cwd`` and ``output``;
      ``supervision scale`` changes N at runtime (see ``docs/processes.md``).

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
    if isinstance(watchdog_signal, _signal.Signals):
        watchdog_signal = int(watchdog_signal)
    values: dict[str, Any] = {
        "argv": tuple(argv),
        "cwd": cwd,
        "env": env_items(env, path),
        "inherit_env": inherit_env,
        "stop_signal": stop_signal,
        "ready": ready,
        "output": output,
        "pdeathsig": pdeathsig,
        "watchdog_signal": watchdog_signal,
        "settings": settings(
            path,
            user=user,
            group=group,
            umask=umask,
            limits=limits,
            env_file=env_file,
            nice=nice,
            oom_score_adj=oom_score_adj,
        ),
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
        watchdog=watchdog,
        health=health,
        sockets=sockets,  # type: ignore[arg-type]  # checked and made a tuple by ChildSpec
        restart_mode=restart_mode,  # type: ignore[arg-type]
    )
    if isinstance(ready, _ready.Port) and any(
        listen.family == "tcp" and listen.port == ready.port for listen in spec.sockets
    ):
        message = "the supervisor's own held socket accepts on that port: use notify readiness (READY=1) instead"
        raise SpecError(path, "ready", message)
    if isinstance(ready, _ready.Delay) and ready.seconds >= spec.ready_timeout:
        raise SpecError(path, "ready", f"a delay of {ready.seconds:g}s never ends before ready_timeout")
    if instances is not None:
        return instance_group(spec, instances)
    return spec
