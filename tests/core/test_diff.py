"""The reload diff without asyncio: fingerprints, the plan, migrations planned
ahead, and the core's update job driven by hand."""

from __future__ import annotations

import textwrap
import types
from typing import Any

import pytest
from pyrsistent import pmap

import supervision as sv
from supervision._core.diff import diff, same_child
from supervision._core.events import ChildStartFailed, ExitReason
from supervision._core.fingerprint import Fingerprints
from supervision._core.machine import SupervisorCore
from supervision._core.messages import (
    Applied,
    Emit,
    Init,
    Outcome,
    Ready,
    Reply,
    SetTimer,
    Start,
    StartChild,
    StartDone,
    StartFailed,
    Stop,
    StopDone,
    TerminateChild,
    Update,
    UpdateDone,
    UpdateSupervisor,
)
from supervision._core.snapshot import plan_migrations

# -- fingerprints ------------------------------------------------------------------------


def load(source: str, name: str = "workers") -> types.SimpleNamespace:
    """Execute ``source`` as a fresh module called ``name``, as a reload would."""
    module = types.ModuleType(name)
    exec(compile(textwrap.dedent(source), f"/src/{name}.py", "exec", dont_inherit=True), module.__dict__)
    return types.SimpleNamespace(**{k: v for k, v in vars(module).items() if not k.startswith("__")})


BASE = """
    import asyncio
    TIMEOUT = 5
    UNUSED = 1

    def helper(n):
        return n + 1

    async def worker(ctx):
        '''Count.'''
        n = helper(ctx.starts)
        await asyncio.sleep(TIMEOUT)
        return [n * i for i in range(3)]

    async def other(ctx):
        return None
"""


def same_worker(before: str, after: str) -> bool:
    return Fingerprints().same(load(before).worker, load(after).worker)


def test_a_reimported_unchanged_function_is_the_same() -> None:
    assert load(BASE).worker is not load(BASE).worker
    assert same_worker(BASE, BASE)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("        n = helper", "        # a comment\n        n = helper"),
        lambda s: "\n\n\n" + s,  # every line number moves
        lambda s: s.replace("'''Count.'''", "'''Count, documented better.'''"),
        lambda s: s.replace("UNUSED = 1", "UNUSED = 2"),  # a global it does not read
        lambda s: s.replace("return None", "return 1"),  # another function
    ],
    ids=["comment", "line numbers", "docstring", "unused global", "other function"],
)
def test_edits_that_do_not_change_the_worker(edit: Any) -> None:
    assert same_worker(BASE, edit(BASE))


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("n * i", "n + i"),  # the body
        lambda s: s.replace("range(3)", "range(4)"),  # a constant in a nested code object
        lambda s: s.replace("return n + 1", "return n + 2"),  # a helper it calls
        lambda s: s.replace("TIMEOUT = 5", "TIMEOUT = 6"),  # a constant it reads
        lambda s: s.replace("async def worker(ctx):", "async def worker(context):").replace("ctx.", "context."),
        lambda s: s.replace("asyncio.sleep", "asyncio.wait_for"),  # a name
    ],
    ids=["body", "nested constant", "helper", "global constant", "argument name", "name"],
)
def test_edits_that_change_the_worker(edit: Any) -> None:
    assert not same_worker(BASE, edit(BASE))


def test_defaults_kwdefaults_and_closures_count() -> None:
    source = """
        def make(limit, *, name="x"):
            async def worker(ctx, retries=3, *, label=name):
                return limit + retries
            return worker
    """
    fp = Fingerprints()
    one, two = load(source), load(source)
    assert fp.same(one.make(1), two.make(1))
    assert not fp.same(one.make(1), two.make(2))  # a closure cell
    assert not fp.same(one.make(1, name="x"), two.make(1, name="y"))  # a keyword default
    assert not Fingerprints().same(load(source).make(1), load(source.replace("retries=3", "retries=4")).make(1))


def test_recursion_and_mutual_recursion_terminate_and_compare_alike() -> None:
    source = """
        def ping(n):
            return pong(n - 1) if n else 0

        def pong(n):
            return ping(n - 1) if n else 1

        async def worker(ctx):
            return ping(3) + worker.__name__.count("w")
    """
    fp = Fingerprints()
    old, new = load(source), load(source)
    assert fp.same(old.worker, new.worker)
    assert fp.same(old.pong, new.pong)  # memoised pieces do not depend on where the walk began
    assert not Fingerprints().same(load(source).worker, load(source.replace("else 1", "else 2")).worker)


