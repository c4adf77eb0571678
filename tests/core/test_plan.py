"""``supervision reload --dry-run``: the plan printed before a reload is the one
the reload then applies (its ``ReloadApplied`` event), for every kind of edit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import supervision as sv
from supervision._core.paths import Path
from supervision._core.plan import DryRun, explain, format_plan
from supervision._core.status import Status


async def worker(ctx: sv.Context) -> None:
    await asyncio.Event().wait()


async def other_worker(ctx: sv.Context) -> None:
    await asyncio.sleep(3600)  # other code: a reload restarts a child that runs it


def spec(
    *,
    extra: tuple[sv.ChildSpec, ...] = (),
    drop: str = "",
    inner: sv.Supervisor | None = None,
    order: Callable[[list[sv.ChildSpec]], list[sv.ChildSpec]] = lambda children: children,
    **changes: object,
) -> sv.Supervisor:
    """The tree under test, with an edit."""
    nested = inner or sv.Supervisor([sv.child("x", worker), sv.child("y", worker)], intensity=2)
    children = [
        sv.child("a", changes.pop("a_start", worker), restart=changes.pop("a_restart", "permanent")),  # type: ignore[arg-type]
        sv.process("p", changes.pop("argv", ["sleep", "60"]), shutdown=1.0),  # type: ignore[arg-type]
        sv.child("s", nested, shutdown=changes.pop("s_shutdown", sv.INFINITY)),  # type: ignore[arg-type]
        sv.child("b", worker),
        *extra,
    ]
    children = [child for child in children if child.id != drop]
    return sv.Supervisor(order(children), **changes)  # type: ignore[arg-type]


def statuses(tree: sv.Tree) -> Callable[[Path], Status | None]:
    found: dict[Path, Status] = {}

    def walk(handle: sv.Handle) -> None:
        for info in handle.which_children():
            path = (*handle.path, info.id)
            found[path] = info.status
            if info.kind == "supervisor" and info.status is Status.RUNNING:
                walk(handle.at(info.id))

    walk(tree)
    return found.get


EDITS: dict[str, tuple[Callable[[], sv.Supervisor], dict[str, list[str]]]] = {
    "nothing": (lambda: spec(), {}),
    "a child added": (lambda: spec(extra=(sv.child("c", worker),)), {"started": ["c"]}),
    "a child removed": (lambda: spec(drop="b"), {"stopped": ["b"]}),
    "a worker's code": (lambda: spec(a_start=other_worker), {"restarted": ["a"]}),
    "a process's argv": (lambda: spec(argv=["sleep", "61"]), {"restarted": ["p"]}),
    "a child's restart": (lambda: spec(a_restart="transient"), {"restarted": ["a"]}),
    "the root's settings": (lambda: spec(intensity=9, strategy="one_for_all"), {"updated": ["/"]}),
    "a nested supervisor's settings": (
        lambda: spec(inner=sv.Supervisor([sv.child("x", worker), sv.child("y", worker)], intensity=5)),
        {"updated": ["s"]},
    ),
    "a nested child": (
        lambda: spec(inner=sv.Supervisor([sv.child("x", other_worker), sv.child("z", worker)], intensity=2)),
        {"stopped": ["s/y"], "restarted": ["s/x"], "started": ["s/z"]},
    ),
    "a nested supervisor's own spec": (lambda: spec(s_shutdown=30.0), {"updated": ["s"]}),
    "the order": (lambda: spec(order=lambda c: [c[3], c[0], c[1], c[2]]), {"updated": []}),
    "everything at once": (
        lambda: spec(
            extra=(sv.child("c", worker),),
            drop="b",
            a_start=other_worker,
            argv=["sleep", "62"],
            period=9.0,
            inner=sv.Supervisor([sv.child("x", worker)], intensity=2, strategy="rest_for_one"),
        ),
        {"stopped": ["b", "s/y"], "restarted": ["a", "p"], "started": ["c"], "updated": ["/", "s"]},
    ),
}


def as_lists(paths: tuple[Path, ...]) -> list[str]:
    return [sv_path(path) for path in paths]


def sv_path(path: Path) -> str:
    return "/".join(path) or "/"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("edit", list(EDITS))
async def test_the_dry_run_is_what_the_reload_applies(edit: str) -> None:
    build, expected = EDITS[edit]
    async with sv.start(spec()) as tree:
        new = build()
        dry_run = explain(tree.spec, new, statuses(tree))
        applied = await tree.update(new)
        for field in ("started", "stopped", "restarted", "updated"):
            predicted = as_lists(getattr(dry_run, field))
            assert predicted == as_lists(getattr(applied, field)), (field, format_plan(dry_run))
            assert sorted(predicted) == sorted(expected.get(field, [])), (field, format_plan(dry_run))
        if edit == "the order":
            assert format_plan(dry_run).splitlines() == [
                "reload would:",
                "  note: /: the children take the new order (b, a, p, s); none restarts for it",
            ]


async def test_a_terminated_child_that_changed_only_takes_its_new_spec() -> None:
    async with sv.start(spec()) as tree:
        await tree.terminate_child("a")
        await tree.at("s").terminate_child("y")
        new = spec(a_start=other_worker, inner=sv.Supervisor([sv.child("x", worker), sv.child("y", other_worker)]))
        dry_run = explain(tree.spec, new, statuses(tree))
        applied = await tree.update(new)
        assert as_lists(dry_run.updated) == as_lists(applied.updated) == ["a", "s/y", "s"]
        assert dry_run.restarted == applied.restarted == ()
        assert "it is terminated: it takes the new spec when started" in format_plan(dry_run)


async def test_a_terminated_supervisor_is_updated_not_recursed_into() -> None:
    async with sv.start(spec()) as tree:
        await tree.terminate_child("s")
        new = spec(inner=sv.Supervisor([sv.child("x", other_worker)], intensity=7))
        dry_run = explain(tree.spec, new, statuses(tree))
        applied = await tree.update(new)
        assert as_lists(dry_run.updated) == as_lists(applied.updated) == ["s"]
        assert dry_run.stopped == applied.stopped == ()


def test_the_plan_says_why() -> None:
    old = spec()
    new = spec(
        a_start=other_worker,
        argv=["sleep", "61"],
        intensity=9,
        inner=sv.Supervisor([sv.child("x", worker, shutdown=2.0), sv.child("y", worker)], intensity=2),
        extra=(sv.child("c", worker),),
        drop="b",
    )
    running: dict[Path, Status] = {
        ("a",): Status.RUNNING,
        ("p",): Status.RUNNING,
        ("s",): Status.RUNNING,
        ("s", "x"): Status.RUNNING,
        ("s", "y"): Status.RUNNING,
        ("b",): Status.RUNNING,
    }
    dry_run: DryRun = explain(old, new, running.get)
    text = format_plan(dry_run)
    assert text.splitlines() == [
        "reload would:",
        "  stop     b    no longer in the spec",
        "  update   /    intensity: 3 -> 9",
        f"  restart  a    the code of {__name__}.other_worker changed",
        "  restart  p    argv: 'sleep 60' -> 'sleep 61'",
        "  restart  s/x  shutdown: 5.0 -> 2.0",
        "  start    c    new in the spec",
    ]
    assert dry_run.to_json()["restarted"] == ["a", "p", "s/x"]
    assert format_plan(explain(old, spec(), running.get)) == "reload would change nothing"
