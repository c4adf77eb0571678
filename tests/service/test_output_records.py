"""A process child's output reaches ``supervision logs`` as structured records, by the
path of the child that wrote it: a line that only *says* ``web | ...`` is not web's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import Run, request, wait_until

LOOP = "import sys, time\\nprint(sys.argv[1], flush=True)\\nwhile True: time.sleep(1)"

APP = f"""
import asyncio, sys
import supervision as sv

LOOP = "{LOOP}"

async def liar(ctx):
    # A worker of the supervisor itself, printing to the supervisor's own stdout.
    print("web | forged by a worker", flush=True)
    await asyncio.Event().wait()

def build():
    return sv.Supervisor([
        sv.process("web", [sys.executable, "-c", LOOP, "hello from web"]),
        sv.process("impostor", [sys.executable, "-c", LOOP, "web | forged by a process"]),
        sv.child("liar", liar),
    ])
"""


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    (tmp_path / "app.py").write_text(APP)
    running = Run(tmp_path, "app.py")
    yield running
    running.close()


def test_a_line_printed_as_web_is_not_credited_to_web(run: Run) -> None:
    run.wait_running()
    wait_until(lambda: "forged by a process" in run.cli("logs", "impostor").stdout, "impostor's line in logs")
    wait_until(lambda: "hello from web" in run.cli("logs", "web").stdout, "web's line in logs")
    wait_until(lambda: "web | forged by a worker" in run.stdout, "the worker's line on stdout")
    assert run.cli("logs", "web").stdout == "hello from web\n"
    assert run.cli("logs", "impostor").stdout == "web | forged by a process\n"
    lines = request(run.control, "logs")["lines"]  # no path: the whole tree
    everything = "".join(f"{line['path']} | {line['text']}\n" for line in lines)
    assert "forged by a worker" not in everything  # a worker's print is nobody's output line
    assert "impostor | web | forged by a process" in everything and "web | hello from web" in everything
    assert "impostor | web | forged by a process" in run.stdout  # still written out, prefixed
