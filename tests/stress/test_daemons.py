"""Daemons that clear their environment and leave their session (``setsid -f env -i``)
carry nothing that names the child that started them: they are the supervisor's to
end all the same, at that child's exit and at the tree's stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import Run, wait_until
from tests.process_helpers import alive, children, stat

from .common import kill_if_running

pytestmark = pytest.mark.slow

DAEMONS = 200
# 200 daemons in sessions of their own with an empty environment, then wait (or exit).
SPAWN = f"i=0; while [ $i -lt {DAEMONS} ]; do setsid -f env -i sleep 1000; i=$((i+1)); done"


def _orphans(of: int) -> list[int]:
    """Children of ``of`` that sleep (the daemons, once reparented to the subreaper)."""
    found = []
    for pid in children(of):
        try:
            with open(f"/proc/{pid}/comm") as file:
                if file.read().strip() == "sleep":
                    found.append(pid)
        except OSError:
            pass
    return found


def _app(tmp: Path, children: str) -> str:
    path = tmp / "app.py"
    path.write_text(f"import supervision as sv\ndef build():\n    return sv.Supervisor([{children}])\n")
    return str(path)


def test_daemons_of_an_exiting_child_are_ended_at_its_exit(tmp_path: Path) -> None:
    spawner = f"sv.process('spawner', ['sh', '-c', {SPAWN + '; exit 0'!r}], restart='temporary')"
    run = Run(tmp_path, _app(tmp_path, spawner))
    try:
        run.wait_running()
        seen: set[int] = set()

        def ended() -> bool:
            seen.update(_orphans(run.proc.pid))
            return not run.nodes() and not _orphans(run.proc.pid)

        wait_until(ended, "the spawner's daemons to be ended at its exit", timeout=30)
        assert run.proc.poll() is None  # the tree still runs: this was the child's exit
        assert seen, "no daemon came back to the subreaper"
        assert not any(alive(pid) for pid in seen)
        assert not [p for p in children(run.proc.pid) if (s := stat(p)) is not None and s[0] == "Z"]
    finally:
        kill_if_running(run)


def test_daemons_of_a_child_are_ended_at_its_stop(tmp_path: Path) -> None:
    spawner = f"sv.process('spawner', ['sh', '-c', {SPAWN + '; exec sleep 1000'!r}])"
    run = Run(tmp_path, _app(tmp_path, spawner))
    try:
        run.wait_running()
        daemons = wait_until(lambda: len(d := _orphans(run.proc.pid)) >= DAEMONS and d, "the daemons")
        run.cli("stop", "spawner")
        wait_until(lambda: not any(alive(pid) for pid in daemons), "the daemons to be ended", timeout=10)
        assert run.proc.poll() is None
    finally:
        kill_if_running(run)


def test_the_run_ends_daemons_left_when_the_tree_stops(tmp_path: Path) -> None:
    """Under ``supervision run``: a daemon of a child that is still running when the
    other child that could have started it exits (so left for later) is ended at
    the stop of the tree."""
    (tmp_path / "app.py").write_text(
        "import supervision as sv\n"
        "def build():\n"
        "    return sv.Supervisor([\n"
        "        sv.process('early', ['sleep', '1000']),\n"
        f"        sv.process('spawner', ['sh', '-c', {SPAWN + '; exec sleep 1000'!r}]),\n"
        "    ])\n"
    )
    run = Run(tmp_path, str(tmp_path / "app.py"))  # "early" runs when the daemons start
    try:
        run.wait_running()
        daemons = wait_until(lambda: len(d := _orphans(run.proc.pid)) >= DAEMONS and d, "the daemons")
        run.signal(15)
        assert run.wait_exit() == 0
        wait_until(lambda: not any(alive(pid) for pid in daemons), "the daemons to be ended", timeout=10)
    finally:
        kill_if_running(run)
