"""A storm of SIGCHLDs cannot make the supervisor lose a SIGTERM.

asyncio learns which signal came from one byte per delivery on its wakeup socket,
which holds a few hundred: the bytes past that are dropped (and each drop printed
on stderr). The supervisor's own handlers are scheduled from the signal's
Python-level handler instead (``supervision._process.signals``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from supervision._process.signals import add_signal_handler, quiet_wakeup

STORM = 3000  # deliveries while the loop is busy: ten times what the socket holds


async def test_a_sigterm_after_a_sigchld_storm_is_still_handled() -> None:
    loop = asyncio.get_running_loop()
    got: list[str] = []
    terminated = asyncio.Event()
    loop.add_signal_handler(signal.SIGCHLD, got.append, "chld")
    quiet_wakeup()
    add_signal_handler(loop, signal.SIGTERM, terminated.set)
    try:
        pid = os.getpid()
        for _ in range(STORM):  # the loop does not turn meanwhile
            os.kill(pid, signal.SIGCHLD)
        os.kill(pid, signal.SIGTERM)
        await asyncio.wait_for(terminated.wait(), 5)
        assert got  # SIGCHLD still reaches its handler (the sweep needs one call, not all)
    finally:
        loop.remove_signal_handler(signal.SIGCHLD)
        loop.remove_signal_handler(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1  # asyncio took its wakeup fd back


async def test_each_delivery_runs_the_callback_once() -> None:
    loop = asyncio.get_running_loop()
    calls: list[int] = []
    add_signal_handler(loop, signal.SIGUSR1, calls.append, 1)
    try:
        for expected in (1, 2, 3):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(100):
                await asyncio.sleep(0.001)
                if len(calls) == expected:
                    break
            assert len(calls) == expected
        await asyncio.sleep(0.02)
        assert calls == [1, 1, 1]  # not once more for the byte asyncio read
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


def test_supervision_run_stops_on_sigterm_during_a_crash_storm(tmp_path: Path) -> None:
    """A real daemon: 200 children that exit at once, over and over, and a SIGTERM in
    the middle; it stops, without a line about the wakeup fd on its stderr."""
    tree = tmp_path / "tree.py"
    tree.write_text(
        textwrap.dedent(
            """
            import supervision as sv

            def build():
                return sv.Supervisor(
                    [sv.process("s", ["true"], instances=200, output="inherit")],
                    intensity=10**9,
                    period=1.0,
                )
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "supervision", "run", str(tree)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        time.sleep(1.5)  # the storm runs
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    assert b"SIGTERM: stopping the tree" in err
    assert b"wakeup fd" not in err
