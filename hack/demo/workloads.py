"""What the demo deploys: the namespace, the PresizePolicies and six Deployments (pure).

Time compression. presize reasons in hours and days (a memory leak must grow for six hours
before it is called one; a shrink waits ten minutes of calm). The controller's ``--time-scale
K`` divides every one of its durations by ``K``, so at the default ``K = 288`` a virtual day
lasts five real minutes and a virtual hour 12.5 seconds. Everything here is written in *real*
seconds and converted with :class:`Timing`: the load patterns (which the node shim plays in
real time), and the durations that the controller reads from objects and compresses itself
(a ``PresizePolicy``'s ``rollback.window``), which therefore must be given in virtual time.

The workloads, each showing one thing presize does:

==========  ================================================================================
``daily``   a compressed daily CPU cycle (one cycle per virtual day): profiled, sized to it
``ramp``    CPU demand climbing past its limit: presize grows it *before* it throttles,
            helped by the agent's urgent "forecast-cpu-limit" reports
``steady``  flat and far over-provisioned: presize shrinks CPU (by half per change at most)
            and memory (10 % per change), never below its recent peak
``leaky``   memory growing steadily: a ``MemoryLeakSuspected`` alert, and growth is no
            longer fed (its ``PresizePolicy`` also caps memory)
``batch``   idle with periodic CPU bursts, watched for a long rollback window: a shrink
            made between bursts throttles the next one and is rolled back
``api``     one replica at first; scaled out once its profile exists, so the new pods are
            created with predicted requests by the webhook (``presize.io/applied``)
==========  ================================================================================

CPU figures are modest on purpose: the loads really burn CPU, and on a two-core machine they
share it with the control plane and presize itself.

Only ``ramp`` and ``batch`` have CPU *limits* (their stories are about throttling); the others
have CPU requests and memory limits, the common practice. presize sizes a container's CPU
limit, when it has one, to the predicted demand and scales the request with it (keeping their
ratio, hence the QoS class), which throttles a limited container that is shrunk; see the
demo's section in ``docs/local-cluster.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hack.cluster.webhooks import loopback_webhook_configuration

NAMESPACE: Final = "demo"
CONTAINER: Final = "app"
SHIM_LABEL: Final = "presize.io/nodeshim"
DAY_S: Final = 86400.0


@dataclass(frozen=True)
class Timing:
    """Real run length and the controller's time compression."""

    minutes: float
    scale: float = 288.0

    @property
    def run_s(self) -> float:
        return self.minutes * 60.0

    @property
    def day_s(self) -> float:
        """One virtual day, in real seconds."""
        return DAY_S / self.scale

    def virtual(self, real_s: float) -> float:
        """A real duration as the controller must be told it (it divides by the scale)."""
        return real_s * self.scale

    def go_duration(self, real_s: float) -> str:
        """A Go duration string for an object field the controller compresses."""
        return f"{round(self.virtual(real_s))}s"


@dataclass(frozen=True)
class Workload:
    """One Deployment of the demo."""

    name: str
    what: str
    load: Mapping[str, Any]
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    replicas: int = 1
    scale_to: int | None = None  # scaled out once its profile exists (webhook injection)
    labels: Mapping[str, str] = field(default_factory=dict)


