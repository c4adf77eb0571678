"""Shared machinery of the stress scenarios: a ``supervision run`` daemon on a
crash storm, and the checks that nothing was lost and nothing is left (/proc)."""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import time
from pathlib import Path

from tests.cli_helpers import Run, wait_until
from tests.process_helpers import alive, children, descendants, stat

STORM = 40


def storm_tree(tmp: Path, count: int = STORM, *, extra: str = "") -> str:
    """A file target: ``count`` process children that exit at once, restarted for
    ever (huge intensity, no backoff). ``extra`` is more children (Python source)."""
    source = f"""
        import supervision as sv

        def build():
            crashing = [
                sv.process(f"c{{i:02}}", ["sh", "-c", "exit 1"], shutdown=1.0)
                for i in range({count})
            ]
            return sv.Supervisor([*crashing, {extra}], intensity=10**9, period=1.0)
    """
    path = tmp / "storm.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def restarts(run: Run) -> int:
    total: int = sum(node.get("restarts", 0) for node in run.nodes().values())
    return total


def wait_storming(run: Run, at_least: int = 200) -> int:
    """Wait until the children have been restarted ``at_least`` times in all."""
    run.wait_running()
    found: int = wait_until(lambda: (n := restarts(run)) >= at_least and n, f"{at_least} restarts")
    return found


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def zombies_of(pid: int) -> list[int]:
    return [p for p in children(pid) if (found := stat(p)) is not None and found[0] == "Z"]


def stop_timed(run: Run, how: str) -> float:
    """Stop the daemon by ``how`` (``SIGTERM``, ``SIGINT`` or ``stop``); the seconds
    from the request to its exit. Its exit status must be 0."""
    began = time.monotonic()
    if how == "stop":
        run.cli("stop", "--no-wait")
    else:
        run.signal(getattr(signal, how))
    status = run.wait_exit(timeout=30)
    took = time.monotonic() - began
    assert status == 0, (how, status, run.stderr[-4000:])
    return took


def assert_nothing_left(run: Run, before: set[int]) -> None:
    """The daemon is gone and so is every process it ever had that we saw, and it
    left no zombie behind under us."""
    assert run.proc.poll() is not None
    wait_until(lambda: not any(alive(p) for p in before), "the daemon's processes to be gone", timeout=10)
    assert not zombies_of(os.getpid()), zombies_of(os.getpid())
    assert "Exception ignored" not in run.stderr, run.stderr[-4000:]


def kill_if_running(run: Run) -> None:
    """A failed test must not leave the daemon storming (SIGKILL: it may be deaf)."""
    if run.proc.poll() is None:
        left = set(descendants(run.proc.pid))
        run.proc.kill()
        run.proc.wait()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
