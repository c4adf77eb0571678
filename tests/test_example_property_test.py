"""examples/property_test_my_tree.py: its properties hold on its tree, and they mean
something: the same invariant fails, with a one-step counterexample, on a tree
whose backend is one_for_one instead of rest_for_one."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings

import supervision as sv
from supervision.testing import Crash, Step
from supervision.testing import strategies as sst

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "property_test_my_tree.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("property_test_my_tree_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = _load_example()


@pytest.mark.parametrize(
    "name",
    [
        "test_api_runs_within_one_run_of_db",
        "test_spaced_backend_crashes_never_give_up",
        "test_a_burst_of_db_crashes_escalates",
        "test_by_prefix_plan",
        "test_the_tree_behaves_as_the_model_says",
    ],
)
def test_the_example_properties_hold(name: str) -> None:
    getattr(example, name)()


def test_the_invariant_catches_a_one_for_one_backend() -> None:
    backend = example.SPEC.children[0]
    one_for_one = dataclasses.replace(backend, start=backend.start.replace(strategy="one_for_one"))
    spec = example.SPEC.replace(children=(one_for_one, *example.SPEC.children[1:]))

    @settings(max_examples=300, derandomize=True, database=None)
    @given(sst.schedules(spec, commands=False))
    def invariant(schedule: list[Step]) -> None:
        example.check_api_runs_within_db(spec, schedule)

    with pytest.raises(AssertionError, match="db restarted under a running api") as info:
        invariant()
    assert "schedule=[Crash('backend/db')]" in "\n".join(getattr(info.value, "__notes__", []))


def test_the_example_runs_as_a_script() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok  ") == 5


def test_a_tree_is_what_build_returns() -> None:
    assert isinstance(example.build(), sv.Supervisor)
    assert example.simulate(example.SPEC, [Crash("metrics")])
