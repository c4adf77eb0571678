"""The exec helper applies a process child's settings before exec: real processes,
checked from the outside (``/proc/PID/status``) and as the child reports them."""

from __future__ import annotations

import ctypes
import fcntl
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervision._core.settings import Settings
from supervision._process import helper as _helper
from supervision._process.settings import SetLimit, SettingFailed, prepare, settings
from supervision._process.spawn import ELF_HEADERS, _elf
from tests.process_helpers import state

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="the exec helper is x86-64 code")
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT and not os.environ.get("CI"), reason="switching users needs root")

REPORT = (
    "umask; ulimit -Sn; ulimit -Hn; ulimit -c; cut -d' ' -f19 /proc/self/stat; cat /proc/self/oom_score_adj; "
    "ls /proc/self/fd | wc -l"
)


@pytest.fixture(scope="module")
def helper() -> Iterator[str]:
    fd = os.memfd_create("supervision-test-helper", os.MFD_CLOEXEC)
    os.write(fd, _elf(_helper.HELPER_X86_64, 0x3E))
    try:
        yield f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)


_IN_PROCESS: dict[int, _helper.InProcess] = {}


def _spawn(via: str, helper: str, *args: Any, **kwargs: Any) -> int:
    """``_helper.spawn`` through the exec'd helper (``via`` "helper") or in this
    process (``via`` "vfork", the helper's code mapped from the same memfd)."""
    if via == "helper":
        return _helper.spawn(helper, *args, **kwargs)
    assert via == "vfork"
    fd = int(helper.rpartition("/")[2])
    if fd not in _IN_PROCESS:
        _IN_PROCESS[fd] = _helper.InProcess(fd, os.fstat(fd).st_size, ELF_HEADERS)
    return _IN_PROCESS[fd].spawn(*args, **kwargs)


def _common(stdout: int | None) -> dict[str, Any]:
    return {
        "cwd": "/",
        "env": {"PATH": "/usr/bin:/bin"},
        "stdin": subprocess.DEVNULL,
        "stdout": stdout,
        "stderr": stdout,
        "start_new_session": True,
        "close_fds": True,
    }


def _run(helper: str | None, script: str, given: Settings, parent: int = 0, via: str = "helper") -> list[str]:
    """Run ``sh -c script`` with ``given`` settings (through the helper, or with
    preexec_fn if ``helper`` is None); its output lines."""
    steps = prepare(given).steps
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        if helper is None:
            pid = _helper.spawn_preexec(
                ["/bin/sh", "-c", script], _common(write_end), parent=0, steps=steps, prctl=None
            )
        else:
            pid = _spawn(via, helper, ["sh", "-c", script], "/bin/sh", _common(write_end), parent=parent, steps=steps)
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as output:
        text = output.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text.split()


@pytest.mark.parametrize("via", ["helper", "vfork", "preexec"])
def test_umask_limits_nice_and_oom_score_as_the_child_reports_them(helper: str, via: str) -> None:
    given = settings(("web",), umask="027", limits={"nofile": (100, 200), "core": 0}, nice=7, oom_score_adj=250)
    umask, soft, hard, core, nice, oom, fds = _run(None if via == "preexec" else helper, REPORT, given, via=via)
    assert (umask, soft, hard, core, nice, oom) == ("0027", "100", "200", "0", "7", "250")
    assert int(fds) == 4  # 0, 1, 2 and ls's own directory: no pipe of ours leaked


@pytest.mark.parametrize("via", ["helper", "vfork"])
def test_no_settings_runs_the_program_unchanged(helper: str, via: str) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    lines = _run(helper, "umask; cat /proc/self/oom_score_adj", Settings(), via=via)
    assert lines == [f"{umask:04o}", Path("/proc/self/oom_score_adj").read_text().strip()]


