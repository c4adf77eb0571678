"""A refusal crosses the control socket as itself: the client raises the tree's own
error class, with its ``.path``, through the one wire table."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import supervision as sv
from supervision._core.errors import RequestError
from supervision._service.client import Client
from supervision._service.server import ControlServer


async def handler(request: dict[str, Any]) -> dict[str, Any]:
    if request["cmd"] == "missing":
        raise sv.NotFound.at(("db", "pool"), "no such child")
    if request["cmd"] == "running":
        raise sv.ChildRunning.at(("web",), "running")
    raise RequestError("UnknownCommand", "unknown")


async def test_the_client_raises_the_servers_refusal_with_its_path(tmp_path: Path) -> None:
    server = ControlServer(str(tmp_path / "t.sock"), handler)
    await server.start()
    try:

        def calls() -> list[BaseException]:
            found: list[BaseException] = []
            with Client(server.path, timeout=10) as client:
                for cmd in ("missing", "running", "other"):
                    with pytest.raises(sv.SupervisionError) as info:
                        client.call(cmd)
                    found.append(info.value)
            return found

        missing, running, other = await asyncio.to_thread(calls)
    finally:
        await server.close()
    assert isinstance(missing, sv.NotFound) and missing.path == ("db", "pool")
    assert str(missing) == "db/pool: no such child"
    assert isinstance(running, sv.ChildRunning) and running.path == ("web",)
    assert isinstance(other, RequestError) and other.type == "UnknownCommand" and other.path is None
