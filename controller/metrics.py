"""The controller's Prometheus metrics, in a registry of their own.

Label sets are closed (actions, reasons, outcomes, anomaly kinds and severities) except for
the anomaly and accuracy gauges, which carry ``namespace``/``workload``/``container``: an
alert must say *which* workload leaks, and there is one series per profiled container (the
gauges are removed when the profile goes), which is the cardinality of the profiles
themselves, not of pods.

Alerting: ``presize_anomaly{kind="memory-leak",severity="critical"} == 1`` for a few minutes
is the leak alert; the chart's NOTES show a PrometheusRule snippet.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_CYCLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reports = Counter(
            "presize_controller_reports",
            "Agent reports received, by result.",
            ["result"],
            registry=r,
        )
        self.windows = Counter(
            "presize_controller_windows",
            "Usage windows ingested, by result.",
            ["result"],
            registry=r,
        )
        self.decisions = Counter(
            "presize_controller_decisions",
            "Pod decisions, by action and reason.",
            ["action", "reason"],
            registry=r,
        )
        self.actions = Counter(
            "presize_controller_actions",
            "Actions sent to the orchestrator (resize, evict, rollback), by kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.rollbacks = Counter(
            "presize_controller_rollbacks",
            "Changes reverted because something got worse.",
            registry=r,
        )
        self.anomaly = Gauge(
            "presize_anomaly",
            "1 while an anomaly is detected on a workload container (alert on it).",
            ["namespace", "workload", "container", "kind", "severity"],
            registry=r,
        )
        self.coverage = Gauge(
            "presize_forecast_coverage",
            "Share of steps whose CPU usage fell inside the forecast interval made before it.",
            ["namespace", "workload", "container"],
            registry=r,
        )
        self.profiles = Gauge("presize_controller_profiles", "Container profiles held.", registry=r)
        self.cycle = Histogram(
            "presize_controller_cycle_seconds",
            "Time of one decision cycle, by kind.",
            ["kind"],
            buckets=_CYCLE_BUCKETS,
            registry=r,
        )
        self.leader = Gauge("presize_controller_leader", "1 while this replica leads.", registry=r)
        self.store_errors = Counter(
            "presize_controller_store_errors",
            "Profile checkpoints that could not be written.",
            registry=r,
        )
        self.snapshot_generation = Gauge(
            "presize_controller_snapshot_generation",
            "Generation of the served snapshot.",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
