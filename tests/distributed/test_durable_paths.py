"""DurablePaths: the tree's snapshots written through to a store, routed and fenced;
and the pure rules of leader-gated supervisors."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from pyrsistent import pmap

import supervision as sv
import supervision.stores as stores
from supervision._core.durable import DurablePaths, Route
from supervision._core.leader import MARGIN, leader_problem
from supervision._core.spec import stop_time as spec_stop_time
from supervision.stores import Fence, Record


async def test_saves_adoptions_and_forgets_reach_the_store(tmp_path: Path) -> None:
    store = stores.sqlite(tmp_path / "s.db")
    await store.open()
    paths = DurablePaths(store)
    paths.save(("a",), pmap({"n": 1}))
    paths.save(("sup", "b"), pmap({"n": 2}))
    paths.save(("sup", "c"), pmap({"n": 3}))
    paths.versions[("a",)] = 1
    paths.prepare_start(("a",), 2, lambda old, version: old.set("migrated", version))  # a reload changed the version
    paths.forget(("sup",), subtree=True)
    await store.close()

    again = stores.sqlite(tmp_path / "s.db")
    await again.open()
    assert dict(await again.items()) == {("a",): Record(pmap({"n": 1, "migrated": 1}), 2)}
    loaded = DurablePaths(again)
    loaded.load(await again.items())
    assert loaded.snapshots == {("a",): pmap({"n": 1, "migrated": 1})} and loaded.versions == {("a",): 2}
    await again.close()


async def test_a_refused_snapshot_leaves_the_last_accepted_one(tmp_path: Path) -> None:
    store = stores.sqlite(tmp_path / "s.db", max_bytes=200)
    await store.open()
    try:
        paths = DurablePaths(store)
        paths.save(("a",), pmap({"n": 1}))
        with pytest.raises(stores.SnapshotTooLarge):
            paths.save(("a",), pmap({"blob": "x" * 500}))
        assert paths.snapshot(("a",), None) == pmap({"n": 1})
    finally:
        await store.close()


async def test_a_routed_subtree_goes_to_its_own_store_with_its_fence() -> None:
    tree, shared = stores.memory(), stores.memory()
    paths = DurablePaths(tree)
    fence = Fence("/supervision/leader/x", 7)
    paths.routes[("singletons",)] = Route(shared, fence)
    paths.save(("web",), 1)
    paths.save(("singletons", "cron"), 2)
    assert dict(await tree.items()) == {("web",): Record(1)}
    assert dict(await shared.items()) == {("cron",): Record(2)}
    assert paths.fence(("singletons", "cron")) == fence and paths.fence(("web",)) is None
    paths.load({("cron",): Record(5, 3)}, under=("singletons",))
    assert paths.snapshot(("singletons", "cron"), None) == 5 and paths.versions[("singletons", "cron")] == 3


async def work(ctx: sv.Context) -> None: ...


def test_the_stop_time_of_a_gated_supervisor_adds_its_children_up() -> None:
    nested = sv.Supervisor([sv.child("b", work, shutdown=1.5), sv.child("c", work, shutdown=sv.BRUTAL_KILL)])
    children = [sv.child("a", work, shutdown=2.0), sv.child("n", nested)]
    assert spec_stop_time(children) == 3.5
    assert spec_stop_time([sv.child("n", nested, shutdown=1.0)]) == 1.0
    assert spec_stop_time([sv.child("forever", work, shutdown=sv.INFINITY)]) == math.inf
    assert leader_problem(3.5, 10) is None
    problem = leader_problem(3.5, 6)
    assert problem is not None and "ttl=6s" in problem and f"{6 * 2 / 3 - MARGIN:g}s" in problem
    assert "never stop" in (leader_problem(math.inf, 60) or "")


@pytest.mark.parametrize("durable", [False, True])
async def test_a_tree_with_a_store_still_refuses_mutable_snapshots(tmp_path: Path, durable: bool) -> None:
    refused: list[BaseException] = []

    async def saver(ctx: sv.Context) -> None:
        try:
            ctx.save([1, 2])  # a list: mutable
        except TypeError as exc:
            refused.append(exc)
        ctx.save(pmap({"ok": True}))
        ctx.ready()
        await asyncio.Event().wait()

    store = stores.sqlite(tmp_path / "s.db") if durable else stores.memory()
    async with sv.start(sv.Supervisor([sv.child("a", saver, ready=True)]), store=store) as tree:
        assert tree.state("a") == pmap({"ok": True})
    assert len(refused) == 1 and "immutable plain data" in str(refused[0])
    if durable:
        again = stores.sqlite(tmp_path / "s.db")
        await again.open()
        assert dict(await again.items()) == {("a",): Record(pmap({"ok": True}))}
        await again.close()
