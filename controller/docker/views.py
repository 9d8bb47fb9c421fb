"""Engine API answers → the orchestrator's views, and Docker's label rules. Pure.

What a pod is in Docker (``docs/docker.md`` has the full table):

* a **running Swarm task**: ``PodRef(namespace, task name, uid=container id, node=hostname)``,
  workload ``WorkloadKey(namespace, SWARM_SERVICE, service name)``, one container named after
  the service. ``containers`` is the service's current ``TaskTemplate.Resources``, ``applied``
  the task's own copy: they differ while Swarm rolls an update through.
* a **standalone container** (no ``com.docker.swarm.task.id`` label): ``PodRef(namespace,
  container name, uid=container id, node=engine host)``, workload ``(namespace, CONTAINER,
  container name)``; ``applied`` equals ``containers`` (Docker updates synchronously).

The namespace is read from the *container* labels, so that the node agent, which sees only
containers, names a pod exactly as the controller does: ``presize.io/namespace``, else the
stack's ``com.docker.stack.namespace``, else ``swarm`` for tasks and ``docker`` for standalone
containers.

Opt-in is per workload (service labels, or container labels): ``presize.io/enabled=true``.
A namespace with at least one opted-in workload is managed at the controller's default mode;
a workload's own ``presize.io/mode`` becomes a selector policy (``PolicyBook`` resolves the pod's
labels against it), so services in one namespace can have different modes. Workloads in a
managed namespace that did not opt in, or that carry ``presize.io/exclude=true``, are marked
``excluded``; an unknown mode value is pinned to ``off`` by a policy of its own.

Resources: CPU in cores from ``NanoCPUs``/``NanoCpus`` or ``CpuQuota/CpuPeriod``; the CPU
request of a standalone container from ``CpuShares/1024`` (the kubelet's mapping); memory from
``MemoryBytes``/``Memory`` and ``MemoryReservation``. Zero means unset (``None``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from controller.orchestrator import (
    ClusterState,
    ContainerResources,
    NodeView,
    PodView,
    ResizeStatus,
    WorkloadView,
)
from presize.model import Mode, OwnerKind, PodRef, WorkloadKey

JSON = dict[str, Any]

ENABLED = "presize.io/enabled"
MODE = "presize.io/mode"
EXCLUDE = "presize.io/exclude"
NAMESPACE = "presize.io/namespace"
STACK = "com.docker.stack.namespace"
TASK_ID = "com.docker.swarm.task.id"
SWARM_NAMESPACE = "swarm"
DOCKER_NAMESPACE = "docker"
NANO = 1e9
SHARES_PER_CORE = 1024
DEFAULT_CFS_PERIOD = 100_000


def parse_time(value: object) -> float:
    """Docker's RFC 3339 times with nanoseconds (``2026-01-02T03:04:05.123456789Z``) or epoch
    seconds, as Unix seconds; 0.0 when absent or unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return 0.0
    text = value.replace("Z", "+00:00")
    if "." in text:  # fromisoformat takes at most microseconds
        head, _, rest = text.partition(".")
        zone = rest.lstrip("0123456789")
        digits = rest[: len(rest) - len(zone)]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


