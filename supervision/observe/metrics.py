"""Prometheus metrics of a tree, made with ``prometheus_client`` (extra ``supervision[http]``).

:class:`TreeCollector` is a custom collector over one status (the status JSON,
read at scrape time: see ``figures``), so a scrape shows the tree as it is at
that moment and nothing is kept up to date in between. :func:`render` adds the
usual process metrics of the supervisor itself (``process_*``, ``python_*``).
The metrics and their meaning are listed in ``docs/observability.md``.

Labels: ``path`` (``db/pool``), ``kind`` (``worker``, ``process``,
``supervisor``), ``supervisor`` (the path of the supervisor, ``/`` for the root).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from .figures import walk

__all__ = ["CONTENT_TYPE", "METRICS", "TreeCollector", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_CHILD = ["path", "kind", "supervisor"]

METRICS: dict[str, str] = {
    "supervision_child_up": "1 if the child is running (and ready, where a readiness check is set), else 0.",
    "supervision_child_restarts_total": "Restarts of the child's path (start attempts after the first).",
    "supervision_child_start_failures_total": "Start attempts of the child's path that failed.",
    "supervision_child_cpu_seconds_total": "CPU time (user + system) of a process child's process tree.",
    "supervision_child_resident_memory_bytes": "Resident memory of a process child's process tree.",
    "supervision_child_open_fds": "Open file descriptors of a process child's process tree.",
    "supervision_supervisor_intensity_used_ratio": (
        "Restarts within the supervisor's period divided by its intensity; at 1 the next restart gives up."
    ),
    "supervision_tree_reloads_total": "Reloads of the tree, by outcome (applied, rejected).",
}
"""Every metric of the tree, with its help text (the process metrics come on top)."""


def _gauge(name: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name], labels=labels)


def _counter(name: str, labels: list[str]) -> CounterMetricFamily:
    # prometheus_client adds "_total" to a counter's samples itself.
    return CounterMetricFamily(name.removesuffix("_total"), METRICS[name], labels=labels)


class TreeCollector:
    """The tree's metrics, from one status JSON (see ``figures``).

    ``part`` selects the families: ``"children"`` (up, restarts, start
    failures: they change only when something happens to a child),
    ``"figures"`` (resources, intensity fill, reloads) or ``"all"``.
    """

    def __init__(self, status: dict[str, Any], part: str = "all") -> None:
        self.status = status
        self.part = part

    def collect(self) -> Iterator[Metric]:
        status = self.status
        if self.part in ("children", "all"):
            up = _gauge("supervision_child_up", _CHILD)
            restarts = _counter("supervision_child_restarts_total", _CHILD)
            failures = _counter("supervision_child_start_failures_total", _CHILD)
            for node, parent in walk(status):
                labels = [node["path"], node["kind"], parent]
                up.add_metric(labels, 1.0 if node["status"] == "running" else 0.0)
                restarts.add_metric(labels, float(node.get("restarts", 0)))
                failures.add_metric(labels, float(node.get("start_failures", 0)))
            yield from (up, restarts, failures)
        if self.part in ("figures", "all"):
            cpu = _counter("supervision_child_cpu_seconds_total", _CHILD)
            rss = _gauge("supervision_child_resident_memory_bytes", _CHILD)
            fds = _gauge("supervision_child_open_fds", _CHILD)
            fill = _gauge("supervision_supervisor_intensity_used_ratio", ["supervisor"])
            reloads = _counter("supervision_tree_reloads_total", ["outcome"])
            if status.get("intensity") is not None:
                fill.add_metric(["/"], float(status["intensity"]["used_ratio"]))
            for node, parent in walk(status):
                used = node.get("resources")
                if used is not None:
                    labels = [node["path"], node["kind"], parent]
                    cpu.add_metric(labels, float(used["cpu_seconds"]))
                    rss.add_metric(labels, float(used["rss_bytes"]))
                    fds.add_metric(labels, float(used["fds"]))
                if node.get("intensity") is not None:
                    fill.add_metric([node["path"]], float(node["intensity"]["used_ratio"]))
            counts = status.get("reloads") or {}
            for outcome in ("applied", "rejected"):
                reloads.add_metric([outcome], float(counts.get(outcome, 0)))
            yield from (cpu, rss, fds, fill, reloads)


def _children_key(status: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (node["path"], node["kind"], parent, node["status"], node.get("restarts", 0), node.get("start_failures", 0))
        for node, parent in walk(status)
    )


class Exporter:
    """Renders scrapes: the tree's metrics and the supervisor's own process metrics.

    Formatting is most of a scrape's cost (a few microseconds a sample). The
    families of ``up``, restarts and start failures change only when a child
    does, so their text is kept and formatted again only when one of their
    values changed; the figures (CPU, memory, fds, intensity) are formatted at
    every scrape.
    """

    def __init__(self) -> None:
        # Registries of our own, not the global one: two trees in one process
        # (tests) must not register the same names twice.
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)
        PlatformCollector(registry=self._process)
        GCCollector(registry=self._process)
        self._children = CollectorRegistry(auto_describe=False)
        self._children_collector = TreeCollector({}, "children")
        self._children.register(self._children_collector)
        self._figures = CollectorRegistry(auto_describe=False)
        self._figures_collector = TreeCollector({}, "figures")
        self._figures.register(self._figures_collector)
        self._children_text = b""
        self._children_for: tuple[Any, ...] | None = None

    def render(self, status: dict[str, Any]) -> bytes:
        """The Prometheus text format of one scrape of ``status``."""
        key = _children_key(status)
        try:
            if key != self._children_for:
                self._children_collector.status = status
                self._children_text = generate_latest(self._children)
                self._children_for = key
            self._figures_collector.status = status
            return generate_latest(self._process) + self._children_text + generate_latest(self._figures)
        finally:
            self._children_collector.status = self._figures_collector.status = {}


def render(status: dict[str, Any]) -> bytes:
    """One scrape with a fresh :class:`Exporter`."""
    return Exporter().render(status)
