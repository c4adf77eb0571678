"""Prefixed output: lines are cut at 64 KiB, as docs/processes.md says."""

from __future__ import annotations

import asyncio
import fcntl
import os
import termios

import pytest

from supervision._process.output import PrefixedOutput

KIB64 = 65536


async def test_a_prefixed_line_holds_at_most_64_kib_of_output(capsys: pytest.CaptureFixture[str]) -> None:
    loop = asyncio.get_running_loop()
    output = PrefixedOutput(loop, ("p",))
    writer = os.dup(output.child_stdout)
    output.started()
    try:
        got = ""
        pieces = [b"a" * 60_000, b"b" * 60_000 + b"\n", b"c" * KIB64, b"c" * KIB64, b"c" * 50_000 + b"\n"]
        for piece in pieces:
            os.write(writer, piece)  # at most 64 KiB: fits in the empty pipe
            for _ in range(1000):  # let the loop read it all
                if not _held(writer):
                    break
                await asyncio.sleep(0.001)
            got += capsys.readouterr().out
    finally:
        os.close(writer)
        output.drain_and_close()
    got += capsys.readouterr().out
    lines = got.splitlines()
    assert all(line.startswith("p | ") for line in lines)
    bodies = [line.removeprefix("p | ") for line in lines]
    assert max(len(body) for body in bodies) == KIB64  # cut, never longer
    assert "".join(bodies) == "a" * 60_000 + "b" * 60_000 + "c" * (2 * KIB64 + 50_000)  # nothing lost


def _held(fd: int) -> int:
    held = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, held)
    return int.from_bytes(held, "little")
