"""Every error supervision raises, in one module, and their wire form.

Every error is a subclass of :class:`SupervisionError`; some also subclass the
builtin they refine, so ``except LookupError`` keeps working. An error about a
child or a supervisor carries its ``.path``::

    SupervisionError
    ├── SpecError (ValueError)          bad spec, raised at construction (.path, .field)
    ├── ServicesError (ValueError)      bad TOML services file (.filename, .line, .key)
    ├── StartError                      a child failed to start (.path, __cause__)
    ├── PathError                       about the child or supervisor at .path
    │   ├── NotFound (LookupError)      no child with that id or path
    │   ├── AlreadyPresent              id exists, not running
    │   ├── AlreadyStarted              id exists, running
    │   ├── ChildRunning                delete/restart of a running child
    │   ├── ChildRestarting             delete/restart of a child waiting for a retry
    │   ├── SupervisorNotRunning        the supervisor addressed has stopped
    │   ├── NotAProcess                 a signal for a child that runs no OS process
    │   └── TooManyChildren             a dynamic supervisor is at its max_children
    ├── TooManyRestarts                 restart intensity exceeded (.path, __cause__)
    ├── ShutdownTimeout                 a worker ignored cancellation past its shutdown (.path)
    ├── ProcessExited                   an OS process exited non-zero or by a signal
    │                                   (.path; ChildExited.error)
    ├── ProcessLost                     re-exec could not adopt a process child (.path)
    ├── ReloadError                     reload rejected, tree unchanged (.path, __cause__)
    ├── RequestError                    a control request refused (.type, .path)
    ├── AlreadyRunning                  another live tree serves this control socket
    ├── NotRunning                      no tree serves this control socket
    ├── ConnectionLost (ConnectionError) the tree closed the connection before replying
    ├── SeveralTrees (ValueError)       several trees run and the client named none
    ├── SupervisordError (ValueError)   a supervisord file cannot be converted (.file, .line)
    ├── ScenarioError (ValueError)      a simulate scenario cannot be read (.line, .column)
    └── CheckError                      `supervision check`: the target builds no valid tree

:class:`Shutdown` is not an error: a worker raises it to exit with reason
``"shutdown"`` (a transient child raising it is not restarted).

Over the control socket an error travels as ``{"type", "message", "path"}``:
:func:`to_wire` and :func:`from_wire` are the one mapping, both ways.
"""

from __future__ import annotations

from typing import Any, Self

from .paths import Path, format_path, parse_path


class SupervisionError(Exception):
    """Root of every error raised by supervision.

    >>> import supervision as sv
    >>> issubclass(sv.SpecError, sv.SupervisionError), issubclass(sv.TooManyRestarts, sv.SupervisionError)
    (True, True)
    """


class SpecError(SupervisionError, ValueError):
    """A spec is invalid. Raised at construction, naming the child's path and the field.

    >>> import supervision as sv
    >>> sv.child("a/b", sv.Supervisor())
    Traceback (most recent call last):
      ...
    supervision.SpecError: a/b: id: must not contain '/'
    """

    def __init__(self, path: Path, field: str, message: str) -> None:
        self.path = path
        self.field = field
        self.message = message
        where = format_path(path) if path else "supervisor"
        super().__init__(f"{where}: {field}: {message}")


class StartError(SupervisionError):
    """A child failed to start. ``.path`` names it; ``__cause__`` says why.

    >>> import asyncio, supervision as sv
    >>> async def db(ctx):
    ...     raise ConnectionError("no database")      # before ctx.ready()
    >>> async def main():
    ...     try:
    ...         async with sv.start(sv.Supervisor([sv.child("db", db, ready=True)])):
    ...             pass
    ...     except sv.StartError as error:
    ...         print(error.path, repr(error.__cause__))
    >>> asyncio.run(main())
    ('db',) ConnectionError('no database')
    """

    def __init__(self, path: Path, message: str = "failed to start") -> None:
        self.path = path
        super().__init__(f"{format_path(path)}: {message}")