@needs_root
@pytest.mark.parametrize("via", ["helper", "vfork", "preexec"])
def test_user_nobody_seen_in_proc_status(helper: str, via: str) -> None:
    nobody = pwd.getpwnam("nobody")
    given = settings(("web",), user="nobody")
    prepared = prepare(given)
    assert prepared.env["USER"] == "nobody" and prepared.env["HOME"] == nobody.pw_dir
    common = _common(None)
    if via != "preexec":
        pid = _spawn(
            via, helper, ["sleep", "30"], shutil.which("sleep") or "/bin/sleep", common, parent=0, steps=prepared.steps
        )
    else:
        pid = _helper.spawn_preexec(["sleep", "30"], common, parent=0, steps=prepared.steps, prctl=None)
    try:
        status = _status(pid)
        assert status["Uid"] == [nobody.pw_uid] * 4
        assert status["Gid"] == [nobody.pw_gid] * 4
        assert status["Groups"] == sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _status(pid: int) -> dict[str, list[int]]:
    fields: dict[str, list[int]] = {}
    deadline = time.monotonic() + 10
    while True:  # until the helper has exec'd (spawn returns after exec: at once)
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                name, _, value = line.partition(":")
                if name in ("Uid", "Gid", "Groups"):
                    fields[name] = (
                        sorted(int(v) for v in value.split()) if name == "Groups" else [int(v) for v in value.split()]
                    )
        if fields.get("Uid") or time.monotonic() > deadline:
            return fields


@needs_root
@pytest.mark.parametrize("via", ["helper", "vfork"])
def test_pdeathsig_survives_the_user_switch(helper: str, via: str) -> None:
    """Changing credentials clears PR_SET_PDEATHSIG: the helper sets it after the
    switch, so a child running as nobody still dies with its supervisor."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # a stand-in supervisor: spawns, reports the pid, dies hard
        try:
            os.close(read_end)
            steps = prepare(settings(("web",), user="nobody")).steps
            pid = _spawn(via, helper, ["sleep", "60"], "/bin/sleep", _common(None), parent=os.getpid(), steps=steps)
            os.write(write_end, str(pid).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = int(pipe.read())
    os.waitpid(middle, 0)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{child}") and state(child) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    gone = not os.path.exists(f"/proc/{child}") or state(child) == "Z"
    if not gone:
        os.kill(child, signal.SIGKILL)
    assert gone, "the child outlived its supervisor"


@pytest.mark.parametrize("via", ["helper", "vfork", "preexec"])
def test_a_setting_that_fails_is_a_start_failure_naming_it(helper: str, via: str) -> None:
    hard = int(Path("/proc/sys/fs/nr_open").read_text()) + 1  # above what even root may set
    given = settings(("web",), umask=0o077, limits={"nofile": (hard, hard)})
    steps = prepare(given).steps
    with pytest.raises(SettingFailed) as caught:
        if via != "preexec":
            _spawn(via, helper, ["true"], "/bin/true", _common(None), parent=0, steps=steps)
        else:
            _helper.spawn_preexec(["/bin/true"], _common(None), parent=0, steps=steps, prctl=None)
    assert isinstance(caught.value.step, SetLimit)
    assert re.match(rf"setting limit nofile to {hard}:{hard}: ", str(caught.value))


@pytest.mark.parametrize("via", ["helper", "vfork"])
def test_a_missing_program_is_still_reported_after_the_steps(helper: str, via: str) -> None:
    steps = prepare(settings(("web",), umask=0o077, nice=1)).steps
    with pytest.raises(FileNotFoundError):
        _spawn(via, helper, ["nope"], "/nonexistent/nope", _common(None), parent=0, steps=steps)


@needs_root
@pytest.mark.parametrize("via", ["helper", "vfork"])
def test_another_user_without_root_fails_with_a_clear_error(helper: str, via: str, tmp_path: Path) -> None:
    """A supervisor that is not root cannot run a child as another user; as
    itself it can (nothing to switch)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)  # now "nobody", like a supervisor run by a user
            # A process that changed its uid is not dumpable, so its /proc/PID/fd
            # (where the helper is run from) would be root's: undo that.
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
            helper = f"/proc/{os.getpid()}/fd/{helper.rpartition('/')[2]}"
            own = prepare(settings(("web",), user="nobody")).steps
            _, status = os.waitpid(_spawn(via, helper, ["true"], "/bin/true", _common(None), parent=0, steps=own), 0)
            try:
                steps = prepare(settings(("web",), user="daemon")).steps
                _spawn(via, helper, ["true"], "/bin/true", _common(None), parent=0, steps=steps)
                message = "started"
            except SettingFailed as exc:
                message = str(exc)
            os.write(write_end, f"{len(own)} {status}\n{message}".encode())
            code = 0
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    os.waitpid(pid, 0)
    first, message = report.split("\n", 1)
    assert first == "0 0", report  # as itself: no steps, and the child ran
    assert message == "cannot run as user 'daemon' (uid 1): the supervisor is not root (it runs as uid 65534)"


