"""End to end: examples/process_stack.py runs a real stack and ends by itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .process_helpers import exists

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "process_stack.py"


def test_process_stack_example_runs_restarts_and_cleans_up() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--seconds", "3", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "started: web(pid=" in out
    assert "poller | first fetch: 20 bytes" in out  # the dependent reached the server
    assert re.search(r'web \| 127\.0\.0\.1 .* "GET / HTTP/1\.1" 200', result.stderr)  # prefixed server log
    assert "event: web exited: crash signal 9" in out  # the kill halfway
    assert "event: poller exited: shutdown" in out  # rest_for_one took the dependent down...
    restarts = eval(out.split("restarts: ", 1)[1].splitlines()[0])
    assert restarts["web"] == 1 and restarts["poller"] >= 1 and restarts["flaky"] >= 2
    final = dict(item.split("=") for item in out.split("final: ", 1)[1].splitlines()[0].split())
    assert set(final) == {"web", "poller"}
    for pid in final.values():  # stopped and reaped with the tree
        assert not exists(int(pid))
