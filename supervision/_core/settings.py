"""The values of a process child's settings and output, beyond its argv, cwd and env.

Plain frozen values, hashable and comparable (a reload compares them like any other
field of a spec): :class:`Settings` (``user``, ``group``, ``umask``, ``limits``,
``env_file``, ``nice``, ``oom_score_adj``), :class:`LogFile` and :class:`Prefixed`
(``output=``). They are built and checked by the process layer (``sv.process``,
``sv.log_file``, ``sv.prefixed``), which knows the OS; applied by it at each start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LIMIT_NAMES = (
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
)
"""Resource limit names, as ``ulimit`` and systemd's ``LimitNAME=`` call them, in lower case."""

Limit = tuple[str, int | None, int | None]
"""``(name, soft, hard)``; None is unlimited (``RLIM_INFINITY``)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What a process child runs as and with: every field is optional.

    ``limits`` is sorted by name; ``env_file`` keeps the order given (a later file
    wins), each an absolute path, with a leading ``-`` if it may be missing.
    """

    user: str | int | None = None
    group: str | int | None = None
    umask: int | None = None
    limits: tuple[Limit, ...] = ()
    env_file: tuple[str, ...] = ()
    nice: int | None = None
    oom_score_adj: int | None = None

    def __bool__(self) -> bool:
        return self != NO_SETTINGS

    def to_json(self) -> dict[str, Any]:
        """As JSON values (a re-exec adopts a process only if they are the same)."""
        return {
            "user": self.user,
            "group": self.group,
            "umask": self.umask,
            "limits": [list(limit) for limit in self.limits],
            "env_file": list(self.env_file),
            "nice": self.nice,
            "oom_score_adj": self.oom_score_adj,
        }


NO_SETTINGS = Settings()


@dataclass(frozen=True, slots=True)
class LogFile:
    """``output=`` of a process child whose lines the supervisor writes to a file,
    rotated by size: built by ``sv.log_file``. ``path`` is absolute; ``max_bytes``
    None never rotates.

    >>> import supervision as sv
    >>> spec = sv.process("web", ["./web"], output=sv.log_file("/var/log/web.log", max_bytes=1 << 20))
    >>> spec.start.output.max_bytes, spec.start.output.backups
    (1048576, 5)
    """

    path: str
    max_bytes: int | None = None
    backups: int = 5
    timestamps: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"file": self.path, "max_bytes": self.max_bytes, "backups": self.backups, "timestamps": self.timestamps}


@dataclass(frozen=True, slots=True)
class Prefixed:
    """``output=`` of a process child whose lines go to the supervisor's stdout and
    stderr as ``path | time line``: built by ``sv.prefixed(timestamps=True)``."""

    timestamps: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"prefix": True, "timestamps": self.timestamps}


OutputSpec = str | LogFile | Prefixed
"""``"prefix"``, ``"inherit"``, an absolute file path, a :class:`LogFile` or a :class:`Prefixed`."""


def output_json(output: OutputSpec) -> Any:
    """``output`` as a JSON value."""
    return output if isinstance(output, str) else output.to_json()
