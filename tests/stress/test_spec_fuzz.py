"""Spec fuzzing: whatever values a spec is built from, the constructors either
accept them or raise ``SpecError`` (or ``TypeError`` for a wrong call), never
another exception and never a hang."""

from __future__ import annotations

import asyncio
import math
import signal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import supervision as sv


async def work(ctx: sv.Context) -> None:
    await asyncio.Event().wait()


def plain(ctx: sv.Context) -> None:
    return None


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([10**400, -(10**400), 2**63, 2**1024, -1, 0, 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.inf, -math.inf, math.nan, -0.0, 1e308, 5e-324]),
    st.text(max_size=8),
    st.sampled_from(["", "/", "a/b", "\0", "infinity", "brutal_kill", "permanent", "one_for_all", "prefix"]),
    st.binary(max_size=8),
    st.sampled_from([sv.INFINITY, sv.BRUTAL_KILL, signal.SIGTERM, object(), work, plain, b"x"]),
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), inner, max_size=3),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=3)), max_size=3),
    ),
    max_leaves=6,
)


def kwargs(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of the fields, each either a plausible value or junk."""
    return st.fixed_dictionaries({}, optional={name: st.one_of(good, JUNK) for name, good in fields.items()})


EDGES = st.sampled_from(
    [10**400, -(10**400), 2**1024, 2**63, -1, -0.0, 0, 1e308, 5e-324, math.inf, -math.inf, math.nan, True]
)
# Seconds: mostly good, often an edge case (huge, infinite, NaN, negative), sometimes junk.
SECONDS = st.one_of(st.floats(min_value=0, max_value=60), st.integers(min_value=0, max_value=60), EDGES)
BACKOFF_FIELDS = {name: SECONDS for name in ("initial", "maximum", "factor", "jitter", "reset_after")}
READY = st.one_of(
    st.none(),
    st.builds(sv.ready.notify),
    st.builds(sv.ready.port, JUNK),
    st.builds(sv.ready.port, st.integers(1, 65535), JUNK),
    st.builds(sv.ready.delay, st.one_of(SECONDS, JUNK)),
)
CHILD_FIELDS = {
    "restart": st.sampled_from(["permanent", "transient", "temporary"]),
    "shutdown": st.one_of(SECONDS, st.sampled_from([sv.INFINITY, sv.BRUTAL_KILL])),
    "significant": st.booleans(),
    "ready": st.booleans(),
    "ready_timeout": SECONDS,
    "state": st.none(),
    "state_version": st.one_of(st.integers(0, 5), EDGES),
    "migrate": st.none(),
}
PROCESS_FIELDS = {
    **{k: v for k, v in CHILD_FIELDS.items() if k != "ready"},
    "cwd": st.none(),
    "env": st.dictionaries(st.text(min_size=1, max_size=3), st.text(max_size=3), max_size=2),
    "inherit_env": st.booleans(),
    "stop_signal": st.sampled_from([signal.SIGTERM, signal.SIGINT, 15]),
    "ready": READY,
    "output": st.sampled_from(["prefix", "inherit", "/tmp/out.log"]),
    "pdeathsig": st.booleans(),
}
SUPERVISOR_FIELDS = {
    "strategy": st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    "intensity": st.one_of(st.integers(0, 10), EDGES),
    "period": SECONDS,
    "auto_shutdown": st.sampled_from(["never", "any_significant", "all_significant"]),
    "backoff": st.one_of(st.none(), st.just(sv.Backoff())),
}
IDS = st.one_of(st.sampled_from(["a", "b", "web"]), JUNK)


def attempt(build: Any, *args: Any, **kw: Any) -> object | None:
    """Build; only SpecError and TypeError may come out."""
    try:
        return build(*args, **kw)
    except (sv.SpecError, TypeError):
        return None


FUZZ = settings(max_examples=400, deadline=None)


@FUZZ
@given(kwargs(BACKOFF_FIELDS))
def test_backoff(kw: dict[str, Any]) -> None:
    backoff = attempt(sv.Backoff, **kw)
    if isinstance(backoff, sv.Backoff):
        import random

        for n in (1, 2, 50, 10**6):
            delay = backoff.delay(n, random.Random(0))
            assert 0 <= delay <= backoff.maximum and not math.isnan(delay)


@FUZZ
@given(IDS, st.one_of(st.sampled_from([work, plain, sv.Supervisor()]), JUNK), kwargs(CHILD_FIELDS))
def test_child(id: Any, start: Any, kw: dict[str, Any]) -> None:
    attempt(sv.child, id, start, **kw)


@FUZZ
@given(IDS, st.one_of(st.just(["true"]), st.lists(st.text(max_size=3), max_size=3), JUNK), kwargs(PROCESS_FIELDS))
def test_process(id: Any, argv: Any, kw: dict[str, Any]) -> None:
    attempt(sv.process, id, argv, **kw)


@FUZZ
@given(st.one_of(st.just([sv.child("a", work)]), st.lists(JUNK, max_size=3), JUNK), kwargs(SUPERVISOR_FIELDS))
def test_supervisor(children: Any, kw: dict[str, Any]) -> None:
    spec = attempt(sv.Supervisor, children, **kw)
    if isinstance(spec, sv.Supervisor):
        attempt(spec.replace, **kw)


@FUZZ
@given(st.one_of(SECONDS, JUNK), st.one_of(st.integers(), JUNK), JUNK)
def test_ready_checks(seconds: Any, port: Any, host: Any) -> None:
    for check in (sv.ready.delay(seconds), sv.ready.port(port), sv.ready.port(8000, host)):
        attempt(sv.process, "p", ["true"], ready=check)
