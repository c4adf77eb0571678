"""supervisord configuration files, converted into a services file (``supervision import-supervisord``).

The files are read as supervisord 4 reads them: ``configparser.RawConfigParser``
with ``;`` and ``#`` as inline comment prefixes (an inline comment needs
whitespace before it, so ``command=a;b`` keeps its ``;``), ``strict=False``
(a section or key given twice: the last value wins), option names lower-cased.
The ``[include]`` section of each file given is followed (its ``files`` globs,
relative to that file, each match in sorted order); as in supervisord, an
``[include]`` in an included file is not. ``%(here)s`` is the directory of the
file a value is written in.

Every value of a ``[program:x]`` section is expanded with Python's ``%``
formatting, as supervisord expands them: ``%(program_name)s``,
``%(process_num)d``, ``%(numprocs)d``, ``%(group_name)s``,
``%(host_node_name)s``, ``%(here)s`` and ``%(ENV_X)s`` (``%%`` is a ``%``).
A name that cannot be expanded is an error with its file and line.

:func:`convert` returns a :class:`Conversion`: the services, in supervisord's
start order (groups by priority, then programs by priority), one per process
(``numprocs`` is written out), and the :class:`Note` of every option that could
not be mapped (or was mapped only approximately), with the ``file:line`` it
came from. ``Conversion.toml()`` writes the services file. The table of every
supervisord option and what becomes of it is in
``docs/migrating-from-supervisord.md``.
"""

from __future__ import annotations

import configparser
import glob
import math
import os
import platform
import re
import shlex
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core.errors import SupervisordError

DEFAULT_PRIORITY = 999
DEFAULT_STARTRETRIES = 3
DEFAULT_STARTSECS = 1

# supervisord's own defaults where they differ from a services file's.
_BOOLEAN = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}

# The options of a [program:x] section this converter reads itself; anything
# else is reported (see _PROGRAM_LEFT_OUT for the reasons).
_PROGRAM_HANDLED = frozenset(
    {
        "command",
        "process_name",
        "numprocs",
        "numprocs_start",
        "priority",
        "autostart",
        "autorestart",
        "startsecs",
        "startretries",
        "exitcodes",
        "stopsignal",
        "stopwaitsecs",
        "stopasgroup",
        "killasgroup",
        "user",
        "umask",
        "directory",
        "environment",
        "redirect_stderr",
        "stdout_logfile",
        "stderr_logfile",
        "stdout_logfile_maxbytes",
        "stdout_logfile_backups",
        "stderr_logfile_maxbytes",
        "stderr_logfile_backups",
        "stdout_capture_maxbytes",
        "stderr_capture_maxbytes",
        "stdout_events_enabled",
        "stderr_events_enabled",
        "stdout_syslog",
        "stderr_syslog",
        "serverurl",
    }
)

# [supervisord] options: why each one is left out (None: nothing to say, the
# services file behaves that way already).
_SUPERVISORD_LEFT_OUT: dict[str, str | None] = {
    "nodaemon": None,
    "silent": None,
    "environment": None,  # merged into every service's environment
    "logfile": "the supervisor logs to stderr (journald, the container's log)",
    "logfile_maxbytes": "the supervisor logs to stderr; nothing to rotate",
    "logfile_backups": "the supervisor logs to stderr; nothing to rotate",
    "loglevel": "the supervisor logs at INFO to stderr",
    "pidfile": "no pid file: `supervision status` shows the pid, systemd tracks it",
    "umask": "set it where the supervisor is started (systemd UMask=)",
    "user": "run `supervision run` as that user (systemd User=)",
    "directory": "programs without a directory run in the services file's directory",
    "minfds": "use systemd LimitNOFILE= or ulimit -n",
    "minprocs": "use systemd LimitNPROC= or ulimit -u",
    "childlogdir": "AUTO log files are not kept: output goes to the supervisor's stdout and stderr, prefixed",
    "identifier": "the tree's name is --name (it picks the control socket)",
    "nocleanup": "no AUTO log files to clean up",
    "strip_ansi": "output is passed on as it is written",
}

