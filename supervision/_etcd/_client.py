"""The HTTP client: see the package docstring."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._core.errors import SupervisionError

if TYPE_CHECKING:
    import aiohttp


class EtcdError(SupervisionError):
    """etcd answered a request with an error (``.code`` is the gRPC status code)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class EtcdUnavailable(EtcdError):
    """No endpoint answered in time (members down, or no quorum)."""


# gRPC codes that mean "try elsewhere or later": UNAVAILABLE, DEADLINE_EXCEEDED,
# and UNKNOWN, which etcd uses for "etcdserver: no leader" and leader changes.
_RETRY_CODES = frozenset({2, 4, 14})


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _import_aiohttp() -> Any:
    try:
        import aiohttp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the etcd store and lease need aiohttp: pip install 'supervision[etcd]'") from exc
    return aiohttp


class EtcdClient:
    """Requests to an etcd cluster through its JSON gateway.

    ``endpoints`` are base URLs of members' client ports (``http://10.0.0.1:2379``);
    ``timeout`` bounds each attempt on one endpoint.
    """

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 2.0) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = tuple(url.rstrip("/") for url in endpoints)
        self.timeout = timeout
        self._preferred = 0
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            aiohttp = _import_aiohttp()
            # No connection reuse across a member's death: a small pool, short keep-alive.
            connector = aiohttp.TCPConnector(limit=16, keepalive_timeout=5.0)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def call(self, method: str, body: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<method>`` and return the decoded answer.

        Tries every endpoint once, starting with the last one that answered;
        each attempt is bounded by ``timeout`` (default: the client's).
        ``EtcdUnavailable`` when none answered, ``EtcdError`` when etcd refused.
        """
        aiohttp = _import_aiohttp()
        session = self._client()
        limit = self.timeout if timeout is None else timeout
        failures: list[str] = []
        count = len(self.endpoints)
        first = self._preferred  # read once: a failure moves it for the next call
        for attempt in range(count):
            index = (first + attempt) % count
            url = f"{self.endpoints[index]}/v3/{method}"
            answered = False
            try:
                async with asyncio.timeout(limit):
                    async with session.post(url, json=body) as response:
                        text = await response.text()
                        status = response.status
                answered = True
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failures.append(f"{self.endpoints[index]}: {type(exc).__name__} {exc}".rstrip())
                continue
            finally:
                if not answered:
                    # Start the next call elsewhere, also when the caller's own
                    # deadline cancelled this one: a hung member must not eat
                    # every call's whole deadline.
                    self._preferred = (index + 1) % count
            answer = _parse(text)
            if status == 200 and "error" not in answer:
                self._preferred = index
                return answer
            code = answer.get("code")
            message = str(answer.get("message") or answer.get("error") or text[:200])
            if code in _RETRY_CODES or (status >= 500 and code is None):
                failures.append(f"{self.endpoints[index]}: {message}")
                self._preferred = (index + 1) % count
                continue
            raise EtcdError(f"etcd {method}: {message}", code if isinstance(code, int) else None)
        raise EtcdUnavailable(f"etcd {method}: no endpoint answered ({'; '.join(failures)})")

    async def wait_deleted(self, key: bytes, start_revision: int, *, timeout: float) -> bool:
        """Watch ``key`` from ``start_revision`` on: True once it is deleted,
        False after ``timeout`` seconds or when the stream breaks (callers
        check the key again, so a missed event costs a round, not safety)."""
        aiohttp = _import_aiohttp()
        session = self._client()
        body = {"create_request": {"key": b64(key), "start_revision": str(start_revision)}}
        index = self._preferred
        try:
            async with asyncio.timeout(timeout):
                async with session.post(f"{self.endpoints[index]}/v3/watch", json=body) as response:
                    if response.status != 200:
                        raise OSError(f"watch answered HTTP {response.status}")
                    async for line in response.content:
                        result = _parse(line.decode()).get("result")
                        if not isinstance(result, dict) or result.get("canceled"):
                            return False
                        if any(event.get("type") == "DELETE" for event in result.get("events", ())):
                            return True
            # The stream ended: the member went away.
            self._preferred = (index + 1) % len(self.endpoints)
            return False
        except TimeoutError:
            return False
        except (aiohttp.ClientError, OSError):
            self._preferred = (index + 1) % len(self.endpoints)
            return False


def _parse(text: str) -> dict[str, Any]:
    try:
        answer = json.loads(text) if text.strip() else {}
    except ValueError:
        return {"error": f"not JSON: {text[:200]!r}"}
    return answer if isinstance(answer, dict) else {"error": f"unexpected answer: {text[:200]!r}"}
