"""Benchmark of observability: what ``--http`` costs an idle tree, and what a scrape costs.

    python bench/observe.py                     # idle over 10 s, 1 000 children for the scrape
    python bench/observe.py --idle-seconds 30 --children 1000 --scrapes 20

Rows:
- idle wake-ups: ``supervision run --http`` with 100 idle ``sleep`` children, the
  times its threads were scheduled in (``/proc/PID/task/*/schedstat``) and the CPU
  it used over the window, with no client connected: nothing polls, so 0/s;
  the same tree without ``--http`` alongside, for reference;
- a scrape: ``GET /metrics`` of a tree of 1 000 ``sleep`` children, from another
  process (as Prometheus would), best and median of ``--scrapes``; and the same
  for ``GET /api/tree``. The first scrape (nothing formatted yet) is shown apart.

On the development machine (2 vCPUs shared with other work, Linux 6.18, Python 3.11):

    python 3.11.7, 2 CPUs, load 1.4
    idle, 100 children, --http       0.0 wake-ups/s, 0.000 ms CPU/s   (without --http: 0.0 wake-ups/s)
    GET /metrics, 1000 children      best 30 ms, median 32 ms   (first: 70 ms)
    GET /api/tree, 1000 children     best 25 ms, median 34 ms

Under a load of 3 to 6 from other work the scrapes take two to three times as long.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

APP = """
import supervision as sv

def build():
    return sv.Supervisor([sv.process(f"s{{i}}", ["sleep", "100000"], output="inherit") for i in range({n})])
"""


def schedstat(pid: int) -> tuple[int, int]:
    """CPU time (ns) and times scheduled in, summed over the threads of ``pid``."""
    cpu = slices = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/schedstat") as file:
            fields = file.read().split()
            cpu += int(fields[0])
            slices += int(fields[2])
    return cpu, slices


def call(control: str, cmd: str) -> dict[str, object]:
    from supervision._service.client import Client

    with Client(control, timeout=30) as client:
        result: dict[str, object] = client.call(cmd)
        return result


@contextlib.contextmanager
def tree(children: int, http: bool, name: str) -> Iterator[tuple[subprocess.Popen[bytes], str, str | None]]:
    """``supervision run`` of ``children`` sleeps; yields the process, its socket and its URL."""
    with tempfile.TemporaryDirectory(prefix="bench-observe-") as tmp:
        with open(os.path.join(tmp, "app.py"), "w") as file:
            file.write(APP.format(n=children))
        control = os.path.join(tmp, "tree.sock")
        argv = [sys.executable, "-m", "supervision", "run", "app.py", "--control", control, "--name", name]
        if http:
            argv += ["--http", "127.0.0.1:0"]
        proc = subprocess.Popen(argv, cwd=tmp, stderr=subprocess.DEVNULL, preexec_fn=_more_files)
        try:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(Exception):
                    found = call(control, "ping")
                    if found["state"] == "running":
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"the tree of {children} children did not come up")
                time.sleep(0.1)
            url = found.get("http")
            yield proc, control, str(url) if url else None
        finally:
            proc.terminate()
            proc.wait(120)


def _more_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def idle(seconds: float) -> None:
    with tree(100, True, "idle-http") as (observed, _, _), tree(100, False, "idle-plain") as (plain, _, _):
        time.sleep(1.0)  # let both settle
        before = {proc.pid: schedstat(proc.pid) for proc in (observed, plain)}
        time.sleep(seconds)
        after = {proc.pid: schedstat(proc.pid) for proc in (observed, plain)}
    woke = {pid: (after[pid][1] - before[pid][1]) / seconds for pid in before}
    cpu = (after[observed.pid][0] - before[observed.pid][0]) / 1e6 / seconds
    print(
        f"{'idle, 100 children, --http':32} {woke[observed.pid]:.1f} wake-ups/s, {cpu:.3f} ms CPU/s"
        f"   (without --http: {woke[plain.pid]:.1f} wake-ups/s)"
    )


def scrape(children: int, scrapes: int) -> None:
    with tree(children, True, "scrape") as (_, _, url):
        assert url is not None
        # The client is another process, as Prometheus is: it shares no interpreter with the tree.
        code = f"""
import json, sys, time, urllib.request
times = {{}}
for route in ("metrics", "api/tree"):
    found = []
    for _ in range({scrapes}):
        began = time.perf_counter()
        with urllib.request.urlopen({url!r} + route) as response:
            response.read()
        found.append(time.perf_counter() - began)
    times[route] = found
print(json.dumps(times))
"""
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    times = json.loads(done.stdout)
    for route, found in times.items():
        rest = found[1:]
        first = f"   (first: {found[0] * 1e3:.0f} ms)" if route == "metrics" else ""
        print(
            f"{'GET /' + route + f', {children} children':32} best {min(rest) * 1e3:.0f} ms, "
            f"median {statistics.median(rest) * 1e3:.0f} ms{first}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="idle measuring window")
    parser.add_argument("--children", type=int, default=1000, help="children of the scraped tree")
    parser.add_argument("--scrapes", type=int, default=11, help="scrapes per route (the first is shown apart)")
    options = parser.parse_args()
    _more_files()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    idle(options.idle_seconds)
    scrape(options.children, max(2, options.scrapes))


if __name__ == "__main__":
    main()
