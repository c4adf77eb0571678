"""``supervision top`` rendered to a fixed-size recording console, and its key loop on a real terminal."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import threading

from rich.console import Console

import supervision as sv
from supervision.observe.top import View, render, run, sparkline
from tests.observe_helpers import Served

STATUS = {
    "name": "shop",
    "pid": 4242,
    "state": "running",
    "uptime": 3725.0,
    "intensity": {"restarts": 1, "intensity": 3, "period": 5.0, "used_ratio": 0.3333},
    "children": [
        {
            "path": "web",
            "id": "web",
            "kind": "process",
            "status": "running",
            "pid": 101,
            "restarts": 4,
            "uptime": 12.0,
            "recent_restarts": [1.0, 2.0, 20.0, 299.0],
            "resources": {"cpu_percent": 97.5, "rss_bytes": 104857600, "fds": 7, "threads": 1, "cpu_seconds": 3.0},
        },
        {
            "path": "db",
            "id": "db",
            "kind": "supervisor",
            "status": "running",
            "pid": None,
            "restarts": 0,
            "uptime": 3725.0,
            "intensity": {"restarts": 2, "intensity": 2, "period": 10.0, "used_ratio": 1.0},
            "children": [
                {
                    "path": "db/pool",
                    "id": "pool",
                    "kind": "worker",
                    "status": "restarting",
                    "pid": None,
                    "restarts": 9,
                    "uptime": None,
                },
                {
                    "path": "db/cache",
                    "id": "cache",
                    "kind": "process",
                    "status": "running",
                    "pid": 103,
                    "restarts": 0,
                    "uptime": 60.0,
                    "resources": {"cpu_percent": 0.5, "rss_bytes": 2048, "fds": 4, "threads": 2, "cpu_seconds": 0.1},
                },
            ],
        },
    ],
}


def screen(status: dict, view: View | None = None, width: int = 130) -> list[str]:
    console = Console(record=True, width=width, height=30, file=io.StringIO(), color_system="truecolor")
    console.print(render(status, view))
    return console.export_text().splitlines()


def test_rows_show_the_tree_with_figures_sparkline_and_intensity() -> None:
    lines = screen(STATUS)
    assert lines[0].startswith("shop  running  pid 4242  up 1h02m  not ready: db/pool is restarting")
    assert "root intensity ███░░░░░ 1/3" in lines[0]
    header = lines[2].split()
    assert header[:4] == ["PATH", "▲", "KIND", "STATUS"]
    body = [line for line in lines[3:] if line.strip()][:4]
    web, db, pool, cache = body
    assert web.split()[:7] == ["web", "process", "running", "101", "97.5", "100.0M", "4"]
    assert sparkline([1.0, 2.0, 20.0, 299.0]).plain == "▂" + "▁" * 17 + "▂▃"
    assert "▂" + "▁" * 17 + "▂▃" in web and web.rstrip().endswith("12s")
    assert db.split()[:3] == ["db", "supervisor", "running"] and db.rstrip().endswith("████████ 2/2")
    assert pool.startswith("   pool") and pool.split()[1:4] == ["worker", "restarting", "-"]
    assert cache.startswith("   cache") and "2.0K" in cache and "0.5" in cache
    assert lines[-1].strip() == "q quit   < > sort column   r reverse"


def test_sorting_keeps_the_tree_and_sorts_siblings() -> None:
    view = View()
    for _ in range(5):  # PATH -> KIND -> STATUS -> HEALTH -> PID -> CPU%
        assert view.key(">")
    assert view.key("r")  # highest CPU first
    body = [line.split()[0] for line in screen(STATUS, view)[3:] if line.strip()][:4]
    assert body == ["web", "db", "cache", "pool"]  # in db: cache (0.5%) before pool (no figure)
    assert "CPU% ▼" in screen(STATUS, view)[2]
    assert not view.key("q")


def test_the_health_column_shows_once_a_child_has_a_health_check() -> None:
    assert "HEALTH" not in screen(STATUS)[2]
    checked = {**STATUS, "children": [{**STATUS["children"][0], "health": "healthy"}, *STATUS["children"][1:]]}
    lines = screen(checked)
    assert lines[2].split()[4] == "HEALTH"
    assert lines[3].split()[:4] == ["web", "process", "running", "healthy"]


async def test_a_real_tree_renders_with_its_figures() -> None:
    spec = sv.Supervisor(
        [sv.process("web", ["sleep", "1000"]), sv.child("db", sv.Supervisor([sv.process("pool", ["sleep", "1000"])]))]
    )
    async with Served(spec) as served:
        for _ in range(1000):  # a child counts as started from exec's point of no return: its memory comes after
            status = await served.handler({"v": 1, "cmd": "status"})
            body = [line for line in screen(status)[3:] if line.strip()][:3]
            if all(len(line.split()) > 5 and line.split()[5][-1] in "KM" for line in (body[0], body[2])):
                break
            await asyncio.sleep(0.01)
    lines = screen(status)
    assert lines[0].startswith("test  running") and "ready" in lines[0]
    body = [line for line in lines[3:] if line.strip()][:3]
    assert [line.split()[0] for line in body] == ["web", "db", "pool"]
    for line in (body[0], body[2]):
        assert line.split()[2] == "running" and line.split()[5][-1] in "KM"  # the RSS of sleep


def test_the_view_quits_on_q_from_a_terminal() -> None:
    master, slave = pty.openpty()
    fetched = []

    def fetch() -> dict:
        fetched.append(1)
        if len(fetched) == 2:
            os.write(master, b">")  # sort: drawn again at once
        elif len(fetched) == 3:
            os.write(master, b"q")
        return STATUS

    console = Console(file=io.StringIO(), width=120, height=30, force_terminal=False)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run(fetch, interval=0.05, console=console, input_fd=slave)))
    thread.start()
    thread.join(20)
    os.close(master)
    os.close(slave)
    assert result == [0] and len(fetched) == 3
