"""Shared machinery of the stress scenarios: a ``supervision run`` daemon on a
crash storm, and the checks that nothing was lost and nothing is left (/proc)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

from tests.cli_helpers import PY, Run, wait_until
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


class BlockedRun(Run):
    """A ``supervision run`` whose stdout or stderr is a pipe nobody reads (until
    :meth:`read_blocked` at the end)."""

    def __init__(self, tmp: Path, target: str, *, blocked: str) -> None:
        self.tmp = tmp
        self.name = None
        self.control = str(tmp / "control" / "tree.sock")
        self.env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        self.env["XDG_RUNTIME_DIR"] = str(tmp / "xdg")
        self.out_path = tmp / "run.out"
        self.err_path = tmp / "run.err"
        argv = [PY, "-m", "supervision", "run", target, "--control", self.control]
        self.read_end, write_end = os.pipe()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            streams = {"stdout": out.fileno(), "stderr": err.fileno(), blocked: write_end}
            self.proc = subprocess.Popen(
                argv, cwd=tmp, env=self.env, stdout=streams["stdout"], stderr=streams["stderr"]
            )
        os.close(write_end)

    def pipe_is_full(self) -> bool:
        """True once the pipe holds as much as it can (nothing can be written)."""
        import fcntl
        import termios

        held = bytearray(4)
        fcntl.ioctl(self.read_end, termios.FIONREAD, held)
        return int.from_bytes(held, "little") > 65536 - 4096  # full but for a part of a page

    def read_blocked(self) -> bytes:
        """Everything in the pipe, once the daemon has exited."""
        chunks = []
        while data := os.read(self.read_end, 1 << 20):
            chunks.append(data)
        os.close(self.read_end)
        return b"".join(chunks)
