"""TOML services files: the mapping onto specs, errors that point at the line, and a
services file equivalent to a typical supervisord config, run end to end."""

from __future__ import annotations

import re
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

import supervision as sv
from supervision._core.errors import ServicesError
from supervision._reload.services import load, parse
from tests.cli_helpers import DEADLINE, PY, Run, wait_until
from tests.process_helpers import alive, free_port


def build(text: str, base: str = "/srv/app") -> sv.Supervisor:
    return parse(textwrap.dedent(text), "services.toml", base)


def service(spec: sv.Supervisor, name: str) -> sv.ChildSpec:
    """The service's process child, at the root."""
    (process,) = [c for c in spec.children if c.id == name]
    assert process.kind == "process"
    return process


def test_every_field_maps_onto_the_specs() -> None:
    spec = build(
        """
        [supervisor]
        strategy = "rest_for_one"
        max_retries = 10
        retry_window = 300

        [services.web]
        command = "gunicorn app:wsgi --bind '127.0.0.1:8000'"
        cwd = "www"
        environment = { MODE = "prod", WORKERS = 4 }
        restart = "on-failure"
        max_retries = 5
        retry_window = 60
        retry_delay = 1.5
        ready = "port 8000"
        start_timeout = 20
        stop_timeout = 3
        stop_signal = "INT"
        output = "logs/web.log"
        """
    )
    assert (spec.strategy, spec.intensity, spec.period, spec.backoff) == ("rest_for_one", 10, 300.0, None)
    process = service(spec, "web")
    assert (process.intensity, process.period) == (5, 60.0)  # the service's own restart limit
    assert process.backoff == sv.Backoff(initial=1.5, maximum=1.5, factor=1.0, jitter=0.0)
    assert process.id == "web" and process.kind == "process"
    assert (process.restart, process.significant) == (sv.Restart.TRANSIENT, False)
    assert (process.shutdown, process.ready_timeout) == (3.0, 20.0)
    start = process.start
    assert start.argv == ("gunicorn", "app:wsgi", "--bind", "127.0.0.1:8000")
    assert start.cwd == "/srv/app/www"
    assert dict(start.env) == {"MODE": "prod", "WORKERS": "4"}
    assert start.stop_signal == signal.SIGINT
    assert start.ready == sv.ready.port(8000)
    assert start.output == sv.log_file("/srv/app/logs/web.log")  # written by the supervisor


def test_defaults() -> None:
    spec = build('[services.job]\ncommand = ["./job", "--once"]\n')
    assert (spec.strategy, spec.intensity, spec.period) == ("one_for_one", 3, 5.0)
    process = service(spec, "job")
    assert [c.id for c in spec.children] == ["job"]
    assert (process.intensity, process.period, process.backoff) == (3, 5.0, None)
    assert (process.restart, process.significant, process.shutdown) == (sv.Restart.PERMANENT, False, 10.0)
    assert process.start.cwd == "/srv/app"  # the services file's directory
    assert (process.start.ready, process.start.output, process.start.stop_signal) == (None, "prefix", signal.SIGTERM)


@pytest.mark.parametrize(
    ("restart", "process"), [("always", "permanent"), ("on-failure", "transient"), ("never", "temporary")]
)
def test_restart_maps_onto_restart_types(restart: str, process: str) -> None:
    assert service(build(f'[services.s]\ncommand = "x"\nrestart = "{restart}"\n'), "s").restart == process


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ('"notify"', sv.ready.notify()),
        ('"port 5432"', sv.ready.port(5432)),
        ('{ port = 53, host = "::1" }', sv.ready.port(53, "::1")),
        ('"delay 0.5"', sv.ready.delay(0.5)),
        ("{ delay = 2 }", sv.ready.delay(2)),
    ],
)
def test_ready(text: str, check: object) -> None:
    assert service(build(f'[services.s]\ncommand = "x"\nready = {text}\n'), "s").start.ready == check


@pytest.mark.parametrize(("text", "number"), [('"TERM"', 15), ('"SIGINT"', 2), ('"hup"', 1), ("9", 9), ('"QUIT"', 3)])
def test_stop_signal(text: str, number: int) -> None:
    assert service(build(f'[services.s]\ncommand = "x"\nstop_signal = {text}\n'), "s").start.stop_signal == number


def test_retry_delay_table_is_a_backoff() -> None:
    text = '[services.s]\ncommand = "x"\nretry_delay = { initial = 0.5, maximum = 20, factor = 3, jitter = 0 }\n'
    assert service(build(text), "s").backoff == sv.Backoff(initial=0.5, maximum=20, factor=3, jitter=0)


