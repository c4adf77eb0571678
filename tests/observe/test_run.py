"""Observability end to end: ``supervision run --http`` as a subprocess, its
metrics after a scripted sequence of crashes, its probes through start, give-up
and stop, the termination message, ``status``, ``dashboard``, ``top`` and JSON logs."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervision.observe.metrics import METRICS
from tests.cli_helpers import DEADLINE, PY, Run, ping, request, wait_until

pytestmark = pytest.mark.timeout(120)

HEADER = """
import os, socket, sys
import supervision as sv

PY = sys.executable
HERE = os.path.dirname(os.path.abspath(__file__))
SLEEP = ["sleep", "1000"]
"""

# A child that notifies READY=1 once the file ``ready`` exists, then exits 1 once ``crash`` exists.
GATED = """
import os, socket, sys, time
here = sys.argv[1]
while not os.path.exists(os.path.join(here, "ready")):
    time.sleep(0.02)
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\\0" + address[1:]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
    sock.connect(address)
    sock.sendall(b"READY=1")
while not os.path.exists(os.path.join(here, "crash")):
    time.sleep(0.02)
sys.exit(1)
"""

# Fails to start on its second start only (exits before its readiness delay).
FLAKY = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -eq 2 ] && exit 1; exec sleep 1000"


def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=DEADLINE) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def http_of(run: Run) -> str:
    def find() -> str | None:
        if run.proc.poll() is not None:
            raise AssertionError(f"supervision run exited with {run.proc.returncode}:\n{run.stderr}")
        found = ping(run.control)
        return found.get("http") if found else None

    url: str = wait_until(find, "the HTTP endpoint")
    return url


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def kill_and_wait_restart(run: Run, path: str) -> None:
    before = run.nodes()[path]
    os.kill(before["pid"], signal.SIGKILL)

    def restarted() -> bool:
        node = run.nodes()[path]
        return node["status"] == "running" and node["pid"] not in (None, before["pid"])

    wait_until(restarted, f"{path} to restart")


def child(path: str, kind: str, supervisor: str) -> tuple[tuple[str, str], ...]:
    return (("kind", kind), ("path", path), ("supervisor", supervisor))


def test_metrics_after_a_scripted_sequence_of_crashes(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        HEADER
        + f"""
FLAKY = {FLAKY!r}

def build():
    return sv.Supervisor(
        [
            sv.process("web", SLEEP),
            sv.child("db", sv.Supervisor([sv.process("pool", SLEEP)], intensity=5, period=3600)),
            sv.process("flaky", ["sh", "-c", FLAKY], cwd=HERE, ready=sv.ready.delay(0.3)),
        ],
        intensity=10,
        period=3600,
    )