_SECTION_LEFT_OUT = {
    "unix_http_server": "the control socket is a unix socket, mode 0600, peer uid checked (--control PATH)",
    "inet_http_server": "no HTTP or TCP control interface; the control socket is a unix socket",
    "supervisorctl": "the `supervision` client finds the tree's socket by --name or --control",
    "rpcinterface": "no XML-RPC interface; the control protocol is JSON lines (docs/cli.md)",
    "eventlistener": "no event listener protocol; use tree.events() in a Python tree",
    "fcgi-program": "no FastCGI socket sharing; run the program with its own listening socket",
    "ctlplugin": "no supervisorctl plugins",
}


@dataclass(frozen=True)
class Where:
    """A place in a configuration file (``line`` is 1-based, or None for the whole file)."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True)
class Note:
    """An option that was not converted (``converted=False``) or only approximately."""

    where: Where
    section: str
    key: str
    value: str
    message: str
    converted: bool = False

    def __str__(self) -> str:
        what = f"[{self.section}]" + (f" {self.key}={_one_line(self.value)}" if self.key else "")
        return f"{self.where}: {what}: {self.message}"


@dataclass
class Service:
    """One converted process: its service name and its fields, in the order written."""

    name: str
    program: str
    group: str
    where: Where
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Conversion:
    """The result of :func:`convert`."""

    files: list[str]
    services: list[Service]
    groups: dict[str, list[str]]
    notes: list[Note]

    @property
    def left_out(self) -> list[Note]:
        """What could not be converted: each with its file and line."""
        return [note for note in self.notes if not note.converted]

    def toml(self, relative_to: str | None = None) -> str:
        """The services file. ``relative_to``: show source files relative to that directory."""
        return _write(self, relative_to)


# -- reading ------------------------------------------------------------------------


@dataclass
class _Value:
    text: str
    where: Where


class _Files:
    """The sections of the files read, merged as supervisord's parser merges them,
    each value with the file and line it came from and its ``%(here)s`` replaced."""

    def __init__(self, context: _Context) -> None:
        self.context = context
        self.sections: dict[str, dict[str, _Value]] = {}
        self.headers: dict[str, Where] = {}
        self.files: list[str] = []
        self.notes: list[Note] = []

    def read(self, filename: str, *, main: bool) -> None:
        path = os.path.abspath(filename)
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise _error(Where(filename), f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise _error(Where(filename), f"not UTF-8: {exc}") from None
        parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
        try:
            parser.read_string(text, source=filename)
        except configparser.Error as exc:
            line = getattr(exc, "lineno", None)
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _error(Where(filename, line), f"cannot parse: {message}") from None
        self.files.append(filename)
        lines = _locate(text)
        here = os.path.dirname(path)
        for section in parser.sections():
            values = self.sections.setdefault(section, {})
            if section not in self.headers:
                self.headers[section] = Where(filename, lines.get((section, "")))
            for key, value in parser.items(section):
                where = Where(filename, lines.get((section, key), lines.get((section, ""))))
                values[key] = _Value(value.replace("%(here)s", here), where)
        if "include" in parser.sections():
            if not main:
                self.notes.append(
                    Note(
                        Where(filename, lines.get(("include", ""))),
                        "include",
                        "",
                        "",
                        "an [include] in an included file is not followed (nor by supervisord)",
                    )
                )
                return
            self._include(filename, parser)

    def _include(self, filename: str, parser: configparser.RawConfigParser) -> None:
        if not parser.has_option("include", "files"):
            raise _error(self.headers["include"], "[include] section without a 'files' setting")
        value = self.sections["include"]["files"]
        patterns = expand(value, self.context.expansions(), "files").split()
        base = os.path.dirname(os.path.abspath(filename))
        for pattern in patterns:
            matches = sorted(glob.glob(os.path.join(base, pattern)))
            if not matches:
                self.notes.append(
                    Note(value.where, "include", "files", pattern, "no file matches this pattern", converted=True)
                )
            for match in matches:
                self.read(match, main=False)


_SECTION = re.compile(r"^\[(?P<header>.+)\]")
_OPTION = re.compile(r"^(?P<option>[^\s=:;#][^=:]*?)\s*[=:]")


def _locate(text: str) -> dict[tuple[str, str], int]:
    """The line of each section header (key ``""``) and option, as configparser reads them."""
    lines: dict[tuple[str, str], int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _SECTION.match(line)
        if header:
            section = header.group("header")
            lines.setdefault((section, ""), number)
            continue
        option = _OPTION.match(line)
        if option and section:
            lines[(section, option.group("option").strip().lower())] = number
    return lines


@dataclass(frozen=True)
class _Context:
    """What expansions draw on besides the files: the environment and the host's name."""

    environ: Mapping[str, str]
    host_node_name: str

    def expansions(self) -> dict[str, Any]:
        expansions: dict[str, Any] = {f"ENV_{key}": value for key, value in self.environ.items()}
        expansions["host_node_name"] = self.host_node_name
        return expansions