class PathError(SupervisionError):
    """An error about the child or supervisor at ``.path`` (None where no path applies).

    ``NotFound.at(("db", "pool"), "no such child")`` is ``db/pool: no such child``,
    with ``.path == ("db", "pool")``.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        self.path = path
        super().__init__(message)

    @classmethod
    def at(cls, path: Path, what: str) -> Self:
        """The error about ``path``: its message is ``"a/b: " + what``."""
        return cls(f"{format_path(path)}: {what}", path=path)


class NotFound(PathError, LookupError):
    """No child with that id or path.

    >>> import asyncio, supervision as sv
    >>> async def main():
    ...     async with sv.start(sv.Supervisor()) as tree:
    ...         try:
    ...             await tree.terminate_child("nope")
    ...         except LookupError as error:          # NotFound is also a LookupError
    ...             print(type(error).__name__, error)
    >>> asyncio.run(main())
    NotFound nope: no such child
    """


class AlreadyPresent(PathError):
    """A child with that id exists but is not running.

    >>> import asyncio, supervision as sv
    >>> async def job(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("job", job)])) as tree:
    ...         await tree.terminate_child("job")     # stopped, its spec kept
    ...         try:
    ...             await tree.start_child(sv.child("job", job))
    ...         except sv.AlreadyPresent as error:
    ...             print(type(error).__name__, error)
    >>> asyncio.run(main())
    AlreadyPresent job: ...
    """


class AlreadyStarted(PathError):
    """A child with that id exists and is running.

    >>> import asyncio, supervision as sv
    >>> async def web(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("web", web)])) as tree:
    ...         try:
    ...             await tree.start_child(sv.child("web", web))
    ...         except sv.AlreadyStarted as error:
    ...             print(type(error).__name__, error)
    >>> asyncio.run(main())
    AlreadyStarted web: already running
    """


class ChildRunning(PathError):
    """The operation needs a terminated child, and this one is running.

    >>> import asyncio, supervision as sv
    >>> async def w(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("w", w)])) as tree:
    ...         try:
    ...             await tree.delete_child("w")       # terminate_child("w") first
    ...         except sv.ChildRunning as error:
    ...             print(type(error).__name__, error)
    >>> asyncio.run(main())
    ChildRunning w: running
    """


class ChildRestarting(PathError):
    """The child is waiting for a restart retry or a backoff delay.

    >>> import supervision as sv
    >>> from supervision.testing import Crash, FailNextStart, RestartChild, Simulator
    >>> async def w(ctx): ...
    >>> sim = Simulator(sv.Supervisor([sv.child("w", w)]), immediate_retries=False)
    >>> sim.start()
    >>> sim.apply(FailNextStart("w")); sim.apply(Crash("w"))    # w waits for its retry
    >>> type(sim.apply(RestartChild("w"))).__name__
    'ChildRestarting'
    """


class SupervisorNotRunning(PathError):
    """The supervisor addressed has stopped (or not started yet).

    >>> import asyncio, supervision as sv
    >>> async def main():
    ...     async with sv.start(sv.Supervisor()) as tree:
    ...         pass
    ...     try:
    ...         tree.which_children()                 # the tree has stopped
    ...     except sv.SupervisorNotRunning as error:
    ...         print(type(error).__name__)
    >>> asyncio.run(main())
    SupervisorNotRunning
    """


class TooManyChildren(PathError):
    """``start_child`` on a dynamic supervisor that has ``max_children`` children
    already: ``.path`` is the supervisor's, ``.max_children`` its limit.

    >>> error = TooManyChildren.reached(("conns",), 1000)
    >>> str(error), error.path, error.max_children
    ('conns: max_children=1000 reached', ('conns',), 1000)
    """

    def __init__(self, message: str, *, path: Path | None = None, max_children: int | None = None) -> None:
        super().__init__(message, path=path)
        self.max_children = max_children

    @classmethod
    def reached(cls, path: Path, max_children: int) -> TooManyChildren:
        return cls(f"{format_path(path)}: max_children={max_children} reached", path=path, max_children=max_children)


class TooManyRestarts(SupervisionError):
    """A supervisor exceeded its restart intensity and gave up.

    ``.path`` is the supervisor's path (``()`` for the root); ``__cause__`` is the
    error of the last exit that called for a restart.

    >>> import asyncio, supervision as sv
    >>> async def flaky(ctx):
    ...     raise RuntimeError("boom")
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("flaky", flaky)], intensity=2)) as tree:
    ...         try:
    ...             await tree.wait()
    ...         except sv.TooManyRestarts as error:
    ...             print(error.path, repr(error.__cause__))
    >>> asyncio.run(main())
    () RuntimeError('boom')

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

    >>> import asyncio, supervision as sv
    >>> async def slow(ctx):
    ...     try:
    ...         await asyncio.Event().wait()
    ...     except asyncio.CancelledError:
    ...         await asyncio.sleep(0.1)              # a cleanup longer than its shutdown
    >>> async def main():
    ...     spec = sv.Supervisor([sv.child("slow", slow, shutdown=0.01)])
    ...     async with sv.start(spec) as tree:
    ...         await asyncio.sleep(0)                # let it reach its first await
    ...         events = tree.events()
    ...         await tree.terminate_child("slow")
    ...         async for event in events:
    ...             print(type(event.error).__name__)
    ...             break
    ...         await asyncio.wait(tree.abandoned)    # it ends by itself, later
    >>> asyncio.run(main())
    ShutdownTimeout

    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        super().__init__(f"{format_path(path)}: still running {timeout:g}s after cancellation; abandoned")