def test_values_by_structure_or_equality() -> None:
    fp = Fingerprints()
    assert fp.same(pmap({"a": (1, 2.5)}), pmap({"a": (1, 2.5)}))
    assert not fp.same(1, True) and not fp.same(1, 1.0)
    assert fp.same(float("nan"), float("nan"))
    assert fp.same({"b": 1, "a": 2}, {"a": 2, "b": 1})
    assert fp.same(frozenset({1, 2}), frozenset({2, 1}))
    assert fp.same(sv.Restart.PERMANENT, sv.Restart.PERMANENT)
    thing = object()
    assert fp.same(thing, thing) and not fp.same(object(), object())  # no value equality: identity


def test_classes_and_dataclasses_compare_by_code_and_fields() -> None:
    source = """
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Config:
            port: int
            def url(self):
                return f"http://localhost:{self.port}"

        def make(port):
            config = Config(port)
            async def worker(ctx):
                return config.url()
            return worker
    """
    fp = Fingerprints()
    assert fp.same(load(source).make(80), load(source).make(80))
    assert not fp.same(load(source).make(80), load(source).make(81))
    assert not Fingerprints().same(load(source).make(80), load(source.replace("http:", "https:")).make(80))


# -- the plan ---------------------------------------------------------------------------------


async def w1(ctx: sv.Context) -> None: ...


async def w2(ctx: sv.Context) -> None:
    ctx.ready()


def tree(*children: sv.ChildSpec, **settings: Any) -> sv.Supervisor:
    return sv.Supervisor(children, **settings)


def test_added_removed_changed_unchanged() -> None:
    old = tree(sv.child("a", w1), sv.child("b", w1), sv.child("c", w1))
    new = tree(sv.child("a", w1), sv.child("c", w2), sv.child("d", w1))
    plan = diff(old, new)
    assert (plan.added, plan.removed, plan.changed) == (("d",), ("b",), ("c",))
    assert not plan.settings and not plan.nested and not plan.reordered
    assert plan.started() == (("d",),) and plan.stopped() == (("b",),) and plan.restarted() == (("c",),)
    assert diff(old, old).empty
    assert diff(old, tree(sv.child("a", w1), sv.child("b", w1), sv.child("c", w1))).empty  # equal, not identical


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("restart", "transient"),
        ("shutdown", 1.0),
        ("ready", True),
        ("ready_timeout", 3.0),
        ("state", pmap({"n": 1})),
        ("state_version", 1),
        ("migrate", lambda old, version: old),
    ],
)
def test_any_field_of_a_worker_is_a_change(field: str, value: object) -> None:
    old = tree(sv.child("a", w1), sv.child("b", w1))
    new = tree(sv.child("a", w1, **{field: value}), sv.child("b", w1))  # type: ignore[arg-type]
    assert diff(old, new).changed == ("a",)


def test_settings_are_updated_in_place_and_order_is_noted() -> None:
    old = tree(sv.child("a", w1), sv.child("b", w1), intensity=3)
    plan = diff(old, tree(sv.child("a", w1), sv.child("b", w1), intensity=10))
    assert plan.settings and not plan.changed and plan.updated() == ((),)
    plan = diff(old, tree(sv.child("b", w1), sv.child("a", w1), intensity=3))
    assert plan.reordered and not plan.settings and not plan.empty


def test_nested_supervisors_are_diffed_recursively_and_updated_in_place() -> None:
    inner = tree(sv.child("x", w1), sv.child("y", w1), intensity=1)
    old = tree(sv.child("db", inner), sv.child("a", w1))
    # The nested supervisor's settings: updated in place, nothing restarted.
    plan = diff(old, tree(sv.child("db", inner.replace(intensity=5)), sv.child("a", w1)))
    assert set(plan.nested) == {"db"} and plan.nested["db"].settings
    assert plan.restarted() == () and plan.updated() == (("db",),)
    # A grandchild changed: only it restarts; db itself is updated in place.
    plan = diff(old, tree(sv.child("db", tree(sv.child("x", w1), sv.child("y", w2), intensity=1)), sv.child("a", w1)))
    assert plan.restarted() == (("db", "y"),) and plan.updated() == ()
    # The fields its parent holds: updated in place too (restarting a subtree is what a reload avoids).
    plan = diff(old, tree(sv.child("db", inner, restart="transient"), sv.child("a", w1)))
    assert plan.nested["db"].respec and plan.restarted() == () and plan.updated() == (("db",),)
    # A change of kind restarts it.
    plan = diff(old, tree(sv.child("db", w1), sv.child("a", w1)))
    assert plan.changed == ("db",) and not plan.nested


