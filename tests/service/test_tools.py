"""The commands that need no running tree: ``check``, ``simulate``, ``import-supervisord``."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest

from supervision._tools import add_parsers

FIXTURES = Path(__file__).parent.parent / "reload" / "supervisord"

TREE = """
import asyncio
import supervision as sv

async def worker(ctx):
    await asyncio.Event().wait()

def build():
    api = sv.Supervisor([sv.child("web", worker)], intensity=1, period=10)
    return sv.Supervisor(
        [sv.child("db", worker), sv.child("cache", worker, restart="transient"), sv.child("api", api)],
        strategy="rest_for_one", intensity=3, period=5,
    )
"""

SERVICES = """
[services.db]
command = "sleep 60"
ready = "port 5432"
stop_signal = "INT"

[services.web]
command = ["python3", "-m", "http.server", "8000"]
depends_on = ["db"]
restart = "on-failure"
max_retries = 2
retry_window = 30
"""


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="supervision")
    handlers = add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return handlers[args.command](args)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


# -- check -------------------------------------------------------------------------------------


def test_check_prints_the_tree_of_a_tree_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = write(tmp_path, "app.py", TREE)
    assert cli("check", target) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{target}: valid (3 workers, 1 supervisor); nothing was started\n")
    assert "/  supervisor  rest_for_one, at most 3 restarts in 5s" in out
    assert "├─ cache  worker  _supervision_target_app.worker  [restart transient]" in out
    assert "└─ api  supervisor  one_for_one, at most 1 restarts in 10s" in out
    assert "   └─ web  worker" in out


def test_check_prints_the_tree_of_a_services_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = write(tmp_path, "services.toml", SERVICES)
    assert cli("check", target) == 0
    out = capsys.readouterr().out
    assert "sleep 60" in out and "stop with SIGINT" in out
    assert "once 127.0.0.1:5432 accepts connections" in out
    assert "python3 -m http.server 8000" in out
    assert out.index("sleep 60") < out.index("http.server")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "services.toml",
            "[services.web]\ncommand = 'x'\nrestart = 'sometimes'\n",
            "services.toml:3: services.web.restart",
        ),
        ("services.toml", "[services.web]\ncommand = \n", "services.toml:2: invalid TOML"),
        (
            "services.toml",
            "[services.a]\ncommand='x'\ndepends_on=['b']\n",
            "services.toml:3: services.a.depends_on: unknown",
        ),
        ("app.py", "import supervision as sv\n\ndef build():\n    return 1 / 0\n", "app.py:4: ZeroDivisionError"),
        ("app.py", "def build(:\n    pass\n", "app.py:1: SyntaxError"),
        ("app.py", "import missing_module_xyz\n", "app.py:1: ModuleNotFoundError"),
        (
            "app.py",
            "import supervision as sv\ndef build():\n    return sv.Supervisor([sv.process('p', [])])\n",
            "app.py:3: SpecError: p: argv: must not be empty",
        ),
        ("app.py", "import supervision as sv\nbuild = 3\n", "neither a Supervisor nor a builder"),
        ("nothere.py", None, "no such file"),
    ],
)
def test_check_fails_with_the_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str | None, expected: str
) -> None:
    target = write(tmp_path, name, text) if text is not None else str(tmp_path / name)
    assert cli("check", target) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("supervision: check failed: ")
    assert expected in captured.err.replace(str(tmp_path) + "/", "")


# -- simulate ----------------------------------------------------------------------------------


def test_simulate_prints_the_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = write(tmp_path, "app.py", TREE)
    assert cli("simulate", target, "crash db x3 within 2s; crash db") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"simulating {target} on a virtual clock (nothing is started):"
    assert "restart window: 3 of 3 within 5s -- FULL until 5s" in out
    assert "GIVES UP: more than 3 restarts within 5s" in out
    assert out.rstrip().endswith("the root gave up; `supervision run` exits with status 1")


def test_simulate_a_services_file_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = write(tmp_path, "services.toml", SERVICES)
    scenario = write(tmp_path, "what-if.txt", "# the web service flaps\ncrash web x3 within 20s\nwait 1m\n")
    assert cli("simulate", target, "-f", scenario, "--no-windows") == 0
    out = capsys.readouterr().out
    assert "-- crash web (3 of 3)" in out and "-- wait 60s" in out
    assert "restart window" not in out


def test_simulate_reports_a_bad_scenario_with_its_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = write(tmp_path, "app.py", TREE)
    assert cli("simulate", target, "crash db; crash dbb x2") == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "supervision: scenario:1:17: no child 'dbb' in the tree (did you mean 'db'?)",
        "  crash db; crash dbb x2",
        "                  ^",
    ]
    assert cli("simulate", target) == 2
    assert "needs a SCENARIO or --file" in capsys.readouterr().err


# -- import-supervisord ------------------------------------------------------------------------


def test_import_writes_the_services_file_and_lists_what_it_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    monkeypatch.setenv("LOG_DIR", str(tmp_path))
    output = tmp_path / "services.toml"
    assert cli("import-supervisord", "laravel/supervisord.conf", "-o", str(output)) == 0
    err = capsys.readouterr().err
    assert "[program:laravel-worker] user=forge" not in err  # converted: services files have a user
    assert err.splitlines()[-1] == f"wrote {output}: 9 services, 6 option(s) not converted"
    text = output.read_text()
    assert "[services.laravel-worker_07]" in text
    assert 'user = "forge"' in text
    assert cli("import-supervisord", "laravel/supervisord.conf", "-o", str(output)) == 1
    assert "exists; --force" in capsys.readouterr().err
    assert cli("check", str(output)) == 0


def test_import_to_stdout_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write(tmp_path, "a.conf", "[program:a]\ncommand=run %(ENV_NOPE_XYZ)s\n")
    assert cli("import-supervisord", conf) == 1
    assert f"{conf}:2: command: cannot expand 'ENV_NOPE_XYZ'" in capsys.readouterr().err
    conf = write(tmp_path, "b.conf", "[program:b]\ncommand=run\nautostart=false\n")
    assert cli("import-supervisord", conf) == 0
    captured = capsys.readouterr()
    assert "[services.b]" in captured.out and 'command = "run"' in captured.out
    assert "b.conf:3: [program:b] autostart=false: not converted" in captured.err


def test_simulate_shows_a_services_own_restart_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = write(tmp_path, "services.toml", SERVICES)  # web: on-failure, at most 2 restarts in 30 s
    assert cli("simulate", target, "crash web x3 within 10s; crash db") == 0
    out = capsys.readouterr().out
    assert "web   restart window: 2 of 2 within 30s -- FULL until 30s" in out
    assert "10s  web   GIVES UP: more than 2 restarts within 30s" in out
    assert "web   restarted (start 4)" not in out  # on-failure: beyond its limit it stays stopped
    assert out.rstrip().endswith("the root is running; gave up on the way: web")
