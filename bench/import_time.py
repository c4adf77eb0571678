"""What it costs to start Python with supervision: ``import supervision`` and ``supervision status``.

    python bench/import_time.py                # 30 rounds, a table on stdout
    python bench/import_time.py --rounds 5 --json

Side by side, in one run, alternating every round so that the machine's load falls on
all of them alike, each a fresh interpreter timed from outside (wall clock of the whole
process, as a user or a script waits for it):

- ``bare``:   ``python -c pass`` (the interpreter's own start, for reference);
- ``floor``:  ``python -c "import asyncio, pyrsistent"`` (what any asyncio program with
  supervision's one dependency pays);
- ``import``: ``python -c "import supervision"``;
- ``runtime``: ``python -c "import supervision as sv; sv.start, sv.run, sv.process"``
  (what a program that runs a tree loads; for reference, no goal);
- ``status``: ``supervision status`` against a running tree (three workers, one OS process,
  one nested supervisor) served by ``supervision run`` on a control socket in a
  temporary directory.

Goals (issue 13): ``import`` at most 1.3x the floor, ``status`` at most 1.5x the floor,
both on the medians. The report gives the median, the minimum and the ratios; ``--json``
prints the numbers for scripts. Before each measurement every command runs once, so
``.pyc`` files are written and the page cache is warm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GOALS = {"import": 1.3, "status": 1.5}
"""The largest ratio to the floor each command may have (its median to the floor's)."""

TREE = textwrap.dedent(
    """
    import asyncio
    import supervision as sv

    async def work(ctx):
        await asyncio.Event().wait()

    def build():
        return sv.Supervisor([
            sv.child("a", work),
            sv.child("b", work),
            sv.process("sleeper", ["sleep", "1000"]),
            sv.child("nested", sv.Supervisor([sv.child("c", work)])),
        ])
    """
)


def status_command(python: str) -> list[str]:
    """``supervision status``: the console script next to ``python`` if there is one (what a
    user runs), else ``python -m supervision``."""
    script = Path(python).parent / "supervision"
    if script.exists():
        return [str(script), "status"]
    return [python, "-m", "supervision", "status"]


def _ping(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(path)
            sock.sendall(b'{"v": 1, "id": 1, "cmd": "ping"}\n')
            return b'"ok":true' in sock.recv(65536)
    except OSError:
        return False


@contextmanager
def running_tree(python: str, directory: Path, timeout: float = 30.0) -> Iterator[str]:
    """``supervision run`` of a small tree; yields its control socket's path."""
    (directory / "benchtree.py").write_text(TREE)
    control = str(directory / "bench.sock")
    log = open(directory / "run.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [python, "-m", "supervision", "run", "benchtree.py:build", "--control", control],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while not _ping(control):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(f"the tree did not start:\n{(directory / 'run.log').read_text()}")
            time.sleep(0.05)
        yield control
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _time(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - began


def measure(rounds: int, python: str = sys.executable) -> dict[str, Any]:
    """Run the four commands ``rounds`` times each, interleaved; the samples in seconds."""
    with tempfile.TemporaryDirectory(prefix="supervision-bench-") as raw:
        directory = Path(raw)
        with running_tree(python, directory) as control:
            commands = {
                "bare": [python, "-c", "pass"],
                "floor": [python, "-c", "import asyncio, pyrsistent"],
                "import": [python, "-c", "import supervision"],
                "runtime": [python, "-c", "import supervision as sv; sv.start, sv.run, sv.process"],
                "status": [*status_command(python), "--control", control],
            }
            env = {
                k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME")
            }
            for argv in commands.values():  # warm up: .pyc files written, page cache filled
                _time(argv, env)
            samples: dict[str, list[float]] = {name: [] for name in commands}
            names = list(commands)
            for round_ in range(rounds):
                shift = round_ % len(names)  # rotate the order: no command always runs first
                for name in names[shift:] + names[:shift]:
                    samples[name].append(_time(commands[name], env))
    return {
        "python": python,
        "rounds": rounds,
        "commands": {k: " ".join(v) for k, v in commands.items()},
        "samples": samples,
    }


def summarise(measured: dict[str, Any]) -> dict[str, Any]:
    """Medians, minima, ratios to the floor, and whether each goal is met."""
    samples: dict[str, list[float]] = measured["samples"]
    medians = {name: statistics.median(values) for name, values in samples.items()}
    minima = {name: min(values) for name, values in samples.items()}
    floor = medians["floor"]
    ratios = {name: medians[name] / floor for name in medians}
    goals = {
        name: {"ratio": round(ratios[name], 3), "goal": limit, "met": ratios[name] <= limit}
        for name, limit in GOALS.items()
    }
    return {
        "median_ms": {k: round(v * 1000, 2) for k, v in medians.items()},
        "min_ms": {k: round(v * 1000, 2) for k, v in minima.items()},
        "ratio_to_floor": {k: round(v, 3) for k, v in ratios.items()},
        "goals": goals,
    }


def table(measured: dict[str, Any], summary: dict[str, Any]) -> str:
    lines = [
        f"{measured['rounds']} rounds, interleaved; {measured['python']}",
        "",
        f"{'command':8}  {'median':>9}  {'min':>9}  {'x floor':>7}  goal",
    ]
    for name in measured["commands"]:
        goal = summary["goals"].get(name)
        verdict = ""
        if goal is not None:
            verdict = f"<= {goal['goal']}x: {'met' if goal['met'] else 'MISSED'}"
        lines.append(
            f"{name:8}  {summary['median_ms'][name]:7.1f}ms  {summary['min_ms'][name]:7.1f}ms"
            f"  {summary['ratio_to_floor'][name]:7.2f}  {verdict}"
        )
    lines += ["", *(f"  {name}: {command}" for name, command in measured["commands"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="samples per command (default 30)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    args = parser.parse_args(argv)
    if shutil.which("sleep") is None:
        parser.error("needs 'sleep' on PATH (the tree's OS process)")
    measured = measure(args.rounds, args.python)
    summary = summarise(measured)
    if args.json:
        print(json.dumps({**measured, **summary}, indent=2))
    else:
        print(table(measured, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
