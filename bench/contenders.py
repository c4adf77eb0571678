"""The supervisors under test, each run as a real daemon from a generated config.

Every contender is started the way a user would start it (its own command, a config
file in a temporary directory) and stopped with SIGTERM, as an init system would.
The benchmark talks to none of them any other way; it watches them from outside
(``cnproc``).

- the floors: ``bench/floor.py`` (posix_spawn loop, asyncio + pidfd, and the same work
  supervision does per spawn, without a tree);
- supervision: ``python -m supervision run tree.py`` (the project's venv);
- circus and supervisord: installed by the benchmark into ``bench/.peers-venv``
  (``pip install supervisor circus``), never into the project's dependencies.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PEERS_VENV = BENCH / ".peers-venv"
PYTHON = sys.executable

# circus: any positive check_delay is accepted; the event loop cannot wait less than
# 1 ms (epoll's timeout is in milliseconds), so below that circus spins instead of polling
# faster. 1 ms is its fastest setting. Its default, for a config file, is 5 s
# (circus/config.py: ``dget('circus', 'check_delay', 5., float)``; the 1.0 in
# ``Arbiter.__init__`` only applies to the Python API): circus reaps and respawns only
# when that periodic ``manage_watchers`` runs, it has no SIGCHLD handler.
CIRCUS_CHECK_DELAY = 0.001
CIRCUS_DEFAULT_CHECK_DELAY = 5.0


@dataclass(frozen=True)
class Contender:
    """One supervisor under test."""

    key: str  # column key in the JSON
    label: str  # column header in the table
    settings: str  # what it was given, said in the table
    floor: bool = False  # floors exit by themselves after their respawn cycles
    # seconds between SIGTERMs when the first is not heeded (None: one SIGTERM, as an
    # init system sends); only for circus, which drops a quit while it is busy
    resend: float | None = None
    # about how long one crash -> respawn cycle takes (seconds): 0 for the fast ones; the
    # benchmark runs the slow ones for a few cycles only, in one round
    cycle: float = 0.0
    peer: bool = False  # circus or supervisord, at one of its settings

    def respawn_command(self, argv: list[str], cycles: int, tmp: Path) -> list[str]:
        raise NotImplementedError

    def hold_command(self, count: int, argv: list[str], tmp: Path) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class Floor(Contender):
    method: str = "pidfd"

    def respawn_command(self, argv: list[str], cycles: int, tmp: Path) -> list[str]:
        return [
            PYTHON,
            str(BENCH / "floor.py"),
            "respawn",
            "--method",
            self.method,
            "--cycles",
            str(cycles),
            "--",
            *argv,
        ]

    def hold_command(self, count: int, argv: list[str], tmp: Path) -> list[str]:
        return [PYTHON, str(BENCH / "floor.py"), "hold", "--method", self.method, "--count", str(count), "--", *argv]


SV_TREE = """\
import logging

import supervision as sv

ARGV = {argv!r}
{quiet}

def build() -> sv.Supervisor:
    return sv.Supervisor(
        {children},
        intensity={intensity},
        period=1.0,
    )
