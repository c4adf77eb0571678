"""Per-child figures from /proc: CPU, RSS, fds, threads, summed over the child's
process tree, checked against what /proc says of each process."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys

import supervision as sv
from supervision.observe.procstat import CLOCK_TICKS, Sampler, read_stat
from tests.process_helpers import NOTIFY, descendants, until

MIB = 1 << 20

# Allocates (and touches) 100 MiB, says it is ready, then burns CPU for ever.
HOG = (
    NOTIFY
    + """
import os
hog = bytearray(b"x" * (100 << 20))
notify("READY=1")
while True:
    pass
"""
)


def vm_rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    found = read_stat(pid)
    assert found is not None
    return found.cpu_ticks / CLOCK_TICKS


def within(value: float, expected: float, tolerance: float = 0.2) -> bool:
    return abs(value - expected) <= tolerance * expected


def pid_of(tree: sv.Tree, id: str) -> int:
    (info,) = [info for info in tree.which_children() if info.id == id]
    assert info.pid is not None
    return info.pid


async def test_cpu_and_rss_of_a_child_that_burns_cpu_and_allocates_100_mb() -> None:
    spec = sv.Supervisor([sv.process("hog", [sys.executable, "-c", HOG], ready=sv.ready.notify())])
    sampler = Sampler()
    async with sv.start(spec) as tree:
        pid = pid_of(tree, "hog")
        first = (await sampler.sample_async({"hog": pid}))["hog"]
        before = (cpu_seconds(pid), asyncio.get_running_loop().time())
        await asyncio.sleep(1.0)  # CPU % is over an interval of real time: let it burn
        usage = (await sampler.sample_async({"hog": pid}))["hog"]
        after = (cpu_seconds(pid), asyncio.get_running_loop().time())
        rss = vm_rss(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    assert first.processes == usage.processes == 1 and usage.pid == pid
    assert usage.rss_bytes >= 100 * MIB
    assert within(usage.rss_bytes, rss), (usage.rss_bytes, rss)
    assert within(usage.cpu_seconds, after[0]), (usage.cpu_seconds, after[0])
    percent = (after[0] - before[0]) / (after[1] - before[1]) * 100
    assert percent > 10, f"the hog did not get the CPU ({percent:.0f}%): the machine is too busy to check"
    assert within(usage.cpu_percent, percent), (usage.cpu_percent, percent)
    assert usage.threads == 1
    assert usage.fds >= 3  # stdin and the output pipes at least
    assert usage.fds == fds


async def test_grandchildren_and_orphans_of_the_session_are_counted() -> None:
    # The child (sh) runs a hog in the background and waits for it, and starts a
    # double-forked sleeper: an orphan that comes back to us, still in its session.
    burn = 'hog = bytearray(b"x" * (100 << 20))\nwhile True:\n    pass\n'
    script = f"{shlex.quote(sys.executable)} -c {shlex.quote(burn)} &\n( sleep 1000 & )\nwait\n"
    spec = sv.Supervisor([sv.process("family", ["sh", "-c", script])])
    sampler = Sampler()

    def session() -> list[int]:
        return sorted(p for p in descendants() if (s := read_stat(p)) is not None and s.session == pid)

    async with sv.start(spec) as tree:
        pid = pid_of(tree, "family")
        # sh, the hog (with its 100 MiB) and the sleeper; the subshell that forked it is gone
        await until(lambda: len(session()) == 3 and sum(map(vm_rss, session())) >= 100 * MIB, 30, "the family")
        members = session()
        orphans = [p for p in members if read_stat(p).ppid == os.getpid() and p != pid]  # type: ignore[union-attr]
        usage = (await sampler.sample_async({"family": pid}))["family"]
        expected_rss = sum(vm_rss(p) for p in members)
        expected_cpu = sum(cpu_seconds(p) for p in members)
    assert orphans, "the double-forked sleeper came back to us (subreaper)"
    assert usage.processes == len(members) == 3, (usage, members)
    assert usage.rss_bytes >= 100 * MIB
    assert within(usage.rss_bytes, expected_rss), (usage.rss_bytes, expected_rss)
    assert within(usage.cpu_seconds, expected_cpu), (usage.cpu_seconds, expected_cpu)
    assert usage.threads == len(members)


def test_a_process_that_is_gone_is_left_out() -> None:
    sampler = Sampler()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert sampler.sample({"gone": pid, "me": os.getpid()}).keys() == {"me"}


def test_first_reading_is_the_average_over_the_life_then_over_the_interval() -> None:
    now = [100.0]
    sampler = Sampler(clock=lambda: now[0], min_interval=0.5)
    me = os.getpid()
    first = sampler.sample({"me": me})["me"]
    assert first.cpu_percent >= 0
    now[0] += 10.0  # ten seconds later (by the injected clock), hardly any CPU used
    second = sampler.sample({"me": me})["me"]
    assert second.cpu_percent < 20
    assert second.cpu_seconds >= first.cpu_seconds
    now[0] += 10_000.0  # readings of incarnations not seen for long are forgotten
    sampler.sample({})
    assert not sampler._history
