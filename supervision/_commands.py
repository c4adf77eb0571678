"""The commands of the control protocol, carried out on a running tree.

Each command takes the request (a JSON object) and returns the result object of
the reply, or raises: ``RequestError`` for a bad request, a ``SupervisionError``
(``NotFound``, ``ChildRunning``, ``ReloadError``...) when the tree refuses. The
transport (framing, versions, peers) is ``_control``'s business, the run's
lifecycle (stop, reload, state) ``_run``'s: this module only reads and drives
the tree through its public API.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ._control import VERSION, RequestError
from ._core import Status
from ._errors import NotFound, Path, SupervisionError, format_path
from ._recorder import OutputLog, Recorder
from ._tree import ChildInfo, Handle, Tree

_MAX_PATH = 4096
_MAX_LOG_LINES = 10_000


class Host(Protocol):
    """What the commands need from the run that serves them (``_run.Service``)."""

    name: str
    target: str
    state: str
    tree: Tree | None
    recorder: Recorder | None
    output: OutputLog

    def now(self) -> float: ...

    def uptime(self) -> float: ...

    def request_stop(self) -> None: ...

    async def reload(self) -> dict[str, Any]: ...

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
        return {"version": VERSION, "name": host.name, "pid": os.getpid(), "state": host.state}

    async def status(self, request: dict[str, Any]) -> dict[str, Any]:
        host = self.host
        path = _path(request, required=False)
        tree = host.tree
        children: list[dict[str, Any]] = []
        if tree is not None and not tree.stopped:
            if path:
                parent, info = self._find(tree, path)
                children = [self._node(parent.path, info)]
            else:
                children = [self._node((), info) for info in tree.which_children()]
        elif path:
            raise NotFound(f"{format_path(path)}: the tree is {host.state}")
        return {
            "name": host.name,
            "pid": os.getpid(),
            "target": host.target,
            "state": host.state,
            "uptime": round(host.uptime(), 3),
            "children": children,
        }

    async def restart(self, request: dict[str, Any]) -> dict[str, Any]:
        """Stop the child if it runs (or cancel its pending retry), then start it."""
        tree = self._tree()
        path = _path(request)
        parent, info = self._find(tree, path)
        if self._is_temporary(parent, path[-1]):
            raise RequestError("Temporary", f"{format_path(path)}: a temporary child is removed when stopped")
        if info.status is not Status.TERMINATED:
            await parent.terminate_child(path[-1])
        await parent.restart_child(path[-1])
        return self._brief(tree, path)

    async def stop(self, request: dict[str, Any]) -> dict[str, Any]:
        """Without a path: stop the whole tree (the reply comes first, the
        connection closes once it has stopped). With one: terminate that child."""
        path = _path(request, required=False)
        if not path:
            self.host.request_stop()
            return {"stopping": True}
        tree = self._tree()
        parent, _ = self._find(tree, path)
        await parent.terminate_child(path[-1])
        try:
            return self._brief(tree, path)
        except NotFound:  # a temporary child is removed when terminated
            return {"path": format_path(path), "status": "removed", "pid": None}

    async def start(self, request: dict[str, Any]) -> dict[str, Any]:
        """Start a terminated child again."""
        tree = self._tree()
        path = _path(request)
        parent, _ = self._find(tree, path)
        await parent.restart_child(path[-1])
        return self._brief(tree, path)

    async def reload(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.host.reload()

    async def reexec(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.host.reexec()

    async def logs(self, request: dict[str, Any]) -> dict[str, Any]:
        path = _path(request, required=False)
        limit = request.get("lines", 100)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= _MAX_LOG_LINES:
            raise RequestError("BadRequest", f"'lines' must be an integer in 0..{_MAX_LOG_LINES}")
        tree = self.host.tree
        if path and tree is not None and not tree.stopped:
            self._find(tree, path)  # NotFound for a path the tree does not have
        lines = self.host.output.lines(format_path(path), limit)
        return {"path": format_path(path), "lines": [line.to_json() for line in lines]}

    # -- helpers ------------------------------------------------------------------

    def _tree(self) -> Tree:
        tree = self.host.tree
        if tree is None or tree.stopped:
            raise RequestError("NotRunning", f"the tree is {self.host.state}")
        return tree

    def _find(self, tree: Tree, path: Path) -> tuple[Handle, ChildInfo]:
        """The handle of the supervisor of ``path``, and the child's info."""
        parent = tree.at(path[:-1])
        for info in parent.which_children():
            if info.id == path[-1]:
                return parent, info
        raise NotFound(f"{format_path(path)}: no such child")

    def _is_temporary(self, parent: Handle, id: str) -> bool:
        for spec in parent.spec.children:
            if spec.id == id:
                return str(spec.restart) == "temporary"
        return False

    def _brief(self, tree: Tree, path: Path) -> dict[str, Any]:
        _, info = self._find(tree, path)
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
            "starts": info.starts,
            "restarts": max(0, info.starts - 1),
            "uptime": uptime,
            "last_exit": last_exit,
        }
        if info.kind == "supervisor":
            children: list[dict[str, Any]] = []
            if running:
                tree = self.host.tree
                assert tree is not None
                try:
                    children = [self._node(path, child) for child in tree.at(path).which_children()]
                except SupervisionError:
                    children = []  # it stopped meanwhile
            node["children"] = children
        return node


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
