"""The commands of the control protocol, carried out on a running tree.

Each command takes the request (a JSON object) and returns the result object of
the reply, or raises: ``RequestError`` for a bad request, a ``SupervisionError``
(``NotFound``, ``ChildRunning``, ``ReloadError``...) when the tree refuses. The
transport (framing, versions, peers) is ``server``'s business, the run's
lifecycle (stop, reload, state) ``run``'s: this module only reads and drives
the tree through its public API.
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .._core.dynamic import DynamicSupervisor
from .._core.errors import NotFound, RequestError, SupervisionError
from .._core.messages import OperatorRestart, RestartChild, Scale, TerminateChild
from .._core.paths import Path, format_path
from .._core.status import ChildInfo, Status
from .._runtime.runner import SupervisorRunner
from .._runtime.tree import Handle, Tree
from ..observe.figures import intensity
from ..observe.observer import Observer
from .operate import parse_signal, signal_processes
from .protocol import VERSION, ServiceState
from .recorder import OutputLog, Recorder

_MAX_PATH = 4096
_MAX_LOG_LINES = 10_000
_MAX_INSTANCES = 100_000


class Host(Protocol):
    """What the commands need from the run that serves them (``_run.Service``)."""

    name: str
    target: str
    state: ServiceState
    tree: Tree | None
    recorder: Recorder | None
    output: OutputLog

    @property
    def observer(self) -> Observer | None:
        """The figures a status carries beyond the tree's own (``observe``)."""
        ...

    @property
    def http_url(self) -> str | None:
        """The URL of the HTTP endpoint (``sv.run(http=...)``), if it serves one."""
        ...

    def now(self) -> float: ...

    def uptime(self) -> float: ...

    def request_stop(self) -> None: ...

    async def reload(self) -> dict[str, Any]: ...

    async def plan_reload(self) -> dict[str, Any]: ...

    async def reexec(self) -> dict[str, Any]: ...


