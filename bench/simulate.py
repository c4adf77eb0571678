"""Crash events per second through the simulator (supervision.testing.simulate).

    python bench/simulate.py            # 100 000 crashes per scenario
    python bench/simulate.py --quick    # 10 000

Each scenario starts one tree in a ``Simulator`` (the real core on a virtual
clock, no asyncio) and applies N ``Crash`` steps to it; every crash is followed
by the restarts it calls for (a group restart stops and starts its whole group).
Intensity is high enough never to give up. The last line runs whole random
scenarios (a small tree, 30 steps of crashes, start failures, clock advances and
API calls) end to end, as a property test does. Best of --repeat.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import supervision as sv
from supervision.testing import (
    Advance,
    Crash,
    DeleteChild,
    FailNextStart,
    RestartChild,
    Simulator,
    Step,
    TerminateChild,
    simulate,
)

NEVER = 10**9  # intensity that never gives up


async def worker(ctx: sv.Context) -> None: ...


def flat(strategy: str, n: int, **settings: object) -> sv.Supervisor:
    children = [sv.child(f"w{i}", worker) for i in range(n)]
    return sv.Supervisor(children, strategy=strategy, intensity=NEVER, period=1.0, **settings)  # type: ignore[arg-type]


def nested(depth: int) -> sv.Supervisor:
    spec = flat("one_for_one", 3)
    for _ in range(depth - 1):
        spec = sv.Supervisor([sv.child("s", spec), sv.child("w", worker)], intensity=NEVER, period=1.0)
    return spec


SCENARIOS: list[tuple[str, Callable[[], sv.Supervisor], tuple[str, ...], bool]] = [
    # name, spec, path crashed, advance the clock after each crash (backoff)
    ("one_for_one, 1 child", lambda: flat("one_for_one", 1), ("w0",), False),
    ("one_for_one, 10 children", lambda: flat("one_for_one", 10), ("w5",), False),
    ("rest_for_one, 10 children (crash #5)", lambda: flat("rest_for_one", 10), ("w5",), False),
    ("one_for_all, 10 children", lambda: flat("one_for_all", 10), ("w5",), False),
    ("nested 4 deep, crash a leaf", lambda: nested(4), ("s", "s", "s", "w1"), False),
    (
        "one_for_one + backoff (advance each)",
        lambda: flat("one_for_one", 1, backoff=sv.Backoff(initial=0.5, maximum=1.0)),
        ("w0",),
        True,
    ),
]


def run_crashes(make: Callable[[], sv.Supervisor], path: tuple[str, ...], advance: bool, n: int) -> tuple[float, int]:
    simulator = Simulator(make())
    simulator.start()
    crash: Step = Crash(path)
    tick: Step = Advance(1.0)
    apply = simulator.apply
    begin = time.perf_counter()
    if advance:
        for _ in range(n):
            apply(crash)
            apply(tick)
    else:
        for _ in range(n):
            apply(crash)
    elapsed = time.perf_counter() - begin
    assert simulator.running
    return elapsed, len(simulator.events)


def random_scenarios(count: int, seed: int = 0) -> list[tuple[sv.Supervisor, list[Step]]]:
    """Small trees with 30-step schedules, drawn with ``random`` (not hypothesis,
    whose data generation would dominate the measurement)."""
    rng = random.Random(seed)
    scenarios = []
    for _ in range(count):
        inner = [sv.child(f"c{i}", worker, restart=rng.choice(list(sv.Restart))) for i in range(rng.randint(0, 3))]
        children = [sv.child(f"w{i}", worker, restart=rng.choice(list(sv.Restart))) for i in range(rng.randint(1, 4))]
        children.append(sv.child("s", sv.Supervisor(inner, strategy=rng.choice(list(sv.Strategy)), intensity=2)))
        spec = sv.Supervisor(children, strategy=rng.choice(list(sv.Strategy)), intensity=rng.randint(1, 5), period=5.0)
        paths = [(c.id,) for c in children] + [("s", c.id) for c in inner]
        schedule: list[Step] = []
        for _ in range(30):
            path = rng.choice(paths)
            kind = rng.random()
            if kind < 0.5:
                schedule.append(Crash(path))
            elif kind < 0.6:
                schedule.append(FailNextStart(path))
            elif kind < 0.8:
                schedule.append(Advance(rng.choice([0.0, 0.5, 1.0, 5.0])))
            elif kind < 0.9:
                schedule.append(TerminateChild(path))
            elif kind < 0.95:
                schedule.append(RestartChild(path))
            else:
                schedule.append(DeleteChild(path))
        scenarios.append((spec, schedule))
    return scenarios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 000 crashes per scenario instead of 100 000")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (default 3)")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000

    print(f"{'scenario':<40} {'crashes':>9} {'crashes/s':>11} {'events/s':>11} {'us/crash':>9}")
    print("-" * 84)
    for name, make, path, advance in SCENARIOS:
        elapsed, events = min(run_crashes(make, path, advance, n) for _ in range(args.repeat))
        print(f"{name:<40} {n:>9,} {n / elapsed:>11,.0f} {events / elapsed:>11,.0f} {elapsed / n * 1e6:>9.1f}")

    count = n // 100
    scenarios = random_scenarios(count)
    best = float("inf")
    events = 0
    for _ in range(args.repeat):
        begin = time.perf_counter()
        events = sum(len(simulate(spec, schedule)) for spec, schedule in scenarios)
        best = min(best, time.perf_counter() - begin)
    print("-" * 84)
    print(f"random scenarios (small trees, 30 steps each): {count:,} in {best:.2f}s")
    print(f"  {count / best:,.0f} scenarios/s, {events / best:,.0f} events/s")


if __name__ == "__main__":
    main()
