"""The webhook's Prometheus metrics, in a registry of their own (nothing registers at import).

A private ``CollectorRegistry`` per server keeps tests independent (two apps in one process do
not collide) and keeps ``/metrics`` to what this component owns. Label sets are closed enums
(``Outcome`` values, refresh results), never pod or namespace names, so cardinality stays
fixed whatever the cluster does.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Buckets for admission latency, in seconds: the interesting range is 0.1 ms to 50 ms.
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0)


class WebhookMetrics:
    """Counters and gauges for admissions, bad requests, internal errors and refreshes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.admissions = Counter(
            "presize_webhook_admissions",
            "Admission reviews answered, by outcome (patched, no-profile, stale-snapshot, ...).",
            ["outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "presize_webhook_admission_seconds",
            "Time from a complete request body to the response, in seconds.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.bad_requests = Counter(
            "presize_webhook_bad_requests",
            "Requests answered with a 4xx (not a v1 AdmissionReview, too large, not JSON).",
            ["reason"],
            registry=r,
        )
        self.internal_errors = Counter(
            "presize_webhook_internal_errors",
            "Internal errors on the admission path; each was answered allowed, without patch.",
            registry=r,
        )
        self.snapshot_refreshes = Counter(
            "presize_webhook_snapshot_refreshes",
            "Snapshot fetches from the controller, by result.",
            ["result"],
            registry=r,
        )
        self.snapshot_generation = Gauge(
            "presize_webhook_snapshot_generation",
            "Generation of the snapshot in use (-1: none).",
            registry=r,
        )
        self.snapshot_generation.set(-1)
        self.snapshot_age = Gauge(
            "presize_webhook_snapshot_age_seconds",
            "Age of the snapshot in use, from its generated_at (-1: none).",
            registry=r,
        )
        self.namespace_refreshes = Counter(
            "presize_webhook_namespace_refreshes",
            "Refreshes of the namespace and LimitRange cache, by result.",
            ["result"],
            registry=r,
        )
        self.cert_reloads = Counter(
            "presize_webhook_cert_reloads",
            "Serving certificate reloads after the files changed, by result.",
            ["result"],
            registry=r,
        )

    def track_snapshot_age(self, age: Callable[[], float]) -> None:
        """Compute the age gauge at scrape time (it grows between refreshes)."""
        self.snapshot_age.set_function(age)

    def render(self) -> bytes:
        return generate_latest(self.registry)