def expand(value: _Value, expansions: Mapping[str, Any], key: str) -> str:
    """``value % expansions``, as supervisord does; an error names the file and line."""
    try:
        return value.text % expansions
    except KeyError as exc:
        names = ", ".join(sorted(name for name in expansions if not name.startswith("ENV_")))
        raise _error(
            value.where,
            f"{key}: cannot expand {exc.args[0]!r} in {value.text!r} "
            f"(known: {names} and ENV_X for each environment variable)",
        ) from None
    except (ValueError, TypeError) as exc:
        raise _error(value.where, f"{key}: badly formatted {value.text!r}: {exc} (write %% for a %)") from None


# -- converting ---------------------------------------------------------------------


def convert(
    files: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    host_node_name: str | None = None,
) -> Conversion:
    """Read supervisord files (following their ``[include]``) and convert them.

    ``environ`` gives the ``%(ENV_X)s`` expansions (default: ``os.environ``).
    ``SupervisordError`` if a file cannot be read, parsed or expanded, or
    supervisord itself would reject it.
    """
    if not files:
        raise _error(Where("<command line>"), "no file given")
    context = _Context(
        dict(os.environ if environ is None else environ),
        host_node_name if host_node_name is not None else platform.node(),
    )
    source = _Files(context)
    for filename in files:
        source.read(filename, main=True)
    return _Converter(source).run()


