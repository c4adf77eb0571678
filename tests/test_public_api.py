"""The public surface is exactly the intended one, and every name is documented."""

from __future__ import annotations

import inspect

import pytest

import supervision as sv

DESIGN_NAMES = {
    # DESIGN.md section 2
    "Supervisor", "child", "process", "ready", "Restart", "Strategy", "AutoShutdown", "Backoff",
    "BRUTAL_KILL", "INFINITY", "Context", "current", "start", "run", "ChildInfo", "ChildCounts",
    "Shutdown", "SupervisionError", "SpecError", "StartError", "NotFound", "AlreadyPresent",
    "AlreadyStarted", "ChildRunning", "ChildRestarting", "TooManyRestarts", "ReloadError",
    "Event", "ChildStarted", "ChildExited", "ChildStartFailed", "RestartScheduled",
    "SupervisorGaveUp", "SupervisorStopped", "ReloadApplied", "ReloadRejected",
}  # fmt: skip


def test_design_names_exist() -> None:
    missing = {name for name in DESIGN_NAMES if not hasattr(sv, name)}
    assert not missing, missing
    assert hasattr(sv.Tree, "reload") and hasattr(sv.Tree, "update") and hasattr(sv.Tree, "reexec")
    assert callable(sv.testing.crash)


def test_all_is_exact_and_documented() -> None:
    assert sorted(sv.__all__) == sorted(set(sv.__all__))
    for name in sv.__all__:
        obj = getattr(sv, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"sv.{name} has no docstring"
            assert obj.__module__ == "supervision", (name, obj.__module__)


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (sv.SpecError, (sv.SupervisionError, ValueError)),
        (sv.NotFound, (sv.SupervisionError, LookupError)),
        (sv.StartError, (sv.SupervisionError,)),
        (sv.AlreadyPresent, (sv.SupervisionError,)),
        (sv.AlreadyStarted, (sv.SupervisionError,)),
        (sv.ChildRunning, (sv.SupervisionError,)),
        (sv.ChildRestarting, (sv.SupervisionError,)),
        (sv.TooManyRestarts, (sv.SupervisionError,)),
        (sv.ReloadError, (sv.SupervisionError,)),
    ],
)
def test_error_hierarchy(error: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    for base in bases:
        assert issubclass(error, base)


def test_strings_and_enum_members_are_both_accepted() -> None:
    async def w(ctx: sv.Context) -> None: ...

    a = sv.Supervisor([sv.child("w", w, restart=sv.Restart.TRANSIENT)], strategy=sv.Strategy.ONE_FOR_ALL)
    b = sv.Supervisor([sv.child("w", w, restart="transient")], strategy="one_for_all")
    assert a == b
    assert a.strategy == "one_for_all" and a.children[0].restart == "transient"


def test_specs_are_immutable_values() -> None:
    async def w(ctx: sv.Context) -> None: ...

    spec = sv.Supervisor([sv.child("w", w)], intensity=5)
    with pytest.raises(AttributeError):
        spec.intensity = 6  # type: ignore[misc]
    with pytest.raises(AttributeError):
        spec.children[0].id = "x"  # type: ignore[misc]
    changed = spec.replace(intensity=6)
    assert changed.intensity == 6 and spec.intensity == 5 and changed != spec
    assert changed.replace(intensity=5) == spec


def test_subclass_settings_as_class_attributes() -> None:
    async def w(ctx: sv.Context) -> None: ...

    class Db(sv.Supervisor):
        strategy = "rest_for_one"
        intensity = 10
        period = 60

    spec = Db([sv.child("w", w)])
    assert (spec.strategy, spec.intensity, spec.period) == (sv.Strategy.REST_FOR_ONE, 10, 60.0)
    assert Db([sv.child("w", w)], intensity=2).intensity == 2
    assert spec != sv.Supervisor([sv.child("w", w)], strategy="rest_for_one", intensity=10, period=60)


def test_supervisor_child_defaults_to_infinity_shutdown() -> None:
    async def w(ctx: sv.Context) -> None: ...

    assert sv.child("s", sv.Supervisor()).shutdown is sv.INFINITY
    assert sv.child("w", w).shutdown == 5.0
    assert sv.child("w", w, shutdown=float("inf")).shutdown is sv.INFINITY
    assert sv.child("w", w, shutdown="brutal_kill").shutdown is sv.BRUTAL_KILL
