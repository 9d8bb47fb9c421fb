"""Kubernetes objects (as the JSON the API server sends) to the orchestrator's frozen views.

Pure: no client, no I/O, no clock. :mod:`controller.kube` feeds each watched object through
these functions once, when its event arrives, so a decision cycle never parses a pod; and the
parsing is table-tested without a cluster.

What is read, and why it is read that way:

* **Requests and limits** per container from ``spec.containers[].resources``; what the node
  runs from ``status.containerStatuses[].resources`` (``applied``), which differs from the spec
  while a resize is pending or in progress.
* **Resize state** from the pod conditions the kubelet sets since in-place resize went GA
  (1.35): ``PodResizePending`` with reason ``Deferred`` or ``Infeasible``, and
  ``PodResizeInProgress`` (reason ``Error`` when the kubelet failed to apply it). A pending
  resize is reported before one in progress: the newest ask is what the loop must react to.
  With it the generations that tell a current condition from a stale one:
  ``metadata.generation`` (one more per resize PATCH), ``status.observedGeneration`` and the
  condition's ``observedGeneration``; :mod:`controller.resizestate` reads them.
* **What a pod holds on its node** (:func:`pod_node_requests`) the way the scheduler counts it:
  the larger of the regular containers plus restartable init containers (sidecars) and the
  largest single init container, plus ``spec.overhead``; pod-level ``spec.resources`` wins when
  set. Per container it takes the larger of the spec and what the node reports as applied, as
  the scheduler does while a resize is in flight (a shrink frees nothing until it is done).
* **Which workload** a pod belongs to (:func:`resolve_workload`): the controller owner, then the
  owner's own controller owner (ReplicaSet → Deployment, Job → CronJob) from the caller's cache
  of ReplicaSets and Jobs; when the owner is not (yet) cached, the name-based guess of
  :func:`presize.owners.workload_candidates`.

Malformed values (a quantity that does not parse, a missing field) read as "not set" rather
than raising: one odd pod must not stop the view of 5,000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.orchestrator import (
    ContainerResources,
    NodeView,
    PodView,
    ResizeStatus,
    WorkloadView,
)
from presize.errors import QuantityError
from presize.model import Mode, OwnerKind, PodRef, WorkloadKey
from presize.owners import workload_candidates
from presize.units import parse_bytes, parse_cpu

ENABLED_LABEL = "presize.io/enabled"
MODE_ANNOTATION = "presize.io/mode"
EXCLUDE_ANNOTATION = "presize.io/exclude"

#: Owner kinds that are workloads of their own, by the ``kind`` in an owner reference.
WORKLOAD_KINDS: Mapping[str, OwnerKind] = {
    "Deployment": OwnerKind.DEPLOYMENT,
    "StatefulSet": OwnerKind.STATEFULSET,
    "DaemonSet": OwnerKind.DAEMONSET,
    "ReplicaSet": OwnerKind.REPLICASET,
    "Job": OwnerKind.JOB,
    "CronJob": OwnerKind.CRONJOB,
}

#: ``(kind, namespace, name)`` of a ReplicaSet or Job → its controller owner ``(kind, name)``,
#: or ``None`` when it exists and has none. A key absent means "not known (yet)".
ParentIndex = Mapping[tuple[str, str, str], tuple[str, str] | None]

_TERMINATED_PHASES = frozenset({"Succeeded", "Failed"})


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(obj.get("metadata"))


def parse_time(value: object) -> float | None:
    """An RFC 3339 timestamp (``2026-05-01T10:00:00Z``) as Unix seconds, or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _cpu(value: object) -> float | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return parse_cpu(value)
        except QuantityError:
            return None
    return None


def _bytes(value: object) -> float | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return parse_bytes(value)
        except QuantityError:
            return None
    return None


def _restart_policies(container: Mapping[str, Any]) -> tuple[bool, bool]:
    cpu = memory = False
    for entry in map(_map, _list(container.get("resizePolicy"))):
        restart = entry.get("restartPolicy") == "RestartContainer"
        if entry.get("resourceName") == "cpu":
            cpu = restart
        elif entry.get("resourceName") == "memory":
            memory = restart
    return cpu, memory