def _positive(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _cores(nano: object) -> float | None:
    n = _positive(nano)
    return None if n is None else n / NANO


def labels_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    raw = (obj or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def namespace_for(container_labels: Mapping[str, str], *, swarm: bool) -> str:
    """The pseudo-namespace of a workload, from its container labels (see module doc)."""
    for key in (NAMESPACE, STACK):
        if container_labels.get(key):
            return container_labels[key]
    return SWARM_NAMESPACE if swarm else DOCKER_NAMESPACE


def opted_in(labels: Mapping[str, str]) -> bool:
    return labels.get(ENABLED, "").lower() == "true" and labels.get(EXCLUDE, "") != "true"


def mode_of(labels: Mapping[str, str]) -> Mode | None:
    """The workload's own mode label; ``None`` when absent. An unknown value reads as OFF."""
    raw = labels.get(MODE)
    if raw is None:
        return None
    try:
        return Mode(raw.strip().lower())
    except ValueError:
        return Mode.OFF


def resources_from_swarm(name: str, resources: Mapping[str, Any] | None) -> ContainerResources:
    """A service's or task's ``Resources`` (``Limits``/``Reservations``)."""
    limits = (resources or {}).get("Limits") or {}
    reservations = (resources or {}).get("Reservations") or {}
    return ContainerResources(
        name=name,
        cpu_request=_cores(reservations.get("NanoCPUs")),
        cpu_limit=_cores(limits.get("NanoCPUs")),
        memory_request=_positive(reservations.get("MemoryBytes")),
        memory_limit=_positive(limits.get("MemoryBytes")),
    )


def cpu_limit_of(host_config: Mapping[str, Any]) -> float | None:
    """``NanoCpus``, else ``CpuQuota/CpuPeriod`` (period 100 ms when unset), in cores."""
    if (nano := _cores(host_config.get("NanoCpus"))) is not None:
        return nano
    quota = _positive(host_config.get("CpuQuota"))
    if quota is None:
        return None
    return quota / (_positive(host_config.get("CpuPeriod")) or DEFAULT_CFS_PERIOD)


def resources_from_host_config(
    name: str, host_config: Mapping[str, Any], restarts: int = 0
) -> ContainerResources:
    """A standalone container's ``HostConfig``."""
    shares = _positive(host_config.get("CpuShares"))
    return ContainerResources(
        name=name,
        cpu_request=None if shares is None else shares / SHARES_PER_CORE,
        cpu_limit=cpu_limit_of(host_config),
        memory_request=_positive(host_config.get("MemoryReservation")),
        memory_limit=_positive(host_config.get("Memory")),
        restarts=restarts,
    )


def qos_of(c: ContainerResources) -> str:
    """Kubernetes' QoS classes, read off Docker's values (only used to reason alike)."""
    if (c.cpu_limit, c.memory_limit, c.cpu_request, c.memory_request) == (None,) * 4:
        return "BestEffort"
    if (
        c.cpu_limit is not None
        and c.memory_limit is not None
        and c.cpu_request in (None, c.cpu_limit)
        and c.memory_request in (None, c.memory_limit)
    ):
        return "Guaranteed"
    return "Burstable"


def container_name(inspect: Mapping[str, Any]) -> str:
    names = inspect.get("Names")
    raw = names[0] if isinstance(names, list) and names else inspect.get("Name", "")
    return str(raw).lstrip("/")


def container_pod(inspect: Mapping[str, Any], node: str) -> PodView | None:
    """A standalone container (its ``/containers/{id}/json``); ``None`` for a Swarm task's
    container (the task is the pod) or a container that is not running."""
    config = inspect.get("Config") or {}
    labels = labels_of(config)
    state = inspect.get("State") or {}
    if TASK_ID in labels or not state.get("Running", False):
        return None
    name = container_name(inspect)
    resources = resources_from_host_config(
        name, inspect.get("HostConfig") or {}, int(inspect.get("RestartCount") or 0)
    )
    namespace = namespace_for(labels, swarm=False)
    return PodView(
        ref=PodRef(namespace=namespace, name=name, uid=str(inspect["Id"]), node=node),
        workload=WorkloadKey(namespace, OwnerKind.CONTAINER, name),
        containers=(resources,),
        applied=(resources,),
        qos=qos_of(resources),
        excluded=not opted_in(labels),
        created_at=parse_time(inspect.get("Created")),
        labels=labels,
    )


def task_name(task: Mapping[str, Any], service_name: str) -> str:
    """``<service>.<slot>.<task id>`` (global services: the node id for the slot), which is
    also the task container's name and its ``com.docker.swarm.task.name`` label."""
    slot = task.get("Slot") or task.get("NodeID") or ""
    return f"{service_name}.{slot}.{task.get('ID', '')}"


def service_resize_status(service: Mapping[str, Any]) -> tuple[ResizeStatus, str, float | None]:
    """Swarm's ``UpdateStatus`` as a resize status: rolling → IN_PROGRESS, paused → ERROR."""
    update = service.get("UpdateStatus") or {}
    state = str(update.get("State") or "")
    message = str(update.get("Message") or "")
    since = parse_time(update.get("StartedAt")) or None
    if state in ("updating", "rollback_started"):
        return ResizeStatus.IN_PROGRESS, message, since
    if state in ("paused", "rollback_paused"):
        return ResizeStatus.ERROR, message, since
    return ResizeStatus.NONE, message if state else "", since if state else None


def service_labels(service: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(the service's own labels, its tasks' container labels)."""
    spec = service.get("Spec") or {}
    container_spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return labels_of(spec), labels_of(container_spec)


def task_pod(
    task: Mapping[str, Any], service: Mapping[str, Any], node_hostname: str
) -> PodView | None:
    """A running task of ``service``; ``None`` until it runs with a container."""
    status = task.get("Status") or {}
    cid = (status.get("ContainerStatus") or {}).get("ContainerID")
    if status.get("State") != "running" or not cid:
        return None
    spec = service.get("Spec") or {}
    name = str(spec.get("Name", ""))
    own, container_labels = service_labels(service)
    labels = {**container_labels, **own}
    namespace = namespace_for(container_labels, swarm=True)
    wanted = resources_from_swarm(name, (spec.get("TaskTemplate") or {}).get("Resources"))
    applied = resources_from_swarm(name, (task.get("Spec") or {}).get("Resources"))
    resize, message, since = service_resize_status(service)
    return PodView(
        ref=PodRef(namespace, task_name(task, name), uid=str(cid), node=node_hostname),
        workload=WorkloadKey(namespace, OwnerKind.SWARM_SERVICE, name),
        containers=(wanted,),
        applied=(applied,),
        qos=qos_of(wanted),
        resize=resize,
        resize_message=message,
        resize_since=since,
        excluded=not opted_in(labels),
        created_at=parse_time(task.get("CreatedAt")),
        labels=labels,
    )


def service_workload(service: Mapping[str, Any], running_tasks: int) -> WorkloadView:
    spec = service.get("Spec") or {}
    _, container_labels = service_labels(service)
    name = str(spec.get("Name", ""))
    replicated = (spec.get("Mode") or {}).get("Replicated")
    replicas = int(replicated.get("Replicas") or 0) if replicated is not None else running_tasks
    key = WorkloadKey(namespace_for(container_labels, swarm=True), OwnerKind.SWARM_SERVICE, name)
    return WorkloadView(key=key, replicas=replicas, ready=running_tasks)


def _requested(pods: Iterable[PodView], node: str) -> tuple[float, float]:
    cpu = mem = 0.0
    for pod in pods:
        if pod.ref.node == node:
            cpu += sum(c.cpu_request or 0.0 for c in pod.containers)
            mem += sum(c.memory_request or 0.0 for c in pod.containers)
    return cpu, mem


def schedulable(node: Mapping[str, Any]) -> bool:
    """Whether Swarm may place new tasks on ``node`` (a field the engine leaves out counts
    as yes)."""
    state = (node.get("Status") or {}).get("State", "ready")
    availability = (node.get("Spec") or {}).get("Availability", "active")
    return bool(state == "ready" and availability == "active")


def node_views(
    nodes: Sequence[Mapping[str, Any]], info: Mapping[str, Any], pods: Sequence[PodView]
) -> tuple[NodeView, ...]:
    """Swarm nodes (``Description.Resources``) that can take tasks (ready, and not paused or
    drained) when there are any, else the engine's host (``/info`` ``NCPU``/``MemTotal``);
    requested = what the pods on it reserve."""
    out: list[NodeView] = []
    for node in nodes:
        if not schedulable(node):
            continue
        description = node.get("Description") or {}
        resources = description.get("Resources") or {}
        name = str(description.get("Hostname", node.get("ID", "")))
        cpu, mem = _requested(pods, name)
        out.append(
            NodeView(
                name=name,
                cpu_allocatable=(_cores(resources.get("NanoCPUs")) or 0.0),
                memory_allocatable=(_positive(resources.get("MemoryBytes")) or 0.0),
                cpu_requested=cpu,
                memory_requested=mem,
            )
        )
    if not out and info:
        name = str(info.get("Name", ""))
        cpu, mem = _requested(pods, name)
        out.append(
            NodeView(
                name=name,
                cpu_allocatable=float(info.get("NCPU") or 0),
                memory_allocatable=float(info.get("MemTotal") or 0),
                cpu_requested=cpu,
                memory_requested=mem,
            )
        )
    return tuple(out)


def modes_and_policies(
    pods: Sequence[PodView], default: Mode
) -> tuple[dict[str, Mode], dict[str, list[dict[str, object]]]]:
    """``namespace_modes`` (every namespace with an opted-in pod, at ``default``) and one
    selector policy per mode label in use there (see the module doc)."""
    modes: dict[str, Mode] = {}
    labels_seen: dict[str, set[str]] = {}
    for pod in pods:
        if pod.excluded:
            continue
        modes[pod.ref.namespace] = default
        if MODE in pod.labels:
            labels_seen.setdefault(pod.ref.namespace, set()).add(pod.labels[MODE])
    policies: dict[str, list[dict[str, object]]] = {}
    valid = [m.value for m in Mode]
    for namespace, values in sorted(labels_seen.items()):
        items: list[dict[str, object]] = []
        for value in sorted(values):
            if value in valid:
                selector: dict[str, object] = {"matchLabels": {MODE: value}}
                mode = value
            else:
                selector = {"matchExpressions": [
                    {"key": MODE, "operator": "Exists"},
                    {"key": MODE, "operator": "NotIn", "values": valid},
                ]}  # fmt: skip
                mode = Mode.OFF.value
            items.append(
                {"name": f"docker-mode-{mode}", "spec": {"mode": mode, "selector": selector}}
            )
        policies[namespace] = items
    return modes, policies


def cluster_state(
    *,
    taken_at: float,
    info: Mapping[str, Any],
    containers: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    tasks: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    default_mode: Mode,
) -> ClusterState:
    """The whole snapshot from the raw answers: inspected containers, services, running
    tasks, nodes and ``/info``."""
    host = str(info.get("Name", ""))
    hostnames = {
        str(n.get("ID")): str((n.get("Description") or {}).get("Hostname", "")) for n in nodes
    }
    pods = [p for c in containers if (p := container_pod(c, host)) is not None]
    by_service = {str(s.get("ID")): s for s in services}
    running: dict[str, int] = {}
    for task in tasks:
        service = by_service.get(str(task.get("ServiceID")))
        if service is None:
            continue
        pod = task_pod(task, service, hostnames.get(str(task.get("NodeID")), host))
        if pod is not None:
            pods.append(pod)
            running[str(service.get("ID"))] = running.get(str(service.get("ID")), 0) + 1
    workloads = [service_workload(s, running.get(str(s.get("ID")), 0)) for s in services]
    workloads += [
        WorkloadView(p.workload, 1, 1) for p in pods if p.workload.kind is OwnerKind.CONTAINER
    ]
    modes, policies = modes_and_policies(pods, default_mode)
    return ClusterState(
        taken_at=taken_at,
        pods=tuple(pods),
        nodes=node_views(nodes, info, pods),
        workloads=tuple(workloads),
        namespace_modes=modes,
        policies=policies,
    )
