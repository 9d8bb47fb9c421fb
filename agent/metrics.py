"""``/metrics`` and ``/healthz``: what the agent exports, read from its state on each scrape.

Why a custom collector and not gauges set every tick: a hundred containers times a few
gauges, set every second, would cost more than the sampling they describe. The state is
already in the collector, the urgency watcher and the spool; a scrape (every 15–60 s) walks
it once. Only the tick duration is a real :class:`~prometheus_client.Histogram`, observed once
per tick. Everything lives in the agent's own :class:`~prometheus_client.CollectorRegistry`,
made by the composition root: nothing is registered at import.

``/healthz`` answers 200 while ticks keep coming (the last one within ``stale_s``), 503
otherwise, so a wedged sampling loop gets the pod restarted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.collector import Collector
from agent.node import NodeTotals
from agent.spool import Spool
from agent.urgent import UrgencyWatcher

TICK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LABELS = ("namespace", "pod", "container")


class Counted(Protocol):
    """Anything with cumulative counts to export (the publisher's stats)."""

    delivered: int
    retries: int
    rejected: int
    auth_failures: int


class _State:
    """A prometheus collector over the agent's live objects (read-only, on scrape)."""

    def __init__(
        self,
        collector: Collector,
        watcher: UrgencyWatcher,
        spool: Spool | None,
        publisher: Counted | None,
        node: Callable[[], NodeTotals] | None,
    ) -> None:
        self.collector, self.watcher, self.spool = collector, watcher, spool
        self.publisher, self.node = publisher, node

    def collect(self) -> Iterator[Metric]:
        yield from self._containers()
        stats = self.collector.stats
        for name, value, doc in (
            ("reads", stats.reads, "Container reads that produced a sample."),
            ("read_errors", stats.read_errors, "Container reads that failed."),
            ("cgroups_gone", stats.gone, "Containers whose cgroup vanished between scan and read."),
            ("ticks", stats.ticks, "Sampling ticks."),
        ):  # fmt: skip
            yield CounterMetricFamily(f"presize_agent_{name}", doc, value=value)
        yield GaugeMetricFamily(
            "presize_agent_containers", "Containers tracked.", value=len(self.collector.containers)
        )
        if self.spool is not None:
            yield from _spool_metrics(self.spool)
        if self.publisher is not None:
            p = self.publisher
            sends = {"delivered": p.delivered, "retries": p.retries, "rejected": p.rejected,
                     "auth_failures": p.auth_failures}  # fmt: skip
            for name, value in sends.items():
                yield CounterMetricFamily(
                    f"presize_agent_reports_{name}", f"Report sends: {name}.", value=value
                )
        if self.node is not None:
            yield from _node(self.node())

    def _containers(self) -> Iterator[Metric]:
        cpu = GaugeMetricFamily(
            "presize_agent_container_cpu_cores", "CPU use in the last interval.", labels=LABELS
        )
        mem = GaugeMetricFamily(
            "presize_agent_container_memory_working_set_bytes",
            "Memory working set (usage minus inactive file).",
            labels=LABELS,
        )
        for pod, name, rates in self.collector.latest():
            labels = [pod.namespace, pod.name or pod.uid, name]
            cpu.add_metric(labels, rates.cpu_cores)
            if rates.mem_working_set is not None:
                mem.add_metric(labels, rates.mem_working_set)
        upper = GaugeMetricFamily(
            "presize_agent_container_forecast_upper",
            "Upper edge of the short-horizon forecast of the next peak (cores or bytes).",
            labels=(*LABELS, "resource"),
        )
        for (pod, name), (cpu_upper, mem_upper) in self.watcher.uppers().items():
            labels = [pod.namespace, pod.name or pod.uid, name]
            if not math.isnan(cpu_upper):
                upper.add_metric([*labels, "cpu"], cpu_upper)
            if not math.isnan(mem_upper):
                upper.add_metric([*labels, "memory"], mem_upper)
        yield from (cpu, mem, upper)


def _spool_metrics(spool: Spool) -> Iterator[Metric]:
    yield GaugeMetricFamily("presize_agent_spool_bytes", "Bytes of reports in the spool.",
                            value=spool.size_bytes)  # fmt: skip
    yield GaugeMetricFamily("presize_agent_spool_reports", "Reports waiting in the spool.",
                            value=len(spool))  # fmt: skip
    s = spool.stats
    for name, value, doc in (
        ("downsampled", s.downsampled, "Pairs of spooled reports merged into one (spool full)."),
        ("dropped", s.dropped, "Spooled reports dropped because merging could not make room."),
        ("quarantined", s.quarantined, "Spooled reports moved aside (undecodable or rejected)."),
    ):
        yield CounterMetricFamily(f"presize_agent_spool_{name}", doc, value=value)


def _node(n: NodeTotals) -> Iterator[Metric]:
    for name, value, doc in (
        ("cpus", n.cpus, "Logical CPUs of the node."),
        ("memory_bytes", n.memory_bytes, "Memory of the node."),
        ("memory_available_bytes", n.memory_available_bytes, "Memory available on the node."),
        ("load1", n.load1, "1-minute load average."),
        ("load5", n.load5, "5-minute load average."),
        ("load15", n.load15, "15-minute load average."),
    ):
        yield GaugeMetricFamily(f"presize_node_{name}", doc, value=value)


class AgentMetrics:
    """The agent's registry: the tick histogram plus the state collector."""

    def __init__(
        self,
        collector: Collector,
        watcher: UrgencyWatcher,
        *,
        spool: Spool | None = None,
        publisher: Counted | None = None,
        node: Callable[[], NodeTotals] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.tick_seconds = Histogram(
            "presize_agent_tick_seconds",
            "Time to read every container once (one sampling tick).",
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_State(collector, watcher, spool, publisher, node))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def make_app(metrics: AgentMetrics, healthy: Callable[[], bool]) -> web.Application:
    """The aiohttp app serving ``/metrics`` and ``/healthz``."""

    async def get_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_healthz(request: web.Request) -> web.Response:
        ok = healthy()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "stale\n")

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", get_healthz)
    return app