def workloads(t: Timing) -> list[Workload]:
    """The demo's Deployments, their patterns fitted to the run length and the time scale."""
    run = t.run_s
    return [
        Workload(
            "daily",
            "compressed daily cycle",
            {
                "cpu": {"pattern": "cycle", "low": 0.03, "high": 0.16, "period_s": t.day_s},
                "memory": {"pattern": "cycle", "low_mb": 40, "high_mb": 90, "period_s": t.day_s},
            },
            {"cpu": "150m", "memory": "128Mi"},
            {"memory": "256Mi"},
        ),
        Workload(
            "ramp",
            "CPU ramp towards its limit",
            {
                "cpu": {
                    "pattern": "ramp",
                    "start": 0.06,
                    "end": 0.32,
                    "at_s": 5,
                    "duration_s": max(60.0, 0.6 * run),
                },
                "memory": {"pattern": "constant", "value_mb": 40},
            },
            {"cpu": "80m", "memory": "96Mi"},
            {"cpu": "100m", "memory": "128Mi"},
        ),
        Workload(
            "steady",
            "flat, over-provisioned",
            {
                "cpu": {"pattern": "constant", "value": 0.03},
                "memory": {"pattern": "constant", "value_mb": 50},
            },
            {"cpu": "500m", "memory": "512Mi"},
            {"memory": "1Gi"},
        ),
        Workload(
            "leaky",
            "memory leak",
            {
                "cpu": {"pattern": "constant", "value": 0.02},
                "memory": {"pattern": "leak", "start_mb": 40, "mb_per_min": 45},
            },
            {"cpu": "50m", "memory": "192Mi"},
            {"memory": "320Mi"},
            labels={"presize.demo/leak-guard": "true"},
        ),
        Workload(
            "batch",
            "idle with CPU bursts",
            {
                "cpu": {
                    "pattern": "burst",
                    "base": 0.02,
                    "peak": 0.2,
                    "every_s": 45,
                    "duration_s": 12,
                    "offset_s": 20,
                },
                "memory": {"pattern": "constant", "value_mb": 40},
            },
            {"cpu": "200m", "memory": "128Mi"},
            {"cpu": "400m", "memory": "256Mi"},
            labels={"presize.demo/bursty": "true"},
        ),
        Workload(
            "api",
            "scaled out after profiling",
            {
                "cpu": {"pattern": "constant", "value": 0.04},
                "memory": {"pattern": "constant", "value_mb": 60},
            },
            {"cpu": "400m", "memory": "384Mi"},
            {"memory": "768Mi"},
            scale_to=3,
        ),
    ]


def namespace_manifest() -> dict[str, Any]:
    """The opted-in namespace, in ``auto`` mode (webhook, in-place resize, rollback)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {"presize.io/enabled": "true"},
            "annotations": {"presize.io/mode": "auto"},
        },
    }


def policies(t: Timing, rollback_s: float, bursty_rollback_s: float) -> list[dict[str, Any]]:
    """Three PresizePolicies: the namespace default, a memory cap for the leak, and a long
    rollback window for the bursty workload (so a shrink between bursts is judged by the
    next burst). The most specific selector wins, so each pod gets exactly one."""
    floor = {"cpu": "20m", "memory": "48Mi"}

    def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "presize.io/v1alpha1",
            "kind": "PresizePolicy",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"mode": "auto", "slo": {"maxThrottlingRatio": 0.1}, **spec},
        }

    return [
        policy(
            "default",
            {
                "containers": [
                    {"name": "*", "minAllowed": floor, "maxAllowed": {"cpu": "1", "memory": "1Gi"}}
                ],
                "rollback": {"window": t.go_duration(rollback_s)},
            },
        ),
        policy(
            "leak-guard",
            {
                "selector": {"matchLabels": {"presize.demo/leak-guard": "true"}},
                "containers": [
                    {"name": "*", "minAllowed": floor, "maxAllowed": {"memory": "384Mi"}}
                ],
                "rollback": {"window": t.go_duration(rollback_s)},
            },
        ),
        policy(
            "bursty",
            {
                "selector": {"matchLabels": {"presize.demo/bursty": "true"}},
                "containers": [{"name": "*", "minAllowed": floor}],
                "rollback": {"window": t.go_duration(bursty_rollback_s)},
            },
        ),
    ]


def deployment(w: Workload) -> dict[str, Any]:
    """A Deployment whose pods may only land on the shim's nodes (label + toleration)."""
    labels = {"app": w.name, **w.labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": w.name, "namespace": NAMESPACE, "labels": {"app": w.name}},
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": {"app": w.name}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"presize.io/load": json.dumps(w.load, sort_keys=True)},
                },
                "spec": {
                    "nodeSelector": {SHIM_LABEL: "true"},
                    "tolerations": [
                        {"key": SHIM_LABEL, "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": "example.invalid/presize-demo:1",
                            "resources": {
                                "requests": dict(w.requests),
                                "limits": dict(w.limits),
                            },
                        }
                    ],
                },
            },
        },
    }


def webhook_configuration(name: str, port: int) -> dict[str, Any]:
    """Registered by URL on loopback; see :mod:`hack.cluster.webhooks`."""
    return loopback_webhook_configuration(name, port)


def workload_names(ws: Sequence[Workload]) -> list[str]:
    return [w.name for w in ws]
