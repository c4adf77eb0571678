"""Zero downtime, measured: a real HTTP service restarted and reloaded under load.

    python bench/zero_downtime.py                 # supervision, supervisord, circus
    python bench/zero_downtime.py --only supervision --restarts 5

One small HTTP service (``SERVER`` below, the same program for every contender) runs
under each supervisor in turn, from a generated config, started the way a user starts
it. A client on loopback sends requests at a steady rate (open loop: request *i* is
sent at ``t0 + i / rate`` whatever happened to the others, one connection each,
``Connection: close``, a timeout of ``--timeout`` seconds) and records each one's
latency, from the moment it was due to the last byte of the answer, and whether it
failed (refused, reset, timed out, not a 200). Meanwhile, with the supervisor's own
command line:

1. steady state, ``--steady`` seconds: nothing happens;
2. ``--restarts`` restarts of the service, one after the other
   (``supervision restart web``, ``supervisorctl restart web``, ``circusctl restart web``);
3. ``--reloads`` reloads that change the service's environment
   (``supervision reload`` of the edited ``tree.py``; ``supervisorctl update`` and
   ``circusctl reloadconfig`` of the edited config file).

The service answers ``200`` with its pid, and on SIGTERM stops accepting, finishes
the requests it accepted and exits (what a graceful server does; otherwise a stop
loses in-flight requests whatever the supervisor does). How it gets its listening
socket is each supervisor's way:

- supervision: ``sockets=[sv.listen("tcp://127.0.0.1:PORT", name="web")]``,
  ``ready=sv.ready.notify()``, ``restart_mode="overlap"``: the service takes its
  socket from ``sv.listen_fds()`` and sends ``READY=1`` once it serves;
- circus: its own sockets (``[socket:web]``, ``use_sockets = True``, the fd passed
  with ``$(circus.sockets.web)``);
- supervisord: no socket passing: the service binds the port itself.

Bounded in count and time: the rate and the number of operations are fixed, each
command has a deadline, and the whole run of one contender takes well under a
minute. The results go to ``bench/results/zero_downtime.json`` and a markdown table
to stdout (``docs/performance.md`` has the table of a run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import contenders  # noqa: E402  (bench/ is not a package)

PYTHON = sys.executable
COMMAND_DEADLINE = 60.0

SERVER = r'''
"""A small HTTP/1.1 service: 200 and its pid; graceful on SIGTERM."""
import asyncio, os, signal, socket, sys

def held_socket():
    mode = sys.argv[1]
    if mode == "activation":  # supervision: systemd socket activation
        sys.path.insert(0, sys.argv[2])
        import supervision as sv
        return sv.listen_fds()["web"]
    if mode == "fd":  # circus: $(circus.sockets.web)
        return socket.socket(fileno=int(sys.argv[2]))
    sock = socket.socket()  # supervisord: bind it ourselves
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[2])))
    sock.listen(1024)
    return sock

def notify(message):
    address = os.environ.get("NOTIFY_SOCKET")
    if address:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect("\0" + address[1:] if address.startswith("@") else address)
            s.sendall(message.encode())

async def main():
    body = str(os.getpid()).encode()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    active = set()

    async def handle(reader, writer):
        active.add(asyncio.current_task())
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            active.discard(asyncio.current_task())

    server = await asyncio.start_server(handle, sock=held_socket(), backlog=1024)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    notify("READY=1")
    await stop.wait()
    server.close()  # no more accepts here; queued connections stay for the next one
    if active:
        await asyncio.wait(set(active), timeout=10)

asyncio.run(main())
'''

SV_TREE = """\
import logging, sys
import supervision as sv

logging.getLogger("supervision").setLevel(logging.WARNING)
VERSION = {version!r}

def build():
    return sv.Supervisor([
        sv.process(
            "web",
            [sys.executable, {server!r}, "activation", {root!r}],
            env={{"VERSION": VERSION}},
            sockets=[sv.listen("tcp://127.0.0.1:{port}", name="web")],
            ready=sv.ready.notify(),
            restart_mode="overlap",
            output="inherit",
        ),
    ])
"""

SUPERVISORD_CONF = """\
[supervisord]
nodaemon = true
logfile = {tmp}/supervisord.log
pidfile = {tmp}/supervisord.pid
childlogdir = {tmp}

[unix_http_server]
file = {tmp}/supervisor.sock

[supervisorctl]
serverurl = unix://{tmp}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:web]
command = {python} {server} bind {port}
environment = VERSION="{version}"
stopsignal = TERM
stopwaitsecs = 10
startsecs = 1
"""

CIRCUS_INI = """\
[circus]
check_delay = 1
endpoint = ipc://{tmp}/circus-ctl.sock
pubsub_endpoint = ipc://{tmp}/circus-pubsub.sock
multicast_endpoint =
statsd = false
httpd = false
logoutput = {tmp}/circusd.log

