"""The termination message: why the root gave up, and the events that led there.

Kubernetes reads a container's termination message from
``terminationMessagePath`` (``/dev/termination-log`` by default) when it
exits, and shows it in ``kubectl describe pod``. It keeps at most 4096 bytes:
the reason comes first, then the newest events that fit, oldest first.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from typing import Any

DEFAULT_PATH = "/dev/termination-log"
LIMIT = 4096
"""Bytes Kubernetes keeps of a termination message."""

_SKIP = frozenset({"event", "path", "time", "at"})


def default_path() -> str | None:
    """``/dev/termination-log`` when it exists (a Kubernetes container), else None."""
    return DEFAULT_PATH if os.path.exists(DEFAULT_PATH) else None


def describe(event: dict[str, Any]) -> str:
    """One line for an event as ``figures.event_json`` gives it."""
    when = ""
    if isinstance(event.get("at"), (int, float)):
        stamp = time.gmtime(event["at"])
        when = time.strftime("%H:%M:%S", stamp) + f".{int(event['at'] % 1 * 1000):03d}Z "
    details = " ".join(
        f"{key}={value}" for key, value in event.items() if key not in _SKIP and value not in (None, False, [], "")
    )
    return f"{when}{event.get('path', '/')} {event.get('event', '?')}" + (f" {details}" if details else "")


def message(reason: str, events: Iterable[dict[str, Any]], limit: int = LIMIT) -> str:
    """The reason, then ``last events:`` and as many of the newest events as fit in ``limit`` bytes."""
    head = reason.strip()
    if len(head.encode()) > limit:
        return head.encode()[:limit].decode(errors="ignore")
    lines = [describe(event) for event in events]
    kept: list[str] = []
    size = len(head.encode()) + len(b"\nlast events:\n")
    for line in reversed(lines):
        cost = len(line.encode()) + 1
        if size + cost > limit:
            break
        kept.append(line)
        size += cost
    if not kept:
        return head + "\n"
    return head + "\nlast events:\n" + "\n".join(reversed(kept)) + "\n"


def write(path: str, reason: str, events: Iterable[dict[str, Any]]) -> bool:
    """Write the termination message to ``path`` (replacing what it held).
    False if it could not be written (the reason is logged by the caller)."""
    text = message(reason, events)
    with contextlib.suppress(OSError):
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return True
    return False
