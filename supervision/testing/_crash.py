"""Fault injection against a running tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.errors import NotFound
from .._core.paths import Path, format_path, parse_path
from .._core.status import Status

if TYPE_CHECKING:
    from .._runtime.tree import Handle


class InjectedCrash(Exception):
    """The default error of :func:`crash`.

    >>> import asyncio, supervision as sv
    >>> from supervision.testing import crash
    >>> async def w(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("w", w)])) as tree:
    ...         events = tree.events()
    ...         crash(tree, "w")
    ...         async for event in events:
    ...             print(type(event.error).__name__)
    ...             break
    >>> asyncio.run(main())
    InjectedCrash
    """


def crash(tree: Handle, path: str | Path, exc: BaseException | None = None) -> None:
    """Make the running child at ``path`` exit as crashed with ``exc``.

    A worker's task is cancelled and its exit reported as a crash with ``exc``;
    an OS process is sent SIGKILL; a nested supervisor stops its children and
    then exits as crashed. The supervisor reacts as to any crash.

    >>> import asyncio, supervision as sv
    >>> from supervision.testing import crash
    >>> async def w(ctx):
    ...     await asyncio.Event().wait()
    >>> async def main():
    ...     async with sv.start(sv.Supervisor([sv.child("w", w)])) as tree:
    ...         events = tree.events()
    ...         crash(tree, "w", RuntimeError("injected"))
    ...         async for event in events:
    ...             if isinstance(event, sv.ChildStarted):
    ...                 print(tree.which_children()[0].starts)
    ...                 break
    >>> asyncio.run(main())
    2

    """
    full = parse_path(path)
    if not full:
        raise NotFound("crash() needs a child's path")
    parent = tree._tree.runner_at((*tree.path, *full[:-1]))
    found = parent.child(full[-1])
    if found is None or found[1] is None or found[0].status is not Status.RUNNING:
        raise NotFound.at((*tree.path, *full), "no running child")
    found[1].crash(exc if exc is not None else InjectedCrash(f"crash injected into {format_path(full)}"))
