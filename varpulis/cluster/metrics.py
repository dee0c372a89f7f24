"""Prometheus metrics of the coordinator, served as text at ``GET /metrics``.

A custom collector reads the coordinator's state and counters when Prometheus
scrapes (nothing is counted on the request path beyond the plain integers the
coordinator already keeps). Each coordinator gets its own registry, so several
can live in one test process.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from varpulis.cluster.coordinator import Coordinator

__all__ = ["CONTENT_TYPE", "CoordinatorCollector", "make_registry", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


class CoordinatorCollector(Collector):
    """Workers by state, groups, placements by status, and the coordinator's counters."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator

    def collect(self) -> Iterator[Metric]:
        summary = self._c.summary()
        workers = GaugeMetricFamily(
            "varpulis_cluster_workers", "Registered workers by state", labels=["status"]
        )
        for status, n in summary["workers"].items():
            if status != "total":
                workers.add_metric([status], n)
        yield workers
        yield GaugeMetricFamily(
            "varpulis_cluster_pipeline_groups",
            "Deployed pipeline groups",
            value=summary["pipeline_groups"],
        )
        placements = GaugeMetricFamily(
            "varpulis_cluster_placements", "Pipeline placements by status", labels=["status"]
        )
        for status, n in summary["placements"].items():
            placements.add_metric([status.lower()], n)
        yield placements
        stats = summary["stats"]
        yield CounterMetricFamily(
            "varpulis_cluster_injects", "Single events routed to a worker", value=stats["injects"]
        )
        yield CounterMetricFamily(
            "varpulis_cluster_batch_events",
            "Events of inject-batch calls accepted by workers",
            value=stats["batch_events"],
        )
        yield CounterMetricFamily(
            "varpulis_cluster_routing_failures",
            "Injects that could not be delivered (502 routing_failed)",
            value=stats["routing_failures"],
        )
        yield CounterMetricFamily(
            "varpulis_cluster_forwarded_events",
            "Output events forwarded along inter-pipeline routes",
            value=stats["forwarded_events"],
        )
        deploys = CounterMetricFamily(
            "varpulis_cluster_deployments", "Pipeline deploys", labels=["result"]
        )
        deploys.add_metric(["success"], stats["deploys_ok"])
        deploys.add_metric(["failure"], stats["deploys_failed"])
        yield deploys
        moves = CounterMetricFamily(
            "varpulis_cluster_migrations",
            "Placement moves (failover, reconcile, drain, rebalance)",
            labels=["result"],
        )
        moves.add_metric(["success"], stats["moves_ok"])
        moves.add_metric(["failure"], stats["moves_failed"])
        yield moves


def make_registry(coordinator: Coordinator) -> CollectorRegistry:
    """A fresh registry with the coordinator collector and the process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CoordinatorCollector(coordinator))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(registry)
