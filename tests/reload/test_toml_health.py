"""TOML services files: health probes, watchdogs, held sockets and overlapping
restarts (``health``, ``watchdog``, ``watchdog_signal``, ``sockets``,
``restart_mode``), mapped onto ``sv.process``, with errors that name the key, and
run end to end with a real server on a held socket."""

from __future__ import annotations

import signal
import textwrap
import urllib.request
from pathlib import Path

import pytest

import supervision as sv
from supervision._core.errors import ServicesError
from supervision._reload.services import parse
from tests.cli_helpers import Run, wait_until
from tests.process_helpers import PY, alive, free_port
from tests.runtime.test_health import ROOT, SERVER


def build(text: str) -> sv.Supervisor:
    return parse(textwrap.dedent(text), "services.toml", "/srv/app")


def child(spec: sv.Supervisor, name: str) -> sv.ChildSpec:
    (found,) = [c for c in spec.children if c.id == name]
    return found


def test_health_watchdog_sockets_and_restart_mode_map_onto_the_specs() -> None:
    spec = build(
        """
        [services.web]
        command = "gunicorn app:wsgi"
        sockets = ["tcp://127.0.0.1:8000", { address = "unix:run/admin.sock", name = "admin", mode = "0660" }]
        health = { http = "http://127.0.0.1:8000/healthz", every = 2, timeout = 1, failures = 5, grace = 10 }
        restart_mode = "overlap"
        watchdog = 30
        watchdog_signal = "KILL"

        [services.db]
        command = "postgres"
        health = { tcp = 5432, host = "127.0.0.2" }

        [services.queue]
        command = "rabbitmq-server"
        health = { exec = "rabbitmq-diagnostics -q ping", every = 30 }

        [services.plain]
        command = "sleep 1000"
        """
    )
    web = child(spec, "web")
    assert web.health == sv.health.http("http://127.0.0.1:8000/healthz", every=2, timeout=1, failures=5, grace=10)
    assert web.sockets == (
        sv.listen("tcp://127.0.0.1:8000"),
        sv.listen("unix:/srv/app/run/admin.sock", name="admin", mode=0o660),  # from the file's directory
    )
    assert web.restart_mode == "overlap"
    assert web.watchdog == 30.0
    assert web.start.watchdog_signal == signal.SIGKILL
    assert child(spec, "db").health == sv.health.tcp(5432, "127.0.0.2")
    assert child(spec, "queue").health == sv.health.exec(["rabbitmq-diagnostics", "-q", "ping"], every=30)
    plain = child(spec, "plain")
    assert (plain.health, plain.watchdog, plain.sockets, plain.restart_mode) == (None, None, (), "stop_start")
    assert plain.start.watchdog_signal == signal.SIGABRT


def test_a_socket_table_takes_backlog_and_reuse_port() -> None:
    spec = build(
        """
        [services.web]
        command = "x"
        sockets = [{ address = "tcp://0.0.0.0:8080", name = "web", backlog = 64, reuse_port = true }]
        """
    )
    assert child(spec, "web").sockets == (sv.listen("tcp://0.0.0.0:8080", name="web", backlog=64, reuse_port=True),)


HEAD = '[services.a]\ncommand = "x"\n'

