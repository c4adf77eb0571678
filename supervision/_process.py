"""OS process children (``sv.process``)."""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import Path, SpecError


@dataclass(frozen=True, slots=True)
class Process:
    """What to run for a process child: built by :func:`supervision.process`."""

    argv: tuple[str, ...]
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] | None = None
    inherit_env: bool = True
    stop_signal: int = _signal.SIGTERM
    ready: Any = None
    output: str = "prefix"
    pdeathsig: bool = True

    def __post_init__(self) -> None:
        check_argv(self.argv, ())


def check_argv(argv: Sequence[str], path: Path) -> None:
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
        raise SpecError(path, "argv", f"must be a list of strings, got {argv!r}")
    if not argv:
        raise SpecError(path, "argv", "must not be empty")
    for item in argv:
        if not isinstance(item, str):
            raise SpecError(path, "argv", f"must be a list of strings, got item {item!r}")


def env_items(env: Mapping[str, str] | None, path: Path) -> tuple[tuple[str, str], ...] | None:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise SpecError(path, "env", f"must be a mapping of strings, got {env!r}")
    for key, value in env.items():
        if not isinstance(key, str) or not isinstance(value, str) or "=" in key or not key:
            raise SpecError(path, "env", f"bad entry {key!r}={value!r}")
    return tuple(sorted(env.items()))
