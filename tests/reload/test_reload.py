"""Hot reload on real files: a temporary package is written, started, edited and
reloaded; only what changed restarts, and snapshots survive."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import pmap

import supervision as sv
from tests.helpers import is_, next_event

# Workers record their task here (this module is not reloaded), so a test can
# tell an untouched incarnation from a restarted one.
TASKS: dict[tuple[str, ...], asyncio.Task[Any]] = {}

_names = itertools.count()


class Package:
    """A package ``name`` in a temporary directory on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.name = f"reloadpkg{os.getpid()}_{next(_names)}"
        self.dir = root / self.name
        self.dir.mkdir()
        (self.dir / "__init__.py").write_text("")
        self.target = f"{self.name}.tree:build"

    def write(self, module: str, source: str) -> None:
        (self.dir / f"{module}.py").write_text(textwrap.dedent(source).lstrip())

    def edit(self, module: str, old: str, new: str) -> None:
        path = self.dir / f"{module}.py"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new))

    def modules(self) -> dict[str, Any]:
        return {k: v for k, v in sys.modules.items() if k == self.name or k.startswith(self.name + ".")}


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Package]:
    sys.path.insert(0, str(tmp_path))
    package = Package(tmp_path)
    try:
        yield package
    finally:
        sys.path.remove(str(tmp_path))
        for name in package.modules():
            del sys.modules[name]
        TASKS.clear()


WORKERS = """
    import asyncio
    from pyrsistent import pvector
    from tests.reload import test_reload as probe

    async def counter(ctx):
        ctx.save(ctx.state.set("n", ctx.state.get("n", 0) + 1))
        probe.TASKS[ctx.path] = asyncio.current_task()
        await asyncio.Event().wait()

    async def idle(ctx):
        probe.TASKS[ctx.path] = asyncio.current_task()
        await asyncio.Event().wait()
"""

TREE = """
    import supervision as sv
    from .workers import counter, idle

    def build():
        return sv.Supervisor(
            [
                sv.child("a", counter),
                sv.child("b", counter),
                sv.child("sub", sv.Supervisor([sv.child("c", idle), sv.child("d", counter)], intensity=3)),
            ],
            intensity=5,
        )
"""


def starts(handle: sv.Handle) -> dict[str, int]:
    return {c.id: c.starts for c in handle.which_children()}


async def settle() -> None:
    await asyncio.sleep(0)  # the workers just started run to their first await


@contextlib.asynccontextmanager
async def running(package: Package) -> AsyncIterator[sv.Tree]:
    async with sv.start(package.target) as tree:
        await settle()
        yield tree


def standard(package: Package) -> None:
    package.write("workers", WORKERS)
    package.write("tree", TREE)


# -- what restarts -------------------------------------------------------------------------


async def test_editing_one_workers_body_restarts_only_that_worker_and_keeps_its_snapshot(package: Package) -> None:
    standard(package)
    package.write(
        "tree",
        TREE.replace(
            "from .workers import counter, idle", "from .workers import counter, idle\n    from . import extra"
        ).replace('sv.child("b", counter)', 'sv.child("b", extra.b)'),
    )
    package.write(
        "extra",
        """
        import asyncio
        from tests.reload import test_reload as probe

        async def b(ctx):
            ctx.save(ctx.state.set("n", ctx.state.get("n", 0) + 1))
            probe.TASKS[ctx.path] = asyncio.current_task()
            await asyncio.Event().wait()
        """,
    )
    async with running(package) as tree:
        tasks = dict(TASKS)
        assert tree.state("b") == pmap({"n": 1})
        package.edit("extra", '.get("n", 0) + 1', '.get("n", 0) + 100')
        events = tree.events()
        applied = await tree.reload()
        await settle()
        assert applied.restarted == (("b",),)
        assert (applied.started, applied.stopped, applied.updated, applied.reset) == ((), (), (), ())
        assert await next_event(events, is_(sv.ReloadApplied)) == applied
        assert starts(tree) == {"a": 1, "b": 2, "sub": 1}
        assert starts(tree.at("sub")) == {"c": 1, "d": 1}
        assert tree.state("b") == pmap({"n": 101})  # the new code ran on the old snapshot
        assert tree.state("a") == pmap({"n": 1})
        for path, task in tasks.items():
            assert (TASKS[path] is task) == (path != ("b",)), path
        assert all(not task.done() for path, task in tasks.items() if path != ("b",))


