"""``supervision run`` raises its own soft ``RLIMIT_NOFILE`` to the hard limit (each
process child holds a pidfd and two pipes: 10 000 children need some 30 000
descriptors), and its children get the soft limit back that it was started with."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from supervision._process.settings import LIMITS, NOTHING, Prepared, SetLimit
from supervision._runtime import process as process_runtime
from supervision._service.run import raise_nofile
from tests.cli_helpers import Run, wait_until

TREE = """\
import supervision as sv

def build():
    return sv.Supervisor([
        sv.process("plain", ["/bin/sh", "-c", "ulimit -Sn > plain.out; ulimit -Hn >> plain.out; exec sleep 1000"]),
        sv.process("own", ["/bin/sh", "-c", "ulimit -Sn > own.out; exec sleep 1000"], limits={"nofile": 300}),
    ])
"""


def _limits(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as file:
        line = next(line for line in file if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_run_raises_its_soft_limit_and_children_get_the_original_back(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"needs a finite hard NOFILE limit above 256, not {hard}")
    (tmp_path / "tree.py").write_text(TREE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # as systemd starts a service: low soft, high hard
    try:
        run = Run(tmp_path, str(tmp_path / "tree.py"))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        pid = run.wait_running()["pid"]
        plain, own = tmp_path / "plain.out", tmp_path / "own.out"
        wait_until(lambda: own.exists() and plain.exists() and len(plain.read_text().split()) == 2, "both outputs")
        assert _limits(pid) == (hard, hard)  # the supervisor raised its soft limit
        assert plain.read_text().split() == ["256", str(hard)]  # the child got 256 back
        assert own.read_text().split() == ["300"]  # its own limits win
    finally:
        run.close()


def test_raise_nofile_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raised: children get the original soft limit; already at the hard limit: nothing changes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"needs a finite hard NOFILE limit above 256, not {hard}")
    monkeypatch.setattr(process_runtime, "_child_nofile", None)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert raise_nofile() == 256
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        step = SetLimit(LIMITS["nofile"], "nofile", 256, hard)
        assert process_runtime._with_child_nofile(NOTHING).steps == (step,)
        own = Prepared({}, (SetLimit(LIMITS["nofile"], "nofile", 300, 300),))
        assert process_runtime._with_child_nofile(own) is own  # a child's own limit is kept
        assert raise_nofile(original=200) == 200  # a re-executed image: its predecessor's original
        assert raise_nofile() is None  # started at the hard limit: children inherit it
        assert process_runtime._with_child_nofile(NOTHING) is NOTHING
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        process_runtime.set_child_nofile(None)