class _Converter:
    def __init__(self, source: _Files) -> None:
        self.source = source
        self.base = source.context.expansions()
        self.notes = list(source.notes)
        self.environment: dict[str, str] = {}

    def note(self, where: Where, section: str, key: str, value: str, message: str, *, converted: bool = False) -> None:
        self.notes.append(Note(where, section, key, value, message, converted))

    def run(self) -> Conversion:
        sections = self.source.sections
        if "supervisord" in sections:
            self.supervisord(sections["supervisord"])
        members: dict[str, str] = {}  # program -> group
        groups: list[tuple[int, int, str, list[str]]] = []
        for section, values in sections.items():
            kind, _, name = section.partition(":")
            if kind == "group" and name:
                programs = self.group(section, name, values, members)
                groups.append(
                    (self.integer(section, values, "priority", DEFAULT_PRIORITY), len(groups), name, programs)
                )
        for section, values in sections.items():
            kind, _, name = section.partition(":")
            if kind == "program" and name:
                if name.strip() not in members:
                    program = _name(name, self.source.headers[section])
                    priority = self.integer(section, values, "priority", DEFAULT_PRIORITY)
                    groups.append((priority, len(groups), program, [program]))
            elif not (kind == "group" and name) and section not in ("supervisord", "include"):
                reason = _SECTION_LEFT_OUT.get(kind, "unknown section (supervisord ignores it too)")
                self.note(self.source.headers[section], section, "", "", f"not converted: {reason}")
        groups.sort(key=lambda item: (item[0], item[1]))  # stable, as supervisord's sort
        services: list[Service] = []
        members_out: dict[str, list[str]] = {}
        for _, _, group, programs in groups:
            processes: list[tuple[int, int, Service]] = []
            for program in programs:
                section = f"program:{program}"
                if section not in sections:
                    section = next(s for s in sections if s.partition(":")[0] == "program" and _bare(s) == program)
                priority = self.integer(section, sections[section], "priority", DEFAULT_PRIORITY)
                for service in self.program(section, program, group, sections[section]):
                    processes.append((priority, len(processes), service))
            processes.sort(key=lambda item: (item[0], item[1]))
            for _, _, service in processes:
                services.append(service)
            if group not in programs or len(programs) > 1:
                members_out[group] = [service.name for _, _, service in processes]
        self.unique(services)
        if not services:
            raise _error(Where(", ".join(self.source.files)), "no [program:x] section: nothing to convert")
        return Conversion(self.source.files, services, members_out, self.notes)

    # -- sections -----------------------------------------------------------------------

    def supervisord(self, values: dict[str, _Value]) -> None:
        for key, value in values.items():
            if key == "environment":
                text = expand(value, self.base, key)
                self.environment = _key_value_pairs(text, value.where, key)
                continue
            if key not in _SUPERVISORD_LEFT_OUT:
                self.note(value.where, "supervisord", key, value.text, "not converted: unknown option")
                continue
            reason = _SUPERVISORD_LEFT_OUT[key]
            if key == "nodaemon" and _BOOLEAN.get(value.text.strip().lower()) is False:
                reason = "the supervisor always runs in the foreground (under systemd, or as a container's PID 1)"
            if reason is not None:
                self.note(value.where, "supervisord", key, value.text, f"not converted: {reason}")

    def group(self, section: str, name: str, values: dict[str, _Value], members: dict[str, str]) -> list[str]:
        group = _name(name, self.source.headers[section])
        if "programs" not in values:
            raise _error(self.source.headers[section], f"[{section}] has no 'programs' setting")
        programs_value = values["programs"]
        text = expand(programs_value, {**self.base, "group_name": group}, "programs")
        programs = [item.strip() for item in text.split(",") if item.strip()]
        known = {_bare(s) for s in self.source.sections if s.partition(":")[0] == "program"}
        for program in programs:
            if program not in known:
                raise _error(programs_value.where, f"[{section}] names unknown program {program!r}")
            members[program] = group
        for key, value in values.items():
            if key not in ("programs", "priority"):
                self.note(value.where, section, key, value.text, "not converted: unknown option")
        self.note(
            self.source.headers[section],
            section,
            "",
            "",
            f"converted: the services of group {group!r} are listed in a comment; "
            f"act on them together with `supervision stop|start|restart NAME...`",
            converted=True,
        )
        return programs

    def program(self, section: str, program: str, group: str, values: dict[str, _Value]) -> list[Service]:
        header = self.source.headers[section]
        numprocs = self.integer(section, values, "numprocs", 1)
        start = self.integer(section, values, "numprocs_start", 0)
        if numprocs < 1:
            raise _error(values["numprocs"].where, "numprocs: must be at least 1")
        process_name = values.get("process_name", _Value("%(program_name)s", header))
        if numprocs > 1 and "%(process_num)" not in process_name.text:
            raise _error(
                process_name.where, "process_name: must contain %(process_num) when numprocs > 1 (as supervisord says)"
            )
        if "command" not in values:
            raise _error(header, f"[{section}] does not specify a command")
        for key, value in values.items():
            if key not in _PROGRAM_HANDLED:
                self.note(
                    value.where, section, key, value.text, "not converted: unknown option (supervisord ignores it too)"
                )
        services = []
        for number in range(start, start + numprocs):
            expansions = {
                **self.base,
                "program_name": program,
                "group_name": group,
                "process_num": number,
                "numprocs": numprocs,
            }
            expanded = {key: expand(value, expansions, key) for key, value in values.items()}
            name = _name(expand(process_name, expansions, "process_name"), process_name.where)
            service = Service(name, program, group, header)
            self.fields(section, service, values, expanded, first=number == start)
            services.append(service)
        return services

    def fields(
        self, section: str, service: Service, raw: dict[str, _Value], values: dict[str, str], *, first: bool
    ) -> None:
        """Map one process's options onto the fields of its service, in the file's order."""
        out = service.fields

        def where(key: str) -> Where:
            return raw[key].where

        def note(key: str, message: str, *, converted: bool = False) -> None:
            if first:  # once per program, not once per process
                self.note(where(key), section, key, raw[key].text, message, converted=converted)

        command = values["command"]
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise _error(where("command"), f"command: cannot split {command!r}: {exc}") from None
        if not argv:
            raise _error(where("command"), "command: must not be empty")
        out["command"] = command.strip()
        if "directory" in values:
            out["cwd"] = values["directory"].strip()
        environment = dict(self.environment)
        if "environment" in values:
            environment.update(_key_value_pairs(values["environment"], where("environment"), "environment"))
        if environment:
            out["environment"] = environment

        autorestart = values.get("autorestart", "unexpected").strip().lower()
        if autorestart == "unexpected":
            restart = "on-failure"
        elif autorestart in _BOOLEAN:
            restart = "always" if _BOOLEAN[autorestart] else "never"
        else:
            raise _error(where("autorestart"), f"autorestart: expected true, false or unexpected, got {autorestart!r}")
        out["restart"] = restart
        if "exitcodes" in values:
            codes = self.exitcodes(where("exitcodes"), values["exitcodes"])
            if codes != {0} and restart == "on-failure":
                note(
                    "exitcodes",
                    "not converted: only exit status 0 is a normal exit; other expected statuses are restarted",
                )
        elif restart == "on-failure" and first:
            pass  # supervisord 4's default, exitcodes=0, is the services file's rule
        if "autostart" in values and not self.boolean(section, raw, "autostart", True):
            note("autostart", "not converted: every service starts with the tree; `supervision stop NAME` after")

        startsecs = self.integer(section, raw, "startsecs", DEFAULT_STARTSECS, values)
        if "startsecs" in values and startsecs > 0:
            out["ready"] = f"delay {startsecs}"
            if startsecs >= 30:
                out["start_timeout"] = startsecs + 30
            note(
                "startsecs",
                "converted to ready = 'delay N': the next service starts once this one is up N seconds; "
                "ready = 'port N' or 'notify' says it better",
                converted=True,
            )
        if restart != "never":
            retries = self.integer(section, raw, "startretries", DEFAULT_STARTRETRIES, values)
            out["max_retries"] = max(1, retries)
            # supervisord gives up after `startretries` failed starts in a row,
            # waiting 1, 2, 3... s between them; a services file counts every
            # restart within retry_window. A window that holds those tries:
            tries = max(1, retries)  # each delay is at most `tries` seconds
            out["retry_window"] = max(5, tries * (max(startsecs, 1) + tries))
            out["retry_delay"] = {"initial": 1, "maximum": max(1, retries), "jitter": 0}
            if "startretries" in values:
                note(
                    "startretries",
                    "converted to max_retries, retry_window and retry_delay: every restart within the window "
                    "counts, not only failed starts",
                    converted=True,
                )
        elif "startretries" in values:
            note("startretries", "not converted: a service with restart = 'never' is not started again")

        if "stopsignal" in values:
            out["stop_signal"] = self.signal(where("stopsignal"), values["stopsignal"])
        if "stopwaitsecs" in values:
            out["stop_timeout"] = self.integer(section, raw, "stopwaitsecs", 10, values)
        stopasgroup = self.boolean(section, raw, "stopasgroup", False, values)
        killasgroup = self.boolean(section, raw, "killasgroup", stopasgroup, values)
        if stopasgroup and not killasgroup:
            raise _error(where("killasgroup"), "cannot set stopasgroup=true and killasgroup=false")
        for key in ("stopasgroup", "killasgroup"):
            if key in values and not self.boolean(section, raw, key, False, values):
                note(key, "converted: a service's whole process group is always signalled", converted=True)

        if "user" in values:
            out["user"] = values["user"].strip()  # the supervisor must run as root, as supervisord must
        if "umask" in values:
            umask = values["umask"].strip()
            if not umask or any(c not in "01234567" for c in umask.removeprefix("0o")):
                raise _error(where("umask"), f"umask: not an octal number: {umask!r}")
            out["umask"] = umask
        self.output(section, service, raw, values, note)
        if "serverurl" in values and values["serverurl"].strip().upper() != "AUTO":
            note("serverurl", "not converted: no XML-RPC interface for children to call back")

    def output(self, section: str, service: Service, raw: dict[str, _Value], values: dict[str, str], note: Any) -> None:
        out = service.fields
        stdout = values.get("stdout_logfile", "AUTO").strip()
        stderr = values.get("stderr_logfile", "AUTO").strip()
        redirect = self.boolean(section, raw, "redirect_stderr", False, values)
        target = _log_target(stdout)
        other = target if redirect else _log_target(stderr)
        if other != target:
            if _is_file(other) and not _is_file(target):
                # Only stderr goes to a file: both streams go there.
                note("stderr_logfile", f"converted: output = FILE receives stdout as well ({stdout})", converted=True)
                target = other
            elif _is_file(target) and _is_file(other):
                note("stderr_logfile", f"not converted: stderr goes to {target} with stdout (output = FILE takes both)")
            elif "stderr_logfile" in values:
                note("stderr_logfile", f"not converted: stderr goes where stdout goes ({stdout})")
        if target != "prefix":
            out["output"] = target
        for stream in ("stdout", "stderr"):
            if f"{stream}_logfile" in values and values[f"{stream}_logfile"].strip().lower() == "syslog":
                note(f"{stream}_logfile", "converted: prefixed lines on stderr reach journald", converted=True)
            if self.boolean(section, raw, f"{stream}_syslog", False, values):
                note(f"{stream}_syslog", "converted: prefixed lines on stderr reach journald", converted=True)
            for key in (f"{stream}_capture_maxbytes", f"{stream}_events_enabled"):
                if key in values and values[key].strip().lower() not in ("0", "false", "no", "off", "0b", "0kb", "0mb"):
                    note(key, "not converted: no event listener protocol; use tree.events() in Python")
        if _is_file(target):
            # The supervisor writes the file, as supervisord does, rotated with
            # supervisord's defaults (50MB, 10 backups) unless told otherwise.
            stream = "stdout" if target == _log_target(stdout) else "stderr"
            maxbytes = values.get(f"{stream}_logfile_maxbytes", "50MB").strip()
            size = _bytes(maxbytes)
            if size < 0:
                key = f"{stream}_logfile_maxbytes"
                raise _error(raw[key].where, f"{key}: not a size: {maxbytes!r} (like 50MB, 1024KB, 1GB)")
            if size > 0:
                out["log_max_bytes"] = maxbytes.upper().replace(" ", "") if not maxbytes.isdigit() else size
                out["log_backups"] = self.integer(section, raw, f"{stream}_logfile_backups", 10, values)

    # -- values -------------------------------------------------------------------------

    def integer(
        self, section: str, values: Mapping[str, Any], key: str, default: int, expanded: Mapping[str, str] | None = None
    ) -> int:
        if key not in values:
            return default
        raw = values[key]
        text = expanded[key] if expanded is not None else raw.text
        try:
            return int(text.strip())
        except ValueError:
            raise _error(raw.where, f"{key}: not an integer: {text!r}") from None

    def boolean(
        self,
        section: str,
        values: Mapping[str, _Value],
        key: str,
        default: bool,
        expanded: Mapping[str, str] | None = None,
    ) -> bool:
        if key not in values:
            return default
        text = (expanded[key] if expanded is not None else values[key].text).strip().lower()
        if text not in _BOOLEAN:
            raise _error(values[key].where, f"{key}: not a boolean: {text!r} (true/false, yes/no, on/off, 1/0)")
        return _BOOLEAN[text]

    def exitcodes(self, where: Where, text: str) -> set[int]:
        try:
            codes = {int(item) for item in text.split(",") if item.strip()}
        except ValueError:
            raise _error(where, f"exitcodes: not a list of integers: {text!r}") from None
        if not codes or any(not 0 <= code <= 255 for code in codes):
            raise _error(where, f"exitcodes: expected exit statuses 0..255, got {text!r}")
        return codes

    def signal(self, where: Where, text: str) -> str:
        name = text.strip().upper()
        if name.isdigit():
            try:
                return signal.Signals(int(name)).name.removeprefix("SIG")
            except ValueError:
                pass
        else:
            name = name.removeprefix("SIG")
            if hasattr(signal.Signals, "SIG" + name):
                return name
        raise _error(where, f"stopsignal: unknown signal {text!r}")

    def unique(self, services: list[Service]) -> None:
        seen: dict[str, Service] = {}
        for service in services:
            if service.name in seen:
                raise _error(
                    service.where,
                    f"two processes are named {service.name!r} (also {seen[service.name].where}); "
                    "a services file needs one name per service: set process_name",
                )
            seen[service.name] = service