def test_depends_on_orders_the_start_and_keeps_the_file_order_otherwise() -> None:
    spec = build(
        """
        [services.web]
        command = "web"
        depends_on = ["db", "cache"]
        [services.worker]
        command = "worker"
        depends_on = ["web"]
        [services.db]
        command = "db"
        [services.metrics]
        command = "metrics"
        [services.cache]
        command = "cache"
        depends_on = ["db"]
        """
    )
    assert [c.id for c in spec.children] == ["db", "metrics", "cache", "web", "worker"]


BAD = [
    ('[services.web]\ncommand = "x"\nrestart = "sometimes"\n', 3, "services.web.restart", "unknown value 'sometimes'"),
    ('[services.web]\ncomand = "x"\n', 2, "services.web.comand", "unknown field (did you mean 'command'?)"),
    ("[services.web]\ncwd = '/'\n", 1, "services.web", "missing 'command'"),
    (
        '[services.web]\ncommand = "x"\n\ndepends_on = ["dbb"]\n[services.db]\ncommand = "y"\n',
        4,
        "services.web.depends_on",
        "unknown service 'dbb' (did you mean 'db'?)",
    ),
    (
        '[services.a]\ncommand = "x"\ndepends_on = ["b"]\n[services.b]\ncommand = "y"\ndepends_on = ["a"]\n',
        3,
        "services.a.depends_on",
        "dependency cycle: a -> b -> a",
    ),
    ('[services.a]\ncommand = "x"\ndepends_on = ["a"]\n', 3, "services.a.depends_on", "dependency cycle: a -> a"),
    ('[services.a]\ncommand = "x"\nstop_signal = "SIGFOO"\n', 3, "services.a.stop_signal", "unknown signal 'SIGFOO'"),
    ('[services.a]\ncommand = "x"\nready = "port 99999"\n', 3, "services.a.ready", "expected 'notify', 'port N'"),
    (
        '[services.a]\ncommand = "x"\nstop_timeout = -1\n',
        3,
        "services.a.stop_timeout",
        "must be a number of seconds >= 0",
    ),
    ('[services.a]\ncommand = "x"\nmax_retries = 1.5\n', 3, "services.a.max_retries", "must be an integer >= 0"),
    ("[services.a]\ncommand = []\n", 2, "services.a.command", "must not be empty"),
    ('[services.a]\ncommand = "x \'y"\n', 2, "services.a.command", "cannot split"),
    (
        '[services.a]\ncommand = "x"\nenvironment = { A = true }\n',
        3,
        "services.a.environment.A",
        "must be a string or a number",
    ),
    (
        '[services.a]\ncommand = "x"\nretry_delay = { initial = 5, maximum = 1 }\n',
        3,
        "services.a.retry_delay.initial",
        "must not exceed",
    ),
    ('[services]\nweb = { command = "x", restart = "no" }\n', 2, "services.web.restart", "unknown value 'no'"),
    (
        '[supervisor]\nstrategy = "random"\n[services.a]\ncommand = "x"\n',
        2,
        "supervisor.strategy",
        "unknown strategy 'random'",
    ),
    (
        '[supervisor]\nmax_retry = 1\n[services.a]\ncommand = "x"\n',
        2,
        "supervisor.max_retry",
        "did you mean 'max_retries'?",
    ),
    ('[program.a]\ncommand = "x"\n', 1, "program", "unknown table"),
    ("[supervisor]\n", None, "services", "no services"),
    ('[services."a/b"]\ncommand = "x"\n', 1, "services.a/b", "without '/'"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), BAD)
def test_errors_point_at_the_line(text: str, line: int | None, key: str, message: str) -> None:
    with pytest.raises(ServicesError) as caught:
        parse(text, "services.toml", "/srv")
    error = caught.value
    assert (error.line, error.key) == (line, key), str(error)
    assert message in error.message
    where = f"services.toml:{line}" if line else "services.toml"
    assert str(error).startswith(f"{where}: {key}: ")


def test_invalid_toml_points_at_the_line() -> None:
    with pytest.raises(ServicesError, match=r"^services\.toml:3: invalid TOML: "):
        parse('[services.a]\ncommand = "x"\nready = \n', "services.toml")
    with pytest.raises(ServicesError, match=r"^missing\.toml: cannot read"):
        load("missing.toml")


