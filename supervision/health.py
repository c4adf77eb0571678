"""Health probes (``sv.health``): is a running child still doing its job?

A child with ``health=`` is probed from the moment it is ready, every ``every``
seconds, by the supervisor's event loop (no thread per probe, nothing blocks).
A probe that is still running when the next one is due is not started again;
one that takes longer than ``timeout`` is cut and counts as a failure. After
``failures`` consecutive failures the child is *unhealthy*: it is stopped and
restarted as a crash, with ``error=sv.HealthCheckFailed(path, reason)``,
counted against the restart intensity like any other crash. Failures within
``grace`` seconds of readiness are not counted (a service warming its caches).
Each change of health is an ``sv.HealthChanged`` event.

>>> import supervision as sv
>>> web = sv.process("web", ["./web"], health=sv.health.http("http://127.0.0.1:8000/healthz"))
>>> db = sv.process("db", ["./db"], health=sv.health.tcp(5432, every=5, failures=2))
>>> q = sv.process("q", ["./q"], health=sv.health.exec(["./q", "--ping"], timeout=2))

The probes are plain frozen values, validated by :func:`supervision.child` and
:func:`supervision.process`, so a bad one raises ``SpecError`` naming the child.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from ._core.errors import SpecError
from ._core.paths import Path
from .ready import is_numeric_host, valid_host, valid_port

__all__ = ["Call", "Exec", "Http", "Probe", "Tcp", "call", "exec", "http", "tcp"]


def _seconds(value: object, path: Path, field: str, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(path, f"health.{field}", f"must be a number of seconds, got {value!r:.40}")
    if isinstance(value, int) and abs(value) > sys.float_info.max:
        raise SpecError(path, f"health.{field}", "must be finite and fit a float")
    if math.isnan(value) or math.isinf(value):
        raise SpecError(path, f"health.{field}", f"must be finite, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise SpecError(path, f"health.{field}", f"must be {'> 0' if positive else '>= 0'}, got {value!r}")


@dataclass(frozen=True, slots=True)
class _Timing:
    """What every probe has: how often, how long, how many failures, how much grace."""

    every: float
    timeout: float
    failures: int
    grace: float

    def _check_timing(self, path: Path) -> None:
        _seconds(self.every, path, "every", positive=True)
        _seconds(self.timeout, path, "timeout", positive=True)
        _seconds(self.grace, path, "grace", positive=False)
        n = self.failures
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError(path, "health.failures", f"must be an integer >= 1, got {n!r:.40}")


@dataclass(frozen=True, slots=True)
class Http(_Timing):
    """Healthy when ``GET url`` answers with a 2xx or 3xx status within ``timeout``."""

    url: str

    def check(self, path: Path) -> None:
        self._check_timing(path)
        if not isinstance(self.url, str):
            raise SpecError(path, "health", f"url must be a string, got {self.url!r:.60}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SpecError(path, "health", f"url must be http://host[:port]/path, got {self.url!r:.100}")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise SpecError(path, "health", f"bad port in {self.url!r:.100}") from None
        if any(c in self.url for c in "\r\n\0 "):
            raise SpecError(path, "health", "url must not contain spaces or control characters")

    @property
    def host(self) -> str:
        host = urlsplit(self.url).hostname
        assert host is not None
        return host

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def target(self) -> str:
        """What goes on the request line: the path and the query."""
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


@dataclass(frozen=True, slots=True)
class Tcp(_Timing):
    """Healthy when a TCP connection to ``host:port`` is accepted within ``timeout``."""

    port: int
    host: str = "127.0.0.1"

    def check(self, path: Path) -> None:
        self._check_timing(path)
        if not valid_port(self.port):
            raise SpecError(path, "health", f"port must be an integer in 1..65535, got {self.port!r:.40}")
        if not valid_host(self.host):
            raise SpecError(path, "health", f"host must be a non-empty string, got {self.host!r:.60}")

    @property
    def numeric_host(self) -> bool:
        return is_numeric_host(self.host)


@dataclass(frozen=True, slots=True)
class Exec(_Timing):
    """Healthy when ``argv`` exits with status 0 within ``timeout`` (then it is killed).

    It runs in a session of its own, with ``/dev/null`` as stdin and stdout; its
    stderr's last line (up to 200 characters) is the reason of a failure."""

    argv: tuple[str, ...]

    def check(self, path: Path) -> None:
        self._check_timing(path)
        argv = self.argv
        if not isinstance(argv, tuple) or not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
            raise SpecError(path, "health", f"exec needs a non-empty list of strings, got {argv!r:.100}")
        if not argv[0]:
            raise SpecError(path, "health", "exec: the program (argv[0]) must not be empty")


@dataclass(frozen=True, slots=True)
class Call(_Timing):
    """Healthy when ``await fn()`` returns anything but ``False`` within ``timeout``.

    An exception, or ``False``, is a failure (the exception's text is the
    reason). Meant for workers: ``fn`` runs on the supervisor's event loop, so it
    must not block it."""

    fn: Callable[[], Awaitable[Any]]

    def check(self, path: Path) -> None:
        self._check_timing(path)
        fn = self.fn
        call_method = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
        if not (inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call_method)):
            raise SpecError(path, "health", f"call needs an 'async def' function, got {fn!r:.60}")


Probe: TypeAlias = Http | Tcp | Exec | Call
"""Any health probe."""

PROBES = (Http, Tcp, Exec, Call)


def http(url: str, *, every: float = 10.0, timeout: float = 5.0, failures: int = 3, grace: float = 0.0) -> Http:
    """Probe ``GET url``: healthy on any 2xx or 3xx status.

    >>> http("http://127.0.0.1:8000/healthz", every=5).port
    8000
    """
    return Http(every, timeout, failures, grace, url)


def tcp(
    port: int,
    host: str = "127.0.0.1",
    *,
    every: float = 10.0,
    timeout: float = 5.0,
    failures: int = 3,
    grace: float = 0.0,
) -> Tcp:
    """Probe a TCP connection to ``host:port``.

    >>> tcp(5432).host
    '127.0.0.1'
    """
    return Tcp(every, timeout, failures, grace, port, host)


def exec(
    argv: Sequence[str], *, every: float = 10.0, timeout: float = 5.0, failures: int = 3, grace: float = 0.0
) -> Exec:
    """Probe by running ``argv``: healthy on exit status 0.

    >>> exec(["pg_isready", "-q"]).argv
    ('pg_isready', '-q')
    """
    items = tuple(argv) if not isinstance(argv, (str, bytes)) else argv
    return Exec(every, timeout, failures, grace, items)  # type: ignore[arg-type]  # checked by check()


def call(
    fn: Callable[[], Awaitable[Any]],
    *,
    every: float = 10.0,
    timeout: float = 5.0,
    failures: int = 3,
    grace: float = 0.0,
) -> Call:
    """Probe by awaiting ``fn()``: healthy unless it raises or returns ``False``.

    >>> async def alive() -> bool:
    ...     return True
    >>> call(alive, every=1).every
    1
    """
    return Call(every, timeout, failures, grace, fn)