def test_a_supervisor_class_change_is_a_settings_change() -> None:
    class Mine(sv.Supervisor):
        def plan(self, ids: tuple[str, ...], failed: str) -> tuple[str, ...]:
            return ids

    old = tree(sv.child("s", tree(sv.child("x", w1))))
    plan = diff(old, tree(sv.child("s", Mine([sv.child("x", w1)]))))
    assert plan.nested["s"].settings and plan.restarted() == ()


def test_processes_compare_by_their_fields() -> None:
    def proc(**changes: Any) -> sv.ChildSpec:
        options: dict[str, Any] = {"argv": ["sleep", "100"], "env": {"A": "1", "B": "2"}} | changes
        return sv.process("p", **options)

    old = tree(proc(), sv.child("a", w1))
    assert diff(old, tree(proc(env={"B": "2", "A": "1"}), sv.child("a", w1))).empty
    assert diff(old, tree(proc(argv=["sleep", "200"]), sv.child("a", w1))).changed == ("p",)
    assert diff(old, tree(proc(ready=sv.ready.port(8000)), sv.child("a", w1))).changed == ("p",)


def test_same_child_compares_whole_subtrees() -> None:
    a = sv.child("s", tree(sv.child("x", w1)))
    assert same_child(a, sv.child("s", tree(sv.child("x", w1))))
    assert not same_child(a, sv.child("s", tree(sv.child("x", w2))))


# -- migrations planned ahead --------------------------------------------------------------


def test_plan_migrations_converts_resets_and_rejects() -> None:
    def upgrade(old: Any, version: int) -> Any:
        return old.set("v", version + 1)

    def broken(old: Any, version: int) -> Any:
        raise KeyError("n")

    old = tree(sv.child("m", w1, state_version=1), sv.child("r", w1, state_version=1), sv.child("k", w1))
    snapshots = {("m",): pmap({"n": 1}), ("r",): pmap({"n": 2}), ("k",): pmap()}
    versions = {("m",): 1, ("r",): 1}
    new = tree(
        sv.child("m", w1, state_version=2, migrate=upgrade), sv.child("r", w1, state_version=2), sv.child("k", w1)
    )
    migrations, reset = plan_migrations(diff(old, new), snapshots, versions)
    assert migrations[("m",)].result == pmap({"n": 1, "v": 2}) and migrations[("m",)].source is snapshots[("m",)]
    assert reset == (("r",),)
    assert snapshots == {("m",): pmap({"n": 1}), ("r",): pmap({"n": 2}), ("k",): pmap()}  # nothing written
    bad = tree(
        sv.child("m", w1, state_version=2, migrate=broken), sv.child("r", w1, state_version=1), sv.child("k", w1)
    )
    with pytest.raises(sv.ReloadError) as info:
        plan_migrations(diff(old, bad), snapshots, versions)
    assert info.value.path == ("m",) and isinstance(info.value.__cause__, KeyError)


# -- the core's update job, driven by hand ------------------------------------------------------


