"""Turning the results of ``bench/run.py`` into statistics, goals and a Markdown report.

Pure functions over plain data (the same dict that is written as JSON), so the
formatting can be tested on made-up numbers.

A *cell* is ``{"median": x, "p95": y, "n": k}`` (``p95`` optional) or
``{"na": "why not measured"}``. Durations are in seconds, CPU in fractions of one
core, memory in bytes, rates per second.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

Cell = dict[str, Any]

# Columns of the process table (supervision against the floors), in order: key -> header.
PROCESS_COLUMNS = {
    "posix_spawn": "posix_spawn loop",
    "pidfd": "asyncio+pidfd",
    "same_work": "same work",
    "supervision": "supervision",
}
# Columns of the peers' table: each peer at its fastest and at its default setting.
PEER_COLUMNS = {
    "circus": "circus 1 ms",
    "circus_default": "circus 5 s (default)",
    "supervisord": "supervisord (default)",
    "supervisord_tuned": "supervisord tuned",
}
FLOOR = "pidfd"  # the floor the goals are set against
SAME_WORK = "same_work"


def cell(samples: Sequence[float], p95: bool = True) -> Cell:
    """Median (and 95th percentile) of some samples, or a "not measured" cell."""
    values = sorted(samples)
    if not values:
        return {"na": "no samples"}
    found: Cell = {"median": statistics.median(values), "n": len(values)}
    if p95:
        # nearest rank: the smallest sample with at least 95 % of the samples at or below it
        found["p95"] = values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]
    return found


def na(reason: str) -> Cell:
    return {"na": reason}


def median(found: Cell | None) -> float | None:
    if not found or "median" not in found:
        return None
    return float(found["median"])


def ratio(a: Cell | None, b: Cell | None) -> float | None:
    """``a / b`` of the medians, None where either is missing or ``b`` is zero."""
    x, y = median(a), median(b)
    if x is None or y is None or y <= 0:
        return None
    return x / y


# -- formatting ---------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds < 0:
        return "-" + fmt_time(-seconds)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_value(value: float, unit: str) -> str:
    if unit == "s":
        return fmt_time(value)
    if unit == "cpu":
        return f"{value * 100:.3g} %"
    if unit == "bytes":
        return f"{value / 2**20:.1f} MiB"
    if unit == "/s":
        return f"{value:.3g}/s"
    return f"{value:.3g}{unit}"


def fmt_cell(found: Cell | None, unit: str) -> str:
    if not found:
        return "—"
    if "na" in found:
        return f"n/a ({found['na']})"
    text = fmt_value(found["median"], unit)
    if found.get("p95") is not None:
        text += f" / {fmt_value(found['p95'], unit)}"
    return text


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    if value >= 100:
        return f"{value:,.0f}×"
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_escape(str(item)) for item in row) + " |" for row in rows]
    return "\n".join(lines)


# -- goals --------------------------------------------------------------------------


def verdict(goal: dict[str, Any]) -> str:
    met = goal.get("met")
    if met is None:
        return "not measured"
    return "**met**" if met else "**missed**"


def evaluate(goal: dict[str, Any]) -> dict[str, Any]:
    """Fill ``met`` of a goal ``{"ratio": r, "limit": x, "kind": "at_most"|"at_least"}``."""
    if goal["kind"] == "count":  # decided by its maker (a count of verdicts)
        return goal
    value = goal.get("ratio")
    if value is None:
        goal["met"] = None
    elif goal["kind"] == "at_most":
        goal["met"] = value <= goal["limit"]
    else:
        goal["met"] = value >= goal["limit"]
    return goal


def goal_text(goal: dict[str, Any]) -> str:
    return f"{goal['short']}: {verdict(goal)} ({fmt_ratio(goal.get('ratio'))})"


# -- the report ---------------------------------------------------------------------


def _goals_by_row(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for goal in results.get("goals", []):
        found.setdefault(goal.get("row", ""), []).append(goal)
    return found


def process_table(results: dict[str, Any]) -> str:
    """supervision against the floors, every OS-process scenario."""
    headers = ["scenario", "metric", *PROCESS_COLUMNS.values(), "sv ÷ floor", "sv ÷ same work", "goal"]
    goals_by_row = _goals_by_row(results)
    rows = []
    for row in results.get("process_rows", []):
        values = row["values"]
        unit = row["unit"]
        sv = values.get("supervision")
        rows.append(
            [
                row["scenario"],
                row["metric"],
                *(fmt_cell(values.get(key), unit) for key in PROCESS_COLUMNS),
                fmt_ratio(ratio(sv, values.get(FLOOR))),
                fmt_ratio(ratio(sv, values.get(SAME_WORK))),
                "; ".join(goal_text(goal) for goal in goals_by_row.get(row["id"], [])) or "",
            ]
        )
    return table(headers, rows)


def peer_table(results: dict[str, Any]) -> str:
    """supervision against circus and supervisord, each at its fastest and its default
    setting; ``peer ÷ sv`` above 1 means supervision did better (lower is better in
    every row)."""
    headers = [
        "scenario",
        "metric",
        "supervision",
        *PEER_COLUMNS.values(),
        *(f"{label} ÷ sv" for label in PEER_COLUMNS.values()),
    ]
    rows = []
    for row in results.get("process_rows", []):
        values = row["values"]
        if not any(key in values for key in PEER_COLUMNS):
            continue
        unit = row["unit"]
        sv = values.get("supervision")
        rows.append(
            [
                row["scenario"],
                row["metric"],
                fmt_cell(sv, unit),
                *(fmt_cell(values.get(key), unit) for key in PEER_COLUMNS),
                *(fmt_ratio(peer_ratio(values.get(key), sv)) for key in PEER_COLUMNS),
            ]
        )
    return table(headers, rows)


def peer_ratio(peer: Cell | None, sv: Cell | None) -> float | None:
    """``peer ÷ supervision`` of the medians; with supervision at 0, ∞ (or 1 if both are)."""
    x, y = median(peer), median(sv)
    if x is None or y is None:
        return None
    if y <= 0:
        return math.inf if x > 0 else 1.0
    return x / y


def verdict_table(results: dict[str, Any]) -> str:
    """One verdict per scenario × peer × setting."""
    by_row: dict[str, dict[str, dict[str, Any]]] = {}
    labels: dict[str, str] = {}
    for found in results.get("peer_verdicts", []):
        by_row.setdefault(found["row"], {})[found["peer"]] = found
        labels[found["row"]] = found["scenario"]
    rows = []
    for row_id, peers in by_row.items():
        cells = []
        for key in PEER_COLUMNS:
            found = peers.get(key)
            cells.append(f"{verdict(found)} ({fmt_ratio(found.get('ratio'))})" if found else "—")
        rows.append([labels[row_id], *cells])
    return table(["scenario (peer ÷ sv ≥ 1)", *PEER_COLUMNS.values()], rows)


def inproc_table(results: dict[str, Any]) -> str:
    goals = _goals_by_row(results)
    rows = []
    for row in results.get("inproc_rows", []):
        floor, sv = row["floor"], row["supervision"]
        per = ""
        floor_time, sv_time = median(floor), median(sv)
        if row.get("n") and floor_time is not None and sv_time is not None:
            per = f"{fmt_time(floor_time / row['n'])} / {fmt_time(sv_time / row['n'])}"
        rows.append(
            [
                row["scenario"],
                fmt_cell(floor, "s"),
                fmt_cell(sv, "s"),
                fmt_ratio(ratio(sv, floor)),
                per,
                row.get("memory", ""),
                "; ".join(goal_text(goal) for goal in goals.get(row["id"], [])),
            ]
        )
    headers = ["scenario", "raw asyncio floor", "supervision", "sv ÷ floor", "per item (floor / sv)", "memory", "goal"]
    return table(headers, rows)


def other_table(results: dict[str, Any]) -> str:
    rows = []
    for row in results.get("other_rows", []):
        rows.append(
            [
                row["scenario"],
                fmt_cell(row["value"], row.get("unit", "s")),
                row.get("compared", ""),
                fmt_ratio(row.get("ratio")),
                row.get("note", ""),
            ]
        )
    return table(["scenario", "supervision", "compared with", "ratio", "note"], rows)


def breakdown_table(results: dict[str, Any]) -> str:
    rows = results.get("breakdown_rows", [])
    floor = next((row for row in rows if row["key"] == FLOOR), None)
    body = [
        [
            row["label"],
            row["settings"],
            fmt_cell(row["exit_fork"], "s"),
            fmt_cell(row["exit_exec"], "s"),
            fmt_ratio(ratio(row["exit_exec"], floor["exit_exec"])) if floor else "—",
        ]
        for row in rows
    ]
    return table(["supervisor", "settings", "exit → fork", "exit → exec", "exit → exec ÷ floor"], body)


def goals_table(results: dict[str, Any]) -> str:
    rows = [
        [
            goal["name"],
            goal["target"],
            goal.get("measured") or fmt_ratio(goal.get("ratio")),
            verdict(goal),
            goal.get("why", ""),
        ]
        for goal in results.get("goals", [])
    ]
    return table(["goal", "target", "measured", "verdict", "why (where missed)"], rows)


def markdown(results: dict[str, Any]) -> str:
    """The whole report: the tables, the settings each contender got, and notes."""
    meta = results.get("meta", {})
    parts = [
        f"## Results ({'quick' if meta.get('quick') else 'full'} run, {meta.get('date', '?')})",
        "",
        f"Machine: {meta.get('machine', '?')}. Observer: {meta.get('observer', '?')}. "
        f"Load average: {meta.get('load', '?')}. Scheduling: {meta.get('priority', '?')}. "
        f"Run time: {meta.get('duration', 0):.0f} s. "
        f"Stray processes after teardown: {meta.get('strays', '?')}.",
        "",
        "### OS processes: supervision against the floors (cells: median / p95 where there are several samples)",
        "",
        process_table(results),
        "",
        "### OS processes: supervision against circus and supervisord, at their fastest and default settings",
        "",
        "`peer ÷ sv` above 1: supervision did better (lower is better in every row). The rows marked"
        ' "supervision as 500 separate children" repeat the peers\' numbers of the row above them.',
        "",
        peer_table(results),
        "",
        "### Verdicts against the peers (one per scenario, peer and setting)",
        "",
        verdict_table(results),
        "",
        "### In-process workers",
        "",
        inproc_table(results),
        "",
        "### Reload and re-exec",
        "",
        other_table(results),
        "",
        "### Goals",
        "",
        goals_table(results),
        "",
    ]
    if results.get("breakdown_rows"):
        parts += ["### Where supervision's respawn time goes (`/bin/false`)", "", breakdown_table(results), ""]
    for section in results.get("sections", []):
        parts += [f"### {section['title']}", "", section["text"], ""]
    parts += [
        "### Settings and samples",
        "",
    ]
    for key, text in meta.get("settings", {}).items():
        parts.append(f"- **{PROCESS_COLUMNS.get(key) or PEER_COLUMNS.get(key, key)}**: {text}")
    for line in meta.get("samples", []):
        parts.append(f"- {line}")
    notes = results.get("notes", [])
    if notes:
        parts += ["", "### Notes", ""]
        parts += [f"- {note}" for note in notes]
    return "\n".join(parts) + "\n"
