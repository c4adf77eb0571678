"""The tree as PID 1 of a new PID namespace (the container case of docs/deploy.md):
orphaned zombies of any origin are reaped, SIGTERM stops everything, and the exit
status is right."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.cli_helpers import DEADLINE, PY, ping, wait_until
from tests.process_helpers import alive, children, descendants, stat

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 and not os.environ.get("CI"), reason="a PID namespace needs root (CI runs as root)"
    ),
    pytest.mark.skipif(
        (shutil.which("unshare") is None or shutil.which("nsenter") is None) and not os.environ.get("CI"),
        reason="needs unshare and nsenter (util-linux)",
    ),
]

APP = """
    import asyncio, subprocess
    import supervision as sv

    async def orphaner(ctx):
        # Code of the supervisor's own process leaves an orphan in its session.
        subprocess.run(["sh", "-c", "sleep 0.2 & exit 0"], check=True)
        await asyncio.Event().wait()

    def build():
        return sv.Supervisor([
            sv.child("orphaner", orphaner),
            # A daemon in a session of its own that exits on its own, later.
            sv.process("daemonizer", ["sh", "-c", "setsid -f sh -c 'sleep 0.2'; exec sleep 1000"]),
            # A background job left by a child that exits (ended with it).
            sv.process("leaver", ["sh", "-c", "sleep 1000 & exit 0"], restart="temporary"),
            sv.process("steady", ["sleep", "1000"]),
        ])
"""


def _pid_1(outer: int) -> int | None:
    """The supervisor, once the child of ``unshare`` has executed it (as PID 1)."""
    for pid in children(outer):
        try:
            with open(f"/proc/{pid}/status") as status, open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                nspid = status.read().split("NSpid:")[1].split("\n")[0].split()
                if b"supervision" in cmdline.read() and nspid[-1] == "1":
                    return pid
        except (OSError, IndexError):
            pass
    return None


def _zombies(pid: int) -> list[int]:
    return [p for p in children(pid) if (found := stat(p)) is not None and found[0] == "Z"]


def _sleepers(pid: int) -> list[int]:
    """Descendants of ``pid`` that run ``sleep 0.2`` (the orphans to be)."""
    found = []
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as file:
                if file.read() == b"sleep\x000.2\x00":
                    found.append(p)
        except OSError:
            pass
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_tree_as_pid_1_reaps_every_orphan_and_stops_on_a_signal(tmp_path: Path, signum: int) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    control = str(tmp_path / "tree.sock")
    argv = ["unshare", "--pid", "--fork", "--mount-proc", PY, "-m", "supervision", "run", "app.py"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    with open(tmp_path / "run.err", "wb") as err:
        outer = subprocess.Popen([*argv, "--control", control], cwd=tmp_path, env=env, stdout=err, stderr=err)
    try:
        root = wait_until(lambda: _pid_1(outer.pid), "the supervisor as PID 1 of the namespace")
        wait_until(lambda: (found := ping(control)) is not None and found["state"] == "running", "the tree")
        # One more origin: a process entered from outside the namespace leaves an orphan.
        nsenter = ["nsenter", "-t", str(root), "-p", "-m", "sh", "-c", "sleep 0.2 & exit 0"]
        subprocess.run(nsenter, check=True, timeout=DEADLINE)
        # The orphans exit, are re-parented to PID 1 and must be reaped there.
        wait_until(lambda: not _sleepers(root), "the orphans to exit")
        wait_until(lambda: not _zombies(root), "PID 1 to reap every zombie", timeout=10)
        assert not any(path_of_leaver_alive(root))
        before = set(descendants(root))
        began = time.monotonic()
        os.kill(root, signum)
        status = outer.wait(DEADLINE)
        took = time.monotonic() - began
        assert status == 0, (tmp_path / "run.err").read_text()
        assert took < 2.0, f"stopped after {took:.2f}s"
        assert not any(alive(p) for p in before)
        assert not _zombies(os.getpid())
    finally:
        if outer.poll() is None:
            for p in descendants(outer.pid):
                os.kill(p, signal.SIGKILL)
            outer.kill()
            outer.wait()


def path_of_leaver_alive(root: int) -> list[int]:
    """``sleep 1000`` processes left by the leaver (ended with it at its exit)."""
    found = []
    for p in children(root):
        found_stat = stat(p)
        try:
            with open(f"/proc/{p}/cmdline", "rb") as file:
                cmd = file.read()
        except OSError:
            continue
        if cmd == b"sleep\x001000\x00" and found_stat is not None and found_stat[3] != p:
            found.append(p)
    return found
