"""What the controller's decision logic needs from an orchestrator, and nothing more.

The control loop sees pods, nodes and workloads as the frozen values below and acts through
:class:`Orchestrator`: resize a pod's containers, evict a pod, record an event. It never sees
a Kubernetes object or a Docker API answer, so the same loop drives Kubernetes
(:mod:`controller.kube`) and Docker Swarm or standalone Docker (:mod:`controller.docker`).

Units are :mod:`presize.model`'s: CPU in cores, memory in bytes, times in Unix seconds.
``None`` for a request or a limit means "not set" (Kubernetes: absent from the spec; Docker:
0, unlimited).

Why a snapshot (:meth:`Orchestrator.state`) rather than calls per pod: a decision cycle over
5,000 pods must not make 5,000 API calls. Each adapter keeps its view current (a watch for
Kubernetes, event stream or polling for Docker) and hands out an immutable snapshot; only
actions go to the API.

Actions return an :class:`ActionResult` instead of raising for the expected failures (the pod
is gone, a PodDisruptionBudget refuses an eviction, the API is down): those are outcomes the
loop records and reasons about, not crashes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from presize.model import Mode, PodRef, WorkloadKey


class ResizeStatus(StrEnum):
    """Where the node is with the last resize asked of a pod.

    Kubernetes reports these as the ``PodResizePending`` condition (reason ``Deferred`` or
    ``Infeasible``) and the ``PodResizeInProgress`` condition; Docker applies a container
    update synchronously, so its adapter reports only ``NONE`` or ``ERROR``.
    """

    NONE = "None"  # nothing pending: the spec is what the node runs
    DEFERRED = "Deferred"  # the node cannot fit it now, may later
    INFEASIBLE = "Infeasible"  # the node can never fit it
    IN_PROGRESS = "InProgress"  # the node is applying it
    ERROR = "Error"  # the node tried and failed


@dataclass(frozen=True, slots=True)
class ContainerResources:
    """One container's requests and limits, and how it may be resized.

    ``*_restart``: the container's ``resizePolicy`` asks for a restart when that resource
    changes (Kubernetes ``RestartContainer``); the loop then counts the resize as disruptive.
    """

    name: str
    cpu_request: float | None = None
    cpu_limit: float | None = None
    memory_request: float | None = None
    memory_limit: float | None = None
    cpu_restart: bool = False
    memory_restart: bool = False
    restarts: int = 0
    oom_killed_at: float | None = None  # when the node last saw the kernel OOM-kill it


@dataclass(frozen=True, slots=True)
class PodView:
    """A running pod (or Swarm task, or standalone container) as the loop sees it.

    ``containers`` is what is asked for (the spec); ``applied`` what the node reports it runs
    (Kubernetes ``status.containerStatuses[].resources``), empty when the orchestrator does not
    say. They differ while a resize is pending or in progress.

    ``generation`` counts the changes asked of the pod (Kubernetes ``metadata.generation``:
    one more per resize PATCH), ``observed_generation`` the last one its node has seen
    (``status.observedGeneration``) and ``resize_generation`` the one the resize condition
    speaks of (its ``observedGeneration``). ``None`` where the orchestrator does not count:
    then a state is taken as current. See :mod:`controller.resizestate`.
    """

    ref: PodRef
    workload: WorkloadKey
    containers: tuple[ContainerResources, ...]
    applied: tuple[ContainerResources, ...] = ()
    qos: str = "Burstable"
    running: bool = True
    resize: ResizeStatus = ResizeStatus.NONE
    resize_message: str = ""
    resize_since: float | None = None
    generation: int | None = None
    observed_generation: int | None = None
    resize_generation: int | None = None
    excluded: bool = False
    created_at: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)

    def container(self, name: str) -> ContainerResources | None:
        return next((c for c in self.containers if c.name == name), None)


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node's allocatable capacity and what the pods bound to it request."""

    name: str
    cpu_allocatable: float
    memory_allocatable: float
    cpu_requested: float = 0.0
    memory_requested: float = 0.0

    @property
    def cpu_free(self) -> float:
        return max(self.cpu_allocatable - self.cpu_requested, 0.0)

    @property
    def memory_free(self) -> float:
        return max(self.memory_allocatable - self.memory_requested, 0.0)


