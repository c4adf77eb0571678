"""``supervision top``: a live view of a running tree, made with ``rich``
(extra ``supervision[top]``).

It is a client of the control socket: every second it asks for the status JSON
(``figures``) and draws the tree: state, health, CPU, RSS, restarts, a sparkline
of the restarts of the last minutes, and the intensity fill of each supervisor.
Keys: ``q`` (or Ctrl-C) quits; ``<`` and ``>`` choose the column to sort by
(siblings are sorted, the tree stays a tree); ``r`` reverses the order.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .figures import health, size

SPARK = "▁▂▃▄▅▆▇█"
SPARK_BUCKETS = 20
SPARK_SECONDS = 15.0
"""The sparkline: restarts per 15 s bucket over the last 5 minutes, newest on the right."""


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    key: Callable[[dict[str, Any]], Any]
    justify: str = "left"


def _resources(node: dict[str, Any], field: str) -> float:
    found = node.get("resources")
    return float(found[field]) if found else -1.0


COLUMNS = (
    Column("PATH", lambda node: None),  # start order
    Column("KIND", lambda node: node["kind"]),
    Column("STATUS", lambda node: node["status"]),
    Column("HEALTH", lambda node: str(node.get("health") or "")),
    Column("PID", lambda node: node.get("pid") or 0, "right"),
    Column("CPU%", lambda node: _resources(node, "cpu_percent"), "right"),
    Column("RSS", lambda node: _resources(node, "rss_bytes"), "right"),
    Column("RESTARTS", lambda node: node.get("restarts", 0), "right"),
    Column("RECENT", lambda node: len(node.get("recent_restarts") or ())),
    Column("UPTIME", lambda node: node.get("uptime") or 0.0, "right"),
    Column("INTENSITY", lambda node: (node.get("intensity") or {}).get("used_ratio", -1.0)),
)
COLUMN_NAMES = tuple(column.title.lower() for column in COLUMNS)

_STATUS_STYLE = {
    "running": "green",
    "starting": "yellow",
    "restarting": "yellow",
    "stopping": "yellow",
    "terminated": "dim",
}


@dataclass
class View:
    """What the user chose: the sort column and its direction."""

    sort: int = 0
    reverse: bool = False

    def key(self, pressed: str) -> bool:
        """Apply a key press; False for ``q`` (quit)."""
        if pressed in ("q", "Q", "\x03", "\x04"):
            return False
        if pressed == ">":
            self.sort = (self.sort + 1) % len(COLUMNS)
        elif pressed == "<":
            self.sort = (self.sort - 1) % len(COLUMNS)
        elif pressed in ("r", "R"):
            self.reverse = not self.reverse
        return True


def sparkline(ages: list[float], buckets: int = SPARK_BUCKETS, seconds: float = SPARK_SECONDS) -> Text:
    """Restarts per bucket of ``seconds``, oldest bucket on the left."""
    counts = [0] * buckets
    for age in ages:
        index = int(age // seconds)
        if 0 <= index < buckets:
            counts[buckets - 1 - index] += 1
    text = Text()
    for count in counts:
        if count == 0:
            text.append(SPARK[0], style="dim")
        else:
            text.append(SPARK[min(len(SPARK) - 1, count)], style="red" if count >= 3 else "yellow")
    return text


def fill(intensity: dict[str, Any] | None, width: int = 8) -> Text:
    """``■■■■□□□□ 2/4``: how full a supervisor's intensity window is."""
    if not intensity:
        return Text("")
    ratio = float(intensity["used_ratio"])
    full = round(ratio * width)
    style = "red" if ratio >= 1 else "yellow" if ratio >= 0.5 else "green"
    text = Text("█" * full, style=style)
    text.append("░" * (width - full), style="dim")
    text.append(f" {intensity['restarts']}/{intensity['intensity']}")
    return text


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours >= 24:
        return f"{hours // 24}d{hours % 24:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def rows(status: dict[str, Any], view: View) -> Iterator[tuple[int, dict[str, Any]]]:
    """The nodes with their depth, siblings sorted as the view says."""
    column = COLUMNS[view.sort]

    def ordered(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if view.sort == 0:
            return list(reversed(nodes)) if view.reverse else list(nodes)
        return sorted(nodes, key=column.key, reverse=view.reverse)

    stack = [(0, node) for node in reversed(ordered(status.get("children", [])))]
    while stack:
        depth, node = stack.pop()
        yield depth, node
        stack.extend((depth + 1, child) for child in reversed(ordered(node.get("children") or [])))


def render(status: dict[str, Any], view: View | None = None) -> RenderableType:
    """The whole screen for one status JSON."""
    view = view if view is not None else View()
    found = health(status)
    state = "escalating" if status.get("escalating") else status.get("state", "?")
    header = Text()
    header.append(f"{status.get('name', '?')}", style="bold")
    header.append(f"  {state}", style="green" if found.live else "red")
    header.append(f"  pid {status.get('pid')}  up {duration(status.get('uptime'))}  ")
    header.append("ready" if found.ready else f"not ready: {found.reason}", style="green" if found.ready else "yellow")
    if status.get("intensity"):
        header.append("  root intensity ")
        header.append_text(fill(status["intensity"]))
    table = Table(box=None, padding=(0, 1), expand=False, header_style="bold reverse")
    nodes = list(rows(status, view))
    # HEALTH only once some child has a health check (the field is absent otherwise).
    shown = [i for i, column in enumerate(COLUMNS) if column.title != "HEALTH" or any("health" in n for _, n in nodes)]
    for index in shown:
        column = COLUMNS[index]
        title = column.title
        if index == view.sort:
            title += " ▼" if view.reverse else " ▲"
        table.add_column(title, justify=column.justify, no_wrap=True)  # type: ignore[arg-type]
    for depth, node in nodes:
        used = node.get("resources")
        cells: list[RenderableType] = [
            "  " * depth + node["path"].rsplit("/", 1)[-1],
            node["kind"],
            Text(node["status"], style=_STATUS_STYLE.get(node["status"], "")),
            str(node.get("health") or ""),
            str(node["pid"]) if node.get("pid") is not None else "-",
            f"{used['cpu_percent']:.1f}" if used else "-",
            size(used["rss_bytes"]) if used else "-",
            str(node.get("restarts", 0)),
            sparkline(node.get("recent_restarts") or []),
            duration(node.get("uptime")),
            fill(node.get("intensity")),
        ]
        table.add_row(*(cells[i] for i in shown))
    keys = Text("q quit   < > sort column   r reverse", style="dim")
    return Group(header, Text(""), table, Text(""), keys)


def run(
    fetch: Callable[[], dict[str, Any]],
    *,
    interval: float = 1.0,
    console: Console | None = None,
    input_fd: int | None = None,
) -> int:
    """Draw ``fetch()`` every ``interval`` seconds until ``q`` or Ctrl-C. Returns 0."""
    console = console if console is not None else Console()
    fd = input_fd if input_fd is not None else sys.stdin.fileno()
    view = View()
    with _cbreak(fd), Live(console=console, auto_refresh=False, screen=console.is_terminal) as live:
        try:
            while True:
                live.update(render(fetch(), view), refresh=True)
                deadline = time.monotonic() + interval
                while (left := deadline - time.monotonic()) > 0:
                    readable, _, _ = select.select([fd], [], [], left)
                    if not readable:
                        continue
                    pressed = os.read(fd, 16).decode(errors="ignore")
                    if not pressed:  # end of input: nothing will ever press q
                        return 0
                    for key in pressed:
                        if not view.key(key):
                            return 0
                    live.update(render(fetch(), view), refresh=True)
        except KeyboardInterrupt:
            return 0


@contextlib.contextmanager
def _cbreak(fd: int) -> Iterator[None]:
    """Keys without Enter, and no echo, while the view runs (if ``fd`` is a terminal)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