"""
    )
    run = Run(tmp_path, "app.py", args=["--http", "127.0.0.1:0"])
    try:
        run.wait_running()
        url = http_of(run)
        assert url.startswith("http://127.0.0.1:")
        kill_and_wait_restart(run, "web")
        kill_and_wait_restart(run, "web")
        kill_and_wait_restart(run, "db/pool")
        kill_and_wait_restart(run, "flaky")  # its second start fails, the retry starts it
        assert run.cli("reload").returncode == 0
        (tmp_path / "app.py").write_text("this is not Python\n")
        assert run.cli("reload", expect=1).returncode == 1

        code, text = get(url + "metrics")
        assert code == 200
        found = samples(text)
        names = {name.removesuffix("_total") for name, _ in found} | {name for name, _ in found}
        for metric in METRICS:
            assert metric in names, metric
        web, pool, flaky = (
            child("web", "process", "/"),
            child("db/pool", "process", "db"),
            child("flaky", "process", "/"),
        )
        db = child("db", "supervisor", "/")
        expected = {
            "supervision_child_up": {web: 1, pool: 1, flaky: 1, db: 1},
            "supervision_child_restarts_total": {web: 2, pool: 1, flaky: 2, db: 0},
            "supervision_child_start_failures_total": {web: 0, pool: 0, flaky: 1, db: 0},
        }
        for metric, values in expected.items():
            for labels, value in values.items():
                assert found[(metric, labels)] == value, (metric, labels)
        for labels in (web, pool, flaky):
            assert found[("supervision_child_resident_memory_bytes", labels)] > 0
            assert found[("supervision_child_open_fds", labels)] >= 3
            assert found[("supervision_child_cpu_seconds_total", labels)] >= 0
        assert ("supervision_child_open_fds", db) not in found  # figures of process children only
        # Root: web twice, flaky's exit and its failed start's retry: 4 of 10. db: 1 of 5.
        assert found[("supervision_supervisor_intensity_used_ratio", (("supervisor", "/"),))] == 0.4
        assert found[("supervision_supervisor_intensity_used_ratio", (("supervisor", "db"),))] == 0.2
        assert found[("supervision_tree_reloads_total", (("outcome", "applied"),))] == 1
        assert found[("supervision_tree_reloads_total", (("outcome", "rejected"),))] == 1
        assert found[("process_resident_memory_bytes", ())] > 0
        assert found[("process_open_fds", ())] > 0

        status = run.status()  # supervision status --json: the same figures
        assert status["intensity"] == {"restarts": 4, "intensity": 10, "period": 3600, "used_ratio": 0.4}
        nodes = run.nodes()
        assert nodes["flaky"]["start_failures"] == 1 and len(nodes["flaky"]["recent_restarts"]) == 1  # one came up
        assert nodes["web"]["resources"]["processes"] == 1 and "resources" not in nodes["db"]
        human = run.cli("status").stdout
        assert human.splitlines()[1].split() == [
            "PATH",
            "KIND",
            "STATUS",
            "PID",
            "CPU%",
            "RSS",
            "UPTIME",
            "RESTARTS",
            "LAST",
            "EXIT",
        ]
        web_row = next(line for line in human.splitlines() if line.startswith("web "))
        assert web_row.split()[4].replace(".", "").isdigit() and web_row.split()[5][-1] in "KM"
    finally:
        run.close()


def test_probes_through_start_give_up_and_the_termination_message(tmp_path: Path) -> None:
    (tmp_path / "gated.py").write_text(GATED)
    (tmp_path / "app.py").write_text(
        HEADER
        + """
def build():
    return sv.Supervisor(
        [
            sv.process("stubborn", ["sh", "-c", "trap '' TERM; sleep 1000 & wait; sleep 1000"], shutdown=2.0),
            sv.process("gated", [PY, os.path.join(HERE, "gated.py"), HERE], ready=sv.ready.notify()),
        ],
        intensity=1,
        period=3600,
    )
"""
    )
    log = tmp_path / "termination-log"
    run = Run(tmp_path, "app.py", args=["--http", "127.0.0.1:0", "--termination-log", str(log)])
    try:
        url = http_of(run)  # served while the tree starts
        assert get(url + "healthz") == (503, "the tree is starting\n")
        assert get(url + "readyz") == (503, "the tree is starting\n")
        (tmp_path / "ready").touch()
        run.wait_running()
        assert get(url + "healthz") == (200, "ok\n")
        assert get(url + "readyz") == (200, "ok\n")
        # gated exits; its restart fails to start (it exits before it is ready): the root gives up,
        # and stops stubborn, which ignores SIGTERM for 2 s: not live meanwhile.
        (tmp_path / "crash").touch()
        wait_until(lambda: get(url + "healthz")[0] == 503, "the root to give up")
        assert get(url + "healthz") == (503, "the root supervisor gave up\n")
        assert get(url + "readyz")[0] == 503
        assert run.wait_exit() == 1
        text = log.read_text()
        lines = text.splitlines()
        assert lines[0].startswith("TooManyRestarts: ") and lines[1] == "last events:"
        assert any(" gated ChildExited reason=crash" in line for line in lines)
        gave_up = "/ SupervisorGaveUp error=TooManyRestarts: " + lines[0].split(": ", 1)[1]
        assert any(line.endswith(gave_up) for line in lines)
        assert lines[-1].endswith("stubborn ChildExited reason=shutdown signal=9")  # stopped after the give-up
        assert len(text.encode()) <= 4096
    finally:
        run.close()


def test_probes_while_stopping_and_the_dashboard_token(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        HEADER
        + """
