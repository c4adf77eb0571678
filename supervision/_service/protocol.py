"""The control protocol, shared by the server and the client: JSON lines, its version,
and where sockets live.

::

    -> {"v": 1, "id": 1, "cmd": "restart", "path": "web"}
    <- {"v": 1, "id": 1, "ok": true, "result": {"path": "web", "pid": 4242}}
    <- {"v": 1, "id": 2, "ok": false, "error": {"type": "NotFound", "message": "...", "path": "web"}}

See ``docs/cli.md``. Cheap to import: the client of the short-lived control commands
loads this and the core's errors, nothing of the runtime.
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
from typing import Any


class ServiceState(enum.StrEnum):
    """Where a run (``sv.run``) is in its life, as ``ping`` and ``status`` report it."""

    STARTING = "starting"
    RUNNING = "running"
    RELOADING = "reloading"
    REEXECUTING = "reexecuting"
    STOPPING = "stopping"


VERSION = 1
"""The protocol version; a request with another ``"v"`` gets ``UnsupportedVersion``."""


MAX_REQUEST = 1 << 20
"""The longest request line accepted, in bytes (without its newline)."""


Request = dict[str, Any]


def runtime_dir() -> str:
    """Where sockets live by default: ``$XDG_RUNTIME_DIR/supervision``; for root
    without it (a systemd system service) ``/run/supervision`` (``/tmp`` may be a
    service's ``PrivateTmp``); else ``$TMPDIR/supervision-UID``."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "supervision")
    if os.geteuid() == 0 and os.path.isdir("/run"):
        return "/run/supervision"
    return os.path.join(tempfile.gettempdir(), f"supervision-{os.geteuid()}")


def state_dir() -> str:
    """Where the default snapshot store lives: a directory that survives a reboot
    (the runtime directory of the sockets is usually a tmpfs). ``$STATE_DIRECTORY``
    (systemd's ``StateDirectory=``), else ``/var/lib/supervision`` for root, else
    ``$XDG_STATE_HOME/supervision`` (``~/.local/state/supervision``)."""
    systemd = os.environ.get("STATE_DIRECTORY")
    if systemd and os.path.isabs(systemd.split(":")[0]):
        return systemd.split(":")[0]
    if os.geteuid() == 0:
        return "/var/lib/supervision"
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "supervision")
    return os.path.join(os.path.expanduser("~"), ".local", "state", "supervision")


def default_path(name: str) -> str:
    return os.path.join(runtime_dir(), f"{name}.sock")


def check_name(name: str) -> str:
    if not name or name.startswith(".") or any(not (c.isalnum() or c in "._-") for c in name):
        raise ValueError(f"a tree name is letters, digits, '.', '_' and '-', got {name!r}")
    return name


def encode(message: dict[str, Any]) -> bytes:
    """One message as a protocol line: compact JSON and a newline."""
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"
