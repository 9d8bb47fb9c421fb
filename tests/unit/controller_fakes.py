"""An in-memory orchestrator for the controller's unit tests: a fake, and it says so.

It stands in for :class:`controller.orchestrator.Orchestrator` where no cluster runs (the
unit tier): pods, nodes and workloads are plain values the test sets, resizes are applied to
them at once, evictions honour a disruption count the way the Eviction API does. The real
adapters are tested against a real kube-apiserver (``tests/cluster``) and a real Docker
Engine (``tests/docker``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
        self.pods[pod.uid] = replace(view, containers=tuple(new))
        return ActionResult(Outcome.APPLIED)

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