def test_the_encoded_program_reports_the_step_owning_each_system_call() -> None:
    steps = prepare(settings(("web",), limits={"core": 0}, oom_score_adj=10, umask=0o22)).steps
    program, owners = _helper.encode(steps)
    assert owners == [0, 1, 1, 2]  # the OOM score takes an open and a write
    assert int.from_bytes(bytes.fromhex(program[:16]), "little") == 4


def test_the_helper_bytes_are_the_documented_source(tmp_path: Path) -> None:
    """Assemble the source in ``_helper``'s docstring and compare with the bytes."""
    assembler = shutil.which("as")
    objcopy = shutil.which("objcopy")
    if assembler is None or objcopy is None:
        if os.environ.get("CI"):
            pytest.fail("binutils (as, objcopy) must be installed in CI")
        pytest.skip("binutils (as, objcopy) not installed")
    doc = _helper.__doc__ or ""
    source = doc.split("compares::\n", 1)[1]
    lines = [".intel_syntax noprefix", ".globl _start"]
    for raw in source.splitlines():
        body = raw.split("#")[0].strip()  # statements are joined with "; "
        if not body:
            continue
        label, _, rest = body.partition(":") if re.match(r"^[\w.]+:", body) else ("", "", body)
        if label:
            lines.append(f"{label}:")
        lines.extend(part.strip() for part in rest.split("; ") if part.strip())
    (tmp_path / "helper.s").write_text("\n".join(lines) + "\n")
    subprocess.run([assembler, "--64", "-o", str(tmp_path / "helper.o"), str(tmp_path / "helper.s")], check=True)
    subprocess.run(
        [objcopy, "-O", "binary", "-j", ".text", str(tmp_path / "helper.o"), str(tmp_path / "helper.bin")], check=True
    )
    assert (tmp_path / "helper.bin").read_bytes() == _helper.HELPER_X86_64


# -- socket activation and settings in one helper ------------------------------------

ACTIVATED = (
    "import json, os; print(json.dumps([os.getpid(), os.environ['LISTEN_PID'], os.environ['WATCHDOG_PID'],"
    " [os.fstat(fd).st_ino for fd in (3, 4)], sorted(int(fd) for fd in os.listdir('/proc/self/fd')),"
    " os.umask(0), open('/proc/self/limits').read().count('Max open files            64   ')]), flush=True)"
)