def container_resources(
    name: str,
    resources: object,
    *,
    policy: Mapping[str, Any] | None = None,
    restarts: int = 0,
    oom_killed_at: float | None = None,
) -> ContainerResources:
    """One container's requests and limits from a ``resources`` object (spec or status)."""
    res = _map(resources)
    requests, limits = _map(res.get("requests")), _map(res.get("limits"))
    cpu_restart, memory_restart = _restart_policies(policy or {})
    return ContainerResources(
        name=name,
        cpu_request=_cpu(requests.get("cpu")),
        cpu_limit=_cpu(limits.get("cpu")),
        memory_request=_bytes(requests.get("memory")),
        memory_limit=_bytes(limits.get("memory")),
        cpu_restart=cpu_restart,
        memory_restart=memory_restart,
        restarts=restarts,
        oom_killed_at=oom_killed_at,
    )


def _oom_kills(status: Mapping[str, Any]) -> dict[str, float]:
    """When each container last ended in a kernel OOM kill, from the kubelet's report
    (``lastState.terminated.reason: OOMKilled``).

    Why from the API and not only from the agent's cgroup counters: on cgroup v1 the kernel
    counts an OOM kill only in the container's own cgroup (nothing propagates to the pod's), and
    the kubelet removes that cgroup as it restarts the container; the agent, reading its slow
    counters every few seconds, can miss it entirely (seen on the real node: a container
    OOM-killed four times, never reported)."""
    out: dict[str, float] = {}
    for cs in map(_map, _list(status.get("containerStatuses"))):
        ended = _map(_map(cs.get("lastState")).get("terminated"))
        if ended.get("reason") == "OOMKilled" and isinstance(cs.get("name"), str):
            at = parse_time(ended.get("finishedAt"))
            if at is not None:
                out[cs["name"]] = at
    return out