async def test_editing_a_comment_or_moving_code_restarts_nothing(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        tasks = dict(TASKS)
        package.edit("workers", "async def counter(ctx):\n", "\n\nasync def counter(ctx):\n    # counts starts\n")
        applied = await tree.reload()
        assert applied == sv.ReloadApplied(path=(), time=applied.time)
        assert tasks == TASKS and starts(tree) == {"a": 1, "b": 1, "sub": 1}
        assert tree.spec.children[0].start is sys.modules[f"{package.name}.workers"].counter  # the new spec runs


async def test_editing_a_shared_worker_restarts_every_child_that_runs_it(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        package.edit("workers", '.get("n", 0) + 1', '.get("n", 0) + 2')
        applied = await tree.reload()
        assert sorted(applied.restarted) == [("a",), ("b",), ("sub", "d")]
        assert starts(tree.at("sub")) == {"c": 1, "d": 2}


async def test_adding_and_removing_children(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        tasks = dict(TASKS)
        package.edit("tree", 'sv.child("a", counter),', 'sv.child("a", counter), sv.child("new", counter),')
        package.edit("tree", 'sv.child("b", counter),', "")
        events = tree.events()
        applied = await tree.reload()
        await settle()
        assert applied.started == (("new",),) and applied.stopped == (("b",),) and applied.restarted == ()
        assert [c.id for c in tree.which_children()] == ["a", "new", "sub"]
        assert tree.state("new") == pmap({"n": 1})
        with pytest.raises(sv.NotFound):
            tree.state("b")
        assert ("b",) not in tree._runtime.store.snapshots  # forgotten with its spec
        assert TASKS[("a",)] is tasks[("a",)] and tasks[("b",)].done()
        exited = await next_event(events, is_(sv.ChildExited, "b"))
        assert exited.reason == "shutdown"  # type: ignore[attr-defined]


async def test_a_nested_supervisors_settings_change_restarts_no_child(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        tasks = dict(TASKS)
        package.edit("tree", "intensity=3", "intensity=10, period=60")
        applied = await tree.reload()
        assert applied.updated == (("sub",),) and applied.restarted == () and applied.started == ()
        assert tree.at("sub").spec.intensity == 10 and tree.at("sub").spec.period == 60
        assert tasks == TASKS
        assert starts(tree) == {"a": 1, "b": 1, "sub": 1} and starts(tree.at("sub")) == {"c": 1, "d": 1}
        package.edit("tree", "intensity=5,", 'intensity=5, strategy="one_for_all",')
        applied = await tree.reload()
        assert applied.updated == ((),) and tree.spec.strategy == "one_for_all" and tasks == TASKS


async def test_editing_a_helper_module_reloads_the_modules_that_use_it(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        before = package.modules()
        package.edit(
            "workers", "await asyncio.Event().wait()\n\nasync def idle", "await asyncio.sleep(3600)\n\nasync def idle"
        )
        applied = await tree.reload()
        assert sorted(applied.restarted) == [("a",), ("b",), ("sub", "d")]
        after = package.modules()
        assert after[f"{package.name}.workers"] is not before[f"{package.name}.workers"]
        assert after[f"{package.name}.tree"] is not before[f"{package.name}.tree"]  # it imports from workers
        assert after[package.name] is before[package.name]  # unchanged and uses nothing that changed
        assert after[package.name].workers is after[f"{package.name}.workers"]


async def test_a_constant_imported_from_a_changed_module_restarts_its_readers(package: Package) -> None:
    package.write("config", "PAUSE = 3600\n")
    package.write("workers", WORKERS.replace("import asyncio\n", "import asyncio\n    from .config import PAUSE\n"))
    package.edit("workers", "async def idle(ctx):", "async def idle(ctx):\n    await asyncio.sleep(0 * PAUSE)")
    package.write("tree", TREE)
    async with running(package) as tree:
        package.edit("config", "3600", "7200")
        applied = await tree.reload()
        assert applied.restarted == (("sub", "c"),)  # only idle reads PAUSE


# -- rejected reloads ---------------------------------------------------------------------


async def rejected(tree: sv.Tree, package: Package) -> sv.ReloadError:
    """Reload, expecting a rejection that changed nothing at all."""
    modules = package.modules()
    tasks = dict(TASKS)
    snapshots = dict(tree._runtime.store.snapshots)
    spec = tree.spec
    events = tree.events()
    with pytest.raises(sv.ReloadError) as info:
        await tree.reload()
    event = await next_event(events, is_(sv.ReloadRejected))
    assert event.error is info.value  # type: ignore[attr-defined]
    assert package.modules() == modules and all(package.modules()[k] is v for k, v in modules.items())
    for name, module in modules.items():  # and the package's attributes name the old submodules
        parent, _, child = name.rpartition(".")
        if parent:
            assert getattr(modules[parent], child) is module, name
    assert tasks == TASKS and tree._runtime.store.snapshots == snapshots and tree.spec is spec
    assert starts(tree) == {"a": 1, "b": 1, "sub": 1}
    return info.value


async def test_a_syntax_error_is_rejected_and_sys_modules_restored(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        package.edit("workers", "async def idle(ctx):", "async def idle(ctx)")
        error = await rejected(tree, package)
        assert isinstance(error.__cause__, SyntaxError)
        package.edit("workers", "async def idle(ctx)", "async def idle(ctx):")  # fixed: the reload goes through
        assert (await tree.reload()).restarted == ()


async def test_an_import_error_in_a_new_module_is_rejected_and_the_module_not_left_behind(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        package.write("broken", "import no_such_module_anywhere\n")
        package.edit(
            "tree", "from .workers import counter, idle", "from .workers import counter, idle\nfrom . import broken"
        )
        error = await rejected(tree, package)
        assert isinstance(error.__cause__, ImportError)
        assert f"{package.name}.broken" not in sys.modules


async def test_a_builder_that_raises_is_rejected(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        package.edit("tree", "def build():", "def build():\n    raise RuntimeError('not today')")
        error = await rejected(tree, package)
        assert isinstance(error.__cause__, RuntimeError)


async def test_an_invalid_spec_is_rejected(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        package.edit("tree", 'sv.child("b", counter)', 'sv.child("a", counter)')  # a duplicate id
        error = await rejected(tree, package)
        assert isinstance(error.__cause__, sv.SpecError) and "duplicate" in str(error.__cause__)
        package.edit("tree", 'sv.child("a", counter),', '"not a child",')
        error = await rejected(tree, package)
        assert isinstance(error.__cause__, sv.SpecError)


async def test_a_migrate_that_raises_is_rejected_before_anything_changes(package: Package) -> None:
    standard(package)
    package.edit("tree", 'sv.child("a", counter)', 'sv.child("a", counter, state_version=1)')
    async with running(package) as tree:
        package.edit("tree", "def build():", "def broken(old, version):\n    return old['missing']\n\ndef build():")
        package.edit("tree", "state_version=1)", "state_version=2, migrate=broken)")
        error = await rejected(tree, package)
        assert error.path == ("a",) and isinstance(error.__cause__, KeyError)


async def test_reload_needs_a_source(package: Package) -> None:
    async def idle(ctx: sv.Context) -> None:
        await asyncio.Event().wait()

    async with sv.start(sv.Supervisor([sv.child("a", idle)])) as tree:
        events = tree.events()
        with pytest.raises(sv.ReloadError, match="spec"):
            await tree.reload()
        await next_event(events, is_(sv.ReloadRejected))
        applied = await tree.update(sv.Supervisor([sv.child("a", idle), sv.child("b", idle)]))
        assert applied.started == (("b",),)  # update works on any tree


# -- snapshots and migrations ------------------------------------------------------------------

VERSIONED = """
    import asyncio
    import supervision as sv
    from pyrsistent import pmap
    from tests.reload import test_reload as probe

    async def keeper(ctx):
        probe.TASKS[ctx.path] = asyncio.current_task()
        ctx.save(ctx.state.set("seen", ctx.state.get("seen", 0) + 1))
        try:
            await asyncio.Event().wait()
        finally:
            ctx.save(ctx.state.set("last words", True))  # saved while it stops

    def to_v2(old, version):
        assert version == 1
        return pmap({"count": old["seen"], "last words": old.get("last words", False)})

    def build():
        return sv.Supervisor([sv.child("k", keeper, state_version=1), sv.child("other", keeper)])
"""


async def test_a_migrate_from_version_1_to_2_converts_the_snapshot_the_new_worker_sees(package: Package) -> None:
    package.write("tree", VERSIONED)
    async with running(package) as tree:
        assert tree.state("k") == pmap({"seen": 1})
        seen: list[Any] = []
        package.edit("tree", "async def keeper(ctx):\n", "async def keeper(ctx):\n    probe.SEEN.append(ctx.state)\n")
        package.edit("tree", "state_version=1)", "state_version=2, migrate=to_v2)")
        globals()["SEEN"] = seen
        try:
            applied = await tree.reload()
            await settle()
        finally:
            del globals()["SEEN"]
        assert applied.restarted == (("k",), ("other",)) and applied.reset == ()
        # The new worker saw the old snapshot converted, including what the old one saved as it stopped.
        assert seen[0] == pmap({"count": 1, "last words": True})
        assert tree.state("k") == pmap({"count": 1, "last words": True, "seen": 1})
        assert tree._runtime.store.versions[("k",)] == 2


async def test_a_version_change_without_migrate_resets_the_snapshot_and_says_so(package: Package) -> None:
    package.write("tree", VERSIONED)
    async with running(package) as tree:
        assert tree.state("other") == pmap({"seen": 1})
        package.edit("tree", 'sv.child("other", keeper)', 'sv.child("other", keeper, state_version=3)')
        applied = await tree.reload()
        await settle()
        assert applied.restarted == (("other",),) and applied.reset == (("other",),)
        assert tree.state("other") == pmap({"seen": 1})  # started again from nothing
        assert tree.state("k") == pmap({"seen": 1})


# -- update, failures after the diff, concurrency --------------------------------------------


async def test_update_with_a_child_that_fails_to_start_retries_it_and_says_the_reload_did_it(
    package: Package,
) -> None:
    standard(package)
    async with running(package) as tree:
        package.write(
            "picky",
            """
            import asyncio

            async def picky(ctx):
                if ctx.starts == 2:
                    raise RuntimeError("not on the first start after the reload")
                ctx.ready()
                await asyncio.Event().wait()
            """,
        )
        package.edit(
            "tree", "from .workers import counter, idle", "from .workers import counter, idle\nfrom .picky import picky"
        )
        package.edit("tree", 'sv.child("b", counter)', 'sv.child("b", picky, ready=True)')
        events = tree.events()
        applied = await tree.reload()
        assert applied.restarted == (("b",),)
        failed = await next_event(events, is_(sv.ChildStartFailed, "b"))
        assert failed.reload and isinstance(failed.error.__cause__, RuntimeError)  # type: ignore[attr-defined]
        await next_event(events, is_(sv.RestartScheduled, "b"))
        retried = await next_event(events, is_(sv.ChildStarted, "b"))
        assert retried.starts == 3  # type: ignore[attr-defined]
        assert starts(tree) == {"a": 1, "b": 3, "sub": 1}


async def test_concurrent_reloads_are_serialised(package: Package) -> None:
    standard(package)
    async with running(package) as tree:
        spec = tree.spec
        more = spec.replace(children=(*spec.children, sv.child("x", spec.children[0].start)))
        fewer = spec.replace(children=spec.children)
        first, second = await asyncio.gather(tree.update(more), tree.update(fewer))
        assert first.started == (("x",),) and second.stopped == (("x",),)
        assert [c.id for c in tree.which_children()] == ["a", "b", "sub"]


async def test_a_file_target_reloads(tmp_path: Path) -> None:
    path = tmp_path / "services.py"
    build = "def build():\n    return sv.Supervisor([sv.child('a', counter), sv.child('b', idle)])\n"
    path.write_text(textwrap.dedent(WORKERS) + "\nimport supervision as sv\n\n" + build)
    try:
        async with sv.start(str(path)) as tree:
            await settle()
            path.write_text(path.read_text().replace('.get("n", 0) + 1', '.get("n", 0) + 5'))
            applied = await tree.reload()
            await settle()
            assert applied.restarted == (("a",),) and tree.state("a") == pmap({"n": 6})
    finally:
        sys.modules.pop("_supervision_target_services", None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


async def test_a_builder_function_target_reloads_from_its_module(package: Package) -> None:
    standard(package)
    import importlib

    module = importlib.import_module(f"{package.name}.tree")
    async with sv.start(module.build) as tree:
        await settle()
        package.edit("workers", '.get("n", 0) + 1', '.get("n", 0) + 3')
        applied = await tree.reload()
        assert sorted(applied.restarted) == [("a",), ("b",), ("sub", "d")]


# -- OS processes ----------------------------------------------------------------------------


async def test_changing_a_process_argv_restarts_only_that_process(package: Package) -> None:
    if not hasattr(sv, "process"):
        pytest.skip("process children are not available")
    package.write(
        "tree",
        """
        import supervision as sv

        def build():
            return sv.Supervisor(
                [
                    sv.process("p1", ["sleep", "1000"], shutdown=1.0),
                    sv.process("p2", ["sleep", "1001"], shutdown=1.0),
                ]
            )
        """,
    )
    async with running(package) as tree:
        pids = {c.id: c.pid for c in tree.which_children()}
        assert all(pids.values())
        package.edit("tree", '"1000"', '"1002"')
        applied = await tree.reload()
        assert applied.restarted == (("p1",),)
        now = {c.id: c.pid for c in tree.which_children()}
        assert now["p2"] == pids["p2"] and now["p1"] not in (None, pids["p1"])


# -- many reloads with random edits ------------------------------------------------------------


@dataclass
class Model:
    """What the generated package declares, edit after edit."""

    workers: dict[str, list[int]] = field(default_factory=dict)  # id -> [body, comment, version, migrate?]
    intensity: int = 3
    syntax_error: bool = False

    def render(self) -> str:
        lines = [
            "import asyncio",
            "import supervision as sv",
            "from pyrsistent import pvector",
            "",
            "def up(old, version):",
            "    return old.set('v', version + 1)",
            "",
        ]
        for id, (body, comment, _, _) in self.workers.items():
            lines += [
                f"async def w_{id}(ctx):",
                *([f"    # note {comment}"] * (comment % 3)),
                f"    ctx.save(ctx.state.set('log', ctx.state.get('log', pvector()).append({body})))",
                "    await asyncio.Event().wait()",
                "",
            ]
        children = []
        for id, (_, _, version, migrate) in self.workers.items():
            if id == "n":
                continue  # the nested supervisor's worker
            extra = f", state_version={version}" + (", migrate=up" if migrate else "")
            children.append(f"sv.child({id!r}, w_{id}{extra})")
        nested = f"sv.child('sub', sv.Supervisor([sv.child('n', w_n)], intensity={self.intensity}))"
        lines += [
            "def build():" + ("(" if self.syntax_error else ""),
            f"    return sv.Supervisor([{', '.join([*children, nested])}])",
        ]
        return "\n".join(lines) + "\n"


EDITS = st.sampled_from(["body", "comment", "add", "remove", "version", "migrate", "intensity", "syntax", "none"])


@settings(max_examples=10, deadline=None, derandomize=True)
@given(edits=st.lists(st.tuples(EDITS, st.integers(0, 1000)), min_size=20, max_size=20))
def test_twenty_reloads_in_a_row_never_lose_a_snapshot(
    tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    root = tmp_path_factory.mktemp("many")
    sys.path.insert(0, str(root))
    package = Package(root)
    try:
        asyncio.run(_many_reloads(package, edits))
    finally:
        sys.path.remove(str(root))
        for name in package.modules():
            del sys.modules[name]


async def _many_reloads(package: Package, edits: list[tuple[str, int]]) -> None:
    model = Model({"n": [0, 0, 0, 0], "a": [0, 0, 0, 0], "b": [0, 0, 0, 0]})
    fresh = itertools.count()
    package.write("tree", model.render())
    async with running(package) as tree:
        for kind, n in edits:
            ids = [id for id in model.workers if id != "n"]
            before = {c.id: tree.state(c.id) for c in tree.which_children() if c.kind == "worker"}
            before_starts = starts(tree)
            changed: set[str] = set()
            reset: set[str] = set()
            if kind == "add" or not ids:
                id = f"x{next(fresh)}"
                model.workers[id] = [n, 0, 0, 0]
            elif kind == "remove":
                del model.workers[ids[n % len(ids)]]
            elif kind in ("body", "comment", "version", "migrate"):
                id = ids[n % len(ids)]
                worker = model.workers[id]
                if kind == "body":
                    worker[0] += 1
                    changed.add(id)
                elif kind == "comment":
                    worker[1] += 1
                else:
                    worker[2] += 1
                    worker[3] = 1 if kind == "migrate" else 0
                    changed.add(id)
                    if kind == "version":
                        reset.add(id)
            elif kind == "intensity":
                model.intensity += 1
            model.syntax_error = kind == "syntax"
            package.write("tree", model.render())
            if model.syntax_error:
                with pytest.raises(sv.ReloadError):
                    await tree.reload()
                model.syntax_error = False
                assert starts(tree) == before_starts
                assert {c.id: tree.state(c.id) for c in tree.which_children() if c.kind == "worker"} == before
                continue
            applied = await tree.reload()
            await settle()
            assert {path[0] for path in applied.restarted} == changed
            assert {path[0] for path in applied.reset} == reset & set(before)
            now = starts(tree)
            for id, count in before_starts.items():
                if id in now:
                    assert now[id] == count + (id in changed), (id, kind)
            for id, snapshot in before.items():
                if id not in model.workers or id in reset:
                    continue
                log = tree.state(id)["log"]
                assert log[: len(snapshot["log"])] == snapshot["log"], (id, kind)  # nothing lost
            assert [c.id for c in tree.which_children()] == [id for id in model.workers if id != "n"] + ["sub"]
            assert starts(tree.at("sub")) == {"n": 1}
            assert tree.at("sub").spec.intensity == model.intensity


async def test_restarts_made_by_a_reload_do_not_count_against_intensity() -> None:
    """With intensity=0 any restart the supervisor decides makes it give up; an
    operator's reload that restarts a changed child is not such a restart."""

    def spec(n: int) -> sv.Supervisor:
        async def worker(ctx: sv.Context) -> None:
            await asyncio.Event().wait()

        return sv.Supervisor([sv.child("w", worker, state_version=n, migrate=lambda old, v: old)], intensity=0)

    tree = await sv.start(spec(0))
    for n in (1, 2, 3):
        await tree.update(spec(n))
    assert tree.which_children()[0].starts == 4
    assert not tree.stopped
    await tree.stop()
