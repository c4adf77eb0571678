"""TOML services files: the tree a supervisord user would write, one table per service.

::

    [supervisor]                     # optional: the root supervisor
    strategy = "one_for_one"

    [services.db]
    command = "postgres -D data"     # a string (split like a shell would) or a list
    ready = "port 5432"

    [services.web]
    command = ["python", "-m", "http.server", "8000"]
    depends_on = ["db"]              # started after db is ready, stopped before it
    restart = "on-failure"           # always | on-failure | never
    max_retries = 5                  # more than 5 restarts ...
    retry_window = 60                # ... within 60 s: the service gives up
    retry_delay = 1.0                # or a table: { initial = 0.5, maximum = 30 }
    user = "www-data"                # also group, umask, limits, env_file, nice,
    limits = { nofile = 65536 }      # oom_score_adj: see sv.process
    output = "logs/web.log"          # written by the supervisor; SIGUSR1 reopens it
    log_max_bytes = "10MB"           # rotated at 10 MB, keeping log_backups = 5 files
    timestamps = true                # each line begins with its time (ISO 8601)
    numprocs = 2                     # two copies, web/0 and web/1: {instance} in command,
                                     # environment, cwd and output is the copy's number

    [services.api]
    command = "gunicorn app:wsgi --bind fd://3"
    sockets = ["tcp://0.0.0.0:8000"] # held by the supervisor, passed as fd 3 (LISTEN_FDS)
    health = { http = "http://127.0.0.1:8000/healthz", every = 10, failures = 3 }
    restart_mode = "overlap"         # a restart starts the new one before stopping the old
    watchdog = 30                    # it sends WATCHDOG=1 on NOTIFY_SOCKET that often

Each service becomes one process child of the root, at path ``NAME`` (its
output is prefixed ``NAME``): ``max_retries``, ``retry_window`` and
``retry_delay`` are that child's own ``intensity``, ``period`` and ``backoff``
(see ``sv.child``), so one flapping service uses up its own restart budget, not
its neighbours'. A service that exceeds it gives up: an ``always`` one is
restarted all the same, counted against the root's budget (``[supervisor]``),
and the others are left stopped (like supervisord's FATAL state). The root's
``strategy`` then sees every service: with ``rest_for_one`` a crash of ``db``
restarts the services after it. See ``docs/migrating-from-supervisord.md``.

Every error names the file, the line and the key: ``services.toml:12:
services.web.restart: ...``. The file is read with ``tomllib``, which has no
positions for values, so :class:`_Locator` finds the line of a key by scanning
the text for table headers and ``key =`` lines.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
import signal
import tomllib
from dataclasses import dataclass
from typing import Any

from .. import health as _health
from .. import ready as _ready
from .._core.errors import ServicesError, SpecError
from .._core.listen import Listen, listen
from .._core.settings import LogFile, Prefixed
from .._core.spec import Backoff, ChildSpec, Supervisor
from .._process.logfile import log_file
from .._process.spec import process
from ..health import Probe

KeyPath = tuple[str, ...]

SERVICE_FIELDS = (
    "command",
    "cwd",
    "environment",
    "restart",
    "max_retries",
    "retry_window",
    "retry_delay",
    "depends_on",
    "ready",
    "start_timeout",
    "stop_timeout",
    "stop_signal",
    "output",
    "timestamps",
    "log_max_bytes",
    "log_backups",
    "user",
    "group",
    "umask",
    "limits",
    "env_file",
    "nice",
    "oom_score_adj",
    "numprocs",
    "health",
    "watchdog",
    "watchdog_signal",
    "sockets",
    "restart_mode",
)
HEALTH_PROBES = ("http", "tcp", "exec")
HEALTH_FIELDS = (*HEALTH_PROBES, "host", "every", "timeout", "failures", "grace")
SOCKET_FIELDS = ("address", "name", "mode", "backlog", "reuse_port")
SETTINGS_FIELDS = ("user", "group", "umask", "limits", "env_file", "nice", "oom_score_adj")
SUPERVISOR_FIELDS = ("strategy", "max_retries", "retry_window", "retry_delay")
RESTART = {"always": "permanent", "on-failure": "transient", "never": "temporary"}
BACKOFF_FIELDS = ("initial", "maximum", "factor", "jitter", "reset_after")


def is_services_file(target: str) -> bool:
    return target.endswith(".toml")


def load(filename: str) -> Supervisor:
    """Read a services file and build its tree. ``ServicesError`` if it is invalid."""
    try:
        with open(filename, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ServicesError(filename, None, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ServicesError(filename, None, "", f"not UTF-8: {exc}") from None
    return parse(text, filename, os.path.dirname(os.path.abspath(filename)))


def parse(text: str, filename: str = "<services>", base: str | None = None) -> Supervisor:
    """Build the tree a services file describes; relative paths are resolved
    against ``base`` (the file's directory), which is also each service's
    default ``cwd``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\((?:at line (\d+), column \d+|at end of document)\)$", message)
        line = None
        if found:
            line = int(found.group(1)) if found.group(1) else max(1, len(text.splitlines()))
            message = message[: found.start()].rstrip()
        raise ServicesError(filename, line, "", f"invalid TOML: {message}") from None
    return _Builder(filename, _Locator(text), base or os.getcwd()).build(data)


class _Builder:
    def __init__(self, filename: str, locator: _Locator, base: str) -> None:
        self.filename = filename
        self.locator = locator
        self.base = base

    def error(self, key: KeyPath, message: str) -> ServicesError:
        return ServicesError(self.filename, self.locator.line(key), ".".join(key), message)

    def build(self, data: dict[str, Any]) -> Supervisor:
        _unknown(self, (), data, ("supervisor", "services"), "table")
        root = self.table(("supervisor",), data.get("supervisor", {}))
        services = self.table(("services",), data.get("services", {}))
        if not services:
            raise self.error(("services",), "no services: add a [services.NAME] table for each one")
        _unknown(self, ("supervisor",), root, SUPERVISOR_FIELDS)
        children: dict[str, ChildSpec] = {}
        depends: dict[str, list[str]] = {}
        for name, table in services.items():
            key = ("services", name)
            if not name or "/" in name:
                raise self.error(key, "a service name must be non-empty and without '/'")
            table = self.table(key, table)
            children[name] = self.service(name, table)
            depends[name] = self.depends_on(key, table.get("depends_on", []), services)
        order = self.order(depends)
        try:
            return Supervisor(
                [children[name] for name in order],
                strategy=self.string(("supervisor", "strategy"), root.get("strategy", "one_for_one")),
                intensity=self.count(("supervisor", "max_retries"), root.get("max_retries", 3)),
                period=self.seconds(("supervisor", "retry_window"), root.get("retry_window", 5.0)),
                backoff=self.backoff(("supervisor", "retry_delay"), root.get("retry_delay")),
            )
        except SpecError as exc:
            raise self.error(("supervisor", exc.field), exc.message) from None

    def service(self, name: str, table: dict[str, Any]) -> ChildSpec:
        key = ("services", name)
        _unknown(self, key, table, SERVICE_FIELDS)
        if "command" not in table:
            raise self.error(key, "missing 'command'")
        restart_name = self.string((*key, "restart"), table.get("restart", "always"))
        if restart_name not in RESTART:
            raise self.error((*key, "restart"), f"unknown value {restart_name!r}; expected always, on-failure or never")
        restart = RESTART[restart_name]
        cwd = self.string((*key, "cwd"), table.get("cwd", "."))
        fields: dict[str, Any] = {
            "argv": self.command((*key, "command"), table["command"]),
            "cwd": os.path.normpath(os.path.join(self.base, cwd)),
            "env": self.environment((*key, "environment"), table["environment"]) if "environment" in table else None,
            "restart": restart,
            "shutdown": self.seconds((*key, "stop_timeout"), table.get("stop_timeout", 10.0)),
            "stop_signal": self.signal((*key, "stop_signal"), table.get("stop_signal", "TERM")),
            "ready": self.ready((*key, "ready"), table.get("ready")),
            "ready_timeout": self.seconds((*key, "start_timeout"), table.get("start_timeout", 30.0)),
            "output": self.output(key, table),
            **self.settings(key, table),
            # The service's own restart budget: a flapping service uses up its
            # own, not its neighbours' (the root's).
            "intensity": self.count((*key, "max_retries"), table.get("max_retries", 3)),
            "period": self.seconds((*key, "retry_window"), table.get("retry_window", 5.0)),
            "backoff": self.backoff((*key, "retry_delay"), table.get("retry_delay")),
            # N copies, NAME/0 ... NAME/N-1, with {instance} substituted (supervisord's numprocs)
            "instances": self.count((*key, "numprocs"), table["numprocs"]) if "numprocs" in table else None,
            **self.health_and_sockets(key, table),
        }
        argv = fields.pop("argv")
        try:
            return process(name, argv, **fields)
        except SpecError as exc:
            field = _TOML_FIELD.get(exc.field, exc.field)
            raise self.error((*key, *field.split(".")), exc.message) from None

    def output(self, key: KeyPath, table: dict[str, Any]) -> str | LogFile | Prefixed:
        """``output`` with ``timestamps``, ``log_max_bytes`` and ``log_backups``. A
        file is written by the supervisor (``sv.log_file``), as supervisord writes
        its logs: rotated by size if asked, reopened on SIGUSR1."""
        output = self.string((*key, "output"), table.get("output", "prefix"))
        timestamps = table.get("timestamps", False)
        if not isinstance(timestamps, bool):
            raise self.error((*key, "timestamps"), f"must be true or false, got {_kind(timestamps)}")
        if output in ("prefix", "inherit"):
            for name in ("log_max_bytes", "log_backups"):
                if name in table:
                    raise self.error((*key, name), "only with output = a file path")
            if output == "inherit":
                if timestamps:
                    raise self.error((*key, "timestamps"), "not with output = 'inherit' (the child writes directly)")
                return output
            return Prefixed(True) if timestamps else output
        backups = table.get("log_backups", 5)
        if isinstance(backups, bool) or not isinstance(backups, int):
            raise self.error((*key, "log_backups"), f"must be an integer, got {_kind(backups)}")
        try:
            return log_file(
                os.path.join(self.base, output),
                max_bytes=table.get("log_max_bytes"),
                backups=backups,
                timestamps=timestamps,
            )
        except SpecError as exc:
            field = {"output.max_bytes": "log_max_bytes", "output.backups": "log_backups"}.get(exc.field, "output")
            raise self.error((*key, field), exc.message) from None

    def settings(self, key: KeyPath, table: dict[str, Any]) -> dict[str, Any]:
        """``user``, ``group``, ``umask``, ``limits``, ``env_file``, ``nice`` and
        ``oom_score_adj``, as ``sv.process`` takes them (which checks the values);
        environment files are relative to the services file's directory."""
        found = {name: table[name] for name in SETTINGS_FIELDS if name in table}
        if "limits" in found:
            limits = self.table((*key, "limits"), found["limits"])
            found["limits"] = {name: tuple(v) if isinstance(v, list) else v for name, v in limits.items()}
        if "env_file" in found:
            files = found["env_file"]
            files = [files] if isinstance(files, str) else files
            if not isinstance(files, list) or not all(isinstance(f, str) and f not in ("", "-") for f in files):
                raise self.error(
                    (*key, "env_file"), f"must be a path or a list of paths, got {_kind(found['env_file'])}"
                )
            found["env_file"] = [
                ("-" if f.startswith("-") else "") + os.path.join(self.base, f.removeprefix("-")) for f in files
            ]
        return found

    def health_and_sockets(self, key: KeyPath, table: dict[str, Any]) -> dict[str, Any]:
        """``health``, ``watchdog``, ``watchdog_signal``, ``sockets`` and
        ``restart_mode``, as ``sv.process`` takes them (which checks the values)."""
        found: dict[str, Any] = {}
        if "health" in table:
            found["health"] = self.health((*key, "health"), table["health"])
        if "watchdog" in table:
            found["watchdog"] = self.seconds((*key, "watchdog"), table["watchdog"])
        if "watchdog_signal" in table:
            found["watchdog_signal"] = self.signal((*key, "watchdog_signal"), table["watchdog_signal"])
        if "sockets" in table:
            found["sockets"] = self.sockets((*key, "sockets"), table["sockets"])
        if "restart_mode" in table:
            found["restart_mode"] = self.string((*key, "restart_mode"), table["restart_mode"])
        return found

    def health(self, key: KeyPath, value: Any) -> Probe:
        """``{ http = URL }``, ``{ tcp = PORT, host = H }`` or ``{ exec = COMMAND }``,
        with ``every``, ``timeout``, ``failures`` and ``grace``."""
        table = self.table(key, value)
        _unknown(self, key, table, HEALTH_FIELDS)
        kinds = [name for name in HEALTH_PROBES if name in table]
        if len(kinds) != 1:
            raise self.error(key, f"needs one of http, tcp or exec, got {', '.join(kinds) or 'none'}")
        (kind,) = kinds
        if "host" in table and kind != "tcp":
            raise self.error((*key, "host"), "only with tcp")
        timing: dict[str, Any] = {}
        for name in ("every", "timeout", "grace"):
            if name in table:
                timing[name] = self.seconds((*key, name), table[name])
        if "failures" in table:
            timing["failures"] = self.count((*key, "failures"), table["failures"])
        target = table[kind]
        probe: Probe
        if kind == "http":
            probe = _health.http(self.string((*key, "http"), target), **timing)
        elif kind == "tcp":
            if isinstance(target, bool) or not isinstance(target, int):
                raise self.error((*key, "tcp"), f"must be a port number, got {_kind(target)}")
            probe = _health.tcp(target, self.string((*key, "host"), table.get("host", "127.0.0.1")), **timing)
        else:
            probe = _health.exec(self.command((*key, "exec"), target), **timing)
        return probe

    def sockets(self, key: KeyPath, value: Any) -> list[Listen]:
        """A list of addresses (``"tcp://HOST:PORT"``, ``"unix:/path"``...) or tables
        ``{ address = A, name = N, mode = "0660", backlog = N, reuse_port = B }``; a
        relative unix socket path is relative to the services file's directory."""
        if not isinstance(value, list):
            raise self.error(key, f"must be a list of addresses or tables, got {_kind(value)}")
        sockets: list[Listen] = []
        for index, item in enumerate(value, start=1):
            where = f"socket {index}: "
            options: dict[str, Any] = {}
            if isinstance(item, dict):
                for name in item:
                    if name not in SOCKET_FIELDS:
                        raise self.error(key, f"{where}unknown field {name!r}{_hint(name, SOCKET_FIELDS)}")
                if "address" not in item:
                    raise self.error(key, f"{where}missing 'address'")
                options = {name: item[name] for name in SOCKET_FIELDS if name in item and name != "address"}
                mode = options.get("mode")
                if isinstance(mode, str):  # octal digits, as umask
                    if not re.fullmatch(r"[0-7]{1,4}", mode):
                        raise self.error(key, f"{where}mode must be octal digits like '0660', got {mode!r}")
                    options["mode"] = int(mode, 8)
                item = item["address"]
            if not isinstance(item, str):
                raise self.error(key, f"{where}must be an address string or a table, got {_kind(item)}")
            if item.startswith("unix:") and not item.startswith(("unix:/", "unix:@")):  # relative: as cwd
                item = "unix:" + os.path.join(self.base, item.removeprefix("unix:"))
            try:
                sockets.append(listen(item, **options))
            except (SpecError, TypeError, ValueError) as exc:
                message = exc.message if isinstance(exc, SpecError) else str(exc)
                raise self.error(key, f"{where}{message}") from None
        return sockets

    # -- values -------------------------------------------------------------------

    def table(self, key: KeyPath, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {_kind(value)}")
        return value

    def string(self, key: KeyPath, value: Any) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {_kind(value)}")
        return value

    def count(self, key: KeyPath, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(key, f"must be an integer >= 0, got {value!r}")
        return value

    def seconds(self, key: KeyPath, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
            raise self.error(key, f"must be a number of seconds >= 0, got {value!r}")
        return float(value)

    def command(self, key: KeyPath, value: Any) -> list[str]:
        if isinstance(value, str):
            try:
                argv = shlex.split(value)
            except ValueError as exc:
                raise self.error(key, f"cannot split {value!r}: {exc}") from None
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            argv = list(value)
        else:
            raise self.error(key, f"must be a string or a list of strings, got {_kind(value)}")
        if not argv or not argv[0]:
            raise self.error(key, "must not be empty")
        return argv

    def environment(self, key: KeyPath, value: Any) -> dict[str, str]:
        table = self.table(key, value)
        env: dict[str, str] = {}
        for name, item in table.items():
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise self.error((*key, name), f"must be a string or a number, got {_kind(item)}")
            env[name] = str(item)
        return env

    def signal(self, key: KeyPath, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            if value in signal.valid_signals():
                return value
        elif isinstance(value, str):
            name = value.upper()
            name = name if name.startswith("SIG") else "SIG" + name
            found = getattr(signal.Signals, name, None)
            if found is not None:
                return int(found)
        raise self.error(key, f"unknown signal {value!r}; expected a name like 'TERM', 'SIGINT', 'HUP' or a number")

    def ready(self, key: KeyPath, value: Any) -> _ready.Check | None:
        """``"notify"``, ``"port N"``, ``"delay S"``, or ``{port = N, host = H}`` / ``{delay = S}``."""
        if value is None:
            return None
        check: _ready.Check
        try:
            if isinstance(value, str):
                word, _, rest = value.strip().partition(" ")
                rest = rest.strip()
                if word == "notify" and not rest:
                    check = _ready.notify()
                elif word == "port" and rest.isdigit():
                    check = _ready.port(int(rest))
                elif word == "delay" and rest:
                    check = _ready.delay(float(rest))
                else:
                    raise ValueError
            elif isinstance(value, dict) and set(value) <= {"port", "host"} and "port" in value:
                check = _ready.port(value["port"], value.get("host", "127.0.0.1"))
            elif isinstance(value, dict) and set(value) == {"delay"}:
                check = _ready.delay(value["delay"])
            else:
                raise ValueError
            check.check(key)
        except (ValueError, TypeError):
            raise self.error(
                key, f"expected 'notify', 'port N', 'delay SECONDS' or {{ port = N, host = H }}, got {value!r}"
            ) from None
        return check

    def backoff(self, key: KeyPath, value: Any) -> Backoff | None:
        """A number (a fixed delay) or a table of ``sv.Backoff`` fields."""
        if value is None:
            return None
        if isinstance(value, dict):
            _unknown(self, key, value, BACKOFF_FIELDS)
            values = {name: self.seconds((*key, name), item) for name, item in value.items()}
        else:
            delay = self.seconds(key, value)
            values = {"initial": delay, "maximum": delay, "factor": 1.0, "jitter": 0.0}
        try:
            return Backoff(**values)
        except SpecError as exc:
            raise self.error((*key, exc.field.removeprefix("backoff.")), exc.message) from None

    def depends_on(self, key: KeyPath, value: Any, services: dict[str, Any]) -> list[str]:
        key = (*key, "depends_on")
        if isinstance(value, str):  # a list of one is what was meant, most likely: say so
            hint = f"write depends_on = [{_quote(value)}]"
            raise self.error(key, f"must be a list of service names, got a string; {hint}")
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(key, f"must be a list of service names, got {_kind(value)}")
        for name in value:
            if name not in services:
                hint = _hint(name, services)
                raise self.error(key, f"unknown service {name!r}{hint}")
        return value

    def order(self, depends: dict[str, list[str]]) -> list[str]:
        """Dependencies first; otherwise the order of the file (a stable topological sort)."""
        order: list[str] = []
        placed: set[str] = set()
        remaining = list(depends)
        while remaining:
            for name in remaining:
                if all(dep in placed for dep in depends[name]):
                    order.append(name)
                    placed.add(name)
                    remaining.remove(name)
                    break
            else:
                cycle = _cycle(depends, remaining)
                raise self.error(("services", cycle[0], "depends_on"), "dependency cycle: " + " -> ".join(cycle))
        return order


_TOML_FIELD = {
    "argv": "command",
    "instances": "numprocs",
    "env": "environment",
    "shutdown": "stop_timeout",
    "ready_timeout": "start_timeout",
    "intensity": "max_retries",
    "period": "retry_window",
    "backoff": "retry_delay",
}


def _cycle(depends: dict[str, list[str]], remaining: list[str]) -> list[str]:
    """A dependency cycle among ``remaining`` (each of which waits on another of them)."""
    left = set(remaining)
    path = [remaining[0]]
    while True:
        following = next(dep for dep in depends[path[-1]] if dep in left)
        if following in path:
            return [*path[path.index(following) :], following]
        path.append(following)


def _unknown(
    builder: _Builder, key: KeyPath, table: dict[str, Any], known: tuple[str, ...], what: str = "field"
) -> None:
    for name in table:
        if name not in known:
            raise builder.error((*key, name), f"unknown {what}{_hint(name, known)}")


def _hint(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _quote(text: str) -> str:
    """``text`` as a TOML basic string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _kind(value: Any) -> str:
    names = {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer"}
    return names.get(type(value), f"{type(value).__name__} {value!r}")


# -- where keys are ---------------------------------------------------------------

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|' + r"'[^']*'"
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_KEY})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_KEY})\s*=")
_INLINE = re.compile(rf"(?:^|[{{,])\s*({_KEY})\s*=")
_PART = re.compile(rf"{_BARE}|{_QUOTED}")


@dataclass
class _Locator:
    """Finds the line of a key path in TOML text (best effort, for error messages).

    It records table headers, ``key = value`` lines and keys of one-line
    inline tables; a key path it does not know maps to its nearest known
    ancestor, so an error always points at the table it is about.
    """

    text: str

    def __post_init__(self) -> None:
        self.lines: dict[KeyPath, int] = {}
        table: KeyPath = ()
        for number, line in enumerate(self.text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                table = _split(header.group(1))
                self._record(table, number)
                continue
            assign = _ASSIGN.match(line)
            if not assign:
                continue
            key = (*table, *_split(assign.group(1)))
            self._record(key, number)
            rest = line[assign.end() :]
            if rest.lstrip().startswith("{"):
                for inner in _INLINE.finditer(rest.lstrip()[1:], 0):
                    self.lines.setdefault((*key, *_split(inner.group(1))), number)

    def _record(self, key: KeyPath, number: int) -> None:
        for end in range(1, len(key) + 1):  # [a.b] defines a too, where nothing did before
            self.lines.setdefault(key[:end], number)

    def line(self, key: KeyPath) -> int | None:
        for end in range(len(key), 0, -1):
            found = self.lines.get(key[:end])
            if found is not None:
                return found
        return None


def _split(key: str) -> KeyPath:
    parts = []
    for part in _PART.findall(key):
        if part[0] == '"':
            part = part[1:-1].encode().decode("unicode_escape")
        elif part[0] == "'":
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)
