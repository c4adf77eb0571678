"""Shared test machinery: async tests run under asyncio.run, and every async test
ends with no task left behind (the tree must clean up after itself)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh event loop, then check for leaked tasks."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}

    async def main() -> None:
        await function(**kwargs)
        for _ in range(3):  # let callbacks scheduled by the last operation run
            await asyncio.sleep(0)
        leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not leaked, f"tasks leaked by the test: {leaked}"

    asyncio.run(main())
    return True


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.add_marker(pytest.mark.asyncio_native)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "asyncio_native: an async test run by conftest under asyncio.run")
    config.addinivalue_line("markers", "slow: a test that takes more than a few seconds")


# -- hypothesis profiles ------------------------------------------------------------
#
# ``ci`` (the default) is derandomized, so every run tries the same examples and a
# failure reproduces. ``HYPOTHESIS_PROFILE=thorough`` runs more examples, with fresh
# randomness each time. Tests that need a budget of their own per profile (the
# stateful test of tests/core/test_model_stateful.py) read the profile's name from
# ``HYPOTHESIS_PROFILE`` too.

import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=1_000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's `supervision run` keeps its default snapshot store in a directory of
    its own (``$STATE_DIRECTORY``), never in the machine's /var/lib/supervision, where
    the snapshots of one test would come back in the next one that uses the same name."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path_factory.mktemp("state")))
