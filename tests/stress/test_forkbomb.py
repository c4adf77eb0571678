"""A fork bomb inside a child, bounded by ``RLIMIT_NPROC`` (for an unprivileged uid of
its own: the limit does not hold for root): the daemon stays in control, stops on
SIGTERM, and leaves no process of the bomb and no zombie."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.cli_helpers import Run, ping, wait_until
from tests.process_helpers import alive

from .common import assert_nothing_left, kill_if_running, stop_timed

pytestmark = pytest.mark.slow

UID = 54_321  # no user of this machine: RLIMIT_NPROC counts the processes of the uid
NPROC = 64
# Every process forks for ever, and naps 10 ms when the limit refuses.
BOMB = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n"
PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")


def _bomb_processes() -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == UID:
                    found.append(int(name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"), reason="needs root to run the bomb as uid 54321")
@pytest.mark.skipif(
    (PYTHON is None or shutil.which("setpriv") is None) and not os.environ.get("CI"),
    reason="needs a python3 outside /root and setpriv (util-linux)",
)
def test_a_fork_bomb_in_a_child_is_contained_and_cleaned_up(tmp_path: Path) -> None:
    assert not _bomb_processes(), "processes of the bomb's uid exist already"
    argv = ["prlimit", f"--nproc={NPROC}", "setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups"]
    argv += ["--", PYTHON, "-c", BOMB]
    (tmp_path / "app.py").write_text(
        "import supervision as sv\n"
        "def build():\n"
        f"    bomb = sv.process('bomb', {argv!r}, cwd='/', shutdown=1.0)\n"
        "    return sv.Supervisor([bomb, sv.process('calm', ['sleep', '1000'])])\n"
    )
    run = Run(tmp_path, str(tmp_path / "app.py"))
    try:
        run.wait_running()
        wait_until(lambda: len(_bomb_processes()) >= NPROC // 2, "the bomb to go off")
        assert len(_bomb_processes()) <= NPROC  # bounded by the limit
        assert ping(run.control) is not None
        before = run.pids()
        took = stop_timed(run, "SIGTERM")
        assert took < 5.0, f"stopped after {took:.2f}s"
        assert_nothing_left(run, before)
        wait_until(lambda: not any(alive(pid) for pid in _bomb_processes()), "the bomb to be gone", timeout=10)
    finally:
        kill_if_running(run)
        for pid in _bomb_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
