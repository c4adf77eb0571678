"""Errors raised by supervision.

Every error is a subclass of :class:`SupervisionError`; some also subclass the
builtin they refine, so ``except LookupError`` keeps working::

    SupervisionError
    ├── SpecError (ValueError)          bad spec, raised at construction
    ├── StartError                      a child failed to start (.path, __cause__)
    ├── NotFound (LookupError)          no child with that id or path
    ├── AlreadyPresent                  id exists, not running
    ├── AlreadyStarted                  id exists, running
    ├── ChildRunning                    delete/restart of a running child
    ├── ChildRestarting                 delete/restart of a child waiting for a retry
    ├── TooManyRestarts                 restart intensity exceeded (.path, __cause__)
    ├── ShutdownTimeout                 a worker ignored cancellation past its shutdown
    ├── SupervisorNotRunning            the supervisor addressed has stopped
    ├── ProcessExited                   an OS process exited non-zero or by a signal
    │                                   (in supervision._process; ChildExited.error)
    └── ReloadError                     reload rejected, tree unchanged (.path, __cause__)

:class:`Shutdown` is not an error: a worker raises it to exit with reason
``"shutdown"`` (a transient child raising it is not restarted).
"""

from __future__ import annotations

from typing import Any

from .paths import Path, format_path


class SupervisionError(Exception):
    """Root of every error raised by supervision."""


class SpecError(SupervisionError, ValueError):
    """A spec is invalid. Raised at construction, naming the child's path and the field.

    >>> import supervision as sv
    >>> sv.child("a/b", sv.Supervisor())
    Traceback (most recent call last):
      ...
    supervision._core.errors.SpecError: a/b: id: must not contain '/'
    """

    def __init__(self, path: Path, field: str, message: str) -> None:
        self.path = path
        self.field = field
        self.message = message
        where = format_path(path) if path else "supervisor"
        super().__init__(f"{where}: {field}: {message}")


class StartError(SupervisionError):
    """A child failed to start. ``.path`` names it; ``__cause__`` says why."""

    def __init__(self, path: Path, message: str = "failed to start") -> None:
        self.path = path
        super().__init__(f"{format_path(path)}: {message}")


class NotFound(SupervisionError, LookupError):
    """No child with that id or path."""


class AlreadyPresent(SupervisionError):
    """A child with that id exists but is not running."""


class AlreadyStarted(SupervisionError):
    """A child with that id exists and is running."""


class ChildRunning(SupervisionError):
    """The operation needs a terminated child, and this one is running."""


class ChildRestarting(SupervisionError):
    """The child is waiting for a restart retry or a backoff delay."""


class SupervisorNotRunning(SupervisionError):
    """The supervisor addressed has stopped (or not started yet)."""


class TooManyRestarts(SupervisionError):
    """A supervisor exceeded its restart intensity and gave up.

    ``.path`` is the supervisor's path (``()`` for the root); ``__cause__`` is the
    error of the last exit that called for a restart.
    """

    def __init__(self, path: Path, intensity: int, period: float) -> None:
        self.path = path
        self.intensity = intensity
        self.period = period
        super().__init__(f"{format_path(path)}: more than {intensity} restarts in {period:g}s; giving up")


class ShutdownTimeout(SupervisionError):
    """A worker was still running ``timeout`` seconds after it was cancelled.

    A Python task cannot be killed: the supervisor reports it, treats it as
    killed, and goes on. The task is left running in the background.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        super().__init__(f"{format_path(path)}: still running {timeout:g}s after cancellation; abandoned")


class ReloadError(SupervisionError):
    """A reload was rejected; the running tree is unchanged. ``__cause__`` says why.

    ``.path`` names the child at fault when there is one (a ``migrate`` that
    raised), else it is None.
    """

    def __init__(self, message: str, path: Path | None = None) -> None:
        self.path = path
        super().__init__(f"{format_path(path)}: {message}" if path is not None else message)


class Shutdown(Exception):
    """Raised by a worker to exit with reason ``"shutdown"``.

    A permanent child is restarted; a transient or temporary one is not.
    """

    def __init__(self, reason: Any = None) -> None:
        self.reason = reason
        super().__init__(reason)


class ProcessExited(SupervisionError):
    """The error of a process child that exited with a non-zero status or was
    killed by a signal (``ChildExited.error``, or the cause of a ``StartError``
    when it exited before it was ready).

    ``exit_status`` is the status it exited with (None if killed), ``signal``
    the number of the signal that killed it (None if it exited).
    """

    def __init__(
        self, path: Path, exit_status: int | None, signal: int | None, when: str = "", *, signal_name: str = ""
    ) -> None:
        self.path = path
        self.exit_status = exit_status
        self.signal = signal
        if signal is not None:
            how = f"killed by {signal_name or f'signal {signal}'}"
        else:
            how = f"exited with status {exit_status}"
        super().__init__(f"{format_path(path)}: {how}{when}")


class ProcessLost(SupervisionError):
    """A process child handed over by a re-exec could not be adopted: it was gone,
    or its pid named another process. Reported as its crash."""

    def __init__(self, path: Path, pid: int, why: str) -> None:
        self.path = path
        self.pid = pid
        super().__init__(f"{format_path(path)}: pid {pid} lost during re-exec: {why}")


class ServicesError(SupervisionError, ValueError):
    """A services file is invalid: ``.filename``, ``.line`` (1-based, or None)
    and ``.key`` (``"services.web.restart"``) say where."""

    def __init__(self, filename: str, line: int | None, key: str, message: str) -> None:
        self.filename = filename
        self.line = line
        self.key = key
        self.message = message
        where = f"{filename}:{line}" if line is not None else filename
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class RequestError(SupervisionError):
    """A request the server cannot carry out; ``.type`` is the error type of the reply."""

    def __init__(self, type: str, message: str) -> None:
        self.type = type
        super().__init__(message)


class AlreadyRunning(SupervisionError):
    """Another live tree serves this control socket."""


class NotRunning(SupervisionError):
    """No tree serves this control socket (a client could not connect)."""


class ConnectionLost(SupervisionError, ConnectionError):
    """The tree accepted a request and closed the connection without a reply
    (it stopped or re-executed meanwhile): not the same as "no tree running"."""


class SeveralTrees(SupervisionError, ValueError):
    """A client gave no ``--name`` and several trees are running: bad usage."""
