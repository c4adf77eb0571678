"""Fault injection against a running tree."""

from __future__ import annotations

from .._errors import NotFound, Path, format_path
from .._tree import Handle, parse_path


class InjectedCrash(Exception):
    """The default error of :func:`crash`."""


def crash(tree: Handle, path: str | Path, exc: BaseException | None = None) -> None:
    """Make the running child at ``path`` exit as crashed with ``exc``.

    A worker's task is cancelled and its exit reported as a crash with ``exc``;
    an OS process is sent SIGKILL; a nested supervisor stops its children and
    then exits as crashed. The supervisor reacts as to any crash.
    """
    full = parse_path(path)
    if not full:
        raise NotFound("crash() needs a child's path")
    parent = tree.at(full[:-1])._runner()
    incarnation = parent.incarnations.get(full[-1])
    child = parent.core.children.get(full[-1])
    if incarnation is None or child is None or child.token != incarnation.token or child.status != "running":
        raise NotFound(f"{format_path((*tree.path, *full))}: no running child")
    incarnation.crash(exc if exc is not None else InjectedCrash(f"crash injected into {format_path(full)}"))