def _error(where: Where, message: str) -> SupervisordError:
    return SupervisordError(where.file, where.line, message)


def _name(text: str, where: Where) -> str:
    """A program, group or process name as supervisord checks it."""
    name = text.strip()
    for character in " :/":
        if character in name:
            raise _error(where, f"invalid name {name!r}: it contains {character!r}")
    if not name:
        raise _error(where, "empty name")
    return name


def _bare(section: str) -> str:
    return section.partition(":")[2].strip()


def _log_target(value: str) -> str:
    """A supervisord log file setting as a services file's ``output``."""
    upper = value.upper()
    if upper in ("AUTO", "SYSLOG"):
        return "prefix"
    if upper == "NONE":
        return "/dev/null"
    if value in ("/dev/stdout", "/dev/stderr", "/dev/fd/1", "/dev/fd/2", "/proc/self/fd/1", "/proc/self/fd/2"):
        return "inherit"
    return value


def _is_file(target: str) -> bool:
    return target not in ("prefix", "inherit", "/dev/null")


_UNITS = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "b": 1}


def _bytes(text: str) -> int:
    lowered = text.strip().lower()
    for unit, factor in _UNITS.items():
        if lowered.endswith(unit) and lowered[: -len(unit)].strip().isdigit():
            return int(lowered[: -len(unit)]) * factor
    return int(lowered) if lowered.isdigit() else -1


