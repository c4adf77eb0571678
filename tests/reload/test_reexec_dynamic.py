"""Dynamic children and instances across a re-exec, end to end.

A dynamic supervisor's processes are kept by pid, its workers started again with
their arguments and snapshots, under the same ids; an instance group keeps its
live count (scaled at runtime, not the spec's).
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from tests.cli_helpers import Run, wait_until
from tests.process_helpers import descendants, exists

APP = """
import asyncio, json, os, sys
import supervision as sv

HERE = os.path.dirname(os.path.abspath(__file__))

async def conn(ctx, name, *, port=0):
    boots = ctx.state.get("boots", 0) + 1
    ctx.save(ctx.state.set("boots", boots))
    with open(os.path.join(HERE, f"conn-{name}-{ctx.starts}.json"), "w") as file:
        json.dump({"id": ctx.id, "name": name, "port": port, "boots": boots}, file)
    await asyncio.Event().wait()

async def starter(ctx):
    # Once: the snapshot says it was done (a re-exec starts this worker again).
    if not ctx.state.get("done"):
        pool = ctx.tree.at("pool")
        await pool.start_child("alpha", port=1)
        await pool.start_child("beta", port=2)
        await ctx.tree.at("jobs").start_child("100")
        await ctx.tree.at("web").scale(3)
        ctx.save(ctx.state.set("done", True))
    with open(os.path.join(HERE, f"starter-{ctx.starts}"), "w") as file:
        file.write("ok")
    await asyncio.Event().wait()

def build():
    return sv.Supervisor([
        sv.child("pool", sv.DynamicSupervisor(conn)),
        sv.child("jobs", sv.DynamicSupervisor(["sleep"])),
        sv.process("web", ["sleep", "10{instance}"], instances=1),
        sv.child("starter", starter),
    ])
"""


def _read(path: Path) -> dict[str, object] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return json.loads(text) if text.endswith("}") else None


def test_dynamic_children_and_instances_are_kept_across_reexec(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    run = Run(tmp_path, "app.py")
    everything: set[int] = set()
    try:
        run.wait_running()
        wait_until(lambda: (tmp_path / "starter-1").exists(), "the starter to start the children")
        before = {path: node["pid"] for path, node in run.nodes().items()}
        assert set(before) == {
            "pool",
            "pool/1",
            "pool/2",
            "jobs",
            "jobs/1",
            "web",
            "web/0",
            "web/1",
            "web/2",
            "starter",
        }
        processes = {path: pid for path, pid in before.items() if pid is not None}
        assert set(processes) == {"jobs/1", "web/0", "web/1", "web/2"}
        everything = set(descendants(run.proc.pid))

        done = run.cli("reexec")
        assert re.match(r"re-executed: pid \d+, 4 OS process\(es\) kept", done.stdout), done.stdout
        after = {path: node["pid"] for path, node in run.nodes().items()}
        assert after == before  # the same children, the same ids, the same pids
        nodes = run.nodes()
        assert all(nodes[path]["restarts"] == 0 for path in processes)
        alpha = wait_until(lambda: _read(tmp_path / "conn-alpha-2.json"), "alpha to start again")
        beta = wait_until(lambda: _read(tmp_path / "conn-beta-2.json"), "beta to start again")
        assert alpha == {"id": "1", "name": "alpha", "port": 1, "boots": 2}  # its arguments and its snapshot
        assert beta == {"id": "2", "name": "beta", "port": 2, "boots": 2}
        wait_until(lambda: (tmp_path / "starter-2").exists(), "the starter to start again")
        assert not (tmp_path / "conn-alpha-3.json").exists()  # nobody started them twice

        run.signal(signal.SIGTERM)
        assert run.wait_exit() == 0
        wait_until(lambda: not any(exists(pid) for pid in everything), "every process to be gone")
    finally:
        run.close()
