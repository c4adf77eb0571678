"""Instances: ``sv.process(..., instances=N)`` and TOML ``numprocs``, and
``supervision scale PATH N``, with real processes.

Each copy is the child ``web/0`` ... ``web/N-1``, with ``{instance}`` substituted
in argv, env, cwd and output path (supervisord's ``%(process_num)d``).
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

import supervision as sv
from supervision._reload.services import parse
from tests.cli_helpers import PY, Run, wait_until
from tests.helpers import WAIT
from tests.process_helpers import alive, until, wait_gone

# Each instance says who it is, where it runs and what it got, then stays.
REPORT = "import os, sys, time; print(sys.argv[1], os.environ['SLOT'], os.getcwd(), flush=True); time.sleep(1000)"


def _instance_spec(tmp: Path, count: int) -> sv.ChildSpec:
    for n in range(count + 3):
        (tmp / f"dir{n}").mkdir(exist_ok=True)
    return sv.process(
        "web",
        [sys.executable, "-c", REPORT, "arg-{instance}"],
        env={"SLOT": "slot-{instance}"},
        cwd=str(tmp / "dir{instance}"),
        output=str(tmp / "web-{instance}.log"),
        instances=count,
    )


def _line(path: Path) -> str | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text.strip() if text.endswith("\n") else None


async def _wait_line(path: Path) -> str:
    await until(lambda: _line(path) is not None, WAIT * 2, f"{path.name} to be written")
    line = _line(path)
    assert line is not None
    return line


async def test_instances_substitute_in_argv_env_cwd_and_output(tmp_path: Path) -> None:
    spec = sv.Supervisor([_instance_spec(tmp_path, 3)])
    async with sv.start(spec) as tree:
        web = tree.at("web")
        assert [(c.id, c.kind, c.status.value) for c in web.which_children()] == [
            ("0", "process", "running"),
            ("1", "process", "running"),
            ("2", "process", "running"),
        ]
        for n in range(3):
            line = await _wait_line(tmp_path / f"web-{n}.log")
            assert line == f"arg-{n} slot-{n} {tmp_path / f'dir{n}'}"
        pids = [c.pid for c in web.which_children()]
    assert all(pid is not None and wait_gone(pid) for pid in pids)


def test_instances_must_be_a_count() -> None:
    with pytest.raises(sv.SpecError, match="instances"):
        sv.process("web", ["sleep", "1"], instances=-1)
    group = sv.process("web", ["sleep", "{instance}"], instances=2)
    assert group.kind == "supervisor"
    assert [c.start.argv for c in group.start.children] == [("sleep", "0"), ("sleep", "1")]


def test_toml_numprocs_runs_n_copies() -> None:
    spec = parse(
        textwrap.dedent(
            """
            [services.web]
            command = "server --port 80{instance}"
            numprocs = 3
            output = "logs/web-{instance}.log"
            """
        ),
        "services.toml",
        "/srv/app",
    )
    (web,) = spec.children
    assert web.id == "web" and web.kind == "supervisor"
    children = web.start.children
    assert [c.id for c in children] == ["0", "1", "2"]
    assert [c.start.argv for c in children] == [("server", "--port", f"80{n}") for n in range(3)]
    # a services file's output is a log file written by the supervisor, one per copy
    assert [c.start.output.path for c in children] == [f"/srv/app/logs/web-{n}.log" for n in range(3)]


async def test_scale_up_in_order_and_down_from_the_highest(tmp_path: Path) -> None:
    spec = sv.Supervisor([_instance_spec(tmp_path, 2)])
    async with sv.start(spec) as tree:
        events = tree.events()
        web = tree.at("web")
        first = {c.id: c.pid for c in web.which_children()}
        assert await web.scale(5) == 5
        children = web.which_children()
        assert [c.id for c in children] == ["0", "1", "2", "3", "4"]
        assert {c.id: c.pid for c in children[:2]} == first  # the running ones are left alone
        started = []
        async for event in events:
            if isinstance(event, sv.ChildStarted) and event.path[:1] == ("web",):
                started.append(event.path[1])
                if len(started) == 3:
                    break
        assert started == ["2", "3", "4"]
        assert await _wait_line(tmp_path / "web-4.log") == f"arg-4 slot-4 {tmp_path / 'dir4'}"
        pids = {c.id: c.pid for c in web.which_children()}
        assert await web.scale(1) == 1
        stopped = []
        async for event in events:
            if isinstance(event, sv.ChildExited) and event.path[:1] == ("web",):
                stopped.append(event.path[1])
                if len(stopped) == 4:
                    break
        assert stopped == ["4", "3", "2", "1"]
        assert [c.id for c in web.which_children()] == ["0"]
        assert all(wait_gone(pids[id]) for id in "1234")  # type: ignore[arg-type]
        assert alive(pids["0"])  # type: ignore[arg-type]
        with pytest.raises(sv.SupervisionError):
            await tree.at("web").start_child()
        with pytest.raises(sv.SupervisionError, match="instance group"):
            await tree.scale(3)  # the root is no instance group


def test_supervision_scale_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "services.toml").write_text(
        textwrap.dedent(
            f"""
            [services.web]
            command = ["{PY}", "-c", "import time; time.sleep(1000)", "{{instance}}"]
            numprocs = 2
            """
        )
    )
    run = Run(tmp_path, "services.toml")
    try:
        run.wait_running()
        done = run.cli("scale", "web", "4")
        assert done.stdout.strip() == "web: 4 instances"
        nodes = run.nodes()
        assert [path for path in nodes if path.startswith("web/")] == ["web/0", "web/1", "web/2", "web/3"]
        assert all(nodes[f"web/{n}"]["pid"] for n in range(4))
        gone = nodes["web/3"]["pid"]
        run.cli("scale", "web", "3")
        wait_until(lambda: "web/3" not in run.nodes(), "web/3 to go")
        assert wait_gone(gone)
        refused = run.cli("scale", "nothing", "3", expect=1)
        assert "nothing" in refused.stderr
        refused = run.cli("scale", "web", "-1", expect=2)  # argparse: not a count
    finally:
        run.close()


async def test_a_reload_resets_the_count_to_the_spec_unless_the_spec_did_not_change(tmp_path: Path) -> None:
    spec = sv.Supervisor([_instance_spec(tmp_path, 2)])
    async with sv.start(spec) as tree:
        web = tree.at("web")
        await web.scale(4)
        applied = await tree.update(sv.Supervisor([_instance_spec(tmp_path, 2)]))  # the same spec
        assert applied.restarted == () and applied.stopped == ()
        assert len(web.which_children()) == 4  # the live count is kept
        await tree.update(sv.Supervisor([_instance_spec(tmp_path, 3)]))  # the spec changed: reset to it
        assert [c.id for c in web.which_children()] == ["0", "1", "2"]
        await asyncio.sleep(0)
