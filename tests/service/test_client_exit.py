"""Exit status of the client commands when no answer comes: a lost connection is a
failure (1), several trees without ``--name`` is bad usage (2), and only "nobody
there" is "not running" (3)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from supervision.__main__ import EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_USAGE, main


def test_a_server_that_hangs_up_without_a_reply_is_a_lost_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "hangs-up.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(30.0)

    def accept_read_and_hang_up() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(30.0)
            conn.recv(4096)  # the request, read and never answered

    thread = threading.Thread(target=accept_read_and_hang_up)
    thread.start()
    try:
        assert main(["status", "--control", path]) == EXIT_FAILED
    finally:
        thread.join(30.0)
        server.close()
    err = capsys.readouterr().err
    assert "closed the connection" in err and "lost the connection" in err, err


def test_nobody_listening_is_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--control", str(tmp_path / "nobody.sock")]) == EXIT_NOT_RUNNING
    assert "no tree is running" in capsys.readouterr().err


def test_several_trees_without_a_name_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "supervision").mkdir(mode=0o700)
    for name in ("one", "two"):
        (tmp_path / "supervision" / f"{name}.sock").touch()
    assert main(["status"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "several trees are running (one, two)" in err and "--name" in err, err
