"""Prometheus metrics of a worker, served as text at ``GET /metrics`` with ``--metrics``.

Nothing is counted on the request path: a custom collector reads each pipeline's
own counters (the engine already keeps them) when Prometheus scrapes, so
``--metrics`` costs nothing per event. Each worker app gets its own
:class:`~prometheus_client.CollectorRegistry` (not the process-global one), so
several workers can live in one test process. Scrapes take each pipeline's lock
briefly; they run on waitress threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from varpulis.server.pipelines import PipelineManager

__all__ = ["CONTENT_TYPE", "PipelineCollector", "make_registry", "render"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class PipelineCollector(Collector):
    """Reads per-pipeline and per-stream counters from a PipelineManager at scrape time."""

    def __init__(
        self, manager: PipelineManager, started: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._manager, self._started, self._clock = manager, started, clock

    def collect(self) -> Iterator[Metric]:
        events_in = CounterMetricFamily(
            "varpulis_pipeline_events",
            "Events injected into a pipeline",
            labels=["pipeline", "name"],
        )
        events_out = CounterMetricFamily(
            "varpulis_pipeline_output_events",
            "Output events a pipeline produced",
            labels=["pipeline", "name"],
        )
        errors = CounterMetricFamily(
            "varpulis_pipeline_errors", "Runtime errors in a pipeline", labels=["pipeline", "name"]
        )
        stream_in = CounterMetricFamily(
            "varpulis_stream_events", "Events a stream received", labels=["pipeline", "stream"]
        )
        stream_out = CounterMetricFamily(
            "varpulis_stream_output_events",
            "Output events a stream emitted",
            labels=["pipeline", "stream"],
        )
        total = [0, 0]
        rows = self._manager.all_metrics()
        for pipeline, counters in rows:
            labels = [pipeline.id, pipeline.name]
            events_in.add_metric(labels, counters["events_in"])
            events_out.add_metric(labels, counters["events_out"])
            errors.add_metric(labels, counters["errors"])
            total[0] += counters["events_in"]
            total[1] += counters["events_out"]
            for stream, c in counters["streams"].items():
                stream_in.add_metric([pipeline.id, stream], c["events_in"])
                stream_out.add_metric([pipeline.id, stream], c["events_out"])
        yield GaugeMetricFamily(
            "varpulis_pipelines", "Pipelines deployed on this worker", value=len(rows)
        )
        yield GaugeMetricFamily(
            "varpulis_max_pipelines", "The --max-pipelines limit", value=self._manager.max_pipelines
        )
        yield CounterMetricFamily(
            "varpulis_events", "Events injected into any pipeline", value=total[0]
        )
        yield CounterMetricFamily(
            "varpulis_output_events", "Output events of all pipelines", value=total[1]
        )
        yield GaugeMetricFamily(
            "varpulis_uptime_seconds",
            "Seconds since the worker started",
            value=self._clock() - self._started,
        )
        yield from (events_in, events_out, errors, stream_in, stream_out)


def make_registry(manager: PipelineManager, started: float) -> CollectorRegistry:
    """A fresh registry with the pipeline collector and the process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(manager, started))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(registry)