@dataclass(frozen=True, slots=True)
class WorkloadView:
    """A workload's replica counts, and whether a horizontal autoscaler owns its size.

    ``disruptions_allowed`` is what the PodDisruptionBudgets covering it allow now (``None``:
    no budget covers it); the Eviction API enforces it in any case, the loop uses it only to
    not ask for evictions that will be refused.
    """

    key: WorkloadKey
    replicas: int
    ready: int
    autoscaled: bool = False
    disruptions_allowed: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerResize:
    """New requests and limits for one container; ``None`` keeps the current value."""

    name: str
    cpu_request: float | None = None
    cpu_limit: float | None = None
    memory_request: float | None = None
    memory_limit: float | None = None


class Outcome(StrEnum):
    """How an action went."""

    APPLIED = "applied"  # the orchestrator accepted it
    REFUSED = "refused"  # a rule said no (PDB, validation, forbidden): do not retry at once
    GONE = "gone"  # the pod or container no longer exists
    FAILED = "failed"  # the orchestrator could not be reached or erred: may retry later


@dataclass(frozen=True, slots=True)
class ActionResult:
    outcome: Outcome
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.APPLIED


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class ClusterState:
    """Everything one decision cycle reads, taken at ``taken_at``.

    ``namespace_modes`` holds the mode of every namespace that opted in (namespace label
    ``presize.io/enabled=true``); a namespace absent from it is not managed. ``policies`` holds
    every ``PresizePolicy`` by namespace as ``{"name": ..., "spec": {...}}``, parsed by
    :mod:`controller.policies` (so parsing is pure and shared by both orchestrators).
    """

    taken_at: float
    pods: tuple[PodView, ...] = ()
    nodes: tuple[NodeView, ...] = ()
    workloads: tuple[WorkloadView, ...] = ()
    namespace_modes: Mapping[str, Mode] = field(default_factory=dict)
    policies: Mapping[str, Sequence[Mapping[str, object]]] = field(default_factory=dict)


class Orchestrator(Protocol):
    """The controller's only way to see and change the workloads it sizes."""

    @property
    def name(self) -> str:
        """``"kubernetes"`` or ``"docker"``: shown in logs and metrics."""
        ...

    async def state(self) -> ClusterState:
        """The current view; cheap (served from the adapter's cache), never ``None``."""
        ...

    async def resize(self, pod: PodRef, changes: Sequence[ContainerResize]) -> ActionResult:
        """Ask for new resources for some containers of ``pod``, all in one request."""
        ...

    async def evict(self, pod: PodRef, reason: str) -> ActionResult:
        """Move ``pod`` elsewhere, honouring disruption budgets (Kubernetes: Eviction API;
        Swarm: a placement update of the service)."""
        ...

    async def record_event(
        self,
        *,
        pod: PodRef | None,
        workload: WorkloadKey | None,
        type: EventType,
        reason: str,
        message: str,
    ) -> None:
        """Tell users: a Kubernetes Event on the pod and/or the workload; Docker: the log.
        Never raises: an event that cannot be written is logged and dropped."""
        ...


class ProfileStore(Protocol):
    """Where profiles survive restarts: ``WorkloadProfile`` status in Kubernetes, files for
    Docker. Profiles are JSON-safe mappings built by :mod:`controller.profile_status`."""

    async def load_all(self) -> dict[WorkloadKey, Mapping[str, object]]:
        """Every stored profile, by workload."""
        ...

    async def save(self, key: WorkloadKey, status: Mapping[str, object]) -> None:
        """Create or replace the stored profile of ``key``. Raises ``StoreError`` when the
        store cannot be written (the caller keeps the profile and tries again later)."""
        ...


class Authenticator(Protocol):
    """Decides whether a bearer token belongs to an agent allowed to report."""

    async def authenticate(self, token: str) -> str | None:
        """The authenticated identity (e.g. ``system:serviceaccount:ns:name``), or ``None``."""
        ...
