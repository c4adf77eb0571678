"""A real etcd cluster for tests: N members on loopback ports in a temporary directory.

The members use Debian's ``etcd`` binary (package ``etcd-server``, installed by
``.ci/run``). On a machine without it the tests that need a cluster skip, saying
so, except under CI, where they fail: CI must prove them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ETCD = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None)


def require_etcd() -> str:
    """The etcd binary; skip the test without it (fail under CI)."""
    if ETCD is None:
        reason = "etcd is not installed (apt-get install etcd-server; .ci/run installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}, and CI must run the etcd tests")
        pytest.skip(reason)
    return ETCD


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class EtcdCluster:
    """``size`` etcd members on 127.0.0.1, with etcd's default timing (heartbeat
    100 ms, election timeout 1 s): faster elections flap on a loaded machine."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.binary = require_etcd()
        self.directory = directory
        ports = free_ports(2 * size)
        self.names = [f"m{i}" for i in range(size)]
        self.client_ports = ports[:size]
        self.peer_ports = ports[size:]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * size
        self.initial = ",".join(
            f"{name}=http://127.0.0.1:{port}" for name, port in zip(self.names, self.peer_ports, strict=True)
        )

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.client_ports]

    def _argv(self, index: int) -> list[str]:
        name, client, peer = self.names[index], self.client_ports[index], self.peer_ports[index]
        return [
            self.binary,
            f"--name={name}",
            f"--data-dir={self.directory / name}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster={self.initial}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=supervision-tests",
            "--heartbeat-interval=100",
            "--election-timeout=1000",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=error",
        ]

    def start_member(self, index: int) -> None:
        assert self.processes[index] is None, f"member {index} is running"
        log = open(self.directory / f"{self.names[index]}.log", "ab")  # noqa: SIM115  (closed with the process)
        try:
            self.processes[index] = subprocess.Popen(
                self._argv(index), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        finally:
            log.close()

    def start(self, timeout: float = 30.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for index in range(len(self.names)):
            self.start_member(index)
        self.wait_healthy(range(len(self.names)), timeout)

    def kill(self, index: int) -> None:
        """SIGKILL one member (its data directory stays: ``start_member`` brings it back)."""
        process = self.processes[index]
        assert process is not None, f"member {index} is not running"
        process.kill()
        process.wait(10)
        self.processes[index] = None

    def pause(self, index: int) -> None:
        """SIGSTOP one member: its connections stay open and its answers stop."""
        process = self.processes[index]
        assert process is not None, f"member {index} is not running"
        process.send_signal(signal.SIGSTOP)

    def healthy(self, index: int) -> bool:
        """Whether member ``index`` answers and the cluster has a leader (quorum)."""
        try:
            with urllib.request.urlopen(f"{self.endpoints[index]}/health", timeout=1.0) as response:
                return bool(json.load(response).get("health") == "true")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def wait_healthy(self, indexes: range | list[int], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(indexes)
        while pending:
            pending = [index for index in pending if not self.healthy(index)]
            if not pending:
                return
            for index in pending:
                process = self.processes[index]
                if process is not None and process.poll() is not None:
                    log = (self.directory / f"{self.names[index]}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"etcd member {index} exited with {process.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd members {pending} not healthy after {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        for index, process in enumerate(self.processes):
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                    os.killpg(process.pid, signal.SIGCONT)
                process.wait(10)
                self.processes[index] = None


@contextlib.contextmanager
def etcd_cluster(directory: Path, size: int = 3) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(directory, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
