"""The workload a pod belongs to, from its own metadata only (pure, no API lookups).

The controller keys profiles by the top of the owner chain (Deployment, StatefulSet,
DaemonSet, CronJob, Job, bare pod). At admission time the webhook sees only the pod, whose
``ownerReferences`` name the *direct* owner, so two steps up the chain are inferred by name,
the way the built-in controllers build names:

* a ReplicaSet made by a Deployment is called ``<deployment>-<pod-template-hash>``; the pod
  carries the hash as the ``pod-template-hash`` label, and the hash uses Kubernetes' "safe"
  alphabet (no vowels, no 0/1/3), up to 10 characters;
* a Job made by a CronJob is called ``<cronjob>-<scheduled time in minutes since the epoch>``.

Name inference can be wrong (a hand-made ReplicaSet named like a hash, a Job named
``backup-20240101``), so :func:`workload_candidates` returns candidates most-specific first and
the caller takes the first one the snapshot has a profile for. A wrong guess then costs
nothing unless a workload with exactly that inferred name also exists.

A pod without an owner is its own workload. If it has only ``generateName`` (no final name
yet), the stem without the trailing dash stands in for the name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from presize.model import OwnerKind, WorkloadKey

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"

_HASH_SUFFIX = re.compile(r"^(?P<stem>.+)-(?P<hash>[bcdfghjklmnpqrstvwxz2456789]{1,10})$")
_CRONJOB_SUFFIX = re.compile(r"^(?P<stem>.+)-(?P<minutes>[0-9]{8,10})$")
_DIRECT_KINDS = {
    "StatefulSet": OwnerKind.STATEFULSET,
    "DaemonSet": OwnerKind.DAEMONSET,
    "Deployment": OwnerKind.DEPLOYMENT,
    "CronJob": OwnerKind.CRONJOB,
}


def _controller_ref(metadata: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner reference marked ``controller: true``, else the first well-formed one."""
    refs = metadata.get("ownerReferences")
    if not isinstance(refs, list):
        return None
    valid = [
        r
        for r in refs
        if isinstance(r, Mapping) and isinstance(r.get("kind"), str) and r.get("name")
    ]
    for ref in valid:
        if ref.get("controller") is True:
            return ref
    return valid[0] if valid else None


def _replicaset_candidates(namespace: str, rs_name: str, labels: object) -> list[WorkloadKey]:
    candidates: list[WorkloadKey] = []
    template_hash = labels.get(POD_TEMPLATE_HASH_LABEL) if isinstance(labels, Mapping) else None
    if isinstance(template_hash, str) and template_hash and rs_name.endswith(f"-{template_hash}"):
        stem = rs_name[: -len(template_hash) - 1]
        candidates.append(WorkloadKey(namespace, OwnerKind.DEPLOYMENT, stem))
    elif match := _HASH_SUFFIX.match(rs_name):
        candidates.append(WorkloadKey(namespace, OwnerKind.DEPLOYMENT, match["stem"]))
    candidates.append(WorkloadKey(namespace, OwnerKind.REPLICASET, rs_name))
    return candidates


def _job_candidates(namespace: str, job_name: str) -> list[WorkloadKey]:
    candidates: list[WorkloadKey] = []
    if match := _CRONJOB_SUFFIX.match(job_name):
        candidates.append(WorkloadKey(namespace, OwnerKind.CRONJOB, match["stem"]))
    candidates.append(WorkloadKey(namespace, OwnerKind.JOB, job_name))
    return candidates


def workload_candidates(pod: Mapping[str, Any], namespace: str) -> list[WorkloadKey]:
    """Workloads ``pod`` may belong to, most likely first; empty if nothing identifies it.

    >>> pod = {"metadata": {"ownerReferences": [
    ...     {"kind": "ReplicaSet", "name": "web-7d9f8b6c5d", "controller": True}]}}
    >>> [str(k) for k in workload_candidates(pod, "shop")]
    ['shop/Deployment/web', 'shop/ReplicaSet/web-7d9f8b6c5d']
    """
    metadata = pod.get("metadata")
    if not isinstance(metadata, Mapping):
        return []
    ref = _controller_ref(metadata)
    if ref is not None:
        kind, owner = ref["kind"], str(ref["name"])
        if kind == "ReplicaSet":
            return _replicaset_candidates(namespace, owner, metadata.get("labels"))
        if kind == "Job":
            return _job_candidates(namespace, owner)
        if kind in _DIRECT_KINDS:
            return [WorkloadKey(namespace, _DIRECT_KINDS[kind], owner)]
        return []  # a custom controller: the controller has no profile keyed by it
    name = metadata.get("name")
    if isinstance(name, str) and name:
        return [WorkloadKey(namespace, OwnerKind.POD, name)]
    stem = metadata.get("generateName")
    if isinstance(stem, str) and stem.rstrip("-"):
        return [WorkloadKey(namespace, OwnerKind.POD, stem.rstrip("-"))]
    return []