def build():
    return sv.Supervisor(
        [sv.process("web", SLEEP), sv.process("stubborn", ["sh", "-c", "trap '' TERM; sleep 1000 & wait; sleep 1000"],
                                               shutdown=2.0)]
    )
"""
    )
    run = Run(tmp_path, "app.py", name="shop", args=["--http", "127.0.0.1:0", "--log-format", "json"])
    try:
        run.wait_running()
        url = http_of(run)
        printed = run.cli("dashboard").stdout.strip()
        assert printed.startswith(url + "#token=")
        token = printed.split("#token=", 1)[1]
        token_file = tmp_path / "xdg" / "supervision" / "shop.token"
        assert token_file.read_text().strip() == token and token_file.stat().st_mode & 0o777 == 0o600
        assert get(url + "api/auth", token)[0] == 200 and get(url + "api/auth", "nope")[0] == 403
        tree = json.loads(get(url + "api/tree")[1])
        assert tree["name"] == "shop" and tree["health"]["ready"] is True
        run.signal(signal.SIGTERM)
        wait_until(lambda: get(url + "healthz")[0] == 503, "the tree to stop")
        assert get(url + "healthz") == (503, "the tree is stopping\n")
        assert run.wait_exit() == 0
        assert not token_file.exists()  # removed with the tree
        records = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
        assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
        started = [r for r in records if r.get("event") == "ChildStarted" and r.get("path") == "web"]
        assert started and isinstance(started[0]["pid"], int)
    finally:
        run.close()


def test_http_address_taken_or_bad(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(HEADER + "\ndef build():\n    return sv.Supervisor([sv.process('web', SLEEP)])\n")
    first = Run(tmp_path, "app.py", name="one", args=["--http", "127.0.0.1:0"])
    try:
        first.wait_running()
        port = http_of(first).rsplit(":", 1)[1].rstrip("/")
        second = subprocess.run(
            [PY, "-m", "supervision", "run", "app.py", "--name", "two", "--http", f"127.0.0.1:{port}"],
            cwd=tmp_path,
            env=first.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        assert second.returncode == 1 and "http: cannot listen on" in second.stderr
        bad = subprocess.run(
            [PY, "-m", "supervision", "run", "app.py", "--name", "three", "--http", "localhost:http"],
            cwd=tmp_path,
            env=first.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
        assert request(first.control, "ping")["state"] == "running"
    finally:
        first.close()


def test_top_runs_in_a_terminal_and_quits_on_q(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(HEADER + "\ndef build():\n    return sv.Supervisor([sv.process('web', SLEEP)])\n")
    run = Run(tmp_path, "app.py")
    try:
        run.wait_running()
        master, slave = pty.openpty()
        env = {**run.env, "COLUMNS": "120", "LINES": "30", "TERM": "xterm"}
        top = subprocess.Popen(
            [PY, "-m", "supervision", "top", "--control", run.control],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=tmp_path,
        )
        os.close(slave)
        screen = b""
        deadline = time.monotonic() + DEADLINE
        while b"web" not in screen or b"RESTARTS" not in screen:
            assert time.monotonic() < deadline, screen
            if select.select([master], [], [], 0.5)[0]:
                screen += os.read(master, 65536)
        os.write(master, b"q")
        assert top.wait(DEADLINE) == 0
        os.close(master)
    finally:
        run.close()


def test_the_benchmark_runs(tmp_path: Path) -> None:
    """bench/observe.py on a small tree, so that it cannot rot silently (the numbers are its own business)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "observe.py"
    done = subprocess.run(
        [PY, str(bench), "--idle-seconds", "0.5", "--children", "20", "--scrapes", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("idle, 100 children, --http") and "wake-ups/s" in lines[1]
    assert lines[2].startswith("GET /metrics, 20 children") and lines[3].startswith("GET /api/tree, 20 children")
