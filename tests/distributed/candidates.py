"""Processes that campaign for a lease (tests/distributed/lease_candidate.py), and what they said."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

SCRIPT = str(Path(__file__).with_name("lease_candidate.py"))
ROOT = str(Path(__file__).resolve().parents[2])


class Candidate:
    """One candidate process; ``lines`` are ``(time.monotonic(), words)`` as it printed them."""

    def __init__(self, name: str, writer: str, ttl: int, guard: float, port: int, endpoints: list[str]) -> None:
        self.writer = writer
        self.lines: list[tuple[float, list[str]]] = []
        self.changed = threading.Condition()
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.process = subprocess.Popen(
            [sys.executable, SCRIPT, name, writer, str(ttl), str(guard), str(port), *endpoints],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.paused = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self.changed:
                self.lines.append((time.monotonic(), raw.decode().split()))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def said(self, word: str) -> list[tuple[float, list[str]]]:
        with self.changed:
            return [(when, words) for when, words in self.lines if words and words[0] == word]

    def wait_for(self, word: str, count: int = 1, timeout: float = 20.0) -> tuple[float, list[str]]:
        """The ``count``-th line starting with ``word``; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [(when, words) for when, words in self.lines if words and words[0] == word]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                assert left > 0, f"{self.writer} did not say {word} #{count} within {timeout}s: {self.lines}"
                self.changed.wait(left)

    @property
    def leading(self) -> bool:
        """Whether its last LEADER line is later than its last LOST line."""
        with self.changed:
            led = [when for when, words in self.lines if words[0] == "LEADER"]
            lost = [when for when, words in self.lines if words[0] == "LOST"]
        return bool(led) and (not lost or led[-1] > lost[-1])

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        self.paused = signum == signal.SIGSTOP or (self.paused and signum != signal.SIGCONT)

    def kill(self) -> float:
        when = time.monotonic()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.reader.join(10)
        return when

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
        self.process.wait(10)
        self.reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def leaders(candidates: list[Candidate]) -> list[Candidate]:
    return [candidate for candidate in candidates if candidate.leading and candidate.process.poll() is None]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)
    return time.monotonic()


@contextlib.contextmanager
def candidates(
    count: int, name: str, ttl: int, guard: float, port: int, endpoints: list[str]
) -> Iterator[list[Candidate]]:
    started: list[Candidate] = []
    try:
        for index in range(count):
            started.append(Candidate(name, f"c{index}", ttl, guard, port, endpoints))
        yield started
    finally:
        for candidate in started:
            candidate.close()
