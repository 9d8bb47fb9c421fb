"""An in-memory orchestrator for the controller's unit tests: a fake, and it says so.

It stands in for :class:`controller.orchestrator.Orchestrator` where no cluster runs (the
unit tier): pods, nodes and workloads are plain values the test sets, resizes are applied to
them at once (or answered by a :class:`FakeKubelet`, when the test gives one), evictions
honour a disruption count the way the Eviction API does. The real adapters are tested
against a real kube-apiserver (``tests/cluster``) and a real Docker Engine (``tests/docker``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from controller.orchestrator import (
    ActionResult,
    ClusterState,
    ContainerResize,
    ContainerResources,
    EventType,
    NodeView,
    Outcome,
    PodView,
    ResizeStatus,
    WorkloadView,
)
from presize.model import Mode, OwnerKind, PodRef, UsageWindow, WorkloadKey

MiB = float(1 << 20)


@dataclass
class Event:
    pod: PodRef | None
    workload: WorkloadKey | None
    type: EventType
    reason: str
    message: str


@dataclass
class FakeOrchestrator:
    pods: dict[str, PodView] = field(default_factory=dict)
    nodes: dict[str, NodeView] = field(default_factory=dict)
    workloads: dict[WorkloadKey, WorkloadView] = field(default_factory=dict)
    modes: dict[str, Mode] = field(default_factory=dict)
    policies: dict[str, list[Mapping[str, object]]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    resizes: list[tuple[str, tuple[ContainerResize, ...]]] = field(default_factory=list)
    evictions: list[str] = field(default_factory=list)
    down: bool = False
    now: float = 0.0
    # The node's answer to a resize: (what the pod ran, the pod with its new spec) -> the pod
    # as the node then reports it. None: applied at once, nothing reported (as Docker does).
    kubelet: Callable[[tuple[ContainerResources, ...], PodView], PodView] | None = None

    @property
    def name(self) -> str:
        return "fake"

    async def state(self) -> ClusterState:
        return ClusterState(
            taken_at=self.now,
            pods=tuple(self.pods.values()),
            nodes=tuple(self.nodes.values()),
            workloads=tuple(self.workloads.values()),
            namespace_modes=dict(self.modes),
            policies={k: list(v) for k, v in self.policies.items()},
        )

    async def resize(self, pod: PodRef, changes: Sequence[ContainerResize]) -> ActionResult:
        if self.down:
            return ActionResult(Outcome.FAILED, "down")
        view = self.pods.get(pod.uid)
        if view is None:
            return ActionResult(Outcome.GONE, "no such pod")
        self.resizes.append((pod.uid, tuple(changes)))
        new = []
        for old in view.containers:
            c = old
            r = next((x for x in changes if x.name == c.name), None)
            if r is not None:
                c = replace(
                    c,
                    cpu_request=r.cpu_request if r.cpu_request is not None else c.cpu_request,
                    cpu_limit=r.cpu_limit if r.cpu_limit is not None else c.cpu_limit,
                    memory_request=(
                        r.memory_request if r.memory_request is not None else c.memory_request
                    ),
                    memory_limit=r.memory_limit if r.memory_limit is not None else c.memory_limit,
                )
            new.append(c)
        changed = replace(view, containers=tuple(new))
        if view.generation is not None:  # one more per resize PATCH, as the API server does
            changed = replace(changed, generation=view.generation + 1)
        if self.kubelet is not None:
            changed = self.kubelet(view.applied or view.containers, changed)
        self.pods[pod.uid] = changed
        return ActionResult(Outcome.APPLIED)

    def node_sync(self) -> None:
        """The kubelet looks at every pod again (room freed, usage dropped): what it still
        holds is answered anew."""
        if self.kubelet is None:
            return
        for uid, view in list(self.pods.items()):
            if view.resize is not ResizeStatus.NONE:
                self.pods[uid] = self.kubelet(view.applied or view.containers, view)

    async def evict(self, pod: PodRef, reason: str) -> ActionResult:
        view = self.pods.get(pod.uid)
        if view is None:
            return ActionResult(Outcome.GONE)
        w = self.workloads.get(view.workload)
        if w is not None and w.disruptions_allowed == 0:
            return ActionResult(Outcome.REFUSED, "Cannot evict pod as it would violate the PDB")
        self.evictions.append(pod.uid)
        del self.pods[pod.uid]
        return ActionResult(Outcome.APPLIED)

    async def record_event(
        self,
        *,
        pod: PodRef | None,
        workload: WorkloadKey | None,
        type: EventType,
        reason: str,
        message: str,
    ) -> None:
        self.events.append(Event(pod, workload, type, reason, message))


@dataclass
class FakeKubelet:
    """A node's answers to resizes, by the kubelet's rules and in its order (1.35; the full
    imitation is ``hack/nodeshim/kubelet.py``): the pod's own requests above the node's
    capacity is Infeasible; above what the other pods leave, Deferred; a memory limit lowered
    to or below what the container uses is an Error, retried; else it is applied. A held
    resize keeps running the old values (``applied``); with generations, the answer is about
    the pod's newest one."""

    cpu_capacity: float = math.inf
    memory_capacity: float = math.inf
    others_cpu: float = 0.0
    others_memory: float = 0.0
    memory_used: dict[str, float] = field(default_factory=dict)  # container name -> bytes

    def __call__(self, running: tuple[ContainerResources, ...], pod: PodView) -> PodView:
        cpu = sum(c.cpu_request or 0.0 for c in pod.containers)
        mem = sum(c.memory_request or 0.0 for c in pod.containers)
        held = ResizeStatus.NONE
        message = ""
        if cpu > self.cpu_capacity:
            held = ResizeStatus.INFEASIBLE
            message = (
                f"Node didn't have enough capacity: cpu, requested: {cpu * 1000:.0f}, "
                f"capacity: {self.cpu_capacity * 1000:.0f}"
            )
        elif mem > self.memory_capacity:
            held = ResizeStatus.INFEASIBLE
            message = (
                f"Node didn't have enough capacity: memory, requested: {mem:.0f}, "
                f"capacity: {self.memory_capacity:.0f}"
            )
        elif cpu > self.cpu_capacity - self.others_cpu:
            held = ResizeStatus.DEFERRED
            message = (
                f"Node didn't have enough resource: cpu, requested: {cpu * 1000:.0f}, "
                f"used: {self.others_cpu * 1000:.0f}, capacity: {self.cpu_capacity * 1000:.0f}"
            )
        elif mem > self.memory_capacity - self.others_memory:
            held = ResizeStatus.DEFERRED
            message = (
                f"Node didn't have enough resource: memory, requested: {mem:.0f}, "
                f"used: {self.others_memory:.0f}, capacity: {self.memory_capacity:.0f}"
            )
        else:
            message = self._memory_error(running, pod)
            held = ResizeStatus.ERROR if message else ResizeStatus.NONE
        if held is not ResizeStatus.NONE:
            return replace(
                pod,
                applied=running,
                resize=held,
                resize_message=message,
                observed_generation=pod.generation,
                resize_generation=pod.generation,
            )
        return replace(
            pod,
            applied=pod.containers,
            resize=ResizeStatus.NONE,
            resize_message="",
            resize_since=None,
            observed_generation=pod.generation,
            resize_generation=None,
        )

    def _memory_error(self, running: tuple[ContainerResources, ...], pod: PodView) -> str:
        was = {c.name: c for c in running}
        for c in pod.containers:
            old = was.get(c.name)
            new_limit = c.memory_limit
            old_limit = old.memory_limit if old is not None else None
            used = self.memory_used.get(c.name, 0.0)
            lowered = new_limit is not None and old_limit is not None and new_limit < old_limit
            if lowered and new_limit is not None and used >= new_limit:
                return (
                    f'cannot decrease memory limits: attempting to set container "{c.name}" '
                    f"memory limit ({new_limit:.0f}) below current usage ({used:.0f})"
                )
        return ""


