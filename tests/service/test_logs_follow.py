"""``supervision logs -f`` follows new lines, ``logs`` without a path interleaves every
child, and log files written by the supervisor are reopened on SIGUSR1: end to end,
with ``supervision run`` and the command line as subprocesses."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import textwrap
import time
from pathlib import Path

from tests.cli_helpers import DEADLINE, PY, Run, wait_until

# A service that prints line0, line1... as the test creates the files go0, go1...
STEPPED = "i=0; while :; do if [ -e go$i ]; then echo {name}$i; i=$((i+1)); else sleep 0.02; fi; done"


def _services(tmp: Path, text: str) -> str:
    path = tmp / "services.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def _read_line(proc: subprocess.Popen[bytes], timeout: float = DEADLINE) -> str:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"no line from logs -f within {timeout}s (got {data!r})")
        chunk = os.read(fd, 1)
        if not chunk:
            raise AssertionError(f"logs -f ended (got {data!r})")
        data += chunk
    return data.decode().rstrip("\n")


def test_logs_follow_sees_new_lines_until_ctrl_c(tmp_path: Path) -> None:
    target = _services(
        tmp_path,
        f"""
        [services.web]
        command = ["sh", "-c", "{STEPPED.format(name="web")}"]
        [services.db]
        command = ["sh", "-c", "{STEPPED.format(name="db")}"]
        cwd = "db"
        """,
    )
    (tmp_path / "db").mkdir()
    run = Run(tmp_path, target)
    try:
        run.wait_running()
        (tmp_path / "go0").touch()
        wait_until(lambda: "web0" in run.cli("logs", "web").stdout, "web's first line")
        argv = [PY, "-m", "supervision", "logs", "-f", "web", "--control", run.control]
        follower = subprocess.Popen(argv, cwd=tmp_path, env=run.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert _read_line(follower) == "web0"  # what was there
            for i in (1, 2, 3):
                (tmp_path / f"go{i}").touch()
                assert _read_line(follower) == f"web{i}"  # what came after, and only web's
            (tmp_path / "db" / "go0").touch()
            wait_until(lambda: "db0" in run.cli("logs", "db").stdout, "db's first line")
            (tmp_path / "go4").touch()
            assert _read_line(follower) == "web4"
            follower.send_signal(signal.SIGINT)
            assert follower.wait(DEADLINE) == 130
            assert follower.stderr is not None and b"Traceback" not in follower.stderr.read()
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
        # Without a path: every child, interleaved in the order the lines came.
        lines = run.cli("logs").stdout.splitlines()
        assert lines == ["web | web0", "web | web1", "web | web2", "web | web3", "db | db0", "web | web4"]
    finally:
        run.close()


def test_a_log_file_is_written_by_the_supervisor_and_reopened_on_sigusr1(tmp_path: Path) -> None:
    target = _services(
        tmp_path,
        f"""
        [services.web]
        command = ["sh", "-c", "{STEPPED.format(name="line")}"]
        output = "logs/web.log"
        timestamps = true
        """,
    )
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "web.log"
    run = Run(tmp_path, target)
    try:
        run.wait_running()
        (tmp_path / "go0").touch()
        wait_until(lambda: log.exists() and "line0" in log.read_text(), "the first line in the log file")
        stamp, text = log.read_text().splitlines()[0].split(" ", 1)
        assert text == "line0" and stamp[4] == "-" and "T" in stamp
        assert run.cli("logs", "web").stdout == "line0\n"  # `logs` sees log files too
        os.rename(log, tmp_path / "logs" / "web.log.1")  # what logrotate does
        run.signal(signal.SIGUSR1)
        wait_until(lambda: "reopening the log files" in run.stderr, "the reopen to be logged")
        (tmp_path / "go1").touch()
        wait_until(lambda: log.exists() and "line1" in log.read_text(), "the next line in a new log file")
        assert "line1" not in (tmp_path / "logs" / "web.log.1").read_text()
        assert "line0" not in run.stdout and "line1" not in run.stdout  # not on the terminal
    finally:
        run.close()


def test_a_log_file_child_keeps_writing_to_its_file_across_a_reexec(tmp_path: Path) -> None:
    target = _services(
        tmp_path,
        f"""
        [services.web]
        command = ["sh", "-c", "{STEPPED.format(name="line")}"]
        output = "web.log"
        log_max_bytes = "1MB"
        """,
    )
    log = tmp_path / "web.log"
    run = Run(tmp_path, target)
    try:
        run.wait_running()
        (tmp_path / "go0").touch()
        wait_until(lambda: log.exists() and log.read_text() == "line0\n", "the first line in the log file")
        before = run.nodes()["web"]["pid"]
        run.cli("reexec")
        run.wait_running()
        assert run.nodes()["web"]["pid"] == before  # adopted, not restarted
        (tmp_path / "go1").touch()
        wait_until(lambda: log.read_text() == "line0\nline1\n", "the next line in the same log file")
        assert "line1" not in run.stdout
    finally:
        run.close()
