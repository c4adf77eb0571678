"""Helpers for end-to-end tests of the ``supervision`` command: run a tree as a
subprocess and drive it through the command line, waiting for conditions on the
control socket (with a deadline), never for a fixed time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from supervision._core.errors import NotRunning, RequestError
from supervision._service.client import Client
from tests.process_helpers import alive, descendants

PY = sys.executable
DEADLINE = 20.0  # seconds: an upper bound for things that take milliseconds


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def request(control: str, cmd: str, **fields: Any) -> Any:
    """One request on a fresh connection (for polling); errors propagate."""
    with Client(control, timeout=DEADLINE) as client:
        return client.call(cmd, **fields)


def ping(path: str) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = request(path, "ping")
        return result
    except (NotRunning, RequestError, OSError):
        return None


class Run:
    """A ``supervision run`` subprocess and its control socket."""

    def __init__(
        self,
        tmp: Path,
        target: str,
        *,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        """With ``name``, the socket is found by name in ``$XDG_RUNTIME_DIR``; else
        it is given with ``--control``."""
        self.tmp = tmp
        self.name = name
        if name is None:
            self.control = str(tmp / "control" / "tree.sock")
            args = [*args, "--control", self.control]
        else:
            self.control = str(tmp / "xdg" / "supervision" / f"{name}.sock")
            args = [*args, "--name", name]
        inherited = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        self.env = {**inherited, "XDG_RUNTIME_DIR": str(tmp / "xdg"), **(env or {})}
        self.out_path = tmp / "run.out"
        self.err_path = tmp / "run.err"
        argv = [PY, "-m", "supervision", "run", target, *args]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=tmp, env=self.env, stdout=out, stderr=err)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_running(self) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"supervision run exited with {self.proc.returncode}:\n{self.stderr}")
            found = ping(self.control)
            return found if found is not None and found["state"] == "running" else None

        result: dict[str, Any] = wait_until(ready, "the tree to be running")
        return result

    def cli(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        """Run ``python -m supervision ARGS --control PATH``; check its exit status."""
        where = ["--control", self.control] if self.name is None else ["--name", self.name]
        argv = [PY, "-m", "supervision", *args, *where]
        done = subprocess.run(argv, cwd=self.tmp, env=self.env, capture_output=True, text=True, timeout=DEADLINE)
        if expect is not None:
            assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
        return done

    def status(self, path: str | None = None) -> dict[str, Any]:
        done = self.cli("status", *([path] if path else []), "--json")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Every child of the status, by path."""
        return dict(walk(request(self.control, "status")["children"]))

    def pids(self) -> set[int]:
        return set(descendants(self.proc.pid))

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Stop it if it still runs (SIGTERM, then SIGKILL) and check nothing is left."""
        if self.proc.poll() is None:
            left = self.pids()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("supervision run did not stop on SIGTERM") from None
            wait_until(lambda: not any(alive(pid) for pid in left), "its processes to be gone")


def walk(nodes: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for node in nodes:
        yield node["path"], node
        yield from walk(node.get("children", []))