[socket:web]
host = 127.0.0.1
port = {port}

[watcher:web]
cmd = {python} {server} fd $(circus.sockets.web)
use_sockets = True
numprocesses = 1
graceful_timeout = 10
copy_env = true

[env:web]
VERSION = {version}
"""


@dataclass
class Request:
    due: float
    latency: float | None = None  # None: failed
    error: str | None = None


@dataclass
class Phase:
    name: str
    begin: float
    end: float


@dataclass
class Contender:
    key: str
    label: str
    how: str
    start: Callable[[Path, int, str], list[str]]
    restart: Callable[[Path], list[str]]
    reload: Callable[[Path, int, str], list[str]]  # edits the config, returns the command
    ready: Callable[[Path, int], bool]
    env: dict[str, str] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the contenders ------------------------------------------------------------------------


def _sv_write(tmp: Path, port: int, version: str) -> None:
    (tmp / "tree.py").write_text(
        SV_TREE.format(version=version, server=str(tmp / "server.py"), root=str(ROOT), port=port)
    )


def _sv_start(tmp: Path, port: int, version: str) -> list[str]:
    _sv_write(tmp, port, version)
    return [PYTHON, "-m", "supervision", "run", str(tmp / "tree.py"), "--control", str(tmp / "sv.sock")]


def _sv_reload(tmp: Path, port: int, version: str) -> list[str]:
    _sv_write(tmp, port, version)
    return [PYTHON, "-m", "supervision", "reload", "--control", str(tmp / "sv.sock")]


def _sd_write(tmp: Path, port: int, version: str) -> None:
    text = SUPERVISORD_CONF.format(tmp=tmp, python=PYTHON, server=tmp / "server.py", port=port, version=version)
    (tmp / "supervisord.conf").write_text(text)


def _sd_start(tmp: Path, port: int, version: str) -> list[str]:
    _sd_write(tmp, port, version)
    return [str(contenders.PEERS_VENV / "bin" / "supervisord"), "-c", str(tmp / "supervisord.conf")]


def _sd_ctl(tmp: Path, *args: str) -> list[str]:
    return [str(contenders.PEERS_VENV / "bin" / "supervisorctl"), "-c", str(tmp / "supervisord.conf"), *args]


def _sd_reload(tmp: Path, port: int, version: str) -> list[str]:
    _sd_write(tmp, port, version)
    return _sd_ctl(tmp, "update")


def _circus_write(tmp: Path, port: int, version: str) -> None:
    text = CIRCUS_INI.format(tmp=tmp, python=PYTHON, server=tmp / "server.py", port=port, version=version)
    (tmp / "circus.ini").write_text(text)


def _circus_start(tmp: Path, port: int, version: str) -> list[str]:
    _circus_write(tmp, port, version)
    return [str(contenders.PEERS_VENV / "bin" / "circusd"), str(tmp / "circus.ini")]


def _circus_ctl(tmp: Path, *args: str) -> list[str]:
    return [str(contenders.PEERS_VENV / "bin" / "circusctl"), "--endpoint", f"ipc://{tmp}/circus-ctl.sock", *args]


def _circus_reload(tmp: Path, port: int, version: str) -> list[str]:
    _circus_write(tmp, port, version)
    return _circus_ctl(tmp, "reloadconfig")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


CONTENDERS = {
    "supervision": Contender(
        "supervision",
        "supervision",
        'held socket (`sv.listen`), `ready=sv.ready.notify()`, `restart_mode="overlap"`',
        _sv_start,
        lambda tmp: [PYTHON, "-m", "supervision", "restart", "web", "--control", str(tmp / "sv.sock")],
        _sv_reload,
        lambda tmp, port: _answers(port),
    ),
    "supervisord": Contender(
        "supervisord",
        "supervisord",
        "the service binds the port itself (no socket passing); `startsecs=1`",
        _sd_start,
        lambda tmp: _sd_ctl(tmp, "restart", "web"),
        _sd_reload,
        lambda tmp, port: _answers(port),
    ),
    "circus": Contender(
        "circus",
        "circus",
        "its own sockets (`[socket:web]`, `use_sockets`)",
        _circus_start,
        lambda tmp: _circus_ctl(tmp, "restart", "web"),
        _circus_reload,
        lambda tmp, port: _answers(port),
    ),
}


# -- the load --------------------------------------------------------------------------------


class Load:
    """An open-loop client in a thread of its own (its own event loop)."""

    def __init__(self, port: int, rate: float, timeout: float) -> None:
        self.port = port
        self.rate = rate
        self.timeout = timeout
        self.requests: list[Request] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.started = time.monotonic()
        self._thread.start()

    async def _one(self, request: Request) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                    data = await reader.read()
                finally:
                    writer.close()
            if not data.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(f"answer {data[:30]!r}")
            request.latency = time.monotonic() - request.due
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            request.error = type(exc).__name__

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        i = 0
        begin = time.monotonic()
        while not self._stop.is_set():
            due = begin + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            request = Request(due)
            self.requests.append(request)
            task = loop.create_task(self._one(request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if tasks:
            await asyncio.wait(tasks)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 30)


# -- one contender -----------------------------------------------------------------------------


def _run_command(argv: list[str], env: dict[str, str]) -> float:
    began = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=COMMAND_DEADLINE)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): {done.stdout} {done.stderr}")
    return time.monotonic() - began


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _stats(requests: list[Request]) -> dict[str, Any]:
    latencies = sorted(r.latency * 1000 for r in requests if r.latency is not None)
    failed = [r for r in requests if r.latency is None]
    out: dict[str, Any] = {"requests": len(requests), "failed": len(failed)}
    if latencies:
        out["p50_ms"] = round(statistics.median(latencies), 2)
        out["p99_ms"] = round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2)
        out["max_ms"] = round(latencies[-1], 2)
    errors: dict[str, int] = {}
    for r in failed:
        errors[r.error or "?"] = errors.get(r.error or "?", 0) + 1
    out["errors"] = errors
    return out


def run_contender(contender: Contender, args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory(prefix=f"zd-{contender.key}-") as name:
        tmp = Path(name)
        (tmp / "server.py").write_text(SERVER)
        port = _free_port()
        log = open(tmp / "daemon.log", "wb")  # noqa: SIM115
        daemon = subprocess.Popen(contender.start(tmp, port, "0"), env=env, stdout=log, stderr=log, cwd=tmp)
        load: Load | None = None
        try:
            _wait(lambda: contender.ready(tmp, port), f"{contender.key} to serve")
            time.sleep(0.5)
            load = Load(port, args.rate, args.timeout)
            phases: list[Phase] = []
            began = time.monotonic()
            time.sleep(args.steady)
            phases.append(Phase("steady", began, time.monotonic()))
            began = time.monotonic()
            restart_times = [_run_command(contender.restart(tmp), env) for _ in range(args.restarts)]
            phases.append(Phase("restarts", began, time.monotonic()))
            began = time.monotonic()
            reload_times = []
            for n in range(args.reloads):
                reload_times.append(_run_command(contender.reload(tmp, port, str(n + 1)), env))
                _wait(lambda: contender.ready(tmp, port), "the service after a reload")
            phases.append(Phase("reloads", began, time.monotonic()))
            time.sleep(args.tail)
            load.stop()
            result: dict[str, Any] = {"label": contender.label, "how": contender.how}
            for phase in phases:
                inside = [r for r in load.requests if phase.begin <= r.due < phase.end]
                result[phase.name] = {**_stats(inside), "seconds": round(phase.end - phase.begin, 2)}
            result["all"] = _stats(load.requests)
            result["command_s"] = {
                "restart_median": round(statistics.median(restart_times), 3) if restart_times else None,
                "reload_median": round(statistics.median(reload_times), 3) if reload_times else None,
            }
            return result
        finally:
            if load is not None:
                load.stop()
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            log.close()


# -- the report ----------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    rows = [
        "| supervisor | phase | seconds | requests | failed | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, result in results.items():
        if key.startswith("_"):
            continue
        for phase in ("steady", "restarts", "reloads"):
            found = result.get(phase)
            if not found:
                continue
            rows.append(
                f"| {result['label']} | {phase} | {found['seconds']} | {found['requests']} | {found['failed']} | "
                f"{found.get('p50_ms', '-')} | {found.get('p99_ms', '-')} | {found.get('max_ms', '-')} |"
            )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(CONTENDERS), action="append", help="run only these")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--steady", type=float, default=3.0, help="seconds of steady state first")
    parser.add_argument("--tail", type=float, default=1.0, help="seconds after the last reload")
    parser.add_argument("--timeout", type=float, default=5.0, help="a request's deadline")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "zero_downtime.json")
    args = parser.parse_args()
    keys = args.only or ["supervision", "supervisord", "circus"]
    results: dict[str, Any] = {}
    if any(key != "supervision" for key in keys):
        results["_versions"] = contenders.ensure_peers()
    for key in keys:
        print(f"{key} ...", file=sys.stderr, flush=True)
        results[key] = run_contender(CONTENDERS[key], args)
    results["_settings"] = {k: v for k, v in vars(args).items() if k not in ("only", "out")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