# -- end to end -------------------------------------------------------------------------

# The supervisord config this services file replaces:
#
#   [program:web]                          [program:worker]
#   command=python web.py                  command=python worker.py
#   directory=www                          autorestart=unexpected
#   environment=MODE="prod"                startretries=5
#   stopsignal=INT                         priority=30
#   stopwaitsecs=5                         [program:db]
#   priority=20                            command=python db.py
#   [program:cache]                        priority=10
#   command=python cache.py
#   priority=10
#
# with what supervisord cannot say: web starts once db accepts connections and
# cache said it is ready; worker once web accepts connections.
SERVICES = """
[supervisor]
max_retries = 5
retry_window = 60

[services.web]
command = ["{py}", "web.py"]
depends_on = ["db", "cache"]
cwd = "www"
environment = {{ MODE = "prod", PORT = {web_port} }}
ready = "port {web_port}"
stop_signal = "INT"
stop_timeout = 5

[services.worker]
command = "{py} worker.py"
depends_on = ["web"]
restart = "on-failure"
max_retries = 5
retry_delay = 0.1

[services.db]
command = ["{py}", "db.py"]
ready = "port {db_port}"

[services.cache]
command = ["{py}", "cache.py"]
ready = "notify"
"""

LISTEN = """
import os, socket, sys, time
def log(text):
    with open(os.environ["ORDER"], "a") as f:
        f.write(text + "\\n")
def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s
def reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return True
    except OSError:
        return False
"""

PROGRAMS = {
    "db.py": LISTEN + "log('db'); s = listen({db_port}); print('db up', flush=True)\nwhile True: time.sleep(1)\n",
    "cache.py": LISTEN
    + "log('cache'); open('cache.ready', 'w').close()\n"
    + "address = os.environ['NOTIFY_SOCKET'].replace('@', '\\0', 1)\n"
    + "n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); n.connect(address); n.send(b'READY=1')\n"
    + "while True: time.sleep(1)\n",
    "www/web.py": LISTEN
    + "ok = reachable({db_port}) and os.path.exists('../cache.ready')\n"
    + "log(f'web {{ok}} {{os.environ[\"MODE\"]}} {{os.path.basename(os.getcwd())}}')\n"
    + "s = listen(int(os.environ['PORT']))\n"
    + "try:\n    while True: time.sleep(1)\n"
    + "except KeyboardInterrupt:\n    print('web stopping on SIGINT', flush=True)\n",
    "worker.py": LISTEN + "log(f'worker {{reachable({web_port})}}')\nwhile True: time.sleep(1)\n",
}


def test_a_services_file_runs_in_dependency_order_with_readiness(tmp_path: Path) -> None:
    ports = {"db_port": free_port(), "web_port": free_port(), "py": PY}
    (tmp_path / "www").mkdir()
    (tmp_path / "services.toml").write_text(SERVICES.format(**ports))
    for name, source in PROGRAMS.items():
        (tmp_path / name).write_text(source.format(**ports))
    order = tmp_path / "order.log"
    run = Run(tmp_path, "services.toml", env={"ORDER": str(order)})
    try:
        run.wait_running()
        # worker has no readiness check: it counts as started once exec succeeded.
        wait_until(lambda: "worker" in order.read_text(), "worker to start")
        assert order.read_text().split("\n") == ["db", "cache", "web True prod www", "worker True", ""]
        nodes = run.nodes()
        assert list(nodes) == ["db", "cache", "web", "worker"]
        assert all(n["status"] == "running" for n in nodes.values())
        pids = [n["pid"] for n in nodes.values() if n["kind"] == "process"]
        assert all(alive(pid) for pid in pids)
        wait_until(lambda: run.cli("logs", "db").stdout == "db up\n", "db's output")
        run.cli("restart", "worker")
        wait_until(lambda: order.read_text().endswith("worker True\nworker True\n"), "worker to start again")
        run.signal(signal.SIGTERM)
        assert run.wait_exit() == 0
        assert not any(alive(pid) for pid in pids)
        assert "web | web stopping on SIGINT" in run.stdout  # its stop_signal
    finally:
        run.close()


def test_a_bad_services_file_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[services.web]\ncommand = "x"\n\ndepends_on = ["dbb"]\n')
    argv = [PY, "-m", "supervision", "run", "bad.toml", "--no-control"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 1
    assert re.search(r"bad\.toml:4: services\.web\.depends_on: unknown service 'dbb'", done.stderr), done.stderr