def _restart_counts(status: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cs in map(_map, _list(status.get("containerStatuses"))):
        count = cs.get("restartCount")
        if isinstance(cs.get("name"), str) and isinstance(count, int):
            counts[cs["name"]] = count
    return counts


def _generation(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _resize_state(
    status: Mapping[str, Any],
) -> tuple[ResizeStatus, str, float | None, int | None]:
    """The resize condition that matters: its state, message, transition time and the pod
    generation it speaks of (``observedGeneration``)."""
    pending = in_progress = None
    for cond in map(_map, _list(status.get("conditions"))):
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "PodResizePending":
            pending = cond
        elif cond.get("type") == "PodResizeInProgress":
            in_progress = cond
    if pending is not None:
        reason = pending.get("reason")
        state = ResizeStatus.INFEASIBLE if reason == "Infeasible" else ResizeStatus.DEFERRED
        return (
            state,
            str(pending.get("message") or ""),
            parse_time(pending.get("lastTransitionTime")),
            _generation(pending.get("observedGeneration")),
        )
    if in_progress is not None:
        state = (
            ResizeStatus.ERROR if in_progress.get("reason") == "Error" else ResizeStatus.IN_PROGRESS
        )
        return (
            state,
            str(in_progress.get("message") or ""),
            parse_time(in_progress.get("lastTransitionTime")),
            _generation(in_progress.get("observedGeneration")),
        )
    return ResizeStatus.NONE, "", None, None


def qos_class(containers: Sequence[ContainerResources]) -> str:
    """The QoS class Kubernetes would give these containers (used when status lacks it)."""
    if not containers:
        return "BestEffort"
    if all(
        c.cpu_request is None
        and c.cpu_limit is None
        and c.memory_request is None
        and c.memory_limit is None
        for c in containers
    ):
        return "BestEffort"
    guaranteed = all(
        c.cpu_limit is not None
        and c.memory_limit is not None
        and (c.cpu_request is None or c.cpu_request == c.cpu_limit)
        and (c.memory_request is None or c.memory_request == c.memory_limit)
        for c in containers
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _labels(meta: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in _map(meta.get("labels")).items()}


def pod_view(pod: Mapping[str, Any], workload: WorkloadKey) -> PodView:
    """The loop's view of one pod, attributed to ``workload``."""
    meta, spec, status = metadata(pod), _map(pod.get("spec")), _map(pod.get("status"))
    restarts, ooms = _restart_counts(status), _oom_kills(status)
    containers = tuple(
        container_resources(
            str(c.get("name", "")),
            c.get("resources"),
            policy=c,
            restarts=restarts.get(str(c.get("name", "")), 0),
            oom_killed_at=ooms.get(str(c.get("name", ""))),
        )
        for c in map(_map, _list(spec.get("containers")))
    )
    applied = tuple(
        container_resources(
            str(cs.get("name", "")),
            cs["resources"],
            restarts=restarts.get(str(cs.get("name", "")), 0),
        )
        for cs in map(_map, _list(status.get("containerStatuses")))
        if isinstance(cs.get("resources"), Mapping)
    )
    resize, message, since, resize_generation = _resize_state(status)
    annotations = _map(meta.get("annotations"))
    qos = status.get("qosClass")
    return PodView(
        ref=PodRef(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            node=str(spec.get("nodeName") or ""),
        ),
        workload=workload,
        containers=containers,
        applied=applied,
        qos=qos if isinstance(qos, str) and qos else qos_class(containers),
        running=status.get("phase") == "Running" and not meta.get("deletionTimestamp"),
        resize=resize,
        resize_message=message,
        resize_since=since,
        generation=_generation(meta.get("generation")),
        observed_generation=_generation(status.get("observedGeneration")),
        resize_generation=resize_generation,
        excluded=str(annotations.get(EXCLUDE_ANNOTATION, "")).lower() == "true",
        created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
        labels=_labels(meta),
    )


# --------------------------------------------------------------------------------------------
# owners and workloads


def controller_owner(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(kind, name)`` of the owner reference marked ``controller: true``, else ``None``."""
    for ref in map(_map, _list(metadata(obj).get("ownerReferences"))):
        if ref.get("controller") is True and isinstance(ref.get("kind"), str) and ref.get("name"):
            return str(ref["kind"]), str(ref["name"])
    return None


def resolve_workload(pod: Mapping[str, Any], parents: ParentIndex) -> WorkloadKey | None:
    """The workload at the top of ``pod``'s owner chain, or ``None`` for a custom controller.

    A ReplicaSet or Job in ``parents`` decides for certain (its own controller owner, or
    itself); one not in it falls back to the name-based guess, which a later call (when the
    owner has been seen) corrects.
    """
    meta = metadata(pod)
    namespace = str(meta.get("namespace", ""))
    owner = controller_owner(pod)
    if owner is not None and owner[0] in ("ReplicaSet", "Job"):
        key = (owner[0], namespace, owner[1])
        if key in parents:
            parent = parents[key]
            if parent is not None and parent[0] in WORKLOAD_KINDS:
                return WorkloadKey(namespace, WORKLOAD_KINDS[parent[0]], parent[1])
            if parent is None:
                return WorkloadKey(namespace, WORKLOAD_KINDS[owner[0]], owner[1])
            return None  # owned by a custom controller
    candidates = workload_candidates(pod, namespace)
    return candidates[0] if candidates else None


def replica_counts(kind: str, obj: Mapping[str, Any]) -> tuple[int, int]:
    """``(desired, ready)`` replicas of a workload object of ``kind``."""
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))

    def num(mapping: Mapping[str, Any], field: str, default: int = 0) -> int:
        value = mapping.get(field)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    if kind == "DaemonSet":
        return num(status, "desiredNumberScheduled"), num(status, "numberReady")
    if kind == "Job":
        return num(spec, "parallelism", 1), num(status, "ready", num(status, "active"))
    return num(spec, "replicas", 1), num(status, "readyReplicas")


def template_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    """Labels of the pods a workload creates (``spec.template.metadata.labels``)."""
    template = _map(_map(obj.get("spec")).get("template"))
    return _labels(_map(template.get("metadata")))


def workload_view(
    key: WorkloadKey,
    obj: Mapping[str, Any],
    *,
    autoscaled: bool = False,
    disruptions_allowed: int | None = None,
) -> WorkloadView:
    replicas, ready = replica_counts(key.kind.value, obj)
    return WorkloadView(key, replicas, ready, autoscaled, disruptions_allowed)


def selector_matches(selector: object, labels: Mapping[str, str]) -> bool:
    """Whether a ``metav1.LabelSelector`` selects ``labels``; ``None`` selects nothing, ``{}``
    everything (the policy/v1 PodDisruptionBudget meaning)."""
    if not isinstance(selector, Mapping):
        return False
    for key, value in _map(selector.get("matchLabels")).items():
        if labels.get(str(key)) != str(value):
            return False
    for expr in map(_map, _list(selector.get("matchExpressions"))):
        key, op = str(expr.get("key", "")), expr.get("operator")
        values = {str(v) for v in _list(expr.get("values"))}
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # unknown operator: select nothing rather than too much
    return True


def hpa_target(hpa: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(kind, name)`` an autoscaling/v2 HorizontalPodAutoscaler scales."""
    ref = _map(_map(hpa.get("spec")).get("scaleTargetRef"))
    kind, name = ref.get("kind"), ref.get("name")
    return (kind, name) if isinstance(kind, str) and isinstance(name, str) and name else None


def pdb_budget(pdb: Mapping[str, Any]) -> tuple[object, int]:
    """``(selector, disruptionsAllowed)`` of a policy/v1 PodDisruptionBudget (0 until the
    disruption controller has computed it: refuse rather than guess)."""
    allowed = _map(pdb.get("status")).get("disruptionsAllowed")
    return _map(pdb.get("spec")).get("selector"), allowed if isinstance(allowed, int) else 0


def namespace_mode(namespace: Mapping[str, Any], default: Mode) -> Mode | None:
    """The mode of an opted-in namespace; ``None`` when it has not opted in."""
    meta = metadata(namespace)
    if _map(meta.get("labels")).get(ENABLED_LABEL) != "true":
        return None
    raw = str(_map(meta.get("annotations")).get(MODE_ANNOTATION, "")).strip().lower()
    try:
        return Mode(raw) if raw else default
    except ValueError:
        return default  # a typo never turns a namespace to auto


# --------------------------------------------------------------------------------------------
# nodes


def node_allocatable(node: Mapping[str, Any]) -> tuple[float, float]:
    """``(cpu cores, memory bytes)`` a node can give to pods."""
    alloc = _map(_map(node.get("status")).get("allocatable"))
    return _cpu(alloc.get("cpu")) or 0.0, _bytes(alloc.get("memory")) or 0.0


def node_view(node: Mapping[str, Any], cpu_requested: float, memory_requested: float) -> NodeView:
    cpu, memory = node_allocatable(node)
    return NodeView(
        str(metadata(node).get("name", "")), cpu, memory, cpu_requested, memory_requested
    )


def _requests(resources: object) -> tuple[float, float]:
    req = _map(_map(resources).get("requests"))
    return _cpu(req.get("cpu")) or 0.0, _bytes(req.get("memory")) or 0.0


def pod_node_requests(pod: Mapping[str, Any]) -> tuple[str, float, float] | None:
    """``(node, cpu, memory)`` a pod holds on its node; ``None`` when it holds nothing there
    (not bound yet, or terminated)."""
    spec, status = _map(pod.get("spec")), _map(pod.get("status"))
    node = spec.get("nodeName")
    if not isinstance(node, str) or not node or status.get("phase") in _TERMINATED_PHASES:
        return None
    actual = {
        str(cs.get("name")): _requests(cs.get("resources"))
        for cs in map(_map, _list(status.get("containerStatuses")))
    }
    # A resize the kubelet found Infeasible will never be held: the node (and the scheduler)
    # count what the containers were given, not the spec. Otherwise the larger of the two
    # (a resize in progress or deferred may take the spec's values any moment).
    infeasible = any(
        c.get("type") == "PodResizePending" and c.get("reason") == "Infeasible"
        for c in map(_map, _list(status.get("conditions")))
    )
    cpu = memory = 0.0
    for c in map(_map, _list(spec.get("containers"))):
        want_cpu, want_mem = _requests(c.get("resources"))
        name = str(c.get("name"))
        have_cpu, have_mem = actual.get(name, (0.0, 0.0))
        if infeasible and name in actual:
            want_cpu, want_mem = have_cpu, have_mem
        cpu += max(want_cpu, have_cpu)
        memory += max(want_mem, have_mem)
    init_cpu = init_mem = sidecar_cpu = sidecar_mem = 0.0
    for c in map(_map, _list(spec.get("initContainers"))):
        c_cpu, c_mem = _requests(c.get("resources"))
        if c.get("restartPolicy") == "Always":  # a sidecar: runs beside the others
            sidecar_cpu += c_cpu
            sidecar_mem += c_mem
        else:  # runs alone, after the sidecars declared before it have started
            init_cpu = max(init_cpu, sidecar_cpu + c_cpu)
            init_mem = max(init_mem, sidecar_mem + c_mem)
    cpu, memory = max(cpu + sidecar_cpu, init_cpu), max(memory + sidecar_mem, init_mem)
    pod_cpu, pod_mem = _requests(spec.get("resources"))
    overhead = _map(spec.get("overhead"))
    return (
        node,
        (pod_cpu or cpu) + (_cpu(overhead.get("cpu")) or 0.0),
        (pod_mem or memory) + (_bytes(overhead.get("memory")) or 0.0),
    )