"""


@dataclass(frozen=True)
class Supervision(Contender):
    # the defaults are what a user gets; the other values serve the breakdown
    output: str = "prefix"
    quiet: bool = False  # silence the "supervision" logger (two lines per crash otherwise)
    pdeathsig: bool = True
    # N children: one instance group, ``sv.process("s", ARGV, instances=N)`` (the like of
    # circus's numprocesses and supervisord's numprocs), or N separate ``sv.process`` children
    separate: bool = False

    def _command(self, tmp: Path, count: int, argv: list[str], intensity: int) -> list[str]:
        options = "" if self.output == "prefix" else f", output={self.output!r}"
        options += "" if self.pdeathsig else ", pdeathsig=False"
        if count == 1:
            children = f'[sv.process("c", ARGV{options})]'
        elif self.separate:
            children = f'[sv.process(f"s{{i}}", ARGV{options}) for i in range({count})]'
        else:
            children = f'[sv.process("s", ARGV, instances={count}{options})]'
        quiet = 'logging.getLogger("supervision").setLevel(logging.CRITICAL)\n' if self.quiet else ""
        source = SV_TREE.format(argv=argv, children=children, intensity=intensity, quiet=quiet)
        (tmp / "tree.py").write_text(source)
        return [PYTHON, "-m", "supervision", "run", str(tmp / "tree.py"), "--control", str(tmp / "sv.sock")]

    def respawn_command(self, argv: list[str], cycles: int, tmp: Path) -> list[str]:
        # never gives up during the crash loop: the loop itself is what is measured
        return self._command(tmp, 1, argv, 10**9)

    def hold_command(self, count: int, argv: list[str], tmp: Path) -> list[str]:
        return self._command(tmp, count, argv, 3)  # the defaults


@dataclass(frozen=True)
class Circus(Contender):
    check_delay: float | None = None  # None: not in the config, circus's default (5 s)

    def _command(self, tmp: Path, count: int, argv: list[str]) -> list[str]:
        delay = "" if self.check_delay is None else f"check_delay = {self.check_delay}\n"
        config = f"""\
[circus]
{delay}endpoint = ipc://{tmp}/circus-ctl.sock
pubsub_endpoint = ipc://{tmp}/circus-pubsub.sock
multicast_endpoint =
statsd = false
httpd = false
logoutput = {tmp}/circusd.log

[watcher:c]
cmd = {shlex.join(argv)}
numprocesses = {count}
copy_env = true
"""
        (tmp / "circus.ini").write_text(config)
        return [str(PEERS_VENV / "bin" / "circusd"), str(tmp / "circus.ini")]

    def respawn_command(self, argv: list[str], cycles: int, tmp: Path) -> list[str]:
        return self._command(tmp, 1, argv)

    def hold_command(self, count: int, argv: list[str], tmp: Path) -> list[str]:
        return self._command(tmp, count, argv)


@dataclass(frozen=True)
class Supervisord(Contender):
    # the tuned setting: child output not logged (its pipes are still read), supervisord's
    # own log at warn (no "spawned"/"exited"/"success" lines). Its main loop's 1 s poll
    # timeout is a constant in supervisord.py (``timeout = 1``): nothing shortens it.
    tuned: bool = False

    def _command(self, tmp: Path, program: str) -> list[str]:
        (tmp / "childlogs").mkdir(exist_ok=True)
        if self.tuned:
            program += "stdout_logfile = NONE\nstderr_logfile = NONE\n"
        config = f"""\
[supervisord]
nodaemon = true
logfile = {tmp}/supervisord.log
pidfile = {tmp}/supervisord.pid
childlogdir = {tmp}/childlogs
{"loglevel = warn" if self.tuned else ""}

