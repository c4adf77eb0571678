"""What one spawn of an OS child costs, by the way it is made: a micro-benchmark.

    python bench/spawn_methods.py                  # 40 rounds of 50 cycles per method
    python bench/spawn_methods.py --rounds 100 --cycles 50 --program /bin/true

Each cycle spawns ``--program`` (new session), waits for its exit and reaps it
(``waitpid``). The methods run interleaved, one batch of ``--cycles`` each per round
in a rotating order, so a change in the machine's load hits all alike; the table gives
the median over rounds of the mean per cycle, and the median of each round's ratio
to raw ``os.posix_spawn`` (paired: the same round, the same load):

- ``wall``: spawn + exit + reap, per cycle;
- ``blocked``: the time the supervisor spends in the spawn call itself (it cannot
  run its event loop meanwhile): for the exec helper, until the target is exec'd;
- ``CPU self`` / ``children``: CPU time of the supervisor, and of the children (the
  helper and the program), per cycle (``getrusage``): what load does not inflate much.

Methods:

- ``posix_spawn``: raw ``os.posix_spawn`` (the floor: no pdeathsig, no stdin, no fd hygiene);
- ``posix_spawn+actions``: the same with stdin ``/dev/null`` and the signals ``Popen``
  restores (``setsigdef``): the least a correct spawn without the helper does;
- ``Popen vfork``: ``subprocess.Popen`` (stdin ``/dev/null``, ``close_fds``, new session):
  supervision's ``pdeathsig=False`` path before;
- ``helper via Popen``: the exec helper started by ``Popen`` (``pass_fds``): supervision
  with ``PR_SET_PDEATHSIG`` before, its fallback now;
- ``helper via posix_spawn``: the exec helper started by ``os.posix_spawn`` (file
  actions, ``close_range`` in the helper), pdeathsig on (``... no pdeathsig``: off):
  the candidate for the fallback, not taken (it needs ``close_range``, Linux 5.9);
- ``helper, no error pipe``: as the previous, without the error pipe or its read: a
  failed exec would go unreported (not correct; it shows what the pipe costs);
- ``in-process vfork``: ``Spawner.spawn`` as supervision runs it now: the helper's code
  run in this process by ``clone(CLONE_VM|CLONE_VFORK)``, pdeathsig on (``... no
  pdeathsig``: off, supervision's ``pdeathsig=False`` path);
- ``preexec_fn``: ``Popen`` + ``preexec_fn`` with a ctypes ``prctl`` (the fallback).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from supervision._process import helper as _helper
from supervision._process.spawn import Spawner


def methods(program: str) -> dict[str, Callable[[], int]]:
    """Each method: a function that spawns ``program`` and returns its pid."""
    env = dict(os.environb)
    argv = [program]
    spawner = Spawner()
    assert spawner.method == "vfork", "the exec helper is unavailable here"
    parent = os.getpid()
    helper = f"/proc/{parent}/fd/{spawner._helper_fd}"
    devnull = os.devnull
    restored = _helper.RESTORED_SIGNALS
    libc = ctypes.CDLL(None, use_errno=True)

    def raw() -> int:
        return os.posix_spawn(program, argv, env, setsid=True)

    def raw_actions() -> int:
        actions = [(os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0)]
        return os.posix_spawn(program, argv, env, file_actions=actions, setsid=True, setsigdef=restored)

    def popen() -> int:
        child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        child.returncode = 0  # reaped by us
        return child.pid

    def helper_popen() -> int:  # the spawn of the exec helper before: Popen, pass_fds
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                child = subprocess.Popen(
                    [helper, str(parent), str(write_end), _helper.EMPTY, program, *argv],
                    executable=helper,
                    pass_fds=(write_end,),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    close_fds=True,
                )
            finally:
                os.close(write_end)
            child.returncode = 0
            assert not os.read(read_end, _helper.REPORT.size)
        finally:
            os.close(read_end)
        return child.pid

    closing, _ = _helper.encode([_helper.CloseFrom(4)])

    def helper_posix(boss: int) -> Callable[[], int]:
        def spawn() -> int:  # /dev/null at 0, the error pipe at 3 by file actions; close_range
            read_end, write_end = _helper._pipe(4)
            try:
                try:
                    actions = [(os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDWR, 0), (os.POSIX_SPAWN_DUP2, write_end, 3)]
                    pid = os.posix_spawn(
                        helper,
                        [helper, str(boss), "3", closing, program, *argv],
                        env,
                        file_actions=actions,
                        setsid=True,
                        setsigdef=restored,
                    )
                finally:
                    os.close(write_end)
                assert not os.read(read_end, _helper.REPORT.size)
            finally:
                os.close(read_end)
            return pid

        return spawn

    def vfork(pdeathsig: bool) -> Callable[[], int]:
        return lambda: spawner.spawn(argv, None, env, None, None, pdeathsig=pdeathsig, method="vfork")

    def helper_no_pipe() -> int:  # ERRFD 9999: nothing open there, nothing to read
        program_hex, _ = _helper.encode([_helper.CloseFrom(3)])
        actions = [(os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0)]
        return os.posix_spawn(
            helper,
            [helper, str(parent), "9999", program_hex, program, *argv],
            env,
            file_actions=actions,
            setsid=True,
            setsigdef=restored,
        )

    def preexec() -> int:
        def in_child() -> None:
            libc.prctl(1, 9, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(1)

        child = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True, preexec_fn=in_child
        )
        child.returncode = 0
        return child.pid

    return {
        "posix_spawn": raw,
        "posix_spawn+actions": raw_actions,
        "Popen vfork": popen,
        "helper via Popen": helper_popen,
        "helper via posix_spawn": helper_posix(parent),
        "... no pdeathsig": helper_posix(0),
        "helper, no error pipe": helper_no_pipe,
        "in-process vfork": vfork(True),
        "... no pdeathsig ": vfork(False),
        "preexec_fn": preexec,
    }


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def batch(spawn: Callable[[], int], cycles: int) -> tuple[float, float, float, float]:
    """Per cycle, in seconds: mean wall time, time blocked in ``spawn``, CPU time of
    this process and of the children (the helper's and the program's)."""
    clock = time.perf_counter
    blocked = 0.0
    cpu, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    began = clock()
    for _ in range(cycles):
        before = clock()
        pid = spawn()
        blocked += clock() - before
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
    wall = clock() - began
    cpu, children = _cpu(resource.RUSAGE_SELF) - cpu, _cpu(resource.RUSAGE_CHILDREN) - children
    return wall / cycles, blocked / cycles, cpu / cycles, children / cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--cycles", type=int, default=50, help="spawns per method per round")
    parser.add_argument("--program", default="/bin/true")
    parser.add_argument("--only", help="comma-separated method names (posix_spawn is always run)")
    options = parser.parse_args()
    chosen = methods(options.program)
    if options.only:
        keep = {"posix_spawn", *options.only.split(",")}
        chosen = {name: spawn for name, spawn in chosen.items() if name in keep}
    names = list(chosen)
    for spawn in chosen.values():  # warm up: imports, caches, the page cache
        batch(spawn, 20)
    samples: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in names}
    for round_ in range(options.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(batch(chosen[name], options.cycles))
    floor = samples["posix_spawn"]
    print(
        f"python {platform.python_version()}, {platform.libc_ver()[0]} {platform.libc_ver()[1]}, "
        f"Linux {platform.release()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {options.program}, "
        f"{options.rounds} rounds x {options.cycles} cycles, interleaved"
    )
    print("medians over rounds, us per cycle; ratio: the median of each round's ratio to posix_spawn's wall time")
    print(f"{'method':24} {'wall':>7} {'ratio':>6} {'p25-p75':>11} {'blocked':>8} {'CPU self':>9} {'children':>9}")
    for name in names:
        walls = [sample[0] for sample in samples[name]]
        ratios = [sample[0] / base[0] for sample, base in zip(samples[name], floor, strict=True)]
        low, _, high = statistics.quantiles(walls, n=4) if len(walls) > 1 else (walls[0],) * 3
        wall, blocked, cpu, children = (statistics.median(column) * 1e6 for column in zip(*samples[name], strict=True))
        print(
            f"{name:24} {wall:7.0f} {statistics.median(ratios):5.2f}x {low * 1e6:5.0f}-{high * 1e6:<5.0f} "
            f"{blocked:8.0f} {cpu:9.0f} {children:9.0f}"
        )


if __name__ == "__main__":
    main()
