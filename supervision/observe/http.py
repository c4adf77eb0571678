"""The opt-in HTTP endpoint of a tree (extra ``supervision[http]``), on aiohttp.

Routes:

- ``GET /metrics``: Prometheus text format (``metrics``), the tree read at scrape time;
- ``GET /healthz``: 200 while the root runs, not stopping nor escalating (liveness);
- ``GET /readyz``: 200 once every child is running and ready, or stopped on purpose (readiness);
- ``GET /api/tree``: the status JSON, with the figures of ``figures``;
- ``GET /api/events``: the tree's events as server-sent events (``event: tree``, a JSON object each);
- ``POST /api/restart``, ``/api/stop``, ``/api/start`` with ``{"path": "a/b"}``:
  the control commands, only with ``Authorization: Bearer TOKEN`` (else 403);
- ``GET /``: the dashboard (``static/``: no external CDN, everything served here).

Why aiohttp: a mature, maintained asyncio HTTP server that runs in the tree's
own event loop (no thread, no second loop), streams responses (server-sent
events) and costs nothing while idle: no timer runs without a connection, so an
idle tree with ``--http`` still wakes 0 times per second (``bench/observe.py``).

The server works on a small interface, :class:`Source`: the status JSON, the
tree's events and the control commands. It never touches the tree itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from .figures import event_json, health
from .metrics import CONTENT_TYPE, Exporter

logger = logging.getLogger("supervision")

DEFAULT_HOST = "127.0.0.1"
MAX_STREAMS = 32
"""Event streams served at once; more are refused (503): each holds a bounded queue."""
_ACTIONS = ("restart", "stop", "start")
_STATIC = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Source(Protocol):
    """What the HTTP endpoint needs of a running tree."""

    async def status(self, *, resources: bool = True) -> dict[str, Any]:
        """The status JSON (see ``figures``); ``resources=False`` skips the ``/proc`` reads."""
        ...

    def events(self) -> AsyncIterator[Any]:
        """The tree's events from now on; the iterator ends when the tree stops."""
        ...

    async def command(self, request: dict[str, Any]) -> dict[str, Any]:
        """Carry out a control command (``{"cmd": "restart", "path": "a/b"}``) and return its result."""
        ...


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"``, ``":9464"`` or ``"9464"`` -> (host, port).
    Without a host, loopback: listening elsewhere must be asked for."""
    text = address.strip()
    host, separator, port = text.rpartition(":")
    if not separator:
        host, port = "", text
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"an HTTP address is HOST:PORT (like 127.0.0.1:9464), got {address!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"a port is 0..65535, got {number}")
    return host, number


def _url_host(host: str) -> str:
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
        if ip.is_unspecified:
            return "127.0.0.1" if ip.version == 4 else "[::1]"
        if ip.version == 6:
            return f"[{host}]"
    return host


class HttpServer:
    """Serves a :class:`Source` over HTTP. ``await start()`` binds (raises
    ``OSError`` if the address is taken); ``await close()`` ends every
    connection, event streams included."""

    def __init__(self, source: Source, address: str, *, token: str | None = None) -> None:
        self.source = source
        self.host, self.port = parse_address(address)
        self.token = token
        self._exporter = Exporter()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._streams: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        """``http://HOST:PORT/``, with the port actually bound."""
        return f"http://{_url_host(self.host)}:{self.port}/"

    def app(self) -> web.Application:
        middlewares = [_headers]
        if _is_loopback(self.host):
            middlewares.insert(0, _loopback_hosts)
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/", self._static("index.html"))
        for name in _STATIC:
            app.router.add_get(f"/static/{name}", self._static(name))
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/api/tree", self._tree)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/auth", self._auth)
        for action in _ACTIONS:
            app.router.add_post(f"/api/{action}", self._action(action))
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._site = site
        for address in runner.addresses:
            self.port = int(address[1])
            break

    async def close(self) -> None:
        """Stop listening, end the event streams, close every connection. Idempotent."""
        site, self._site = self._site, None
        if site is not None:
            await site.stop()  # no new connection from here on
        streams = set(self._streams)
        for task in streams:
            task.cancel()
        if streams:
            await asyncio.wait(streams)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- routes -------------------------------------------------------------------

    def _static(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = resources.files(__package__).joinpath("static", name).read_bytes()
        content_type = _STATIC[name]

        async def serve(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8")

        return serve

    async def _metrics(self, request: web.Request) -> web.Response:
        status = await self.source.status()
        body = self._exporter.render(status)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        found = health(await self.source.status(resources=False))
        return web.Response(status=200 if found.live else 503, text=("ok" if found.live else found.reason) + "\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        found = health(await self.source.status(resources=False))
        return web.Response(status=200 if found.ready else 503, text=found.reason + "\n")

    async def _tree(self, request: web.Request) -> web.Response:
        status = await self.source.status()
        status["health"] = health(status).to_json()
        return web.json_response(status, dumps=_dumps)

    async def _auth(self, request: web.Request) -> web.Response:
        """200 if the request carries the token, else 403: the page asks before showing its buttons."""
        if not self._allowed(request):
            return _forbidden()
        return web.json_response({"actions": list(_ACTIONS)})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        # A stream whose client went away ends at its next event (the write
        # fails) or when the server closes: nothing polls to notice sooner.
        if len(self._streams) >= MAX_STREAMS:
            return web.Response(status=503, text=f"at most {MAX_STREAMS} event streams at once\n")
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        events = self.source.events()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        try:
            await response.prepare(request)
            await response.write(b"retry: 1000\n: subscribed\n\n")
            async for event in events:
                data = _dumps(event_json(event))
                await response.write(f"event: tree\ndata: {data}\n\n".encode())
            await response.write(b"event: end\ndata: {}\n\n")  # the tree stopped
        except ConnectionError:
            pass  # the client went away
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            self._streams.discard(task)
        return response

    def _action(self, action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def act(request: web.Request) -> web.Response:
            if not self._allowed(request):
                return _forbidden()
            try:
                body = await request.json()
            except (ValueError, UnicodeDecodeError):
                body = None
            path = body.get("path") if isinstance(body, dict) else None
            if not isinstance(path, str) or not path.strip("/"):
                return web.json_response({"error": "BadRequest", "message": "give the child's path"}, status=400)
            try:
                result = await self.source.command({"cmd": action, "path": path})
            except Exception as exc:  # the tree refused: NotFound, ChildRunning, ...
                kind = getattr(exc, "type", None) or type(exc).__name__
                code = 404 if kind == "NotFound" else 409
                return web.json_response({"error": kind, "message": str(exc)}, status=code)
            logger.info("dashboard: %s %s", action, path)
            return web.json_response(result, dumps=_dumps)

        return act

    def _allowed(self, request: web.Request) -> bool:
        if self.token is None:
            return False
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@web.middleware
async def _loopback_hosts(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """On a loopback address, answer only requests addressed to a loopback name:
    a web page elsewhere cannot read the tree through DNS rebinding."""
    host = request.host
    name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    if not _is_loopback(name):
        return web.Response(status=421, text=f"this endpoint answers on loopback names only, not {host!r}\n")
    return await handler(request)


@web.middleware
async def _headers(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    response = await handler(request)
    if not response.prepared:
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def _forbidden() -> web.Response:
    return web.json_response(
        {"error": "Forbidden", "message": "this needs the dashboard's token (see 'supervision dashboard')"}, status=403
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
