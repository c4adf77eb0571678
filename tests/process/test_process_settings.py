"""Process settings through a running tree, with real processes: the user seen in
``/proc/PID/status``, umask and limits as the child reports them, environment files
with quoting, and settings that cannot be applied as start failures naming them."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import pytest

import supervision as sv
from supervision._process.envfile import EnvFileError
from supervision._process.settings import LookupFailed, SettingFailed
from tests.helpers import is_, next_event
from tests.process_helpers import start_watched

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT and not os.environ.get("CI"), reason="switching users needs root")


def _proc_status(pid: int) -> dict[str, list[int]]:
    with open(f"/proc/{pid}/status") as file:
        fields = dict(line.split(":", 1) for line in file if ":" in line)
    return {name: [int(v) for v in fields[name].split()] for name in ("Uid", "Gid", "Groups")}


@needs_root
async def test_user_nobody_as_seen_in_proc_status() -> None:
    nobody = pwd.getpwnam("nobody")
    spec = sv.Supervisor([sv.process("web", ["sleep", "1000"], user="nobody")])
    async with sv.start(spec) as tree:
        (info,) = tree.which_children()
        assert info.pid is not None
        status = _proc_status(info.pid)
        assert status["Uid"] == [nobody.pw_uid] * 4
        assert status["Gid"] == [nobody.pw_gid] * 4
        assert sorted(status["Groups"]) == sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))
        deadline = time.monotonic() + 10
        while True:  # a child counts as started from exec's point of no return: its environ comes after
            with open(f"/proc/{info.pid}/environ", "rb") as file:
                environ = dict(item.split(b"=", 1) for item in file.read().split(b"\0") if b"=" in item)
            if environ or time.monotonic() > deadline:
                break
            time.sleep(0.001)
        assert environ[b"USER"] == b"nobody" and environ[b"HOME"] == nobody.pw_dir.encode()


async def _report(tmp_path: Path, script: str, **settings: object) -> str:
    """Run ``sh -c script`` once with ``settings``; what it wrote to its output file."""
    out = tmp_path / "report"
    spec = sv.Supervisor(
        [sv.process("job", ["sh", "-c", f"{{ {script}; }} > {out}"], restart="temporary", **settings)]  # type: ignore[arg-type]
    )
    async with start_watched(spec) as (_, events):
        exited = await next_event(events, is_(sv.ChildExited, "job"))
        assert isinstance(exited, sv.ChildExited) and exited.reason is sv.ExitReason.NORMAL, exited
    return out.read_text()


async def test_umask_limits_nice_and_oom_score_as_the_child_reports_them(tmp_path: Path) -> None:
    report = await _report(
        tmp_path,
        "umask; ulimit -Sn; ulimit -Hn; ulimit -Sc; ulimit -Hc; cut -d' ' -f19 /proc/self/stat;"
        " cat /proc/self/oom_score_adj",
        umask="027",
        limits={"nofile": (256, 512), "core": 0},
        nice=3,
        oom_score_adj=700,
    )
    assert report.split() == ["0027", "256", "512", "0", "0", "3", "700"]


async def test_env_file_with_quoting_and_explicit_env_winning(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "# settings of the app\n"
        "PLAIN = two words  \n"
        "SINGLE='$HOME stays, \\n too'\n"
        'DOUBLE="say \\"hi\\" \\$5"\n'
        "JOINED=one\\\n"
        "two\n"
        "OVERRIDDEN=from the file\n"
    )
    report = await _report(
        tmp_path,
        'printf "%s|%s|%s|%s|%s|%s" "$PLAIN" "$SINGLE" "$DOUBLE" "$JOINED" "$OVERRIDDEN" "${OPTIONAL-unset}"',
        env_file=[str(env_file), "-" + str(tmp_path / "absent.env")],
        env={"OVERRIDDEN": "explicit"},
    )
    assert report.split("|") == ["two words", "$HOME stays, \\n too", 'say "hi" $5', "onetwo", "explicit", "unset"]


async def test_a_missing_env_file_is_a_start_failure(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.env")
    with pytest.raises(sv.StartError) as caught:
        async with sv.start(sv.Supervisor([sv.process("web", ["true"], env_file=missing)])):
            pass
    assert caught.value.path == ("web",)
    assert isinstance(caught.value.__cause__, EnvFileError)
    assert caught.value.__cause__.filename == missing


async def test_an_unknown_user_is_a_start_failure() -> None:
    with pytest.raises(sv.StartError) as caught:
        async with sv.start(sv.Supervisor([sv.process("web", ["true"], user="no-such-user-here")])):
            pass
    assert isinstance(caught.value.__cause__, LookupFailed)
    assert "no such user 'no-such-user-here'" in str(caught.value.__cause__)


async def test_a_setting_the_kernel_refuses_is_a_start_failure_naming_it() -> None:
    hard = int(Path("/proc/sys/fs/nr_open").read_text()) + 1  # above what even root may set
    with pytest.raises(sv.StartError) as caught:
        async with sv.start(sv.Supervisor([sv.process("web", ["true"], limits={"nofile": hard})])):
            pass
    cause = caught.value.__cause__
    assert isinstance(cause, SettingFailed)
    assert str(cause).startswith(f"setting limit nofile to {hard}:{hard}: ")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limits": {"nofiles": 1}}, "limits"),
        ({"limits": {"nofile": -1}}, "limits.nofile"),
        ({"limits": {"nofile": (10, 5)}}, "limits.nofile"),
        ({"limits": {"core": (1, 2, 3)}}, "limits.core"),
        ({"limits": ["nofile"]}, "limits"),
        ({"umask": 0o1000}, "umask"),
        ({"umask": "9"}, "umask"),
        ({"nice": 20}, "nice"),
        ({"nice": True}, "nice"),
        ({"oom_score_adj": 1001}, "oom_score_adj"),
        ({"user": ""}, "user"),
        ({"user": "a:b"}, "user"),
        ({"group": 1.5}, "group"),
        ({"env_file": ""}, "env_file"),
        ({"env_file": [3]}, "env_file"),
        ({"output": 3}, "output"),
    ],
)
def test_bad_settings_are_spec_errors_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(sv.SpecError) as caught:
        sv.process("web", ["true"], **kwargs)  # type: ignore[arg-type]
    assert (caught.value.path, caught.value.field) == (("web",), field)


def test_settings_are_part_of_the_spec_a_reload_compares() -> None:
    a = sv.process("web", ["./web"], limits={"nofile": 10}, user="nobody")
    b = sv.process("web", ["./web"], limits={"nofile": 10}, user="nobody")
    c = sv.process("web", ["./web"], limits={"nofile": 11}, user="nobody")
    assert a == b and hash(a) == hash(b) and a != c
