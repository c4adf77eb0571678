"""supervisord configurations converted into services files (``supervision import-supervisord``).

Five configurations of the kind public projects ship (``tests/supervisord/*``)
are converted, and each converted tree is started for real: every program's
processes run, with the command line, directory and environment supervisord
would have given them. The daemons they name (gunicorn, nginx, php-fpm...) are
stand-ins from ``tests/supervisord/bin``, found through ``PATH`` as the real
ones would be.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import textwrap
from pathlib import Path
from typing import Any

import pytest

import supervision as sv
from supervision._core.errors import SupervisordError
from supervision._reload.services import load
from supervision._reload.supervisord import Conversion, convert

FIXTURES = Path(__file__).parent / "supervisord"
BIN = FIXTURES / "bin"


def environ(logs: Path) -> dict[str, str]:
    return {
        "APP_ROOT": str(FIXTURES / "django"),
        "LOG_DIR": str(logs),
        "DEPLOY_ENV": "staging",
        "HOME": "/root",
    }


def notes(conversion: Conversion) -> dict[tuple[str, str], str]:
    """``(section, key) -> "file:line"`` of what was left out, files relative to the fixtures."""
    found = {}
    for note in conversion.left_out:
        where = f"{os.path.relpath(note.where.file, FIXTURES)}:{note.where.line}"
        found[(note.section, note.key)] = where
    return found


async def processes(handle: sv.Handle) -> dict[str, int]:
    """The pid of every running process child under ``handle``, by the id of the
    process (services files name a service's process after the service)."""
    found: dict[str, int] = {}
    for info in handle.which_children():
        if info.kind == "supervisor":
            found.update(await processes(handle.at(info.id)))
        elif info.kind == "process" and info.pid is not None:
            found[info.id] = info.pid
    return found


def proc(pid: int) -> tuple[list[str], str, dict[str, str]]:
    """A process's argv, working directory and environment, from /proc."""
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        argv = [part.decode() for part in file.read().split(b"\0")[:-1]]
    cwd = os.readlink(f"/proc/{pid}/cwd")
    with open(f"/proc/{pid}/environ", "rb") as file:
        pairs = [part.decode().partition("=") for part in file.read().split(b"\0") if part]
    return argv, cwd, {key: value for key, _, value in pairs}


# What each fixture becomes: the services in start order, and a few things to
# check on the running processes: (service, words of its argv, cwd or None, env).
EXPECTED: dict[str, dict[str, Any]] = {
    "django": {
        "services": ["gunicorn", "celery_worker_00", "celery_worker_01", "celery_beat"],
        "groups": {"mysite": ["gunicorn", "celery_worker_00", "celery_worker_01", "celery_beat"]},
        "left_out": {
            ("program:celery_worker", "stderr_logfile"): "django/supervisord.conf:29",
        },
        "fields": {"celery_worker_01": {"user": "celery"}, "gunicorn": {"log_max_bytes": "20MB", "log_backups": 5}},
        "check": [
            (
                "celery_worker_01",
                ["celery", "-A", "mysite", "worker", "-n", "worker1@%h"],
                "django/src",
                {"DJANGO_SETTINGS_MODULE": "mysite.settings.production", "C_FORCE_ROOT": "false"},
            ),
            (
                "gunicorn",
                ["gunicorn", "mysite.wsgi:application", "--bind", "127.0.0.1:8000"],
                "django/src",
                {"LANG": "en_US.UTF-8", "PYTHONUNBUFFERED": "1"},
            ),
        ],
    },
    "docker": {
        "services": ["php-fpm", "nginx", "cron"],
        "groups": {},
        "left_out": {
            ("eventlistener:processes", ""): "docker/supervisord.conf:42",
            ("supervisord", "pidfile"): "docker/supervisord.conf:9",
        },
        "check": [
            ("nginx", ["nginx", "-g", "daemon off;"], None, {"APP_ENV": "production", "TZ": "UTC"}),
            ("cron", ["cron", "-f", "-L", "15"], None, {"APP_ENV": "production"}),
        ],
    },
    "laravel": {
        "services": ["laravel-scheduler", *(f"laravel-worker_{n:02d}" for n in range(8))],
        "groups": {},
        "left_out": {
            ("unix_http_server", ""): "laravel/supervisord.conf:3",
            ("rpcinterface:supervisor", ""): "laravel/supervisord.conf:15",
        },
        "check": [
            ("laravel-worker_07", ["php", "queue:work", "sqs", "--sleep=3", "--tries=3"], None, {}),
            ("laravel-scheduler", ["php", "artisan", "schedule:work"], "laravel/app", {}),
        ],
        "fields": {"laravel-worker_07": {"user": "forge"}},
    },
    "tornado": {
        "services": [f"tornado-80{n:02d}" for n in range(4)],
        "groups": {},
        "left_out": {("program:tornado", "exitcodes"): "tornado/supervisord.conf:10"},
        "check": [
            (
                "tornado-8003",
                ["server.py", "--port=8003"],
                "tornado/app",
                {"PORT": "8003", "TORNADO_ENV": "staging", "PYTHONPATH": str(FIXTURES / "tornado/app")},
            ),
        ],
    },
    "pipeline": {
        "services": ["redis", "ingest", "transform", "exporter"],
        "groups": {"pipeline": ["ingest", "transform"]},
        "left_out": {
            ("program:transform", "exitcodes"): "pipeline/programs/stages.ini:18",
            ("program:exporter", "autostart"): "pipeline/extra/exporter.conf:4",
            ("inet_http_server", ""): "pipeline/supervisord.conf:8",
            ("eventlistener:crashmail", ""): "pipeline/extra/exporter.conf:8",
        },
        "fields": {"transform": {"umask": "027"}, "redis": {"log_max_bytes": "10MB", "log_backups": 3}},
        "check": [
            ("redis", ["redis-server", "--port", "6380", "--save", ""], None, {}),
            ("ingest", ["node", "--queue=events"], None, {"NODE_ENV": "production"}),
            ("exporter", ["node", "--listen=127.0.0.1:9000"], None, {}),
        ],
    },
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_a_converted_configuration_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = EXPECTED[name]
    conversion = convert([str(FIXTURES / name / "supervisord.conf")], environ=environ(tmp_path), host_node_name="h1")
    assert [service.name for service in conversion.services] == expected["services"]
    assert conversion.groups == expected["groups"]
    found = notes(conversion)
    for key, where in expected["left_out"].items():
        assert found.get(key) == where, (key, found)
    converted = {service.name: service.fields for service in conversion.services}
    for name_, fields in expected.get("fields", {}).items():
        for key, value in fields.items():
            assert converted[name_].get(key) == value, (name_, key, converted[name_])
    converted_now = {"user", "umask", "stdout_logfile_maxbytes", "stderr_logfile_maxbytes"}  # services files have them
    assert not {key for section, key in found if section.startswith("program:") and key in converted_now}
    for service in conversion.services:  # the fixtures' users (celery, forge) are not this machine's
        user = service.fields.get("user")
        if user is not None and not _user_exists(user):
            del service.fields["user"]
    services = tmp_path / "services.toml"
    services.write_text(conversion.toml())
    spec = load(str(services))

    monkeypatch.setenv("PATH", f"{BIN}:{os.environ['PATH']}")
    async with sv.start(spec) as tree:
        running = await processes(tree)
        assert sorted(running) == sorted(expected["services"])
        for service, words, cwd, env in expected["check"]:
            argv, actual_cwd, actual_env = proc(running[service])
            # The stand-in is a shell script that execs python: either way its
            # arguments are there, and the program's name as a word or a file name.
            names = {*argv, *(os.path.basename(arg) for arg in argv)}
            for word in words:
                assert word in names, (service, word, argv)
            if cwd is not None:
                assert os.path.realpath(actual_cwd) == os.path.realpath(FIXTURES / cwd)
            for key, value in env.items():
                assert actual_env.get(key) == value, (service, key, actual_env.get(key))
        await tree.stop()
    await asyncio.sleep(0)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_the_services_file_maps_the_options() -> None:
    conversion = convert([str(FIXTURES / "tornado" / "supervisord.conf")], environ={"DEPLOY_ENV": "x", "LOG_DIR": "/l"})
    fields = conversion.services[0].fields
    assert fields["restart"] == "on-failure"  # autorestart=unexpected
    assert fields["ready"] == "delay 1"  # startsecs
    assert fields["stop_signal"] == "INT"
    assert fields["stop_timeout"] == 5
    assert fields["max_retries"] == 10
    assert fields["retry_delay"] == {"initial": 1, "maximum": 10, "jitter": 0}
    assert fields["output"] == "/l/tornado-8000.err"  # only stderr had a file: both streams go there
    assert "log_max_bytes" not in fields  # stderr_logfile_maxbytes=0: never rotated


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def test_comments_and_expansions_as_supervisord_reads_them(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "supervisord.conf",
        """
        [program:a]
        command=sh -c 'echo a;echo b' ; a comment, after a space
        environment=A="1,2",B=two,HOST="%(host_node_name)s",PCT="100%%"
        directory=%(here)s/srv  # a comment too
        stopasgroup=true

        [include]
        files = conf.d/*.conf
        """,
    )
    write(
        tmp_path, "conf.d/b.conf", "[program:b]\ncommand=run %(here)s %(program_name)s %(ENV_USERNAME)s\npriority=1\n"
    )
    conversion = convert([main], environ={"USERNAME": "ann"}, host_node_name="box")
    b, a = conversion.services  # b has a lower priority: it starts first
    assert a.fields["command"] == "sh -c 'echo a;echo b'"
    assert a.fields["environment"] == {"A": "1,2", "B": "two", "HOST": "box", "PCT": "100%"}
    assert a.fields["cwd"] == f"{tmp_path}/srv"
    assert b.fields["command"] == f"run {tmp_path}/conf.d b ann"  # %(here)s: the included file's directory
    assert b.where.file.endswith("conf.d/b.conf") and b.where.line == 1


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[program:a]\ncommand=x %(nope)s\n", 2, "cannot expand 'nope'"),
        ("[program:a]\ncommand=x\nnumprocs=2\n", 1, "must contain %(process_num)"),
        ("[program:a]\npriority=2\n", 1, "does not specify a command"),
        ("[program:a]\ncommand=x\nstopsignal=LOUD\n", 3, "unknown signal"),
        ("[program:a]\ncommand=x\nautorestart=sometimes\n", 3, "expected true, false or unexpected"),
        ("[group:g]\nprograms=a,b\n[program:a]\ncommand=x\n", 2, "unknown program 'b'"),
        ("[program:a]\ncommand=x\nstartsecs=soon\n", 3, "not an integer"),
        ("[program:a b]\ncommand=x\n", 1, "invalid name"),
        ("command=x\n", 1, "cannot parse"),
        ("[program:a]\ncommand='unbalanced\n", 2, "cannot split"),
        ("[supervisord]\nnodaemon=true\n", None, "no [program:x] section"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int | None, message: str) -> None:
    path = write(tmp_path, "bad.conf", text)
    with pytest.raises(SupervisordError) as caught:
        convert([path], environ={})
    assert message in caught.value.message
    if line is not None:
        assert (caught.value.file, caught.value.line) == (path, line)
        assert str(caught.value).startswith(f"{path}:{line}: ")


def test_the_services_file_is_valid_toml_for_awkward_names_and_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.conf",
        """
        [program:web.v2]
        command=printf "tab\\there \\"quoted\\" back\\\\slash"
        environment=UNICODE="é",EMPTY=""
        """,
    )
    conversion = convert([path], environ={})
    services = tmp_path / "services.toml"
    services.write_text(conversion.toml())
    spec = load(str(services))
    assert [child.id for child in spec.children] == ["web.v2"]


def test_group_and_numprocs_expansions_and_what_supervisord_rejects(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        "supervisord.conf",
        """
        [group:workers]
        programs=q
        priority=5

        [program:q]
        command=worker --group=%(group_name)s --of=%(numprocs)d --n=%(process_num)d
        process_name=%(group_name)s-%(process_num)d
        numprocs=2
        numprocs_start=1

        [program:solo]
        command=solo --group=%(group_name)s

        [include]
        files = more/*.conf
        """,
    )
    write(tmp_path, "more/x.conf", "[include]\nfiles = *.conf\n[program:x]\ncommand=x\n")
    conversion = convert([main], environ={})
    assert [s.name for s in conversion.services] == ["workers-1", "workers-2", "solo", "x"]
    assert conversion.services[1].fields["command"] == "worker --group=workers --of=2 --n=2"
    assert conversion.services[2].fields["command"] == "solo --group=solo"  # its own group
    assert conversion.groups == {"workers": ["workers-1", "workers-2"]}
    nested = [note for note in conversion.left_out if note.section == "include"]
    assert len(nested) == 1 and nested[0].where.file.endswith("more/x.conf") and nested[0].where.line == 1

    for text, message in [
        ("[program:a]\ncommand=x\nstopasgroup=true\nkillasgroup=false\n", "stopasgroup=true and killasgroup=false"),
        ("[program:a]\ncommand=x\n[program:b]\ncommand=y\nprocess_name=a\n", "two processes are named 'a'"),
        ("[program:a]\ncommand=x\nexitcodes=0,300\n", "exit statuses 0..255"),
    ]:
        path = write(tmp_path, "bad.conf", text)
        with pytest.raises(SupervisordError, match=message):
            convert([path], environ={})
