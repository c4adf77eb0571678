"""Readiness checks for process children (``sv.ready``).

A process child with a ``ready=`` check counts as started only once the check
passes; until then its later siblings wait. A child that exits, or misses its
``ready_timeout``, before it is ready has *failed to start*: it is killed,
reaped, and reported as a ``StartError``.

>>> import supervision as sv
>>> web = sv.process("web", ["python", "-m", "http.server", "8000"], ready=sv.ready.port(8000))
>>> db = sv.process("db", ["./db", "--foreground"], ready=sv.ready.notify())
>>> slow = sv.process("slow", ["./slow"], ready=sv.ready.delay(2.0))

Without a check (``ready=None``) a process is started once ``exec`` succeeded.
The checks are plain frozen values: build them with :func:`notify`,
:func:`port` and :func:`delay`. They are validated by :func:`supervision.process`,
so a bad one raises ``SpecError`` naming the child.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TypeAlias

from ._core.errors import SpecError
from ._core.paths import Path

__all__ = ["Check", "Delay", "Notify", "Port", "delay", "notify", "port"]


@dataclass(frozen=True, slots=True)
class Notify:
    """Ready when the child sends ``READY=1`` (the sd_notify protocol).

    The child gets a datagram socket of its own in ``NOTIFY_SOCKET`` (an
    abstract unix socket, ``@...``, as systemd also uses), so ``sd_notify(3)``,
    ``systemd-notify --ready`` and the Python snippets written for systemd work
    unchanged. ``STATUS=...`` is recorded and logged, ``STOPPING=1`` is noted;
    other assignments are ignored.
    """

    def check(self, path: Path) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Port:
    """Ready when a TCP connection to ``host:port`` succeeds.

    The supervisor tries to connect at a short interval (10 ms, growing to
    200 ms) until one attempt succeeds, the child exits, or ``ready_timeout``
    passes.
    """

    port: int
    host: str = "127.0.0.1"

    def check(self, path: Path) -> None:
        if not valid_port(self.port):
            raise SpecError(path, "ready", f"port must be an integer in 1..65535, got {self.port!r}")
        if not valid_host(self.host):
            raise SpecError(path, "ready", f"host must be a non-empty string, got {self.host!r}")

    @property
    def numeric_host(self) -> bool:
        return is_numeric_host(self.host)


# What a TCP endpoint's checks share, here and in sv.health (``Tcp``).


def valid_port(port: object) -> bool:
    return not isinstance(port, bool) and isinstance(port, int) and 1 <= port <= 65535


def valid_host(host: object) -> bool:
    return isinstance(host, str) and bool(host) and "\0" not in host


def is_numeric_host(host: str) -> bool:
    """Whether ``host`` is an IP address (connecting needs no name lookup, which
    would block the loop)."""
    import ipaddress  # only for this question: importing sv.ready and sv.health stays cheap

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Delay:
    """Ready once the child has been running for ``seconds`` without exiting."""

    seconds: float

    def check(self, path: Path) -> None:
        value = self.seconds
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SpecError(path, "ready", f"delay must be a number of seconds >= 0, got {value!r:.40}")
        if isinstance(value, int) and abs(value) > sys.float_info.max:  # float() would overflow
            raise SpecError(path, "ready", "delay must be finite and fit a float")
        if math.isnan(value):
            raise SpecError(path, "ready", "delay must be a number of seconds >= 0, got nan")
        if math.isinf(value):
            raise SpecError(path, "ready", "delay must be finite")


Check: TypeAlias = Notify | Port | Delay
"""Any readiness check."""


def notify() -> Notify:
    """Ready when the child sends ``READY=1`` on its ``NOTIFY_SOCKET``.

    >>> notify()
    Notify()
    """
    return Notify()


def port(n: int, host: str = "127.0.0.1") -> Port:
    """Ready when a TCP connection to ``host:n`` succeeds.

    >>> port(8000)
    Port(port=8000, host='127.0.0.1')
    """
    return Port(n, host)


def delay(seconds: float) -> Delay:
    """Ready once the child has been running for ``seconds``.

    >>> delay(0.5)
    Delay(seconds=0.5)
    """
    return Delay(seconds)
