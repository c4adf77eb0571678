"""Services files as a supervisord user meets them: one row per service, acted on
by name; ``strategy = "rest_for_one"`` restarts the services after a crashed one;
loose input rejected with its line; a tree file that raises says where."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from supervision._core.errors import ServicesError
from supervision._reload.services import parse
from tests.cli_helpers import DEADLINE, PY, Run, wait_until
from tests.process_helpers import alive, free_port

LOOP = "import time\\nwhile True: time.sleep(1)"

ROWS = f"""
[services.db]
command = ["{PY}", "-c", "{LOOP}"]

[services.web]
command = ["{PY}", "-c", "{LOOP}"]
depends_on = ["db"]

[services.flaky]
command = ["sh", "-c", "exit 1"]
restart = "on-failure"
max_retries = 2
retry_window = 600
"""


def running(run: Run, path: str, other_than: int | None = None) -> dict[str, Any] | None:
    node = run.nodes().get(path)
    if node is None or node["status"] != "running" or node["pid"] == other_than:
        return None
    return node


def test_a_service_is_one_row_and_every_command_acts_on_it(tmp_path: Path) -> None:
    (tmp_path / "services.toml").write_text(ROWS)
    run = Run(tmp_path, "services.toml")
    try:
        run.wait_running()
        # flaky keeps its own retry limit: 2 restarts, then it stays stopped; the others run on.
        flaky = wait_until(lambda: (n := run.nodes()["flaky"])["status"] == "terminated" and n, "flaky to give up")
        assert flaky["starts"] == 3 and flaky["last_exit"]["exit_status"] == 1, flaky
        nodes = run.nodes()
        assert list(nodes) == ["db", "web", "flaky"]
        assert [n["kind"] for n in nodes.values()] == ["process", "process", "process"]
        assert nodes["db"]["restarts"] == 0 and nodes["web"]["restarts"] == 0
        human = run.cli("status").stdout
        assert not re.search(r"^\s*(db/db|web/web)\s", human, re.M), human

        web = nodes["web"]["pid"]
        assert run.cli("stop", "web").stdout == "web: stopped\n"
        assert run.nodes()["web"]["status"] == "terminated" and not alive(web)
        started = run.cli("start", "web").stdout
        new = running(run, "web")
        assert new is not None and started == f"web: started (pid {new['pid']})\n" and new["pid"] != web
        restarted = run.cli("restart", "web").stdout
        again = running(run, "web", other_than=new["pid"])
        assert again is not None and restarted == f"web: restarted (pid {again['pid']})\n"
        assert run.nodes()["db"]["pid"] == nodes["db"]["pid"]  # one_for_one: db untouched

        run.cli("start", "flaky")  # the operator's start gives it a fresh budget
        wait_until(lambda: run.nodes()["flaky"]["starts"] == 6, "flaky to give up again")
    finally:
        run.close()


REST_FOR_ONE = """
[supervisor]
strategy = "rest_for_one"

[services.db]
command = ["{py}", "db.py"]
ready = "port {db_port}"

[services.web]
command = ["{py}", "web.py"]
depends_on = ["db"]

[services.other]
command = ["{py}", "-c", "{loop}"]
"""

DB = """
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {db_port}))
s.listen()
while True: time.sleep(1)
"""

WEB = """
import os, socket, time
try:
    socket.create_connection(("127.0.0.1", {db_port}), timeout=5).close()
    ok = True
except OSError:
    ok = False
with open(os.environ["ORDER"], "a") as f:
    f.write(f"web {{ok}}\\n")
while True: time.sleep(1)
"""


def test_rest_for_one_restarts_the_services_after_a_crashed_one_once_it_is_ready(tmp_path: Path) -> None:
    values = {"py": PY, "db_port": free_port(), "loop": LOOP}
    (tmp_path / "services.toml").write_text(REST_FOR_ONE.format(**values))
    (tmp_path / "db.py").write_text(DB.format(**values))
    (tmp_path / "web.py").write_text(WEB.format(**values))
    order = tmp_path / "order.log"
    run = Run(tmp_path, "services.toml", env={"ORDER": str(order)})
    try:
        run.wait_running()
        nodes = run.nodes()
        assert list(nodes) == ["db", "web", "other"]
        db, web, other = (nodes[name]["pid"] for name in ("db", "web", "other"))
        wait_until(lambda: order.exists() and order.read_text() == "web True\n", "web to start")
        os.kill(db, signal.SIGKILL)  # kill -9 db
        wait_until(lambda: running(run, "web", other_than=web), "web to be restarted")
        wait_until(lambda: order.read_text() == "web True\nweb True\n", "the new web to reach db")
        after = run.nodes()
        assert after["db"]["pid"] != db and after["db"]["restarts"] == 1
        assert after["web"]["pid"] != web and after["web"]["restarts"] == 1 and not alive(web)
        assert after["other"]["pid"] != other  # after db in the start order: restarted too
    finally:
        run.close()


# -- loose input ---------------------------------------------------------------------------


def test_depends_on_must_be_a_list_and_the_error_says_where_and_how() -> None:
    text = '[services.db]\ncommand = "db"\n\n[services.web]\ncommand = "web"\ndepends_on = "db"\n'
    with pytest.raises(ServicesError) as info:
        parse(text, "services.toml", "/srv")
    assert str(info.value) == (
        "services.toml:6: services.web.depends_on: must be a list of service names, got a string;"
        ' write depends_on = ["db"]'
    )


TREE_THAT_RAISES = """
import supervision as sv

def helper():
    return {}["missing"]

VALUE = helper()

def build():
    return sv.Supervisor([])
"""


@pytest.mark.parametrize("debug", [False, True])
def test_a_tree_file_that_raises_at_import_says_where(tmp_path: Path, debug: bool) -> None:
    (tmp_path / "app.py").write_text(TREE_THAT_RAISES)
    argv = [PY, "-m", "supervision", "run", "app.py", "--no-control", *(["--debug"] if debug else [])]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 1, done.stderr
    app = re.escape(str(tmp_path / "app.py"))
    assert re.search(rf'File "{app}", line 5, in helper\n', done.stderr), done.stderr
    assert "KeyError: 'missing'" in done.stderr
    if debug:
        assert "Traceback (most recent call last)" in done.stderr
        assert re.search(rf'File "{app}", line 7, in <module>', done.stderr), done.stderr
    else:
        assert "Traceback" not in done.stderr and "importlib" not in done.stderr, done.stderr