def _key_value_pairs(text: str, where: Where, key: str) -> dict[str, str]:
    """``A="1",B=two`` -> ``{"A": "1", "B": "two"}``, as supervisord reads ``environment``."""
    lexer = shlex.shlex(text, posix=True)
    lexer.wordchars += "/.+-():@%$!^&*[]{}|~`?<>\\"
    lexer.whitespace = " \t\r\n"
    lexer.whitespace_split = False
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise _error(where, f"{key}: cannot read {text!r}: {exc}") from None
    pairs: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        group = tokens[i : i + 3]
        if len(group) != 3 or group[1] != "=" or not group[0]:
            raise _error(where, f"{key}: expected KEY=value pairs separated by commas, got {text!r}")
        pairs[group[0]] = group[2]
        if i + 3 < len(tokens) and tokens[i + 3] != ",":
            raise _error(where, f"{key}: expected a comma after {group[0]}={group[2]!r} in {text!r}")
        i += 4
    return pairs


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 60 else flat[:57] + "..."


# -- writing ------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _write(conversion: Conversion, relative_to: str | None) -> str:
    def shown(where: Where) -> str:
        if relative_to is None:
            return str(where)
        path = os.path.relpath(os.path.abspath(where.file), relative_to)
        return str(Where(path, where.line))

    lines = ["# A services file converted from supervisord configuration by `supervision import-supervisord`:"]
    lines += [f"#   {shown(Where(file))}" for file in conversion.files]
    left_out = conversion.left_out
    if left_out:
        lines += ["#", "# Not converted (each with the line it came from):"]
        lines += [f"#   {shown(note.where)}: {str(note).partition(': ')[2]}" for note in left_out]
    for group, names in conversion.groups.items():
        lines += ["#", f"# group {group}: {' '.join(names)}"]
    lines.append("")
    for service in conversion.services:
        key = service.name if _BARE_KEY.match(service.name) else _string(service.name)
        origin = f"[program:{service.program}]" + (
            f" in group {service.group}" if service.group != service.program else ""
        )
        lines.append(f"[services.{key}]  # {shown(service.where)} {origin}")
        for name, value in service.fields.items():
            lines.append(f"{name} = {_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        items = (f"{k if _BARE_KEY.match(k) else _string(k)} = {_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }" if value else "{}"
    if isinstance(value, Iterable):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _string(text: str) -> str:
    out = ['"']
    for character in text:
        if character == '"':
            out.append('\\"')
        elif character == "\\":
            out.append("\\\\")
        elif character == "\n":
            out.append("\\n")
        elif character == "\t":
            out.append("\\t")
        elif ord(character) < 0x20 or ord(character) == 0x7F:
            out.append(f"\\u{ord(character):04x}")
        else:
            out.append(character)
    out.append('"')
    return "".join(out)
