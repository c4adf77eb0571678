"""Process children under fire: a kill storm, and the supervisor itself killed hard."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

import supervision as sv
from tests.process_helpers import children, descendants, stat, until, wait_gone

CHILDREN = 100
KILLS = 2000
# Each child is a shell that keeps one grandchild (sleep) alive and reaps it.
SHELL = "while :; do sleep 1000 & wait; done"


def _send_kill(pid: int, parent: int) -> bool:
    """SIGKILL ``pid`` if it is still a live child of ``parent`` (checked through its pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        found = stat(pid)  # after pidfd_open: the pidfd pins this very process
        if found is None or found[0] in ("Z", "X") or found[1] != parent:
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@pytest.mark.slow
async def test_kill_storm_leaves_every_permanent_child_running_and_nothing_else() -> None:
    rng = random.Random(5)
    me = os.getpid()
    intensity, period = 100_000, 60.0
    spec = sv.Supervisor(
        [sv.process(f"c{i:03}", ["sh", "-c", SHELL], shutdown=2.0) for i in range(CHILDREN)],
        intensity=intensity,
        period=period,
    )
    began = time.monotonic()
    async with sv.start(spec) as tree:
        events = tree.events(maxsize=1_000_000)
        sent = Counter[str]()
        while sum(sent.values()) < KILLS:
            info = rng.choice(tree.which_children())
            if info.pid is None:
                await asyncio.sleep(0)
                continue
            if rng.random() < 0.5:
                if _send_kill(info.pid, me):
                    sent["child"] += 1
            else:
                grandchildren = children(info.pid)
                if grandchildren and _send_kill(rng.choice(grandchildren), info.pid):
                    sent["grandchild"] += 1
            await asyncio.sleep(0)  # let the tree react between kills

        def settled() -> bool:
            infos = tree.which_children()
            if any(c.status is not sv.Status.RUNNING or c.pid is None for c in infos):
                return False
            ours = {c.pid for c in infos}
            if set(children(me)) != ours:
                return False  # an orphan not reaped or killed yet
            for pid in ours:
                grandchildren = children(pid)
                if len(grandchildren) != 1:
                    return False
                found = stat(grandchildren[0])
                if found is None or found[0] == "Z" or children(grandchildren[0]):
                    return False
            return True

        await until(settled, timeout=30, what="every child running with one live grandchild, no zombie")
        crashes, restarts, gave_up = [], 0, 0
        while True:
            try:
                event = await asyncio.wait_for(events.__anext__(), 0.001)
            except (TimeoutError, StopAsyncIteration):
                break
            if isinstance(event, sv.ChildExited):
                crashes.append(event)
            elif isinstance(event, sv.ChildStarted) and event.starts > 1:
                restarts += 1
            elif isinstance(event, sv.SupervisorGaveUp):
                gave_up += 1
        assert events.dropped == 0
        # Every killed child crashed with SIGKILL and was restarted once per crash; the
        # window never held more restarts than the intensity, and nobody gave up.
        assert all(e.reason is sv.ExitReason.CRASH and e.signal == signal.SIGKILL for e in crashes)
        assert 0 < len(crashes) <= sent["child"]
        assert restarts == len(crashes)
        times = sorted(e.time for e in crashes)
        assert max(sum(1 for t in times if s <= t <= s + period) for s in times) <= intensity
        assert gave_up == 0
        assert all(c.status is sv.Status.RUNNING for c in tree.which_children())
        assert sent["grandchild"] > 0
    assert not descendants()
    assert time.monotonic() - began < 60


SUPERVISOR = textwrap.dedent(
    """
    import asyncio, os, sys
    import supervision as sv

    async def main():
        spec = sv.Supervisor(
            [sv.process(f"p{i}", ["sleep", "1000"]) for i in range(5)]
            + [sv.process("keep", ["sleep", "1000"], pdeathsig=False)]
        )
        async with sv.start(spec) as tree:
            from supervision._process.reaper import spawner
            assert spawner().method == (os.environ.get("SUPERVISION_SPAWN_METHOD") or "helper")
            print(" ".join(f"{c.id}={c.pid}" for c in tree.which_children()), flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("method", ["helper", "preexec"])
def test_no_child_survives_the_supervisor_killed_hard(method: str) -> None:
    env = {**os.environ, "SUPERVISION_SPAWN_METHOD": method}
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert supervisor.stdout is not None
        line = supervisor.stdout.readline()
        pids = {id: int(pid) for id, pid in (item.split("=") for item in line.split())}
        assert len(pids) == 6
        for pid in pids.values():
            found = stat(pid)
            assert found is not None and found[1] == supervisor.pid
    finally:
        supervisor.kill()
        supervisor.wait()
    keep = pids.pop("keep")
    try:
        for id, pid in pids.items():
            assert wait_gone(pid, timeout=10), f"{id} (pid {pid}) survived its supervisor"
        found = stat(keep)  # pdeathsig=False: this one outlives the supervisor
        assert found is not None and found[0] not in ("Z", "X")
    finally:
        os.kill(keep, signal.SIGKILL)
        wait_gone(keep)