class ReloadError(SupervisionError):
    """A reload was rejected; the running tree is unchanged. ``__cause__`` says why.

    ``.path`` names the child at fault when there is one (a ``migrate`` that
    raised), else it is None.

    >>> import asyncio, supervision as sv
    >>> async def main():
    ...     async with sv.start(sv.Supervisor()) as tree:      # a bare spec: nothing to re-import
    ...         try:
    ...             await tree.reload()
    ...         except sv.ReloadError:
    ...             print("rejected; running:", not tree.stopped)
    >>> asyncio.run(main())
    rejected; running: True

    """

    def __init__(self, message: str, path: Path | None = None) -> None:
        self.path = path
        super().__init__(f"{format_path(path)}: {message}" if path is not None else message)


class Shutdown(Exception):
    """Raised by a worker to exit with reason ``"shutdown"``.

    A permanent child is restarted; a transient or temporary one is not.

    >>> import asyncio, supervision as sv
    >>> async def once(ctx):
    ...     raise sv.Shutdown("done for today")      # reason "shutdown": transient, not restarted
    >>> async def main():
    ...     spec = sv.Supervisor([sv.child("once", once, restart="transient")])
    ...     async with sv.start(spec) as tree:
    ...         await asyncio.sleep(0.01)
    ...         print(tree.which_children()[0].status.value)
    >>> asyncio.run(main())
    terminated

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

    >>> import asyncio, sys, supervision as sv
    >>> async def main():
    ...     spec = sv.Supervisor([sv.process("p", [sys.executable, "-c", "raise SystemExit(3)"])],
    ...                          intensity=0)
    ...     async with sv.start(spec) as tree:
    ...         try:
    ...             await tree.wait()
    ...         except sv.TooManyRestarts as error:
    ...             exited = error.__cause__
    ...             print(type(exited).__name__, exited.exit_status, exited.signal)
    >>> asyncio.run(main())
    ProcessExited 3 None

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
    """A request the server cannot carry out; ``.type`` is the error type of the reply
    (``BadRequest``, ``NotRunning``, ``ReloadError``...), ``.path`` the child's path if
    the error was about one."""

    def __init__(self, type: str, message: str, *, path: Path | None = None) -> None:
        self.type = type
        self.path = path
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


class SupervisordError(SupervisionError, ValueError):
    """A supervisord configuration file cannot be converted (``supervision
    import-supervisord``): ``.file`` and ``.line`` (1-based, or None) say where."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: {message}" if line is not None else f"{file}: {message}")


class ScenarioError(SupervisionError, ValueError):
    """A scenario of ``supervision simulate`` cannot be read: ``.line`` and
    ``.column`` (1-based) say where, ``excerpt()`` shows it."""

    def __init__(self, text: str, offset: int, message: str) -> None:
        self.text = text
        self.offset = offset
        self.line = text.count("\n", 0, offset) + 1
        self.column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        self.message = message
        super().__init__(f"{self.line}:{self.column}: {message}")

    def excerpt(self) -> str:
        """The line at fault with a caret under the place."""
        start = self.text.rfind("\n", 0, self.offset) + 1
        end = self.text.find("\n", self.offset)
        line = self.text[start : end if end != -1 else len(self.text)]
        return f"  {line}\n  {' ' * (self.column - 1)}^"


class CheckError(SupervisionError):
    """``supervision check``: a target does not build a valid tree; the message says where and why."""


class NotAProcess(PathError):
    """A signal was asked for a child that runs no OS process (a worker, or a
    process that is not running), or a supervisor with none running under it."""


# -- the wire form ------------------------------------------------------------------

REFUSALS: dict[str, type[PathError]] = {
    cls.__name__: cls
    for cls in (NotFound, AlreadyPresent, AlreadyStarted, ChildRunning, ChildRestarting, SupervisorNotRunning)
}
"""The tree's refusals, which a client raises as the same class (with ``.path``)."""


def to_wire(error: SupervisionError) -> dict[str, Any]:
    """The ``"error"`` object of a control reply: ``type`` (the class name, or a
    ``RequestError``'s own ``.type``), ``message``, and ``path`` (``"a/b"``) when the
    error is about a child or a supervisor."""
    kind = error.type if isinstance(error, RequestError) else type(error).__name__
    wire: dict[str, Any] = {"type": kind, "message": str(error)}
    path = getattr(error, "path", None)
    if isinstance(path, tuple):
        wire["path"] = format_path(path)
    return wire


def from_wire(error: Any) -> SupervisionError:
    """The error a control reply carries, as a client raises it: one of
    :data:`REFUSALS` as that class, anything else as a ``RequestError`` of that type;
    ``.path`` from the reply's ``path``."""
    if not isinstance(error, dict):
        error = {}
    kind = str(error.get("type", "Error"))
    message = str(error.get("message", ""))
    raw = error.get("path")
    path = parse_path(raw) if isinstance(raw, str) else None
    refusal = REFUSALS.get(kind)
    if refusal is not None:
        return refusal(message, path=path)
    return RequestError(kind, message, path=path)
