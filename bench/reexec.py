"""Re-exec benchmark: the handover of a tree of N OS children to a new image.

    python bench/reexec.py              # 100 children, 3 re-execs
    python bench/reexec.py -n 20 -r 5

A ``supervision run`` (a subprocess) runs N ``sleep`` children and one worker; it
is re-executed ``--repeat`` times through its control socket, as ``supervision
reexec`` does. Each re-exec is checked (the same N pids before and after, none
restarted) and timed:

- **request**: the whole ``reexec`` request, as the client sees it: the pre-exec
  check, stopping the worker, the exec, the new image's start-up, the re-adoption;
- **check**: the pre-exec check (a subprocess that imports the code on disk and
  builds the target);
- **start-up**: from just before ``execve`` to the new image reading its handover
  (interpreter start-up and imports);
- **handover**: from just before ``execve`` to every child re-adopted and the tree
  running again (the supervisor's monotonic clock, which the exec does not reset).

``measure(children)`` returns the numbers as a dict (``bench/run.py``, scenario 7).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from supervision._core.errors import NotRunning
from supervision._service.client import Client

APP = """
import asyncio
import supervision as sv

async def worker(ctx):
    ctx.save(ctx.state.set("boots", ctx.state.get("boots", 0) + 1))
    await asyncio.Event().wait()

def build():
    return sv.Supervisor(
        [sv.child("worker", worker), *[sv.process(f"s{{i}}", ["sleep", "1000"]) for i in range({n})]]
    )
"""

DEADLINE = 60.0


def _wait_running(control: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"supervision run exited with {proc.returncode}")
        try:
            with Client(control, timeout=DEADLINE) as client:
                if client.call("ping")["state"] == "running":
                    return
        except (NotRunning, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the tree did not start")
        time.sleep(0.01)


def _pids(control: str) -> dict[str, int | None]:
    with Client(control, timeout=DEADLINE) as client:
        return {node["path"]: node["pid"] for node in client.call("status")["children"]}


def measure(children: int = 100, repeat: int = 3) -> dict[str, Any]:
    """Re-exec a tree of ``children`` OS processes ``repeat`` times; the timings in
    seconds (lists, one entry per re-exec), and how many children kept their pid."""
    tmp = Path(tempfile.mkdtemp(prefix="sv-bench-reexec-"))
    control = str(tmp / "sv.sock")
    (tmp / "app.py").write_text(APP.format(n=children))
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    argv = [sys.executable, "-m", "supervision", "run", "app.py", "--control", control]
    found: dict[str, Any] = {"children": children, "request": [], "check": [], "startup": [], "handover": []}
    kept = children
    with open(tmp / "run.err", "wb") as err:
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        _wait_running(control, proc)
        for _ in range(repeat):
            before = _pids(control)
            began = time.perf_counter()
            with Client(control, timeout=DEADLINE) as client:
                result = client.call("reexec")
            found["request"].append(time.perf_counter() - began)
            found["check"].append(result["check_ms"] / 1e3)
            found["startup"].append(result["startup_ms"] / 1e3)
            found["handover"].append(result["handover_ms"] / 1e3)
            after = _pids(control)
            same = sum(1 for path, pid in before.items() if pid is not None and after.get(path) == pid)
            kept = min(kept, same)
            if len(result["adopted"]) != children:
                raise RuntimeError(f"adopted {len(result['adopted'])} of {children} children")
    finally:
        proc.terminate()
        try:
            proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    found["kept"] = kept
    found["handover_ms"] = statistics.median(found["handover"]) * 1e3
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--children", type=int, default=100, help="OS children (default 100)")
    parser.add_argument("-r", "--repeat", type=int, default=3, help="re-execs (default 3)")
    args = parser.parse_args()
    found = measure(args.children, args.repeat)
    python = sys.version.split()[0]
    print(f"\nre-exec benchmark, {args.children} OS children, {args.repeat} re-execs, Python {python}\n")
    print("| phase | best | median |")
    print("|---|---|---|")
    for key, label in (
        ("request", "whole `reexec` request (client)"),
        ("check", "pre-exec check (subprocess)"),
        ("startup", "exec → new image reads the handover"),
        ("handover", "exec → all children re-adopted"),
    ):
        values = found[key]
        print(f"| {label} | {min(values) * 1e3:.0f} ms | {statistics.median(values) * 1e3:.0f} ms |")
    print(f"\n{found['kept']} of {args.children} children kept their pid through every re-exec.")


if __name__ == "__main__":
    main()
