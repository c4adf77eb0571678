"""Held sockets, the spec side: ``sv.listen("tcp://127.0.0.1:8080")``.

A child with ``sockets=[sv.listen(...), ...]`` gets listening sockets that its
supervisor binds once and keeps: across the child's restarts, reloads and
re-exec the socket stays open, so while the child restarts the kernel queues
new connections (up to ``backlog``) instead of refusing them. A process gets
them by the systemd socket-activation protocol (fds 3, 4, ... and
``LISTEN_FDS``, ``LISTEN_PID``, ``LISTEN_FDNAMES``), a worker as
``ctx.sockets``. This module only describes and validates; binding is done by
the runtime.

>>> listen("tcp://127.0.0.1:8080")
Listen(address='tcp://127.0.0.1:8080', name='tcp-127.0.0.1-8080', mode=None, backlog=1024, reuse_port=False)
>>> listen("unix:/run/app.sock", mode=0o660, name="app").family
'unix'
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from .errors import SpecError
from .paths import Path

MAX_SOCKETS = 64
"""The most sockets one child may hold (the exec helper places at most 64 fds)."""

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True, slots=True)
class Listen:
    """A listening socket for a child. Build it with :func:`listen`.

    ``address`` is ``tcp://HOST:PORT`` (``[::1]`` for IPv6; port 0 lets the
    kernel pick one, once), ``udp://HOST:PORT`` or ``unix:/absolute/path``
    (``unix:@name`` for the abstract namespace). ``name`` is what
    ``LISTEN_FDNAMES`` and ``sv.listen_fds()`` call it. ``mode`` sets the
    permissions of a unix socket's file. ``reuse_port`` sets ``SO_REUSEPORT``.

    >>> listen("unix:/run/app.sock", mode=0o660, name="app")
    Listen(address='unix:/run/app.sock', name='app', mode=432, backlog=1024, reuse_port=False)
    """

    address: str
    name: str
    mode: int | None = None
    backlog: int = 1024
    reuse_port: bool = False

    def check(self, path: Path) -> None:
        where = f"sockets[{self.name!r}]" if isinstance(self.name, str) else "sockets"
        parse(self.address, path, where)
        name = self.name
        if not isinstance(name, str) or not name or len(name) > 255 or not set(name) <= _NAME_CHARS:
            raise SpecError(path, where, f"name must be 1-255 letters, digits, '.', '_' or '-', got {name!r:.60}")
        if self.mode is not None:
            if isinstance(self.mode, bool) or not isinstance(self.mode, int) or not 0 <= self.mode <= 0o7777:
                raise SpecError(path, where, f"mode must be a permission like 0o660, got {self.mode!r:.20}")
            if self.family != "unix" or self.address.startswith("unix:@"):
                raise SpecError(path, where, "mode applies to a unix socket's file only")
        backlog = self.backlog
        if isinstance(backlog, bool) or not isinstance(backlog, int) or not 1 <= backlog <= 65535:
            raise SpecError(path, where, f"backlog must be an integer in 1..65535, got {backlog!r:.20}")
        if not isinstance(self.reuse_port, bool):
            raise SpecError(path, where, f"reuse_port must be True or False, got {self.reuse_port!r:.20}")

    @property
    def key(self) -> str:
        """What identifies the socket itself: its address (and its name, for a port
        0, where each spec is a socket of its own). Two specs with the same key are
        the same held socket, whatever their name, mode or backlog."""
        family, _, port = parse(self.address, (), "sockets")
        return f"{self.address}#{self.name}" if family != "unix" and port == 0 else self.address

    @property
    def family(self) -> Literal["tcp", "udp", "unix"]:
        return parse(self.address, (), "sockets")[0]

    @property
    def host(self) -> str:
        """The host of a tcp/udp address (unbracketed), or the path of a unix one."""
        return parse(self.address, (), "sockets")[1]

    @property
    def port(self) -> int:
        """The port of a tcp/udp address (0 for a unix one)."""
        return parse(self.address, (), "sockets")[2]


def parse(address: object, path: Path, where: str) -> tuple[Literal["tcp", "udp", "unix"], str, int]:
    """``(family, host or unix path, port)``; ``SpecError`` if malformed."""
    if not isinstance(address, str) or "\0" in address:
        raise SpecError(path, where, f"address must be a string, got {address!r:.60}")
    if address.startswith("unix:"):
        target = address[5:]
        if not (target.startswith("/") or (target.startswith("@") and len(target) > 1)):
            raise SpecError(path, where, f"a unix address is unix:/absolute/path or unix:@name, got {address!r:.100}")
        if len(target.encode()) > 107:
            raise SpecError(path, where, "a unix socket path must be shorter than 108 bytes")
        return "unix", target, 0
    for family in ("tcp", "udp"):
        prefix = f"{family}://"
        if address.startswith(prefix):
            rest = address[len(prefix) :]
            host, sep, port_text = rest.rpartition(":")
            if not sep or not port_text.isdigit() or not host:
                raise SpecError(path, where, f"expected {family}://HOST:PORT, got {address!r:.100}")
            port = int(port_text)
            if port > 65535:
                raise SpecError(path, where, f"port must be in 0..65535, got {port}")
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
                try:
                    ipaddress.IPv6Address(host)
                except ValueError:
                    raise SpecError(path, where, f"bad IPv6 address in {address!r:.100}") from None
            elif ":" in host:
                raise SpecError(path, where, f"write an IPv6 address in brackets: {family}://[::1]:{port}")
            return family, host, port
    raise SpecError(path, where, f"address must start with tcp://, udp:// or unix:, got {address!r:.100}")


def default_name(address: str) -> str:
    """A name for ``LISTEN_FDNAMES`` made of the address: ``tcp-127.0.0.1-8080``."""
    text = address.replace("://", "-").replace(":", "-").replace("/", "-").strip("-")
    cleaned = "".join(c if c in _NAME_CHARS else "-" for c in text) or "socket"
    return cleaned[-255:].lstrip("-") or "socket"


def listen(
    address: str,
    *,
    name: str | None = None,
    mode: int | None = None,
    backlog: int = 1024,
    reuse_port: bool = False,
) -> Listen:
    """A socket the supervisor binds, listens on and holds for a child.

    ``tcp://HOST:PORT``, ``udp://HOST:PORT`` or ``unix:/path`` (``mode`` sets
    the file's permissions; an old socket file at that path is replaced).
    ``name`` (default: made of the address) is its name in ``LISTEN_FDNAMES``.

    >>> listen("tcp://[::1]:8080").host
    '::1'
    """
    if name is None:
        name = default_name(address) if isinstance(address, str) else "socket"
    spec = Listen(address, name, mode, backlog, reuse_port)
    spec.check(())
    return spec


def check_sockets(sockets: object, path: Path) -> tuple[Listen, ...]:
    """Validate a child's ``sockets=``: a list of :func:`listen` values, names unique."""
    if isinstance(sockets, (str, bytes, Listen)) or not hasattr(sockets, "__iter__"):
        raise SpecError(path, "sockets", f"must be a list of sv.listen(...), got {sockets!r:.60}")
    items = tuple(sockets)
    if len(items) > MAX_SOCKETS:
        raise SpecError(path, "sockets", f"at most {MAX_SOCKETS} sockets, got {len(items)}")
    names: set[str] = set()
    addresses: set[str] = set()
    for item in items:
        if not isinstance(item, Listen):
            raise SpecError(path, "sockets", f"must be a list of sv.listen(...), got item {item!r:.60}")
        item.check(path)
        if item.name in names:
            raise SpecError(path, "sockets", f"two sockets named {item.name!r}")
        family, _, port = parse(item.address, path, "sockets")
        if item.address in addresses and (family == "unix" or port != 0):
            raise SpecError(path, "sockets", f"{item.address!r} listed twice")
        names.add(item.name)
        addresses.add(item.address)
    return items
