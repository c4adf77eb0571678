"""Numbers in a spec: a huge one (``10**400``) is a ``SpecError`` naming the field,
never an ``OverflowError``; ``inf`` and ``nan`` are accepted or refused on
purpose, field by field (docs/api.md, "Numbers in a spec")."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

import supervision as sv

HUGE = 10**400
INF = math.inf
NAN = math.nan


async def work(ctx: sv.Context) -> None:
    ctx.ready()
    await asyncio.Event().wait()


def child(**kw: Any) -> sv.ChildSpec:
    return sv.child("w", work, **kw)


def proc(**kw: Any) -> sv.ChildSpec:
    return sv.process("p", ["true"], **kw)


def sup(**kw: Any) -> sv.Supervisor:
    return sv.Supervisor([], **kw)


# (build, field named in the error) for every number of a spec
FIELDS: list[tuple[str, Callable[[Any], object], str]] = [
    ("child.shutdown", lambda v: child(shutdown=v), "shutdown"),
    ("process.shutdown", lambda v: proc(shutdown=v), "shutdown"),
    ("child.ready_timeout", lambda v: child(ready=True, ready_timeout=v), "ready_timeout"),
    ("process.ready_timeout", lambda v: proc(ready_timeout=v), "ready_timeout"),
    ("intensity", lambda v: sup(intensity=v), "intensity"),
    ("period", lambda v: sup(period=v), "period"),
    ("backoff.initial", lambda v: sv.Backoff(initial=v, maximum=max(30.0, v) if v == v else 30.0), "backoff.initial"),
    ("backoff.maximum", lambda v: sv.Backoff(maximum=v), "backoff.maximum"),
    ("backoff.factor", lambda v: sv.Backoff(factor=v), "backoff.factor"),
    ("backoff.jitter", lambda v: sv.Backoff(jitter=v), "backoff.jitter"),
    ("backoff.reset_after", lambda v: sv.Backoff(reset_after=v), "backoff.reset_after"),
    ("ready.delay", lambda v: proc(ready=sv.ready.delay(v), ready_timeout=INF), "ready"),
    ("state_version", lambda v: child(state_version=v), "state_version"),
]

# What each field does with inf: accepted (and what it means) or refused.
ACCEPTS_INF = {
    "child.shutdown",
    "process.shutdown",
    "child.ready_timeout",
    "process.ready_timeout",
    "period",
    "backoff.reset_after",
}
INTEGERS = {"intensity", "state_version"}  # a Python int has no overflow: 10**400 is valid


@pytest.mark.parametrize(("name", "build", "field"), FIELDS, ids=[f[0] for f in FIELDS])
def test_a_huge_number_is_a_spec_error_naming_the_field(name: str, build: Callable[[Any], object], field: str) -> None:
    if name in INTEGERS:
        build(HUGE)  # an integer field takes any integer
        return
    with pytest.raises(sv.SpecError) as caught:
        build(HUGE)
    assert caught.value.field == field
    assert len(str(caught.value)) < 300  # the number is not printed in full


@pytest.mark.parametrize(("name", "build", "field"), FIELDS, ids=[f[0] for f in FIELDS])
def test_nan_is_always_refused(name: str, build: Callable[[Any], object], field: str) -> None:
    with pytest.raises(sv.SpecError) as caught:
        build(NAN)
    assert caught.value.field == field


@pytest.mark.parametrize(("name", "build", "field"), FIELDS, ids=[f[0] for f in FIELDS])
def test_inf_is_accepted_only_where_it_means_for_ever(name: str, build: Callable[[Any], object], field: str) -> None:
    if name in ACCEPTS_INF:
        build(INF)
        build(-0.0)
        return
    with pytest.raises(sv.SpecError) as caught:
        build(INF)
    assert caught.value.field == field


def test_what_inf_means() -> None:
    assert child(shutdown=INF).shutdown is sv.INFINITY
    assert child(ready=True, ready_timeout=INF).ready_timeout == INF
    assert child(ready=True, ready_timeout=sv.INFINITY).ready_timeout == INF  # the same, as for shutdown
    assert sup(period=INF).period == INF
    assert sv.Backoff(reset_after=INF).reset_time == INF
    assert sup(intensity=HUGE).intensity == HUGE


async def test_a_tree_with_infinite_timeouts_runs_and_stops() -> None:
    spec = sv.Supervisor(
        [child(ready=True, ready_timeout=INF, shutdown=INF)],
        intensity=HUGE,
        period=INF,
        backoff=sv.Backoff(initial=0.0, maximum=0.0, jitter=0.0, reset_after=INF),
    )
    async with sv.start(spec) as tree:
        events = tree.events()
        for _ in range(3):
            sv.testing.crash(tree, "w", RuntimeError("boom"))
            async for event in events:
                if isinstance(event, sv.ChildStarted):
                    break
        assert [info.starts for info in tree.which_children()] == [4]
