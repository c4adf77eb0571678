"""End to end, through ``python -m supervision``: ``signal``, several paths and
``all``, ``reload --dry-run`` against the reload that follows it, and the
commands that need no running tree."""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import DEADLINE, PY, Run, request, wait_until

FIXTURES = Path(__file__).parent.parent / "reload" / "supervisord"

# A process that records the SIGHUPs it gets, once its handler is in place.
HUP = (
    "import signal, sys, time\\n"
    "log = sys.argv[1]\\n"
    "signal.signal(signal.SIGHUP, lambda *a: open(log, 'a').write('HUP\\\\n'))\\n"
    "open(log + '.ready', 'w').close()\\n"
    "while True: time.sleep(1)"
)

APP = f"""
import asyncio, sys
import supervision as sv

HUP = "{HUP}"

async def ticker(ctx):
    await asyncio.Event().wait()

def build():
    return sv.Supervisor([
        sv.child("ticker", ticker),
        sv.process("web", [sys.executable, "-c", HUP, "web.log"]),
        sv.child("db", sv.Supervisor([sv.process("pool", [sys.executable, "-c", HUP, "pool.log"])])),
    ])
"""


@pytest.fixture
def run(tmp_path: Path) -> Any:
    (tmp_path / "app.py").write_text(APP)
    running = Run(tmp_path, "app.py")
    running.wait_running()
    yield running
    running.close()


def test_signal_reaches_the_process(run: Run, tmp_path: Path) -> None:
    for name in ("web", "pool"):
        wait_until(lambda name=name: (tmp_path / f"{name}.log.ready").exists(), f"{name}'s handler")
    pid = run.nodes()["web"]["pid"]
    done = run.cli("signal", "HUP", "web")
    assert done.stdout == f"web: SIGHUP sent (pid {pid})\n"
    wait_until(lambda: (tmp_path / "web.log").exists() and "HUP" in (tmp_path / "web.log").read_text(), "the HUP")
    assert run.nodes()["web"]["pid"] == pid  # it handled the signal and runs on
    assert not (tmp_path / "pool.log").exists()

    done = run.cli("signal", "sighup", "db")  # a supervisor: every process under it
    assert done.stdout.startswith("db/pool: SIGHUP sent (pid ")
    wait_until(lambda: (tmp_path / "pool.log").exists(), "the HUP of db/pool")

    done = run.cli("signal", "HUP", "ticker", "nope", "web", expect=1)
    assert done.stderr.splitlines() == [
        "supervision: ticker: a worker runs in the supervisor's process; it takes no signal",
        "supervision: nope: no such child",
    ]
    assert done.stdout == f"web: SIGHUP sent (pid {pid})\n"  # the others went on
    done = run.cli("signal", "LOUD", "web", expect=2)
    assert "unknown signal 'LOUD'" in done.stderr


def test_several_paths_and_all(run: Run) -> None:
    done = run.cli("stop", "web", "db")
    assert done.stdout == "web: stopped\ndb: stopped\n"
    done = run.cli("start", "all", expect=1)  # ticker runs: said, and the others go on
    assert done.stderr == "supervision: ticker: running\n"
    lines = done.stdout.splitlines()
    assert lines[0].startswith("web: started (pid ") and lines[1] == "db: started"
    done = run.cli("restart", "web", "nope", "web", expect=1)
    assert done.stderr == "supervision: nope: no such child\n"
    assert done.stdout.startswith("web: restarted (pid ") and done.stdout.count("\n") == 1
    done = run.cli("stop", "all")
    assert done.stdout == "db: stopped\nweb: stopped\nticker: stopped\n"  # right to left
    assert request(run.control, "ping")["state"] == "running"  # the tree itself runs on
    assert {path: node["status"] for path, node in run.nodes().items()} == {
        "ticker": "terminated",
        "web": "terminated",
        "db": "terminated",
    }
    run.cli("start", "all")
    assert {node["status"] for node in run.nodes().values()} == {"running"}


V1 = """
import asyncio, sys
import supervision as sv

async def keeper(ctx):
    await asyncio.Event().wait()

async def helper(ctx):
    await asyncio.Event().wait()

def build():
    return sv.Supervisor([
        sv.child("keeper", keeper),
        sv.process("svc", ["sleep", "1000"]),
        sv.child("pool", sv.Supervisor([sv.child("a", helper), sv.child("b", helper)])),
        sv.child("extra", keeper),
    ])
"""

