"""Failover between separate processes through an etcd lease, on a real 3-member cluster.

Each candidate (tests/distributed/lease_candidate.py) campaigns with ``sv.lease.etcd`` and,
while it leads, writes to a fencing service (tests/distributed/fencing.py) with its
fencing token. The service is the judge: it must never accept two writers for
one token, nor a token smaller than one it accepted before.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.distributed.candidates import Candidate, candidates, leaders, wait_until
from tests.distributed.etcd_cluster import EtcdCluster, etcd_cluster, require_etcd
from tests.distributed.fencing import FencingService

TTL = 5
GUARD = 0.5

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    require_etcd()
    with etcd_cluster(tmp_path / "etcd") as running:
        yield running


@pytest.fixture
def fencing() -> Iterator[FencingService]:
    with FencingService() as service:
        yield service


def first_leader(group: list[Candidate], timeout: float = 20.0) -> Candidate:
    wait_until(lambda: len(leaders(group)) >= 1, timeout, "a candidate leads")
    (leader,) = leaders(group)
    return leader


def test_sigkill_of_the_leader_fails_over_within_ttl_plus_2s(cluster: EtcdCluster, fencing: FencingService) -> None:
    with candidates(3, "kill", TTL, GUARD, fencing.port, cluster.endpoints) as group:
        leader = first_leader(group)
        wait_until(lambda: len(fencing.accepted()) >= 5, 10, "the leader writes")
        killed = leader.kill()
        rest = [c for c in group if c is not leader]
        took_over = wait_until(lambda: len(leaders(rest)) == 1, TTL + 10, "another candidate leads")
        assert took_over - killed <= TTL + 2, f"failover took {took_over - killed:.2f}s"
        (successor,) = leaders(rest)
        wait_until(lambda: any(w.writer == successor.writer for w in fencing.accepted()), 10, "the successor writes")
        assert int(successor.said("LEADER")[-1][1][1]) > int(leader.said("LEADER")[-1][1][1])
        fencing.check()


def test_a_paused_leader_is_replaced_after_the_ttl_and_fenced_off(
    cluster: EtcdCluster, fencing: FencingService
) -> None:
    with candidates(3, "pause", TTL, GUARD, fencing.port, cluster.endpoints) as group:
        leader = first_leader(group)
        old_fence = int(leader.said("LEADER")[-1][1][1])
        wait_until(lambda: len(fencing.accepted()) >= 5, 10, "the leader writes")
        paused = time.monotonic()
        leader.signal(signal.SIGSTOP)
        rest = [c for c in group if c is not leader]
        took_over = wait_until(lambda: len(leaders(rest)) == 1, TTL + 10, "another candidate leads")
        # etcd grants the key only once the lease expired: at least ttl after the last
        # keep-alive, which was at most ttl/3 before the pause.
        assert took_over - paused >= TTL * 2 / 3 - 0.2, f"taken over {took_over - paused:.2f}s after the pause"
        assert took_over - paused <= TTL + 2
        (successor,) = leaders(rest)
        wait_until(lambda: any(w.writer == successor.writer for w in fencing.accepted()), 10, "the successor writes")
        resumed = time.monotonic()
        leader.signal(signal.SIGCONT)
        lost_at, words = leader.wait_for("LOST", timeout=10)
        assert words[1] == str(old_fence)
        assert lost_at - resumed < 2.0
        first_new = min(w.time for w in fencing.accepted() if w.writer == successor.writer)
        late = [w for w in fencing.accepted() if w.writer == leader.writer and w.time >= first_new]
        assert not late, f"the service accepted writes of the paused leader after the new one wrote: {late}"
        fencing.check()


@pytest.mark.parametrize("how", ["killed", "paused"])
def test_one_etcd_member_lost_no_failover(cluster: EtcdCluster, fencing: FencingService, how: str) -> None:
    with candidates(3, "member", TTL, GUARD, fencing.port, cluster.endpoints) as group:
        leader = first_leader(group)
        wait_until(lambda: len(fencing.accepted()) >= 5, 10, "the leader writes")
        # Member 0 is every candidate's first endpoint, and maybe the raft leader. A
        # killed member refuses connections; a paused one leaves requests hanging.
        if how == "killed":
            cluster.kill(0)
        else:
            cluster.pause(0)
        killed = time.monotonic()
        wait_until(lambda: time.monotonic() - killed > 2 * TTL, 3 * TTL, "two ttl pass")
        assert leaders(group) == [leader]
        assert len(leader.said("LEADER")) == 1 and not leader.said("LOST")
        assert all(not c.said("LEADER") for c in group if c is not leader)
        assert any(w.writer == leader.writer and w.time > killed + TTL for w in fencing.accepted())
        fencing.check()


def test_two_members_killed_the_leader_steps_down_then_exactly_one_leads(
    cluster: EtcdCluster, fencing: FencingService
) -> None:
    with candidates(3, "quorum", TTL, GUARD, fencing.port, cluster.endpoints) as group:
        leader = first_leader(group)
        wait_until(lambda: len(fencing.accepted()) >= 5, 10, "the leader writes")
        cluster.kill(1)
        cluster.kill(2)
        killed = time.monotonic()
        stepped_down, _ = leader.wait_for("LOST", timeout=TTL + 5)
        # By its own clock it steps down ttl - guard after its last renewal, at the latest;
        # a loaded machine may run it a little late (what fencing is for).
        assert stepped_down - killed <= TTL + 1.5, f"stepped down {stepped_down - killed:.2f}s after quorum was lost"
        # Without quorum nobody may lead: watch for two ttl.
        wait_until(lambda: time.monotonic() - stepped_down > 2 * TTL, 3 * TTL, "two ttl pass")
        assert leaders(group) == []
        silent = time.monotonic()
        assert not [w for w in fencing.accepted() if w.time > stepped_down]
        cluster.start_member(1)
        cluster.start_member(2)
        cluster.wait_healthy([0, 1, 2])
        wait_until(lambda: len(leaders(group)) == 1, 4 * TTL + 10, "one candidate leads after healing")
        healed_leader = leaders(group)
        wait_until(lambda: time.monotonic() - silent > 2 * TTL, 3 * TTL, "a while after healing")
        assert leaders(group) == healed_leader, "leadership moved although nothing failed"
        fencing.check()


@st.composite
def schedules(draw: st.DrawFn) -> list[tuple[str, int, float]]:
    """Up to 5 steps: kill, pause or resume one of 3 candidates, then wait a while."""
    steps = draw(st.lists(st.tuples(st.sampled_from(["kill", "pause", "resume"]), st.integers(0, 2)), max_size=5))
    return [(action, slot, draw(st.sampled_from([0.3, 1.5, 3.5]))) for action, slot in steps]


@pytest.mark.timeout(400)
@settings(max_examples=4, deadline=None)
@given(schedule=schedules())
@example(schedule=[("pause", 0, 3.5), ("pause", 1, 3.5), ("resume", 0, 0.3), ("kill", 2, 1.5)])
@example(schedule=[("kill", 0, 0.3), ("pause", 1, 1.5), ("kill", 2, 3.5), ("resume", 1, 0.3)])
def test_a_schedule_of_kills_and_pauses_never_gives_one_token_two_writers(
    schedule: list[tuple[str, int, float]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_etcd()
    directory = tmp_path_factory.mktemp("etcd")
    with etcd_cluster(directory) as cluster, FencingService() as fencing:
        name = f"schedule-{directory.name}"
        slots: list[Candidate] = []
        everyone: list[Candidate] = []
        try:
            for index in range(3):
                slots.append(Candidate(name, f"s{index}i0", TTL, GUARD, fencing.port, cluster.endpoints))
            everyone.extend(slots)
            first_leader(slots)
            wait_until(lambda: len(fencing.accepted()) >= 1, 10, "the first leader writes")
            for step, (action, slot, pause) in enumerate(schedule, 1):
                candidate = slots[slot]
                if action == "kill":
                    candidate.kill()
                    slots[slot] = Candidate(name, f"s{slot}i{step}", TTL, GUARD, fencing.port, cluster.endpoints)
                    everyone.append(slots[slot])
                elif action == "pause":
                    candidate.signal(signal.SIGSTOP)
                else:
                    candidate.signal(signal.SIGCONT)
                time.sleep(pause)  # the schedule's own timing: part of what is tested
            for candidate in slots:
                candidate.signal(signal.SIGCONT)
            # Once every process runs again, exactly one leads, and stays so.
            wait_until(lambda: len(leaders(slots)) == 1, 4 * TTL + 10, "one leader after the schedule")
            fencing.check()
            tokens = fencing.writers_by_token()
            assert tokens, "nobody ever wrote"
        finally:
            for candidate in everyone:
                candidate.close()
