"""Leader-gated supervisors (``leader=sv.lease.etcd(...)``) on a real 3-member etcd cluster:
in one process, two trees that hand a singleton over; end to end, three
``supervision run`` roots as separate processes, judged by a fencing service."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import supervision as sv
from tests.distributed.candidates import wait_until
from tests.distributed.etcd_cluster import EtcdCluster, etcd_cluster, require_etcd
from tests.distributed.fencing import FencingService

ROOT = str(Path(__file__).resolve().parents[2])
TTL = 5

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    require_etcd()
    with etcd_cluster(tmp_path_factory.mktemp("etcd")) as running:
        yield running


async def idle(ctx: sv.Context) -> None:
    await asyncio.Event().wait()


def test_leader_takes_a_lease_whose_ttl_leaves_time_to_stop() -> None:
    lease = sv.lease.etcd("spec", "http://127.0.0.1:1", ttl=6)
    sv.Supervisor([sv.child("a", idle, shutdown=2.0)], leader=lease)
    with pytest.raises(sv.SpecError, match=r"leader: the children take up to 4s to stop; .* within 3s"):
        sv.Supervisor([sv.child("a", idle, shutdown=2.0), sv.child("b", idle, shutdown=2.0)], leader=lease)
    with pytest.raises(sv.SpecError, match="never stop"):
        sv.Supervisor([sv.child("a", idle, shutdown=sv.INFINITY)], leader=lease)
    with pytest.raises(sv.SpecError, match="leader: must be a lease"):
        sv.Supervisor([], leader="etcd://somewhere")  # type: ignore[arg-type]


async def test_a_root_cannot_be_gated() -> None:
    lease = sv.lease.etcd("root", "http://127.0.0.1:1", ttl=6)
    with pytest.raises(sv.StartError, match="root cannot be leader-gated"):
        await sv.start(sv.Supervisor([sv.child("a", idle, shutdown=1.0)], leader=lease))


async def test_two_trees_hand_a_singleton_over_with_its_snapshot(cluster: EtcdCluster) -> None:
    seen: list[tuple[str, int | None, int]] = []
    saved: dict[int | None, int] = {}

    async def counter(ctx: sv.Context) -> None:
        n = ctx.state.get("n", 0)
        seen.append(("start", ctx.fence, n))
        while True:
            await asyncio.sleep(0.01)
            n += 1
            ctx.save(ctx.state.set("n", n))
            saved[ctx.fence] = n

    lease = sv.lease.etcd("handover", cluster.endpoints, ttl=TTL)
    spec = sv.Supervisor(
        [
            sv.child("web", idle),
            sv.child("singletons", sv.Supervisor([sv.child("counter", counter, shutdown=0.5)], leader=lease)),
        ]
    )
    one = await sv.start(spec)
    events = one.events()
    two = await sv.start(spec)
    try:

        async def role(tree: sv.Tree) -> str | None:
            return next(info.role for info in tree.which_children() if info.id == "singletons")

        await asyncio.wait_for(_until(lambda: len(seen) == 1), 10)
        (_, first_fence, first_n) = seen[0]
        assert first_n == 0 and first_fence is not None
        leader, standby = (one, two) if await role(one) == "leader" else (two, one)
        assert await role(standby) == "standby"
        await asyncio.sleep(0.3)
        await leader.terminate_child("singletons")  # resigns: the standby takes over at once
        last = saved[first_fence]
        await asyncio.wait_for(_until(lambda: len(seen) == 2), 10)
        (_, second_fence, second_n) = seen[1]
        assert second_fence is not None and second_fence > first_fence
        assert second_n == last, "the successor starts from the last saved value"
        assert await role(standby) == "leader"
        if leader is one:
            kinds = []
            async for event in events:
                kinds.append(type(event))
                if isinstance(event, sv.LeaderLost):
                    break
            assert sv.LeaderAcquired in kinds
    finally:
        await one.stop()
        await two.stop()


async def _until(condition: object) -> None:
    assert callable(condition)
    while not condition():
        await asyncio.sleep(0.02)


TREE = """
import asyncio, os
import supervision as sv

