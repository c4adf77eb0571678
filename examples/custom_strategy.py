"""A custom restart strategy: restart the failed child and everything that depends on it.

``one_for_one`` restarts too little when services depend on each other, and
``rest_for_one`` too much when the start order is only a linearisation of a
dependency graph. ``DependencySupervisor`` takes the graph itself
(``depends_on``) and restarts the failed child plus its transitive dependents,
nothing else::

    db ◄── cache ◄── api ◄── web         crash "cache": restart cache, api, web
    ▲                                      db, jobs and metrics keep running
    └──── jobs        metrics

Run it (it starts the tree, crashes ``cache``, prints what restarted, and stops)::

    python examples/custom_strategy.py

The injected crash is also logged to stderr by the ``"supervision"`` logger.
See docs/custom-strategy.md for the contract of ``plan()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from pyrsistent import PMap, pmap

import supervision as sv
from supervision.testing import crash


class DependencySupervisor(sv.Supervisor):
    """Restarts the failed child and every child that depends on it, transitively.

    ``depends_on`` maps a child's id to the ids of the siblings it needs. A
    dependency must be declared (so started) before its dependents, which also
    rules out cycles.
    """

    depends_on: PMap[str, tuple[str, ...]]

    def __init__(
        self,
        children: Iterable[sv.ChildSpec] = (),
        *,
        depends_on: Mapping[str, Iterable[str]] | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(children, **settings)
        position = {spec.id: n for n, spec in enumerate(self.children)}
        graph: dict[str, tuple[str, ...]] = {}
        for id, needs in (depends_on or {}).items():
            if id not in position:
                raise sv.SpecError((id,), "depends_on", "no child with this id")
            graph[id] = tuple(needs)
            for need in graph[id]:
                if need not in position:
                    raise sv.SpecError((id,), "depends_on", f"depends on {need!r}, which is not a sibling")
                if position[need] >= position[id]:
                    raise sv.SpecError((id,), "depends_on", f"depends on {need!r}, which must be declared before it")
        # Specs are frozen: the base class forbids assignment, so set attributes this way.
        object.__setattr__(self, "depends_on", pmap(graph))

    def plan(self, ids: tuple[str, ...], failed: str) -> Iterable[str]:
        """The failed child and its transitive dependents, in start order."""
        dependents: dict[str, list[str]] = {}
        for id, needs in self.depends_on.items():
            for need in needs:
                dependents.setdefault(need, []).append(id)
        restart, todo = {failed}, [failed]
        while todo:
            for id in dependents.get(todo.pop(), ()):
                if id not in restart:
                    restart.add(id)
                    todo.append(id)
        # Name only children the supervisor has now: a dependent removed with
        # delete_child is no longer in ids, and an unknown id would crash the supervisor.
        return [id for id in ids if id in restart]

    # Value semantics: depends_on is one of this supervisor's settings, so it takes
    # part in equality, hashing and repr, and survives replace().

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "depends_on": self.depends_on}

    def replace(self, **changes: Any) -> DependencySupervisor:
        values = {**self.settings(), "children": self.children, **changes}
        return type(self)(values.pop("children"), **values)


async def service(ctx: sv.Context) -> None:
    """A stand-in for a real service: it runs until it is stopped."""
    await asyncio.Event().wait()


def build() -> DependencySupervisor:
    return DependencySupervisor(
        [sv.child(id, service) for id in ("db", "cache", "api", "jobs", "metrics", "web")],
        depends_on={"cache": ["db"], "api": ["db", "cache"], "jobs": ["db"], "web": ["api"]},
        intensity=3,
        period=5.0,
    )


async def crash_and_wait(tree: sv.Handle, id: str) -> list[sv.Event]:
    """Crash the child ``id`` and wait until the restart it causes is over.

    A restart stops its whole group before it starts any of it, so the restart
    is over when as many children have started as have exited. Returns the
    events of the children of ``tree`` in the meantime.
    """
    depth = len(tree.path) + 1
    events = tree.events()
    crash(tree, id)
    seen: list[sv.Event] = []
    down = 0
    async for event in events:
        if len(event.path) != depth:
            continue  # grandchildren: their own supervisor's business
        seen.append(event)
        if isinstance(event, sv.ChildExited):
            down += 1
        elif isinstance(event, sv.ChildStarted):
            down -= 1
            if down == 0:
                break
    await events.aclose()
    return seen


async def demo(victim: str = "cache") -> list[str]:
    """Start the tree, crash ``victim``, print the events; the ids that restarted."""
    async with sv.start(build) as tree:
        before = {info.id: info.starts for info in tree.which_children()}
        print("running:", ", ".join(before))
        print(f"crashing {victim!r}")
        for event in await crash_and_wait(tree, victim):
            if isinstance(event, sv.ChildExited):
                print(f"  {event.path[-1]}: exited ({event.reason})")
            elif isinstance(event, sv.ChildStarted):
                print(f"  {event.path[-1]}: started (start #{event.starts})")
        after = {info.id: info.starts for info in tree.which_children()}
    restarted = [id for id in after if after[id] > before[id]]
    print("restarted:", ", ".join(restarted))
    print("kept running:", ", ".join(id for id in after if id not in restarted))
    return restarted


def main() -> None:
    asyncio.run(demo())


if __name__ == "__main__":
    main()