# Each edit of the file, applied in turn, and what the plan must say.
EDITS: list[tuple[str, str, str, dict[str, list[str]]]] = [
    ("a process's argv", '"sleep", "1000"', '"sleep", "2000"', {"restarted": ["svc"]}),
    ("a worker's code", "await asyncio.Event().wait()\n\ndef build", "await asyncio.sleep(3600)\n\ndef build",
     {"restarted": ["pool/a", "pool/b"]}),
    ("a child added", 'sv.child("extra", keeper),', 'sv.child("extra", keeper),\n        sv.child("new", keeper),',
     {"started": ["new"]}),
    ("a child removed", '        sv.child("extra", keeper),\n', "", {"stopped": ["extra"]}),
    ("the root's settings", "sv.Supervisor([\n        sv.child(\"keeper\"", "sv.Supervisor(intensity=7, children=[\n"
     "        sv.child(\"keeper\"", {"updated": ["/"]}),
    ("a nested supervisor", 'sv.child("b", helper)])', 'sv.child("b", helper, restart="transient")], period=9)',
     {"restarted": ["pool/b"], "updated": ["pool"]}),
]  # fmt: skip


def edit(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))
    time.sleep(0.01)


@pytest.mark.timeout(120)
def test_the_dry_run_plan_is_the_reload_that_follows(tmp_path: Path) -> None:
    source = V1
    edit(tmp_path / "app.py", source)
    run = Run(tmp_path, "app.py")
    try:
        run.wait_running()
        for name, old, new, expected in EDITS:
            assert old in source, name
            source = source.replace(old, new, 1)
            edit(tmp_path / "app.py", source)
            before = {path: (node["pid"], node["starts"]) for path, node in run.nodes().items()}
            plan = request(run.control, "reload", dry_run=True)
            text = run.cli("reload", "--dry-run").stdout
            assert {path: (node["pid"], node["starts"]) for path, node in run.nodes().items()} == before, name
            applied = request(run.control, "reload")
            for field in ("started", "stopped", "restarted", "updated"):
                assert plan[field] == applied[field], (name, field, text)
                assert sorted(plan[field]) == sorted(expected.get(field, [])), (name, field, text)
            assert text.startswith("reload would:\n"), text
            assert request(run.control, "reload", dry_run=True)["changes"] == []  # applied: nothing left
        text = run.cli("reload", "--dry-run").stdout
        assert text == "reload would change nothing\n"

        source = source.replace('"sleep", "2000"', '"sleep", "3000"')
        edit(tmp_path / "app.py", source)
        text = run.cli("reload", "--dry-run").stdout
        assert text == "reload would:\n  restart  svc  argv: 'sleep 2000' -> 'sleep 3000'\n", text

        (tmp_path / "app.py").write_text(source + "\ndef broken(:\n")
        done = run.cli("reload", "--dry-run", expect=1)
        assert done.stderr.startswith("supervision: reload rejected: SyntaxError"), done.stderr
    finally:
        run.close()


# -- the commands that need no running tree --------------------------------------------------


def supervision(*args: str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([PY, "-m", "supervision", *args], cwd=cwd, capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
    return done


def test_check_simulate_and_import_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    done = supervision("check", "app.py", cwd=tmp_path)
    assert done.stdout.startswith("app.py: valid (1 worker, 2 processes, 1 supervisor); nothing was started\n")
    done = supervision("simulate", "app.py", "crash web x4", cwd=tmp_path)
    assert "GIVES UP: more than 3 restarts within 5s" in done.stdout
    done = supervision("simulate", "app.py", "crash wbe", cwd=tmp_path, expect=2)
    assert "did you mean 'web'?" in done.stderr
    (tmp_path / "bad.toml").write_text("[services.web]\ncommand = 'x'\nrestrat = 'always'\n")
    done = supervision("check", "bad.toml", cwd=tmp_path, expect=1)
    assert "bad.toml:3: services.web.restrat: unknown field" in done.stderr
    done = supervision(
        "import-supervisord", str(FIXTURES / "docker" / "supervisord.conf"), "-o", "s.toml", cwd=tmp_path
    )
    assert done.stderr.splitlines()[-1] == "wrote s.toml: 3 services, 7 option(s) not converted"
    supervision("check", "s.toml", cwd=tmp_path)


SERVICES = """
[services.db]
command = "sleep 1000"

[services.web]
command = "sleep 1001"
depends_on = ["db"]
"""


@pytest.mark.timeout(60)
def test_the_dry_run_of_a_services_file(tmp_path: Path) -> None:
    (tmp_path / "services.toml").write_text(SERVICES)
    run = Run(tmp_path, "services.toml")
    try:
        run.wait_running()
        (tmp_path / "services.toml").write_text(
            SERVICES.replace("sleep 1001", "sleep 1002") + '\n[services.cache]\ncommand = "sleep 1003"\n'
        )
        plan = request(run.control, "reload", dry_run=True)
        text = run.cli("reload", "--dry-run").stdout
        assert "sleep 1001" in text and "sleep 1002" in text and "new in the spec" in text, text
        applied = request(run.control, "reload")
        for field in ("started", "stopped", "restarted", "updated"):
            assert plan[field] == applied[field], (field, text)
        assert applied["started"] == ["cache"]
        (tmp_path / "services.toml").write_text(SERVICES + "\n[services.bad]\n")
        done = run.cli("reload", "--dry-run", expect=1)
        assert "services.toml:9: services.bad: missing 'command'" in done.stderr, done.stderr
    finally:
        run.close()