async def singleton(ctx):
    n = ctx.state.get("n", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", int(os.environ["FENCING_PORT"]))
    try:
        while True:
            await asyncio.sleep(0.02)
            n += 1
            ctx.save(ctx.state.set("n", n))
            writer.write(f"WRITE {ctx.fence} {os.environ['ROOT_ID']} {n}\\n".encode())
            await writer.drain()
            await reader.readline()
    finally:
        writer.close()

def build():
    lease = sv.lease.etcd("e2e", os.environ["ETCD"].split(","), ttl=@TTL@)
    singletons = sv.Supervisor([sv.child("counter", singleton, shutdown=0.5)], leader=lease)
    return sv.Supervisor([sv.child("singletons", singletons)])
""".replace("@TTL@", str(TTL))


class Root:
    """One ``supervision run`` of the tree above, with its own state directory."""

    def __init__(self, index: int, directory: Path, tree: Path, cluster: EtcdCluster, port: int) -> None:
        self.id = f"root{index}"
        self.env = dict(
            os.environ,
            PYTHONPATH=ROOT,
            XDG_RUNTIME_DIR=str(directory / self.id),
            ETCD=",".join(cluster.endpoints),
            FENCING_PORT=str(port),
            ROOT_ID=self.id,
        )
        self.log = open(directory / f"{self.id}.log", "wb")  # noqa: SIM115  (closed in close())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervision", "run", str(tree), "--name", "e2e"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def status(self) -> dict[str, object] | None:
        result = subprocess.run(
            [sys.executable, "-m", "supervision", "status", "--json", "--name", "e2e"],
            env=self.env,
            capture_output=True,
            timeout=10,
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    def role(self) -> str | None:
        status = self.status()
        if status is None:
            return None
        (node,) = [n for n in status["children"] if n["id"] == "singletons"]  # type: ignore[union-attr]
        return node.get("role")  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


@pytest.mark.timeout(180)
def test_three_supervision_run_roots_fail_over_a_singleton(cluster: EtcdCluster, tmp_path: Path) -> None:
    tree = tmp_path / "singleton_tree.py"
    tree.write_text(textwrap.dedent(TREE))
    with FencingService() as fencing:
        roots = [Root(i, tmp_path, tree, cluster, fencing.port) for i in range(3)]
        try:

            def writer() -> str | None:
                accepted = fencing.accepted()
                return accepted[-1].writer if accepted else None

            wait_until(lambda: writer() is not None, 30, "a root runs the singleton")
            roles = {}

            def settled() -> bool:
                roles.update((r.id, r.role()) for r in roots)
                return sorted(map(str, roles.values())) == ["leader", "standby", "standby"]

            wait_until(settled, 30, "one leader and two standbys")
            leader = next(r for r in roots if roles[r.id] == "leader")
            wait_until(lambda: writer() == leader.id, 10, "the leader writes")

            # SIGKILL of the leader's root: another runs the singleton within ttl + 2 s,
            # starting from the last value flushed (at most 100 ms of saves behind).
            last_before = max(w.seq for w in fencing.accepted() if w.writer == leader.id)
            killed = time.monotonic()
            leader.process.kill()
            took_over = wait_until(lambda: writer() not in (None, leader.id), TTL + 10, "another root takes over")
            assert took_over - killed <= TTL + 2, f"failover took {took_over - killed:.2f}s"
            successor = next(r for r in roots if r.id == writer())
            first = min((w for w in fencing.accepted() if w.writer == successor.id), key=lambda w: w.time)
            assert last_before - 10 <= first.seq - 1 <= last_before, (first.seq, last_before)

            # SIGSTOP of the new leader's root: the third takes over after the ttl; the
            # paused one, resumed, stops its singleton, and no stale write was accepted.
            third = next(r for r in roots if r not in (leader, successor))
            paused = time.monotonic()
            successor.process.send_signal(signal.SIGSTOP)
            wait_until(lambda: writer() == third.id, TTL + 10, "the third root takes over")
            assert time.monotonic() - paused >= TTL * 2 / 3 - 0.2
            takeover = min(w.time for w in fencing.accepted() if w.writer == third.id)
            successor.process.send_signal(signal.SIGCONT)
            wait_until(lambda: successor.role() == "standby", 15, "the resumed root is a standby again")
            late = [w for w in fencing.accepted() if w.writer == successor.id and w.time >= takeover]
            assert not late, late

            # Two of the three etcd members killed: the leader steps down, nobody runs the
            # singleton; once they are back, exactly one root does (of the two still alive).
            alive = [r for r in roots if r is not leader]
            cluster.kill(1)
            cluster.kill(2)
            try:
                wait_until(lambda: all(r.role() != "leader" for r in alive), TTL + 10, "the leader steps down")
                quiet = time.monotonic()
                wait_until(lambda: time.monotonic() - quiet > TTL, 2 * TTL, "a ttl passes")
                assert all(r.role() == "standby" for r in alive)
                assert not [w for w in fencing.accepted() if w.time > quiet], "a write while nobody leads"
            finally:
                cluster.start_member(1)
                cluster.start_member(2)
                cluster.wait_healthy([0, 1, 2])
            wait_until(
                lambda: sorted(str(r.role()) for r in alive) == ["leader", "standby"],
                6 * TTL,
                "one leader after healing",
            )
            fencing.check()
        finally:
            for root in roots:
                root.close()
