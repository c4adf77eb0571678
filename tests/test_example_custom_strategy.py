"""The custom strategy example: a DependencySupervisor restarts exactly the failed
child and its transitive dependents, checked against a running tree."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import supervision as sv
from supervision.testing import crash

from .helpers import WAIT, forever, is_, next_event, statuses


def _load_example() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "examples" / "custom_strategy.py"
    spec = importlib.util.spec_from_file_location("custom_strategy_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = _load_example()

ORDER = ["db", "cache", "api", "jobs", "metrics", "web"]
# db ◄── cache ◄── api ◄── web;  db ◄── jobs;  metrics alone
EXPECTED = {
    "db": ["db", "cache", "api", "jobs", "web"],
    "cache": ["cache", "api", "web"],
    "api": ["api", "web"],
    "jobs": ["jobs"],
    "metrics": ["metrics"],
    "web": ["web"],
}


def starts(handle: sv.Handle) -> dict[str, int]:
    return {info.id: info.starts for info in handle.which_children()}


async def crash_and_settle(tree: sv.Handle, id: str) -> list[sv.Event]:
    """Crash ``id``; return the events until as many children started as exited.

    Independent of the example's own helper, so a bug there cannot hide one here.
    """
    events = tree.events()
    crash(tree, id)
    seen: list[sv.Event] = []
    down = 0

    async def read() -> None:
        nonlocal down
        async for event in events:
            seen.append(event)
            if isinstance(event, sv.ChildExited):
                down += 1
            elif isinstance(event, sv.ChildStarted):
                down -= 1
                if down == 0:
                    return
        raise AssertionError(f"the tree stopped during the restart: {seen}")

    await asyncio.wait_for(read(), WAIT)
    await events.aclose()
    return seen


def test_plan_is_the_failed_child_and_its_transitive_dependents() -> None:
    spec = example.build()
    ids = tuple(child.id for child in spec.children)
    assert list(ids) == ORDER
    for failed, expected in EXPECTED.items():
        assert list(spec.plan(ids, failed)) == expected


@pytest.mark.parametrize("victim", ORDER)
async def test_exactly_the_failed_child_and_its_dependents_restart(victim: str) -> None:
    async with sv.start(example.build) as tree:
        before = starts(tree)
        assert before == dict.fromkeys(ORDER, 1)
        trace = await crash_and_settle(tree, victim)
        after = starts(tree)
        restarted = [id for id in ORDER if after[id] == before[id] + 1]
        assert restarted == EXPECTED[victim]
        assert all(after[id] == before[id] for id in ORDER if id not in restarted)
        assert statuses(tree) == dict.fromkeys(ORDER, "running")
        # OTP order: the failed child exits, the others of the group are stopped
        # right to left, then the whole group starts left to right.
        exits = [(e.path[-1], e.reason) for e in trace if isinstance(e, sv.ChildExited)]
        started = [e.path[-1] for e in trace if isinstance(e, sv.ChildStarted)]
        bystanders = [id for id in reversed(restarted) if id != victim]
        assert exits == [(victim, "crash")] + [(id, "shutdown") for id in bystanders]
        assert started == restarted


async def test_transitive_restart_twice_counts_starts_per_path() -> None:
    async with sv.start(example.build) as tree:
        await crash_and_settle(tree, "cache")
        await crash_and_settle(tree, "api")
        assert starts(tree) == {"db": 1, "cache": 2, "api": 3, "jobs": 1, "metrics": 1, "web": 3}


async def test_a_terminated_dependent_stays_terminated() -> None:
    async with sv.start(example.build) as tree:
        await tree.terminate_child("api")
        await crash_and_settle(tree, "cache")
        assert starts(tree) == {"db": 1, "cache": 2, "api": 1, "jobs": 1, "metrics": 1, "web": 2}
        assert statuses(tree)["api"] == "terminated"


async def test_a_deleted_dependent_is_not_named() -> None:
    """plan() names only the ids it is given: naming a deleted child would crash the supervisor."""
    async with sv.start(example.build) as tree:
        await tree.terminate_child("web")
        await tree.delete_child("web")
        await crash_and_settle(tree, "cache")
        assert starts(tree) == {"db": 1, "cache": 2, "api": 2, "jobs": 1, "metrics": 1}
        assert not tree.stopped


async def test_dynamic_children_restart_alone() -> None:
    async with sv.start(example.build) as tree:
        await tree.start_child(sv.child("extra", forever))
        events = tree.events()
        crash(tree, "extra")
        await next_event(events, is_(sv.ChildStarted, "extra", starts=2))
        assert starts(tree) == {**dict.fromkeys(ORDER, 1), "extra": 2}


async def test_the_example_helper_reports_the_restart() -> None:
    async with sv.start(example.build) as tree:
        trace = await example.crash_and_wait(tree, "api")
        assert [e.path[-1] for e in trace if isinstance(e, sv.ChildStarted)] == ["api", "web"]


def test_depends_on_is_validated() -> None:
    child = sv.child
    service = example.service

    def make(depends_on: dict[str, list[str]]) -> object:
        return example.DependencySupervisor([child("a", service), child("b", service)], depends_on=depends_on)

    for depends_on in ({"zzz": ["a"]}, {"b": ["zzz"]}, {"a": ["b"]}, {"a": ["a"]}):
        with pytest.raises(sv.SpecError) as info:
            make(depends_on)
        assert info.value.field == "depends_on"
    with pytest.raises(sv.SpecError):
        example.DependencySupervisor([child("a", service)], strategy="nope")


def test_depends_on_is_part_of_the_value() -> None:
    spec = example.build()
    assert spec == example.build() and hash(spec) == hash(example.build())
    other = example.DependencySupervisor(spec.children, depends_on={}, intensity=3, period=5.0)
    assert spec != other
    copy = spec.replace(intensity=10)
    assert isinstance(copy, example.DependencySupervisor)
    assert copy.intensity == 10 and copy.depends_on == spec.depends_on
    assert list(copy.plan(tuple(ORDER), "cache")) == EXPECTED["cache"]
    assert "depends_on" in repr(spec)


def test_main_runs_and_prints_what_restarted(capsys: pytest.CaptureFixture[str]) -> None:
    example.main()
    out = capsys.readouterr().out
    assert "restarted: cache, api, web\n" in out
    assert "kept running: db, jobs, metrics\n" in out
