"""The status JSON, walked and judged; events as JSON.

The status JSON is the ``status`` result of the control protocol (see
``docs/cli.md``): ``{"name", "pid", "state", "uptime", "children": [node...]}``,
each node ``{"path", "id", "kind", "status", "pid", "starts", "restarts",
"uptime", "last_exit", "children"?}``. Observability adds:

- to the root: ``"intensity"`` (of the root supervisor), ``"escalating"`` (the
  root gave up and is stopping its children), ``"reloads"`` (``{"applied": n,
  "rejected": n}``), ``"events"`` (the last events, :func:`event_json` with
  ``"at"``, the wall-clock time) and over HTTP ``"health"`` (:func:`health`);
- to every node: ``"start_failures"`` and ``"recent_restarts"`` (how many
  seconds ago each recent restart happened);
- to a process node: ``"resources"`` (``procstat.Usage.to_json()``, None
  when it is not running);
- to a supervisor node: ``"intensity"``.

``intensity`` is ``{"restarts": n, "intensity": k, "period": s, "used_ratio": r}``:
``n`` restarts within the last ``period`` seconds against the limit ``k``. At
``r == 1`` the next restart makes the supervisor give up.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Node = dict[str, Any]

LIVE_STATES = frozenset({"running", "reloading", "reexecuting"})
"""Host states in which the tree is alive (``/healthz`` answers 200)."""
SETTLED = frozenset({"running", "terminated"})
"""Child statuses that count as ready: running (and ready, where a check was
asked for: a child counts as running only once it is ready), or stopped on
purpose (by an operator, or a transient child that finished its work)."""


def walk(status: dict[str, Any]) -> Iterator[tuple[Node, str]]:
    """Every node of a status, depth first in start order, with the path of its supervisor (``"/"`` for the root)."""
    stack: list[tuple[Node, str]] = [(node, "/") for node in reversed(status.get("children", ()))]
    while stack:
        node, parent = stack.pop()
        yield node, parent
        stack.extend((child, node["path"]) for child in reversed(node.get("children") or ()))


def intensity(restarts: int, limit: int, period: float) -> dict[str, Any]:
    """The intensity fill of a supervisor, as the status JSON carries it."""
    ratio = min(1.0, restarts / limit) if limit > 0 else 0.0
    return {"restarts": restarts, "intensity": limit, "period": period, "used_ratio": round(ratio, 4)}


@dataclass(frozen=True, slots=True)
class Health:
    """Liveness and readiness of a tree, and why not when not."""

    live: bool
    ready: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"live": self.live, "ready": self.ready, "reason": self.reason}


def health(status: dict[str, Any]) -> Health:
    """Live: the root is running, not stopping and not escalating (it gave up
    and stops its children). Ready: live, and every child in the tree is
    running (and ready) or was stopped on purpose (``terminated``): none is
    starting, restarting or stopping."""
    state = status.get("state")
    if status.get("escalating"):
        return Health(False, False, "the root supervisor gave up")
    if state not in LIVE_STATES:
        return Health(False, False, f"the tree is {state}")
    for node, _ in walk(status):
        if node["status"] not in SETTLED:
            return Health(True, False, f"{node['path']} is {node['status']}")
    return Health(True, True, "ok")


def event_json(event: Any) -> dict[str, Any]:
    """An event (any frozen dataclass with ``path`` and ``time``) as a JSON object:
    ``{"event": "ChildExited", "path": "db/pool", "time": ..., "reason": "crash", ...}``.
    Errors become their text, paths ``"a/b"``, enums their value."""
    out: dict[str, Any] = {"event": type(event).__name__}
    for field in dataclasses.fields(event):
        out[field.name] = _json_value(field.name, getattr(event, field.name))
    return out


def _json_value(name: str, value: Any) -> Any:
    if name == "path":
        return "/".join(value) if value else "/"
    if isinstance(value, BaseException):
        text = str(value)
        return f"{type(value).__name__}: {text}" if text else type(value).__name__
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple) and all(isinstance(item, tuple) for item in value):
        return ["/".join(item) or "/" for item in value]  # a tuple of paths
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def process_pids(status: dict[str, Any]) -> dict[str, int]:
    """The pid of each running process child, by path."""
    return {
        node["path"]: node["pid"]
        for node, _ in walk(status)
        if node["kind"] == "process" and node.get("pid") is not None and node["status"] == "running"
    }


def add_resources(status: dict[str, Any], usage: dict[str, Any]) -> None:
    """Set ``"resources"`` on every process node: ``usage[path]`` (a
    ``procstat.Usage``), or None when the child is not running (or just exited)."""
    for node, _ in walk(status):
        if node["kind"] == "process":
            found = usage.get(node["path"])
            node["resources"] = found.to_json() if found is not None else None


def size(value: float) -> str:
    """``512B``, ``12.0K``, ``101.3M``, ``1.2G``."""
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}G"  # pragma: no cover
