"""A tree served the way ``sv.run`` serves it, for the observability tests: the
control commands over a real tree, an ``Observer`` adding the figures, and the
HTTP endpoint on a real socket."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import supervision as sv
from supervision._service.commands import Commands
from supervision._service.protocol import ServiceState
from supervision._service.recorder import OutputLog, Recorder
from supervision.observe.observer import CommandSource, Observer


class Served:
    """``async with Served(spec) as served``: the tree started, followed by a
    recorder and an observer; ``served.handler`` answers control requests with
    the figures added, ``served.source`` is what the HTTP endpoint serves."""

    def __init__(self, spec: sv.Supervisor, name: str = "test") -> None:
        self.spec = spec
        self.name = name
        self.target = "test"
        self.state = ServiceState.STARTING
        self.tree: sv.Tree | None = None
        self.recorder: Recorder | None = None
        self.output = OutputLog()
        self.observer = Observer(self.now)
        self.http_url: str | None = None
        self.commands = Commands(self)
        self.source = CommandSource(self.handler, self.events)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = 0.0

    async def handler(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.commands(request)

    def events(self) -> sv.EventStream:
        assert self.tree is not None
        return self.tree.events()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def uptime(self) -> float:
        return self.now() - self._started

    def request_stop(self) -> None:
        self.state = ServiceState.STOPPING
        assert self.tree is not None
        self._tasks.append(asyncio.get_running_loop().create_task(self.tree.stop()))

    async def reload(self) -> dict[str, Any]:
        raise NotImplementedError

    async def reexec(self) -> dict[str, Any]:
        raise NotImplementedError

    async def __aenter__(self) -> Served:
        self._started = asyncio.get_running_loop().time()
        self.tree = await sv.start(self.spec)
        self.recorder = Recorder(since=self._started)
        # As sv.run does: events are counted as the tree emits them.
        self.tree._observe(self.recorder.observe)
        self.tree._observe(self.observer.counters.observe)
        self.state = ServiceState.RUNNING
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.tree is not None
        self.state = ServiceState.STOPPING
        await self.tree.stop()
        if self._tasks:
            await asyncio.wait(self._tasks)


def get(url: str, token: str | None = None, data: Any = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """A blocking HTTP request (run it with ``asyncio.to_thread``): status and body."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = None
    if data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def fetch(url: str, token: str | None = None, data: Any = None) -> tuple[int, bytes]:
    return await asyncio.to_thread(get, url, token, data)
