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

# Columns of the process table, in order: key -> header.
PROCESS_COLUMNS = {
    "posix_spawn": "posix_spawn loop",
    "pidfd": "asyncio+pidfd",
    "same_work": "same work",
    "supervision": "supervision",
    "circus": "circus",
    "supervisord": "supervisord",
}
FLOOR = "pidfd"  # the floor the goals are set against


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


def process_table(results: dict[str, Any]) -> str:
    headers = [
        "scenario",
        "metric",
        *PROCESS_COLUMNS.values(),
        "sv ÷ floor",
        "circus ÷ sv",
        "supervisord ÷ sv",
        "goal",
    ]
    goals_by_row: dict[str, list[dict[str, Any]]] = {}
    for goal in results.get("goals", []):
        goals_by_row.setdefault(goal.get("row", ""), []).append(goal)
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
                fmt_ratio(ratio(values.get("circus"), sv)),
                fmt_ratio(ratio(values.get("supervisord"), sv)),
                "; ".join(goal_text(goal) for goal in goals_by_row.get(row["id"], [])) or "",
            ]
        )
    return table(headers, rows)


def inproc_table(results: dict[str, Any]) -> str:
    goals = {goal.get("row"): goal for goal in results.get("goals", [])}
    rows = []
    for row in results.get("inproc_rows", []):
        floor, sv = row["floor"], row["supervision"]
        per = ""
        floor_time, sv_time = median(floor), median(sv)
        if row.get("n") and floor_time is not None and sv_time is not None:
            per = f"{fmt_time(floor_time / row['n'])} / {fmt_time(sv_time / row['n'])}"
        goal = goals.get(row["id"])
        rows.append(
            [
                row["scenario"],
                fmt_cell(floor, "s"),
                fmt_cell(sv, "s"),
                fmt_ratio(ratio(sv, floor)),
                per,
                row.get("memory", ""),
                goal_text(goal) if goal else "",
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
        [goal["name"], goal["target"], fmt_ratio(goal.get("ratio")), verdict(goal), goal.get("why", "")]
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
        "### OS processes (cells: median / p95 where there are several samples)",
        "",
        process_table(results),
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
        parts.append(f"- **{PROCESS_COLUMNS.get(key, key)}**: {text}")
    for line in meta.get("samples", []):
        parts.append(f"- {line}")
    notes = results.get("notes", [])
    if notes:
        parts += ["", "### Notes", ""]
        parts += [f"- {note}" for note in notes]
    return "\n".join(parts) + "\n"