class Commands:
    """The handler of a ``ControlServer``: ``await commands(request) -> result``."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._table: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "ping": self.ping,
            "status": self.status,
            "restart": self.restart,
            "stop": self.stop,
            "start": self.start,
            "reload": self.reload,
            "reexec": self.reexec,
            "logs": self.logs,
            "scale": self.scale,
            "signal": self.signal,
        }

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        command = self._table.get(request["cmd"])
        if command is None:
            known = ", ".join(sorted(self._table))
            raise RequestError("UnknownCommand", f"unknown command {request['cmd'][:100]!r}; known: {known}")
        return await command(request)

    # -- commands -----------------------------------------------------------------

    async def ping(self, request: dict[str, Any]) -> dict[str, Any]:
        host = self.host
        return {"version": VERSION, "name": host.name, "pid": os.getpid(), "state": host.state, "http": host.http_url}

    async def status(self, request: dict[str, Any]) -> dict[str, Any]:
        """The tree, with the figures of ``observe`` (``"resources": false``
        skips the /proc readings: the probes of the HTTP endpoint need none)."""
        host = self.host
        path = _path(request, required=False)
        resources = request.get("resources", True)
        if not isinstance(resources, bool):
            raise RequestError("BadRequest", "'resources' must be true or false")
        tree = host.tree
        children: list[dict[str, Any]] = []
        fill = None
        if tree is not None and not tree.stopped:
            if path:
                children = [self._node(path[:-1], self._info(self._supervisor_of(path), path))]
            else:
                children = [self._node((), info) for info in tree.which_children()]
            fill = _intensity(tree)
        elif path:
            raise NotFound.at(path, f"the tree is {host.state}")
        result = {
            "name": host.name,
            "pid": os.getpid(),
            "target": host.target,
            "state": host.state,
            "uptime": round(host.uptime(), 3),
            "intensity": fill,
            "children": children,
        }
        if host.observer is not None:
            await host.observer.decorate(result, resources=resources)
        return result

    async def restart(self, request: dict[str, Any]) -> dict[str, Any]:
        """Stop the child if it runs (or cancel its pending retry), then start it:
        one command of the core, which refuses a temporary child. With
        ``restart_mode="overlap"`` the core starts the new one before it stops the old."""
        path = _path(request)
        runner = self._supervisor_of(path)
        await runner.call(OperatorRestart(path[-1]))
        return self._brief(runner, path)

    async def stop(self, request: dict[str, Any]) -> dict[str, Any]:
        """Without a path: stop the whole tree (the reply comes first, the
        connection closes once it has stopped). With one: terminate that child."""
        path = _path(request, required=False)
        if not path:
            self.host.request_stop()
            return {"stopping": True}
        runner = self._supervisor_of(path)
        await runner.call(TerminateChild(path[-1]))
        if runner.child(path[-1]) is None:  # a temporary child is removed when terminated
            return {"path": format_path(path), "status": "removed", "pid": None}
        return self._brief(runner, path)

    async def start(self, request: dict[str, Any]) -> dict[str, Any]:
        """Start a terminated child again."""
        path = _path(request)
        runner = self._supervisor_of(path)
        await runner.call(RestartChild(path[-1]))
        return self._brief(runner, path)

    async def scale(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run ``count`` instances of the instance group at ``path``: the new ones
        started in order, or the highest-numbered stopped first."""
        path = _path(request)
        count = request.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_INSTANCES:
            raise RequestError("BadRequest", f"'count' must be an integer in 0..{_MAX_INSTANCES}")
        runner = self._tree().runner_at(path)
        spec = runner.spec
        if not isinstance(spec, DynamicSupervisor) or spec.instances is None:
            what = "not an instance group (sv.process(..., instances=N), numprocs = N)"
            raise RequestError("BadRequest", f"{format_path(path)}: {what}", path=path)
        await runner.call(Scale(count))
        return {"path": format_path(path), "count": count}

    async def reload(self, request: dict[str, Any]) -> dict[str, Any]:
        dry_run = request.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise RequestError("BadRequest", "'dry_run' must be true or false")
        if dry_run:
            return await self.host.plan_reload()
        return await self.host.reload()

    async def signal(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send a signal to the process at ``path``, or to every process under it
        (no path: the whole tree)."""
        tree = self._tree()
        path = _path(request, required=False)
        value = request.get("signal")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise RequestError("BadRequest", "'signal' must be a signal name or number")
        try:
            signum = parse_signal(str(value))
        except ValueError as exc:
            raise RequestError("BadSignal", str(exc)) from None
        sent = signal_processes(tree, path, signum)  # NotFound, NotAProcess: the tree refuses
        return {
            "signal": _signal.Signals(signum).name,
            "signalled": [{"path": format_path(s.path), "pid": s.pid} for s in sent],
        }

    async def reexec(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.host.reexec()

    async def logs(self, request: dict[str, Any]) -> dict[str, Any]:
        path = _path(request, required=False)
        limit = request.get("lines", 100)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= _MAX_LOG_LINES:
            raise RequestError("BadRequest", f"'lines' must be an integer in 0..{_MAX_LOG_LINES}")
        after = request.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise RequestError("BadRequest", "'after' must be a sequence number >= 0")
        tree = self.host.tree
        if path and tree is not None and not tree.stopped:
            self._supervisor_of(path)  # NotFound for a path the tree does not have
        log = self.host.output
        lines = log.lines(format_path(path), limit, after)
        return {
            "path": format_path(path),
            "lines": [line.to_json() for line in lines],
            "seq": log.seq,  # ask for what follows this (``logs -f``)
            "epoch": log.epoch,  # another epoch: another image (a re-exec), numbered afresh
        }

    # -- helpers ------------------------------------------------------------------

    def _tree(self) -> Tree:
        tree = self.host.tree
        if tree is None or tree.stopped:
            raise RequestError("NotRunning", f"the tree is {self.host.state}")
        return tree

    def _supervisor_of(self, path: Path) -> SupervisorRunner:
        """The runner of the supervisor of the child at ``path``, resolved once for
        the request; ``NotFound`` if it has no such child."""
        runner = self._tree().runner_at(path[:-1])
        if runner.child(path[-1]) is None:
            raise NotFound.at(path, "no such child")
        return runner

    def _info(self, runner: SupervisorRunner, path: Path) -> ChildInfo:
        found = runner.child(path[-1])
        if found is None:
            raise NotFound.at(path, "no such child")
        return runner.info(*found)

    def _brief(self, runner: SupervisorRunner, path: Path) -> dict[str, Any]:
        info = self._info(runner, path)
        return {"path": format_path(path), "status": str(info.status), "pid": info.pid}

    def _node(self, parent: Path, info: ChildInfo) -> dict[str, Any]:
        path = (*parent, info.id)
        recorder = self.host.recorder
        now = self.host.now()
        running = info.status is Status.RUNNING
        uptime = None
        last_exit = None
        if recorder is not None:
            uptime = round(now - recorder.started(path), 3) if running else None
            found = recorder.last_exit(path)
            last_exit = found.to_json(now) if found is not None else None
        node: dict[str, Any] = {
            "path": format_path(path),
            "id": info.id,
            "kind": info.kind,
            "status": str(info.status),
            "pid": info.pid,
            "health": None if info.health is None else str(info.health),
            "starts": info.starts,
            "restarts": max(0, info.starts - 1),
            "uptime": uptime,
            "last_exit": last_exit,
        }
        if info.role is not None:  # a leader-gated supervisor
            node["role"] = str(info.role)
            node["fence"] = info.fence
        if info.kind == "supervisor":
            children: list[dict[str, Any]] = []
            if running:
                tree = self.host.tree
                assert tree is not None
                try:
                    handle = tree.at(path)
                    children = [self._node(path, child) for child in handle.which_children()]
                    node["intensity"] = _intensity(handle)
                except SupervisionError:
                    children = []  # it stopped meanwhile
            node.setdefault("intensity", None)
            node["children"] = children
        return node


def _intensity(handle: Handle) -> dict[str, Any] | None:
    """A supervisor's intensity fill, as the status carries it (None if it stopped meanwhile)."""
    try:
        fill = handle.intensity()
    except SupervisionError:
        return None
    return intensity(fill.restarts, fill.intensity, fill.period)


def _path(request: dict[str, Any], *, required: bool = True) -> Path:
    """The child's path a request names. Absent (or null) means the whole tree
    where the command allows it; an empty or malformed string is a
    ``BadRequest``, never the root: ``stop "$SVC"`` with SVC unset must not stop
    everything."""
    value = request.get("path")
    if value is None:
        if required:
            raise RequestError("BadRequest", "this command needs a 'path'")
        return ()
    if not isinstance(value, str) or len(value) > _MAX_PATH:
        raise RequestError("BadRequest", "'path' must be a string like 'db/pool'")
    whole = "" if required else "; leave 'path' out to mean the whole tree"
    if not value:
        raise RequestError("BadRequest", f"'path' is empty: give a child's path like 'db/pool'{whole}")
    ids = value.split("/")
    if not all(ids):
        raise RequestError(
            "BadRequest", f"malformed path {value[:200]!r}: a child's path is ids joined by '/', like 'db/pool'{whole}"
        )
    return tuple(ids)