class Driver:
    """Runs a core, answering every blocking effect at once, and records them."""

    def __init__(self, spec: sv.Supervisor, fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.core = SupervisorCore(spec)
        self.fail = fail
        self.log: list[str] = []
        self.replies: list[Reply] = []
        self.events: list[sv.Event] = []
        self.effects: list[object] = []
        self.feed(Init())
        self.log.clear()

    def feed(self, message: Any, now: float = 0.0) -> None:
        effects = self.core.handle(message, now)
        while True:
            self.effects += effects
            self.replies += [e for e in effects if isinstance(e, Reply)]
            self.events += [e.event for e in effects if isinstance(e, Emit)]
            last = effects[-1] if effects else None
            if isinstance(last, Start):
                self.log.append(f"start {last.id}")
                answer: Any = (
                    StartFailed(last.id, last.token, 1, RuntimeError("no"))
                    if last.id in self.fail
                    else StartDone(last.id, last.token, 1)
                )
            elif isinstance(last, Stop):
                self.log.append(f"stop {last.id}")
                answer = StopDone(last.id, last.token, Outcome(ExitReason.SHUTDOWN))
            elif isinstance(last, UpdateSupervisor):
                self.log.append(f"update {last.id}")
                answer = UpdateDone(last.id, last.token, Applied(updated=[(last.id,)]))
            else:
                return
            effects = self.core.handle(answer, now)

    def update(self, spec: sv.Supervisor) -> Applied:
        self.feed(Update(spec, diff(self.core.spec, spec)))
        value = self.replies[-1].value
        assert isinstance(value, Applied)
        return value


def test_update_stops_right_to_left_then_starts_left_to_right_and_leaves_the_rest() -> None:
    old = tree(*(sv.child(id, w1) for id in "abcde"))
    driver = Driver(old)
    tokens = {id: driver.core.children[id].token for id in "abcde"}
    new = tree(sv.child("a", w1), sv.child("x", w1), sv.child("b", w2), sv.child("d", w2), sv.child("e", w1))
    applied = driver.update(new)
    assert driver.log == ["stop c", "stop d", "stop b", "start x", "start b", "start d"]
    assert list(driver.core.children) == ["a", "x", "b", "d", "e"]
    assert driver.core.ids() == ("a", "x", "b", "d", "e")
    assert [driver.core.children[id].token for id in "ae"] == [tokens["a"], tokens["e"]]  # untouched
    assert driver.core.spec is new
    assert applied.stopped == [("c",)] and applied.started == [("x",)] and applied.restarted == [("b",), ("d",)]


def test_update_forwards_nested_plans_and_keeps_terminated_children_terminated() -> None:
    inner = tree(sv.child("x", w1))
    driver = Driver(tree(sv.child("db", inner), sv.child("t", w1), sv.child("u", w1)))
    driver.feed(TerminateChild("t"))
    driver.log.clear()
    new = tree(sv.child("db", inner.replace(intensity=9)), sv.child("t", w2), sv.child("u", w1), intensity=1)
    applied = driver.update(new)
    assert driver.log == ["update db"]
    assert driver.core.children["t"].status is sv.Status.TERMINATED and driver.core.children["t"].spec.start is w2
    assert ("t",) in applied.updated and ("db",) in applied.updated and () in applied.updated
    assert driver.core.spec.intensity == 1


def test_a_child_that_fails_to_start_after_a_reload_is_retried_and_says_why() -> None:
    driver = Driver(tree(sv.child("a", w1), sv.child("b", w1), intensity=5))
    driver.fail = {"b"}
    driver.update(tree(sv.child("a", w1), sv.child("b", w2), intensity=5))
    failed = [e for e in driver.events if isinstance(e, ChildStartFailed)]
    assert len(failed) == 1 and failed[0].reload and failed[0].path == ("b",)
    assert driver.core.children["b"].status is sv.Status.RESTARTING
    assert any(isinstance(e, SetTimer) for e in driver.effects)
    assert len(driver.core.restarts) == 1  # counted against the intensity, as any failed start


def test_dynamic_children_survive_an_update_and_are_adopted_when_declared() -> None:
    driver = Driver(tree(sv.child("a", w1)))
    driver.feed(StartChild(sv.child("dyn", w1)))
    driver.feed(StartChild(sv.child("other", w1)))
    driver.log.clear()
    driver.update(tree(sv.child("dyn", w1), sv.child("a", w1)))
    assert driver.log == []  # declared as it runs: adopted, not restarted
    assert list(driver.core.children) == ["dyn", "a", "other"]
    assert not driver.core.children["dyn"].dynamic and driver.core.children["other"].dynamic


def test_update_before_start_is_refused() -> None:
    core = SupervisorCore(tree(sv.child("a", w1)))
    command = Update(tree())
    effects = core.handle(command, 0.0)
    assert isinstance(effects[-1], Reply) and isinstance(effects[-1].error, sv.SupervisorNotRunning)
    assert not any(isinstance(e, Ready) for e in effects)