{program}"""
        (tmp / "supervisord.conf").write_text(config)
        return [str(PEERS_VENV / "bin" / "supervisord"), "-c", str(tmp / "supervisord.conf")]

    def respawn_command(self, argv: list[str], cycles: int, tmp: Path) -> list[str]:
        # startsecs = 0: with the default (1 s), a program that exits at once goes to
        # BACKOFF with growing delays and then FATAL after 3 tries: no crash loop.
        return self._command(tmp, f"[program:c]\ncommand = {shlex.join(argv)}\nstartsecs = 0\n")

    def hold_command(self, count: int, argv: list[str], tmp: Path) -> list[str]:
        program = (
            f"[program:s]\ncommand = {shlex.join(argv)}\nnumprocs = {count}\n"
            "process_name = %(program_name)s_%(process_num)d\n"
        )
        return self._command(tmp, program)


FLOORS = (
    Floor("posix_spawn", "posix_spawn loop", "blocking posix_spawn + waitpid", floor=True, method="posix"),
    Floor("pidfd", "asyncio+pidfd", "posix_spawn + pidfd_open + add_reader", floor=True, method="pidfd"),
    Floor(
        "same_work",
        "same work",
        "asyncio+pidfd, spawning as supervision does (the exec helper's code in a vfork child)",
        floor=True,
        method="same",
    ),
)
SUPERVISION = Supervision(
    "supervision",
    "supervision",
    "`supervision run tree.py`, defaults (output=prefix); N children: one instance group, `instances=N`",
)
# The same N children as N separate sv.process children: started in order and stopped
# right to left, one at a time (OTP's order for a supervisor's declared children).
SUPERVISION_SEPARATE = Supervision(
    "sv_separate",
    "supervision, N separate children",
    "N separate `sv.process` children (start in order, stop right to left, one at a time)",
    separate=True,
)
_CIRCUS_COMMON = "ipc endpoints, no multicast, no statsd/httpd, copy_env; SIGTERM repeated until it stops"
CIRCUS = Circus(
    "circus",
    "circus 1 ms",
    f"its fastest: check_delay={CIRCUS_CHECK_DELAY:g} s (its lowest); {_CIRCUS_COMMON}",
    resend=0.25,
    peer=True,
    check_delay=CIRCUS_CHECK_DELAY,
)
CIRCUS_DEFAULT = Circus(
    "circus_default",
    "circus 5 s (default)",
    f"its default: check_delay not set (5 s for a config file); {_CIRCUS_COMMON}",
    resend=0.25,
    cycle=CIRCUS_DEFAULT_CHECK_DELAY,
    peer=True,
)
SUPERVISORD = Supervisord(
    "supervisord",
    "supervisord (default)",
    "as shipped (child output logged to files, loglevel info); startsecs=0 for the crash loop; 1 s loop",
    cycle=1.0,
    peer=True,
)
SUPERVISORD_TUNED = Supervisord(
    "supervisord_tuned",
    "supervisord tuned",
    "its fastest: stdout_logfile/stderr_logfile = NONE, loglevel = warn, startsecs=0 for the crash loop;"
    " the 1 s loop cannot be shortened",
    cycle=1.0,
    peer=True,
    tuned=True,
)
PEERS = (CIRCUS, CIRCUS_DEFAULT, SUPERVISORD, SUPERVISORD_TUNED)
ALL = (*FLOORS, SUPERVISION, *PEERS)
# Where supervision's respawn time goes (the breakdown scenario): one thing off at a time.
BREAKDOWN = (
    Supervision("sv_quiet", "no log lines", "the `supervision` logger silenced", quiet=True),
    Supervision("sv_inherit", "output=inherit", "output=inherit (no pipes)", output="inherit"),
    Supervision("sv_bare", "both", "logger silenced, output=inherit", quiet=True, output="inherit"),
    Supervision(
        "sv_nopdeathsig",
        "both, pdeathsig=False",
        "logger silenced, output=inherit, pdeathsig=False (no PR_SET_PDEATHSIG, no parent check)",
        quiet=True,
        output="inherit",
        pdeathsig=False,
    ),
)


def ensure_peers(log: Path | None = None) -> dict[str, str]:
    """Create ``bench/.peers-venv`` with supervisor and circus (once); return their versions."""
    python = PEERS_VENV / "bin" / "python"
    ready = all((PEERS_VENV / "bin" / tool).exists() for tool in ("supervisord", "circusd"))
    if not ready:
        out = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            if not python.exists():
                venv.EnvBuilder(with_pip=True, clear=True).create(PEERS_VENV)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "supervisor", "circus"],
                check=True,
                stdout=out,
                stderr=out,
                timeout=600,
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
    versions = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(m.version('supervisor'), m.version('circus'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {"supervisord": versions[0], "circus": versions[1]}


def udp_sockets(pid: int) -> int:
    """How many UDP sockets ``pid`` holds (circus must not join its multicast group)."""
    inodes: set[str] = set()
    for name in ("udp", "udp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as table:
                next(table)
                inodes.update(line.split()[9] for line in table)
        except (OSError, StopIteration):
            continue
    held = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
    except OSError:
        pass
    return held