@pytest.mark.parametrize("via", ["helper", "vfork", "preexec"])
def test_sockets_pid_variables_and_settings_from_the_lowest_fds(helper: str, via: str, tmp_path: Path) -> None:
    """A supervisor whose sockets sit at the targets, swapped (fd 4 goes to 3, 3 to 4),
    then one whose error pipe would land on a target: the sockets are placed, the pid
    written, the settings applied, nothing else leaked."""
    import json
    import socket
    import sys

    out = tmp_path / "out"
    steps = prepare(settings(("web",), umask=0o027, limits={"nofile": (64, 128)})).steps
    env = {"LISTEN_PID": " " * _helper.PID_WIDTH, "WATCHDOG_PID": " " * _helper.PID_WIDTH, "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-c", ACTIVATED]
    middle = os.fork()
    if middle == 0:  # a stand-in supervisor with nothing open above stderr
        code = 1
        try:
            os.closerange(3, 1 << 20)
            first, second = socket.socket(), socket.socket()  # fds 3, 4
            expected = []
            with open(out, "ab", buffering=0) as file:  # fd 5
                common = {**_common(file.fileno()), "env": env}
                for layout in ("swapped", "pipe at a target"):
                    if layout == "pipe at a target":  # free 3 and 4: the pipe would get them
                        first, second = (_moved(s) for s in (first, second))
                        assert (first.fileno(), second.fileno()) == (6, 7)
                    listen = [second.fileno(), first.fileno()]
                    expected.append([os.fstat(fd).st_ino for fd in listen])
                    for program in ("/nonexistent/x", argv[0]):  # the failure is reported on the pipe
                        try:
                            if via != "preexec":
                                pid = _spawn(
                                    via,
                                    helper,
                                    [program, *argv[1:]],
                                    program,
                                    common,
                                    parent=os.getpid(),
                                    steps=steps,
                                    listen=listen,
                                    pid_variables=2,
                                )
                            else:
                                pid = _helper.spawn_preexec(
                                    [program, *argv[1:]],
                                    common,
                                    parent=0,
                                    steps=steps,
                                    prctl=None,
                                    path=program,
                                    listen=listen,
                                    pid_variables=2,
                                )
                        except FileNotFoundError:
                            assert program != argv[0]
                        else:
                            assert program == argv[0], "a missing program was not reported"
                    _, status = os.waitpid(pid, 0)
                    file.write(json.dumps([pid, status, expected[-1]]).encode() + b"\n")
            code = 0
        except BaseException as exc:
            out.with_suffix(".error").write_text(repr(exc))
        finally:
            os._exit(code)
    _, status = os.waitpid(middle, 0)
    assert status == 0, out.with_suffix(".error").read_text()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4  # the program's line, then the stand-in's, per layout
    for report, (pid, status, inodes) in (lines[0:2], lines[2:4]):
        own, listen_pid, watchdog_pid, placed, fds, umask, limited = report
        assert status == 0 and (own, listen_pid, watchdog_pid) == (pid, str(pid), str(pid))
        assert placed == inodes
        assert fds[:5] == [0, 1, 2, 3, 4] and len(fds) == 6  # and listdir's own: nothing leaked
        assert (umask, limited) == (0o027, 1)


def _moved(sock: Any) -> Any:
    import socket

    fd = sock.detach()
    try:
        return socket.socket(fileno=fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 6))
    finally:
        os.close(fd)


@pytest.mark.parametrize("via", ["helper", "vfork"])
def test_the_pid_placeholder_must_be_wide_enough(helper: str, via: str) -> None:
    common = {**_common(None), "env": {"LISTEN_PID": "1", "PATH": "/bin"}}
    with pytest.raises(ValueError, match="LISTEN_PID"):
        _spawn(via, helper, ["true"], "/bin/true", common, parent=0, pid_variables=1)


def test_placing_a_socket_takes_two_calls_and_the_pid_one() -> None:
    actions = [_helper.PlaceFd(9, 3), _helper.WritePid(0, "LISTEN_PID"), *prepare(settings(("web",), umask=0o22)).steps]
    program, owners = _helper.encode(actions)
    assert owners == [0, 0, 1, 2]
    entries = bytes.fromhex(program)[8:]
    assert [int.from_bytes(entries[i * 64 : i * 64 + 8], "little") for i in range(4)] == [33, 3, 2**64 - 1, 95]
