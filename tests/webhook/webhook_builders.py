"""Small builders for pods, recommendations and snapshots, so tests read as tables."""

from __future__ import annotations

import base64
import json
from typing import Any

from presize.model import (
    ContainerKey,
    Mode,
    OwnerKind,
    Recommendation,
    ResourceRecommendation,
    WorkloadClass,
    WorkloadKey,
)
from presize.units import MIB, parse_bytes, parse_cpu
from presize.wire import PolicyBounds, Snapshot
from webhook.index import SnapshotIndex
from webhook.metrics import WebhookMetrics
from webhook.mutate import MutateSettings
from webhook.namespaces import StaticNamespaces
from webhook.server import ServerSettings, Webhook
from webhook.sizing import Amounts, QoS, qos_class

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NS = "shop"


def resources(
    cpu_req: str | None = None,
    mem_req: str | None = None,
    cpu_lim: str | None = None,
    mem_lim: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    requests = {k: v for k, v in (("cpu", cpu_req), ("memory", mem_req)) if v is not None}
    limits = {k: v for k, v in (("cpu", cpu_lim), ("memory", mem_lim)) if v is not None}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def container(name: str, res: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": "example/app:1"}
    if res is not None:
        c["resources"] = res
    c.update(extra)
    return c


def pod(
    *containers: dict[str, Any],
    init: list[dict[str, Any]] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-7d9f8b6c5d"),
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    name: str = "",
    generate_name: str = "web-7d9f8b6c5d-",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"namespace": NS}
    if name:
        metadata["name"] = name
    if generate_name:
        metadata["generateName"] = generate_name
    if owner is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "controller": True,
             "uid": "0000"}
        ]  # fmt: skip
    metadata["labels"] = labels if labels is not None else {"pod-template-hash": "7d9f8b6c5d"}
    if annotations is not None:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {
        "containers": list(containers) or [container("app", resources("100m", "128Mi"))]
    }
    if init:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def rec(
    container_name: str = "app",
    *,
    workload: WorkloadKey | None = None,
    cpu: float = 0.25,
    cpu_upper: float = 0.5,
    memory: float = 300 * MIB,
    memory_upper: float = 400 * MIB,
    mem_peak: float = 0.0,
    generation: int = 7,
    confidence: float = 0.83,
    egress: float | None = None,
    ingress: float | None = None,
) -> Recommendation:
    workload = workload or WorkloadKey(NS, OwnerKind.DEPLOYMENT, "web")
    return Recommendation(
        key=ContainerKey(workload, container_name),
        cpu=ResourceRecommendation(target=cpu, lower=cpu * 0.8, upper=cpu_upper),
        memory=ResourceRecommendation(target=memory, lower=memory * 0.8, upper=memory_upper),
        workload_class=WorkloadClass.STEADY,
        confidence=confidence,
        generation=generation,
        mem_peak=mem_peak,
        net_egress_bps=egress,
        net_ingress_bps=ingress,
    )


def snapshot(
    *recs: Recommendation,
    generation: int = 42,
    generated_at: float = NOW - 60,
    modes: tuple[tuple[str, Mode], ...] = (),
    bounds: tuple[PolicyBounds, ...] = (),
) -> Snapshot:
    return Snapshot(
        generation=generation,
        generated_at=generated_at,
        recommendations=recs if recs else (rec(),),
        namespace_modes=modes,
        policy_bounds=bounds,
    )


def index(*recs: Recommendation, **kw: Any) -> SnapshotIndex:
    return SnapshotIndex.build(snapshot(*recs, **kw))


def review(
    obj: Any, *, uid: str = "uid-1", operation: str = "CREATE", kind: str = "Pod"
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": NS,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": obj,
            "dryRun": False,
        },
    }


def apply_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """A minimal RFC 6902 applier for ``add``/``replace`` (all presize emits); raises on error."""
    doc = json.loads(json.dumps(doc))
    for op in ops:
        assert op["op"] in ("add", "replace"), op
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = doc
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = op["value"]
        else:
            if op["op"] == "replace":
                assert last in target, op
            target[last] = op["value"]
    return doc


def decode_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    patch = response["response"].get("patch")
    if patch is None:
        return []
    assert response["response"]["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(patch))
    return ops


def _cpu(value: Any) -> float | None:
    return None if value is None else parse_cpu(value)


def _mem(value: Any) -> float | None:
    return None if value is None else parse_bytes(value)


def _amounts(c: dict[str, Any]) -> Amounts:
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    cpu, mem = _cpu, _mem
    return Amounts(
        cpu(req.get("cpu")), cpu(lim.get("cpu")), mem(req.get("memory")), mem(lim.get("memory"))
    )


def qos_of(p: dict[str, Any]) -> QoS:
    spec = p["spec"]
    return qos_class([_amounts(c) for c in spec.get("initContainers", []) + spec["containers"]])


class FixedSnapshot:
    """A snapshot source that never changes (the boundary the server reads)."""

    def __init__(self, snapshot: SnapshotIndex | None) -> None:
        self._snapshot = snapshot

    @property
    def current(self) -> SnapshotIndex | None:
        return self._snapshot


def make_webhook(snapshot: SnapshotIndex | None = None, **server: float) -> Webhook:
    return Webhook(
        snapshots=FixedSnapshot(snapshot if snapshot is not None else index()),
        namespaces=StaticNamespaces(),
        settings=MutateSettings(),
        metrics=WebhookMetrics(),
        server=ServerSettings(**server),  # type: ignore[arg-type]
        clock=lambda: NOW,
    )
