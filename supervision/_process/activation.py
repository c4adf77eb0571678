"""``sv.listen_fds()``: the service's side of socket activation.

A service started with ``sockets=[sv.listen(...)]`` (or by systemd's socket
units: it is the same protocol) finds its listening sockets at fds 3, 4, ...,
their number in ``LISTEN_FDS``, their names in ``LISTEN_FDNAMES`` and its own
pid in ``LISTEN_PID`` (the variables are meant for that process only, not for
its children). This module reads them; it imports nothing of the supervisor,
so a service can use it at little cost.

>>> import supervision as sv
>>> sockets = sv.listen_fds()            # {} when started without sockets
"""

from __future__ import annotations

import os
import socket

__all__ = ["LISTEN_FDS_START", "listen_fds"]

LISTEN_FDS_START = 3
"""The first passed fd (``SD_LISTEN_FDS_START``)."""

_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def listen_fds(*, unset_environment: bool = True) -> dict[str, socket.socket]:
    """The sockets passed to this process, as ``socket.socket`` objects by name.

    Empty when none were passed, or when they were meant for another process
    (``LISTEN_PID`` is not our pid: the variables were inherited from a parent).
    Each fd is made close-on-exec, as ``sd_listen_fds(3)`` does. With
    ``unset_environment`` (the default) the three variables are removed from
    ``os.environ`` so that programs this one starts do not see them; call it
    once, early. A socket without a name is called ``"unknown"`` (as systemd
    does); a name used twice gets ``#2``, ``#3`` ... appended.

    A server for the sockets of ``sockets=[sv.listen("tcp://127.0.0.1:8080", name="web")]``::

        sock = sv.listen_fds()["web"]
        server = http.server.HTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
        server.socket = sock
        server.serve_forever()

    Outside a service started with sockets, there are none:

    >>> listen_fds()
    {}
    """
    pid = os.environ.get("LISTEN_PID", "")
    count = os.environ.get("LISTEN_FDS", "")
    names_text = os.environ.get("LISTEN_FDNAMES")
    if unset_environment:
        for variable in _VARIABLES:
            os.environ.pop(variable, None)
    if not pid.strip().isdigit() or int(pid) != os.getpid() or not count.strip().isdigit():
        return {}
    n = int(count)
    names = names_text.split(":") if names_text else []
    found: dict[str, socket.socket] = {}
    for index in range(n):
        fd = LISTEN_FDS_START + index
        os.set_inheritable(fd, False)
        name = names[index] if index < len(names) and names[index] else "unknown"
        key, k = name, 1
        while key in found:
            k += 1
            key = f"{name}#{k}"
        found[key] = socket.socket(fileno=fd)
    return found