@dataclass
class MemoryStore:
    """An in-memory ProfileStore (the real ones: WorkloadProfile objects, files)."""

    saved: dict[WorkloadKey, Mapping[str, object]] = field(default_factory=dict)
    fail: bool = False

    async def load_all(self) -> dict[WorkloadKey, Mapping[str, object]]:
        return dict(self.saved)

    async def save(self, key: WorkloadKey, status: Mapping[str, object]) -> None:
        if self.fail:
            from controller.errors import StoreError

            raise StoreError("store down")
        self.saved[key] = status


def deployment(ns: str, name: str) -> WorkloadKey:
    return WorkloadKey(ns, OwnerKind.DEPLOYMENT, name)


def pod(
    ns: str,
    name: str,
    workload: WorkloadKey,
    *,
    uid: str | None = None,
    node: str = "node-0",
    cpu: float = 0.5,
    mem: float = 256 * MiB,
    container: str = "app",
    guaranteed: bool = True,
) -> PodView:
    res = ContainerResources(
        name=container,
        cpu_request=cpu if guaranteed else cpu / 2,
        cpu_limit=cpu,
        memory_request=mem if guaranteed else mem / 2,
        memory_limit=mem,
    )
    return PodView(
        ref=PodRef(ns, name, uid or f"uid-{name}", node),
        workload=workload,
        containers=(res,),
        qos="Guaranteed" if guaranteed else "Burstable",
    )


def window(
    p: PodView,
    start: float,
    *,
    cpu: float,
    mem: float,
    seconds: float = 10.0,
    container: str = "app",
    throttled: float = 0.0,
    oom: int = 0,
) -> UsageWindow:
    c = p.container(container)
    return UsageWindow(
        pod=p.ref, container=container, start=start, seconds=seconds, samples=int(seconds),
        cpu_mean=cpu, cpu_max=cpu * 1.1, cpu_p50=cpu, cpu_p90=cpu * 1.05, cpu_p99=cpu * 1.1,
        cpu_throttled_fraction=throttled, mem_mean=mem, mem_max=mem, oom_kills=oom,
        cpu_limit=c.cpu_limit if c else None, mem_limit=c.memory_limit if c else None,
    )  # fmt: skip


def node(name: str = "node-0", cpu: float = 8.0, mem: float = 32 * 1024 * MiB) -> NodeView:
    return NodeView(name, cpu, mem, 0.0, 0.0)


def finite(x: float) -> bool:
    return math.isfinite(x)
