"""Reload benchmark: change one child of a large tree, against restarting the whole tree.

    python bench/reload.py            # 10 000 workers, best of 5
    python bench/reload.py -n 1000    # smaller

A tree of N idle workers runs; the spec is changed so that exactly one worker
(in the middle) runs new code. Measured, best of --repeat:

(a) full restart: what a supervisor without hot reload does: build the spec,
    stop the whole tree (right to left), start the new one (left to right).
(b) tree.update(spec): build the spec, diff it against the running tree, apply
    it: one child stopped and started with its new function.
(c) tree.reload(): the tree was started from a module file; the file is edited
    (one worker's body), then re-imported, the builder called, the spec diffed
    and applied.
(d) the diff alone (the pure function), and building the spec alone (the
    builder, user code that both sides run), for the breakdown.

Building 10 000 validated child specs is user code that a full restart and a
reload both pay, so the table shows each operation with and without it; the
5 % target is checked on the supervisor's own work (spec given).

Each run checks that (b) and (c) restart exactly one child (ReloadApplied and
the start counts of all N children agree) and leave the N-1 others untouched.
The "supervision" logger is silenced, as in bench/inproc.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

MODULE = """
import asyncio
import supervision as sv

N = {n}

async def idle(ctx):
    await asyncio.get_running_loop().create_future()

async def special(ctx):
    await asyncio.get_running_loop().create_future()  # version {version}
    {extra}

def build():
    return sv.Supervisor([sv.child(f"w{{i}}", special if i == N // 2 else idle) for i in range(N)], intensity=10)
"""


async def idle(ctx: Any) -> None:
    await asyncio.get_running_loop().create_future()


async def changed(ctx: Any) -> None:  # new code: another body
    await asyncio.Event().wait()


def build(n: int, changed_one: bool) -> Any:
    import supervision as sv

    middle = n // 2
    return sv.Supervisor(
        [sv.child(f"w{i}", changed if changed_one and i == middle else idle) for i in range(n)], intensity=10
    )


def check_one_restart(tree: Any, applied: Any, n: int) -> int:
    """How many children restarted, from the event and from the start counts (they must agree)."""
    restarted = len(applied.restarted)
    counted = sum(1 for child in tree.which_children() if child.starts != 1)
    assert restarted == counted == 1, (applied, counted)
    assert applied.started == applied.stopped == () and len(tree.which_children()) == n
    return restarted


async def timed(operation: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await operation()
    return time.perf_counter() - began, result


async def full_restart(n: int) -> tuple[float, float]:
    """(with the build, without): build the spec, stop the tree, start the new one."""
    import supervision as sv

    tree = await sv.start(build(n, False))
    began = time.perf_counter()
    spec = build(n, True)
    built = time.perf_counter()
    await tree.stop()
    new_tree = await sv.start(spec)
    done = time.perf_counter()
    await new_tree.stop()
    return done - began, done - built


async def update(n: int) -> tuple[float, float, int]:
    """(with the build, without), and how many children restarted."""
    import supervision as sv

    tree = await sv.start(build(n, False))
    await asyncio.sleep(0)
    began = time.perf_counter()
    spec = build(n, True)
    built = time.perf_counter()
    applied = await tree.update(spec)
    done = time.perf_counter()
    restarted = check_one_restart(tree, applied, n)
    await tree.stop()
    return done - began, done - built, restarted


async def reload(n: int, directory: str, run: int) -> tuple[float, int]:
    import supervision as sv

    name = f"bench_reload_tree_{run}"
    path = os.path.join(directory, f"{name}.py")
    with open(path, "w") as file:
        file.write(MODULE.format(n=n, version=0, extra=""))
    tree = await sv.start(f"{name}:build")
    await asyncio.sleep(0)
    with open(path, "w") as file:
        file.write(MODULE.format(n=n, version=1, extra="print('new code')"))  # a new body for `special`
    elapsed, applied = await timed(tree.reload)
    restarted = check_one_restart(tree, applied, n)
    await tree.stop()
    sys.modules.pop(name, None)
    return elapsed, restarted


def build_alone(n: int) -> float:
    began = time.perf_counter()
    build(n, True)
    return time.perf_counter() - began


def diff_alone(n: int) -> float:
    from supervision._core.diff import diff

    old, new = build(n, False), build(n, True)
    began = time.perf_counter()
    plan = diff(old, new)
    elapsed = time.perf_counter() - began
    assert plan.changed == (f"w{n // 2}",) and not plan.added and not plan.removed
    return elapsed


async def main_async(n: int, repeat: int) -> bool:
    directory = tempfile.mkdtemp(prefix="bench-reload-")
    sys.path.insert(0, directory)
    best: dict[str, float] = {}
    restarts: dict[str, int] = {}

    def keep(key: str, value: float) -> None:
        best[key] = min(best.get(key, float("inf")), value)

    for run in range(repeat):
        with_build, without = await full_restart(n)
        keep("full", with_build)
        keep("full-given", without)
        with_build, without, restarts["update"] = await update(n)
        keep("update", with_build)
        keep("update-given", without)
        elapsed, restarts["reload"] = await reload(n, directory, run)
        keep("reload", elapsed)
        keep("diff", diff_alone(n))
        keep("build", build_alone(n))
    print(f"\nreload benchmark, {n:,} workers, one changed, best of {repeat}, Python {sys.version.split()[0]}\n")
    print("| operation | time | vs full restart | children restarted |")
    print("|---|---|---|---|")
    rows = [
        ("full restart: build the spec, stop all, start all", "full", "full", str(n)),
        ("tree.update(): build the spec, diff, apply", "update", "full", str(restarts["update"])),
        ("tree.reload(): re-import the file, build, diff, apply", "reload", "full", str(restarts["reload"])),
        ("full restart, spec given: stop all, start all", "full-given", "full-given", str(n)),
        ("tree.update(spec), spec given: diff, apply", "update-given", "full-given", str(restarts["update"])),
        ("  of which the diff (pure function)", "diff", "full-given", "-"),
        ("building the spec alone (the builder: user code)", "build", "full", "-"),
    ]
    for label, key, against, count in rows:
        value = best[key]
        print(f"| {label} | {value * 1e3:.1f} ms | {value / best[against] * 100:.1f} % | {count} |")
    met = best["update-given"] < 0.05 * best["full-given"]
    print(
        f"\nthe supervisor's own work (update, spec given) against a full restart (spec given): "
        f"{best['update-given'] / best['full-given'] * 100:.1f} % (target < 5 %: {'met' if met else 'MISSED'});"
        f"\nend to end, with the builder's {best['build'] * 1e3:.0f} ms of spec construction on both sides: "
        f"reload {best['reload'] / best['full'] * 100:.1f} %, update {best['update'] / best['full'] * 100:.1f} %."
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("supervision").setLevel(logging.CRITICAL)
    if not asyncio.run(main_async(args.n, args.repeat)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
