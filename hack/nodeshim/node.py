"""The shim's fake Node objects: registration, Ready status and the Lease heartbeat.

Why the shim, not kwok, keeps these nodes alive: kwok (``--manage-nodes-with-label-selector=
type=kwok`` in ``hack/cluster/localcluster.py``) handles the pods of every node it manages, and
a kwok Stage can only select on the *pod* itself, not on the node it is bound to. Leaving kwok
in charge of a shim node would need every pod on it to carry a marker from the moment it is
created, or kwok would race the shim for its status (kwok's ``pod-ready`` writes
``containerStatuses`` without container IDs, and our ``presize-pod-resize`` stage would answer
resizes instantly). A shim node therefore does **not** carry ``type=kwok``: kwok ignores the
node and all its pods, and the shim does the kubelet's node work itself, which is small: the
``Ready`` condition (plus the three pressure conditions), addresses, capacity, and renewing the
node's Lease in ``kube-node-lease`` (what the node lifecycle controller watches).

Shim nodes carry the label ``presize.io/nodeshim=true`` and, by default, the taint
``presize.io/nodeshim=true:NoSchedule``, so pods of other tests sharing the cluster are never
scheduled onto them (and never get real cgroups). Pods meant for a shim node set
``spec.nodeName`` or tolerate the taint.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

SHIM_LABEL: Final = "presize.io/nodeshim"
LOOPBACK: Final = "127.0.0.1"
KWOK_LABEL: Final = ("type", "kwok")
SHIM_VERSION: Final = "v1.35.8-presize-shim"


@dataclass(frozen=True)
class NodeSpec:
    """A shim node's capacity (= allocatable), extra labels and whether it is tainted."""

    cpu: str = "4"
    memory: str = "8Gi"
    pods: str = "110"
    labels: Mapping[str, str] = field(default_factory=dict)
    taint: bool = True


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """A ``MicroTime`` (Lease ``renewTime``)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_manifest(name: str, spec: NodeSpec) -> dict[str, Any]:
    """The Node object the shim registers (status included: nodes accept it on create)."""
    resources = {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods}
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                SHIM_LABEL: "true",
                **spec.labels,
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {"capacity": resources, "allocatable": dict(resources)},
    }
    if spec.taint:
        node["spec"]["taints"] = [{"key": SHIM_LABEL, "value": "true", "effect": "NoSchedule"}]
    return node


_CONDITIONS: Final = (
    ("Ready", "True", "KubeletReady", "presize node shim is posting ready status"),
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
)


def node_status(name: str, existing: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The status a kubelet posts: conditions with a fresh heartbeat, addresses, node info."""
    old = {c.get("type"): c for c in existing.get("conditions") or []}
    conditions = []
    for kind, status, reason, message in _CONDITIONS:
        prev = old.get(kind)
        same = prev is not None and prev.get("status") == status
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": prev.get("lastTransitionTime") if same and prev else now,
            }
        )
    return {
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": LOOPBACK},
            {"type": "Hostname", "address": name},
        ],
        "nodeInfo": {
            "architecture": "amd64",
            "operatingSystem": "linux",
            "kubeletVersion": SHIM_VERSION,
            "kubeProxyVersion": SHIM_VERSION,
            "containerRuntimeVersion": "containerd://presize-shim",
            "kernelVersion": "",
            "osImage": "presize node shim",
            "bootID": "",
            "machineID": "",
            "systemUUID": "",
        },
    }


def lease_manifest(name: str, node_uid: str, duration_s: int, now: str) -> dict[str, Any]:
    """The node's Lease in ``kube-node-lease``, owned by the Node like the kubelet's."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "kube-node-lease",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
            ],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration_s, "renewTime": now},
    }


def kwok_managed(node: Mapping[str, Any]) -> bool:
    key, value = KWOK_LABEL
    return bool((node.get("metadata", {}).get("labels") or {}).get(key) == value)
