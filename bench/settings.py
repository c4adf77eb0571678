"""What process settings cost on the respawn path: spawn + exit + reap of a program,
through the exec helper, with no settings and with each kind of setting, against
the same settings applied in ``preexec_fn``.

    python bench/settings.py [--runs 400] [--program /bin/true]

Prints the median and p90 per spawn (microseconds), and the supervisor-side cost
of resolving the settings for a start (``_settings.prepare``: user lookup,
groups, environment files).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable

from supervision._core.settings import Settings
from supervision._process import helper as _helper
from supervision._process.settings import prepare, settings
from supervision._process.spawn import _elf


def _common() -> dict[str, object]:
    return {
        "cwd": None,
        "env": {"PATH": "/usr/bin:/bin"},
        "stdin": subprocess.DEVNULL,
        "stdout": None,
        "stderr": None,
        "start_new_session": True,
        "close_fds": True,
    }


def _time(spawn: Callable[[], int], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        os.waitpid(spawn(), 0)
        samples.append((time.perf_counter() - begin) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


def _old_helper() -> Callable[[list[str]], int] | None:
    """The spawner as it was before settings (if this tree still has it), for comparison."""
    from supervision._process import spawn as _spawn

    if not hasattr(_spawn, "_HELPER_X86_64"):
        return None
    spawner = _spawn.Spawner()

    def spawn(argv: list[str]) -> int:
        return spawner.spawn(argv, None, {"PATH": "/usr/bin:/bin"}, None, None, pdeathsig=True)

    return spawn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--program", default="/bin/true")
    args = parser.parse_args()
    fd = os.memfd_create("bench-helper", os.MFD_CLOEXEC)
    os.write(fd, _elf(_helper.HELPER_X86_64, 0x3E))
    helper = f"/proc/{os.getpid()}/fd/{fd}"
    parent = os.getpid()
    with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as env_file:
        env_file.write("".join(f'VAR_{i}="value {i}"\n' for i in range(20)))
    root = os.geteuid() == 0
    cases: dict[str, Settings] = {
        "none": Settings(),
        "umask": settings((), umask=0o027),
        "limits x3": settings((), limits={"nofile": 4096, "core": 0, "nproc": (512, 1024)}),
        "nice + oom_score_adj": settings((), nice=5, oom_score_adj=500),
        "env_file (20 vars)": settings((), env_file=env_file.name),
    }
    if root:
        cases["user nobody"] = settings((), user="nobody")
        cases["all of them"] = settings(
            (),
            user="nobody",
            umask=0o027,
            limits={"nofile": 4096, "core": 0, "nproc": (512, 1024)},
            nice=5,
            oom_score_adj=500,
            env_file=env_file.name,
        )
    argv = [args.program]
    old = _old_helper()
    if old is not None:
        median, p90 = _time(lambda: old(argv), args.runs)
        print(f"the previous helper (PR_SET_PDEATHSIG only): {median:.0f} / {p90:.0f} us")
    print(f"{args.runs} spawns of {args.program} each; median / p90 per spawn + exit + reap (us)")
    print(f"{'settings':24} {'helper':>18} {'preexec_fn':>18} {'prepare()':>10}")
    for name, given in cases.items():

        def via_helper(given: Settings = given) -> int:
            steps = prepare(given).steps  # resolved at each start, as the runtime does
            return _helper.spawn(helper, argv, args.program, _common(), parent=parent, steps=steps)

        def via_preexec(given: Settings = given) -> int:
            steps = prepare(given).steps
            return _helper.spawn_preexec(argv, _common(), parent=parent, steps=steps, prctl=None)

        begin = time.perf_counter()
        for _ in range(args.runs):
            prepare(given)
        cost = (time.perf_counter() - begin) / args.runs * 1e6
        h = _time(via_helper, args.runs)
        p = _time(via_preexec, args.runs)
        print(f"{name:24} {h[0]:8.0f} / {h[1]:6.0f}  {p[0]:8.0f} / {p[1]:6.0f}  {cost:9.1f}")
    os.unlink(env_file.name)


if __name__ == "__main__":
    main()
