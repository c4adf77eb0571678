"""TOML services files: process settings (user, limits, env_file...) and log files."""

from __future__ import annotations

import textwrap

import pytest

import supervision as sv
from supervision._core.errors import ServicesError
from supervision._core.settings import Prefixed, Settings
from supervision._reload.services import parse


def build(text: str, base: str = "/srv/app") -> sv.Supervisor:
    return parse(textwrap.dedent(text), "services.toml", base)


def test_settings_map_onto_the_process() -> None:
    spec = build(
        """
        [services.web]
        command = "./web"
        user = "www-data"
        group = 33
        umask = "027"
        limits = { nofile = 65536, core = 0, nproc = [512, 1024], stack = "infinity" }
        env_file = ["web.env", "-/etc/web.local.env"]
        nice = 5
        oom_score_adj = 500
        output = "logs/web.log"
        log_max_bytes = "10MB"
        log_backups = 3
        timestamps = true
        """
    )
    (web,) = spec.children
    assert web.start.settings == Settings(
        user="www-data",
        group=33,
        umask=0o027,
        limits=(("core", 0, 0), ("nofile", 65536, 65536), ("nproc", 512, 1024), ("stack", None, None)),
        env_file=("/srv/app/web.env", "-/etc/web.local.env"),
        nice=5,
        oom_score_adj=500,
    )
    assert web.start.output == sv.LogFile("/srv/app/logs/web.log", 10 << 20, 3, True)


def test_timestamps_on_prefixed_lines_and_defaults() -> None:
    spec = build('[services.a]\ncommand = "./a"\ntimestamps = true\n[services.b]\ncommand = "./b"\n')
    a, b = spec.children
    assert a.start.output == Prefixed(True)
    assert (b.start.output, b.start.settings) == ("prefix", Settings())


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("limits = { nofiles = 10 }", 3, "services.web.limits", "unknown limit 'nofiles' (did you mean 'nofile'?)"),
        ("limits = { nofile = [20, 10] }", 3, "services.web.limits.nofile", "the soft limit exceeds the hard limit"),
        ('umask = "8"', 3, "services.web.umask", "octal"),
        ("nice = 40", 3, "services.web.nice", "-20..19"),
        ("oom_score_adj = -2000", 3, "services.web.oom_score_adj", "-1000..1000"),
        ('user = ""', 3, "services.web.user", "a name or a numeric id"),
        ("env_file = 3", 3, "services.web.env_file", "a path or a list of paths"),
        ('log_max_bytes = "1MB"', 3, "services.web.log_max_bytes", "only with output = a file path"),
        ('output = "x.log"\nlog_max_bytes = "lots"', 4, "services.web.log_max_bytes", "a size like"),
        ('output = "x.log"\nlog_backups = -1', 4, "services.web.log_backups", "0..1000"),
        ('output = "inherit"\ntimestamps = true', 4, "services.web.timestamps", "not with output = 'inherit'"),
        ("timestamps = 1", 3, "services.web.timestamps", "true or false"),
    ],
)
def test_errors_point_at_the_line(text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ServicesError) as caught:
        build(f'[services.web]\ncommand = "./web"\n{text}\n')
    assert (caught.value.line, caught.value.key) == (line, key)
    assert message in caught.value.message
