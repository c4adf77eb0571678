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
from prometheus_client.registry import Collector

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


class TreeCollector(Collector):
    """The tree's metrics, from one status JSON (see ``figures``)."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status
        up = _gauge("supervision_child_up", _CHILD)
        restarts = _counter("supervision_child_restarts_total", _CHILD)
        failures = _counter("supervision_child_start_failures_total", _CHILD)
        cpu = _counter("supervision_child_cpu_seconds_total", _CHILD)
        rss = _gauge("supervision_child_resident_memory_bytes", _CHILD)
        fds = _gauge("supervision_child_open_fds", _CHILD)
        fill = _gauge("supervision_supervisor_intensity_used_ratio", ["supervisor"])
        reloads = _counter("supervision_tree_reloads_total", ["outcome"])
        if status.get("intensity") is not None:
            fill.add_metric(["/"], float(status["intensity"]["used_ratio"]))
        for node, parent in walk(status):
            labels = [node["path"], node["kind"], parent]
            up.add_metric(labels, 1.0 if node["status"] == "running" else 0.0)
            restarts.add_metric(labels, float(node.get("restarts", 0)))
            failures.add_metric(labels, float(node.get("start_failures", 0)))
            used = node.get("resources")
            if used is not None:
                cpu.add_metric(labels, float(used["cpu_seconds"]))
                rss.add_metric(labels, float(used["rss_bytes"]))
                fds.add_metric(labels, float(used["fds"]))
            if node.get("intensity") is not None:
                fill.add_metric([node["path"]], float(node["intensity"]["used_ratio"]))
        counts = status.get("reloads") or {}
        for outcome in ("applied", "rejected"):
            reloads.add_metric([outcome], float(counts.get(outcome, 0)))
        yield from (up, restarts, failures, cpu, rss, fds, fill, reloads)


class _One(Collector):
    """One family, for formatting it alone."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Iterator[Metric]:
        yield self.family


class Exporter:
    """Renders scrapes: the tree's metrics and the supervisor's own process metrics.

    Formatting is most of a scrape's cost (a few microseconds a sample, and a
    tree of a thousand process children has six thousand). Most values do not
    change from one scrape to the next (which children are up, their restarts,
    the memory of an idle child), so each family's text is kept with its
    samples and formatted again only when one of them changed. The tree itself
    is read at every scrape.
    """

    def __init__(self) -> None:
        # A registry of our own, not the global one: two trees in one process
        # (tests) must not register the same names twice.
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)
        PlatformCollector(registry=self._process)
        GCCollector(registry=self._process)
        self._formatted: dict[str, tuple[list[Any], bytes]] = {}

    def render(self, status: dict[str, Any]) -> bytes:
        """The Prometheus text format of one scrape of ``status``."""
        out = [generate_latest(self._process)]
        formatted: dict[str, tuple[list[Any], bytes]] = {}
        for family in TreeCollector(status).collect():
            kept = self._formatted.get(family.name)
            unchanged = kept is not None and kept[0] == family.samples
            text = kept[1] if kept is not None and unchanged else generate_latest(_One(family))
            formatted[family.name] = (family.samples, text)
            out.append(text)
        self._formatted = formatted
        return b"".join(out)


def render(status: dict[str, Any]) -> bytes:
    """One scrape with a fresh :class:`Exporter`."""
    return Exporter().render(status)
