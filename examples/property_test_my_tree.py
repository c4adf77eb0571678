"""Property-test your own supervision tree (and your own strategy) with supervision.testing.

The tree below is an application's: a ``backend`` supervisor runs ``db``, ``cache``
and ``api`` under ``rest_for_one`` (each needs the ones before it), next to a
``metrics`` worker and a pool of ``web-N``/``worker-N`` replicas under a custom
strategy. The tests check, over thousands of generated fault schedules run
through the real core on a virtual clock (no asyncio, no sleeping):

1. an invariant of the design: each run of ``api`` lies within one run of ``db``
   (it never starts while ``db`` is down, and it is never left running on the
   connections of a ``db`` that restarted);
2. a budget: crashes of the backend at least 3.5 s apart never make anything give up;
3. an escalation: a burst of ``db`` crashes makes ``backend`` give up, and the root
   restarts it;
4. the custom strategy ``ByPrefix``: its plan alone, and the framework running it
   in agreement with the reference model.

Run it as a script (it runs the tests and prints what they checked), or with pytest::

    python examples/property_test_my_tree.py
    pytest examples/property_test_my_tree.py

See docs/testing.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

import supervision as sv
from supervision.testing import Advance, Crash, Step, check_against_model, simulate
from supervision.testing import strategies as sst


async def service(ctx: sv.Context) -> None:
    """A stand-in for a real service (the simulator never runs it)."""
    await asyncio.Event().wait()


class ByPrefix(sv.Supervisor):
    """A custom strategy: when a replica fails, restart every replica of its kind
    (``web-1`` fails: ``web-1`` and ``web-2`` restart; ``worker-1`` keeps running)."""

    def plan(self, ids: tuple[str, ...], failed: str) -> Iterable[str]:
        kind = failed.split("-")[0]
        return [id for id in ids if id.split("-")[0] == kind]


def build() -> sv.Supervisor:
    backend = sv.Supervisor(
        [sv.child("db", service), sv.child("cache", service), sv.child("api", service)],
        strategy="rest_for_one",
        intensity=3,
        period=10.0,
    )
    pool = ByPrefix([sv.child(id, service) for id in ("web-1", "web-2", "worker-1")], intensity=5, period=10.0)
    return sv.Supervisor(
        [
            sv.child("backend", backend),
            sv.child("metrics", service, restart="transient"),
            sv.child("pool", pool),
        ],
        strategy="one_for_one",
        intensity=2,
        period=60.0,
    )


SPEC = build()


def running_at_each_event(events: list[sv.Event]) -> Iterable[tuple[sv.Event, set[tuple[str, ...]]]]:
    """Replay a trace: each event with the set of paths running just before it."""
    running: set[tuple[str, ...]] = set()
    for event in events:
        yield event, set(running)
        if isinstance(event, sv.ChildStarted):
            running.add(event.path)
        elif isinstance(event, sv.ChildExited):
            running.discard(event.path)


# 1. An invariant: whatever fails, and however often, each run of api lies within one
#    run of db: api starts only while db runs, and db never starts while api runs.
#    (Operator commands are left out: an operator may stop db by hand with
#    terminate_child, and a terminated child stays terminated.)

DB, API = ("backend", "db"), ("backend", "api")


def check_api_runs_within_db(spec: sv.Supervisor, schedule: list[Step]) -> None:
    for event, running in running_at_each_event(simulate(spec, schedule)):
        if isinstance(event, sv.ChildStarted) and event.path == API:
            assert DB in running, "api started while db was down"
        if isinstance(event, sv.ChildStarted) and event.path == DB:
            assert API not in running, "db restarted under a running api"


@settings(max_examples=300)
@given(sst.schedules(SPEC, commands=False))
def test_api_runs_within_one_run_of_db(schedule: list[Step]) -> None:
    check_api_runs_within_db(SPEC, schedule)


# 2. A budget: backend allows 3 restarts in 10 s, so crashes of its children spaced
#    at least 3.5 s apart must never make it (or the root) give up.

backend_children = st.sampled_from([("backend", id) for id in ("db", "cache", "api")])


@settings(max_examples=300)
@given(st.lists(st.tuples(backend_children, st.sampled_from([3.5, 5.0, 30.0])), max_size=40))
def test_spaced_backend_crashes_never_give_up(crashes: list[tuple[tuple[str, ...], float]]) -> None:
    schedule: list[Step] = []
    for path, gap in crashes:
        schedule += [Crash(path), Advance(gap)]
    events = simulate(SPEC, schedule)
    assert not [e for e in events if isinstance(e, sv.SupervisorGaveUp)]


# 3. Escalation, as one plain example: four db crashes within a second exceed
#    backend's intensity; it gives up, and the root starts a fresh backend.


def test_a_burst_of_db_crashes_escalates() -> None:
    schedule: list[Step] = []
    for _ in range(4):
        schedule += [Crash("backend/db"), Advance(0.25)]
    events = simulate(SPEC, schedule)
    gave_up = [e for e in events if isinstance(e, sv.SupervisorGaveUp)]
    assert [e.path for e in gave_up] == [("backend",)]
    backend_starts = [e for e in events if isinstance(e, sv.ChildStarted) and e.path == ("backend",)]
    assert [e.starts for e in backend_starts] == [1, 2]  # restarted by the root


# 4. The custom strategy: its plan is pure, so test it directly ...


def test_by_prefix_plan() -> None:
    pool = SPEC.children[2].start
    ids = ("web-1", "web-2", "worker-1")
    assert sorted(pool.plan(ids, "web-2")) == ["web-1", "web-2"]
    assert list(pool.plan(ids, "worker-1")) == ["worker-1"]


# ... and check that the framework carries it out as the reference model says,
#     over generated schedules (any fault, time passing, and the API calls).


@settings(max_examples=200)
@given(sst.schedules(SPEC))
def test_the_tree_behaves_as_the_model_says(schedule: list[Step]) -> None:
    check_against_model(SPEC, schedule)


if __name__ == "__main__":
    tests = [
        test_api_runs_within_one_run_of_db,
        test_spaced_backend_crashes_never_give_up,
        test_a_burst_of_db_crashes_escalates,
        test_by_prefix_plan,
        test_the_tree_behaves_as_the_model_says,
    ]
    for test in tests:
        test()
        print(f"ok  {test.__name__}")