BAD = [
    (HEAD + "health = { every = 1 }\n", "services.a.health", "needs one of http, tcp or exec, got none"),
    (HEAD + 'health = { tcp = 1, http = "http://x" }\n', "services.a.health", "got http, tcp"),
    (HEAD + 'health = { http = "http://x", host = "h" }\n', "services.a.health.host", "only with tcp"),
    (HEAD + 'health = { tcp = "5432" }\n', "services.a.health.tcp", "must be a port number, got a string"),
    (HEAD + "health = { tcp = 1, evry = 2 }\n", "services.a.health.evry", "did you mean 'every'?"),
    (HEAD + "health = { tcp = 1, failures = -1 }\n", "services.a.health.failures", "must be an integer >= 0"),
    (HEAD + 'health = { exec = "" }\n', "services.a.health.exec", "must not be empty"),
    (HEAD + 'health = "http://x"\n', "services.a.health", "must be a table, got a string"),
    (HEAD + "health = { tcp = 1, every = 0 }\n", "services.a.health.every", "must be > 0"),
    (HEAD + "watchdog = -1\n", "services.a.watchdog", "must be a number of seconds >= 0"),
    (HEAD + 'watchdog_signal = "SIGFOO"\n', "services.a.watchdog_signal", "unknown signal 'SIGFOO'"),
    (HEAD + 'restart_mode = "sometimes"\n', "services.a.restart_mode", "unknown restart_mode 'sometimes'"),
    (HEAD + 'sockets = "tcp://127.0.0.1:1"\n', "services.a.sockets", "must be a list of addresses or tables"),
    (HEAD + 'sockets = ["ftp://x"]\n', "services.a.sockets", "socket 1: "),
    (HEAD + 'sockets = ["tcp://127.0.0.1:1", 5]\n', "services.a.sockets", "socket 2: must be an address string"),
    (HEAD + 'sockets = [{ name = "x" }]\n', "services.a.sockets", "socket 1: missing 'address'"),
    (HEAD + 'sockets = [{ address = "unix:/x", nmae = "x" }]\n', "services.a.sockets", "did you mean 'name'?"),
    (HEAD + 'sockets = [{ address = "unix:/x", mode = "rw" }]\n', "services.a.sockets", "octal digits"),
    (HEAD + 'sockets = ["tcp://127.0.0.1:1"]\nready = "port 1"\n', "services.a", "notify"),
    (
        HEAD + 'sockets = [{ address = "tcp://127.0.0.1:1", name = "s" }, { address = "unix:/x", name = "s" }]\n',
        "services.a.sockets",
        "two sockets named 's'",
    ),
]


@pytest.mark.parametrize(("text", "key", "message"), BAD)
def test_bad_values_name_the_key(text: str, key: str, message: str) -> None:
    with pytest.raises(ServicesError) as caught:
        parse(text, "services.toml", "/srv")
    error = caught.value
    assert error.key.startswith(key), str(error)
    assert message in error.message, str(error)
    assert error.line is not None and str(error).startswith(f"services.toml:{error.line}: {error.key}: ")


# -- end to end: a real HTTP server on a socket the supervisor holds ----------------------

SERVICES = """
[services.web]
command = ["{py}", "server.py", "{root}", "status", "log"]
sockets = [{{ address = "tcp://127.0.0.1:{port}", name = "web" }}]
ready = "notify"
health = {{ http = "http://127.0.0.1:{port}/healthz", every = 0.1, timeout = 5, failures = 2 }}
restart_mode = "overlap"
max_retries = 10
retry_window = 60
"""


def get(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_a_services_file_holds_the_socket_probes_health_and_overlaps_restarts(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "services.toml").write_text(SERVICES.format(py=PY, root=ROOT, port=port))
    run = Run(tmp_path, "services.toml")
    try:
        run.wait_running()
        wait_until(lambda: run.nodes()["web"]["health"] == "healthy", "the first passing probe")
        first = run.nodes()["web"]["pid"]
        assert get(port) == (200, str(first))  # served on the supervisor's socket

        # Unhealthy twice in a row: stopped (its stop signal) and started again, on the same socket.
        (tmp_path / "status").write_text("500")
        wait_until(lambda: run.nodes()["web"]["pid"] not in (None, first), "a restart for the failed probes")
        (tmp_path / "status").write_text("200")
        second = run.nodes()["web"]["pid"]
        wait_until(lambda: run.nodes()["web"]["health"] == "healthy", "healthy again")
        assert not alive(first)
        assert run.nodes()["web"]["restarts"] >= 1

        # An operator's restart overlaps: the new one is ready before the old one is stopped.
        run.cli("restart", "web")
        third = run.nodes()["web"]["pid"]
        assert third != second
        wait_until(lambda: get(port) == (200, str(third)), "answers from the new process")
        wait_until(lambda: not alive(second), "the old process stopped")
        run.signal(signal.SIGTERM)
        assert run.wait_exit() == 0
        assert not alive(third)
    finally:
        run.close()
