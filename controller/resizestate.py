"""Where a pod's last resize stands, as the node reports it (pure).

A ``PATCH pods/resize`` only changes the spec; whether the node carries it out is told later,
in the pod's status. What a real kubelet (v1.35.8) reports, measured on a real node
(``docs/real-node.md`` in the shared docs, "What the kubelet reports on resize"):

=========================================  =========================================  ==========
the kubelet                                 the pod's status                           phase
=========================================  =========================================  ==========
has not seen the PATCH yet                  ``status.observedGeneration`` <            UNKNOWN
                                            ``metadata.generation``
can never fit it on this node               ``PodResizePending``, reason               INFEASIBLE
                                            ``Infeasible`` ("Node didn't have enough
                                            capacity: cpu, requested: 4000, ...")
cannot fit it now, will when room frees     ``PodResizePending``, reason ``Deferred``  DEFERRED
is applying it (about a second)             ``PodResizeInProgress``, no reason         IN_PROGRESS
tried and failed, retries every ~15 s       ``PodResizeInProgress``, reason ``Error``  ERROR
(a memory limit below current usage)        ("cannot decrease memory limits: ...");
                                            ``allocatedResources`` new, ``resources``
                                            old
is done                                     no resize condition; ``containerStatuses   DONE
                                            [].resources`` equal the spec
=========================================  =========================================  ==========

There is no "done" condition: the pending and in-progress conditions simply disappear, so
"done" is read from the container statuses agreeing with the spec. A pending condition whose
``observedGeneration`` is older than the pod's generation speaks of an earlier ask (the newest
has not been looked at yet): UNKNOWN, not that old verdict. Where an orchestrator does not
count generations or report what runs (Docker updates synchronously), the condition alone
decides.

:func:`classify_resize` is what the loop, the rollback watch and the follow-up
(:mod:`controller.followup`) read; the helpers below are the arithmetic the follow-up needs:
pod totals the way the kubelet checks feasibility, the resize that puts the spec back to what
runs, and :class:`Refusal`, the memory of a resize the node can never hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from controller.orchestrator import (
    ContainerResize,
    ContainerResources,
    NodeView,
    PodView,
    ResizeStatus,
)
from presize.policy import Allocation


class ResizePhase(StrEnum):
    DONE = "done"  # the node runs what the spec asks (or says nothing else)
    IN_PROGRESS = "in-progress"  # being applied: wait
    DEFERRED = "deferred"  # the node will apply it when room frees: wait, do not ask again
    INFEASIBLE = "infeasible"  # never on this node: fall back, do not ask again
    ERROR = "error"  # the node tried and failed (e.g. memory below usage): put back, hold
    UNKNOWN = "unknown"  # the node has not answered the latest ask yet: wait


@dataclass(frozen=True, slots=True)
class ResizeState:
    """A phase with the reason in words (the kubelet's message when it gave one) and since
    when the node reports it (``None`` when it does not say)."""

    phase: ResizePhase
    reason: str
    since: float | None = None


# Runtime round trips (CPU shares, quota periods, page-aligned limits) may move a value a
# little: closer than this is "the same".
_CPU_TOLERANCE = 0.002  # cores
_MEMORY_TOLERANCE = 64 * 1024.0  # bytes


def _close(a: float, b: float, tolerance: float) -> bool:
    return abs(a - b) <= max(tolerance, 1e-3 * max(abs(a), abs(b)))


def differences(
    spec: Sequence[ContainerResources], applied: Sequence[ContainerResources]
) -> list[str]:
    """Where what runs (``applied``) differs from what is asked (``spec``), in words; values
    one side does not state are not compared (a node may not report every field)."""
    running = {c.name: c for c in applied}
    out: list[str] = []
    for want in spec:
        have = running.get(want.name)
        if have is None:
            continue
        for field, tolerance in (
            ("cpu_request", _CPU_TOLERANCE),
            ("cpu_limit", _CPU_TOLERANCE),
            ("memory_request", _MEMORY_TOLERANCE),
            ("memory_limit", _MEMORY_TOLERANCE),
        ):
            a, b = getattr(want, field), getattr(have, field)
            if a is not None and b is not None and not _close(a, b, tolerance):
                out.append(f"{want.name} {field.replace('_', ' ')} {b:.6g} (spec {a:.6g})")
    return out


def classify_resize(pod: PodView) -> ResizeState:
    """The phase of ``pod``'s last resize (module table)."""
    gen, seen = pod.generation, pod.observed_generation
    if gen is not None and seen is not None and seen < gen:
        return ResizeState(
            ResizePhase.UNKNOWN, f"the node has not seen generation {gen} yet (it reports {seen})"
        )
    status, message, since = pod.resize, pod.resize_message, pod.resize_since
    about = pod.resize_generation
    pending = status in (ResizeStatus.DEFERRED, ResizeStatus.INFEASIBLE)
    if pending and gen is not None and about is not None and about < gen:
        return ResizeState(
            ResizePhase.UNKNOWN,
            f"the {status.value} condition is about generation {about}, the pod is at {gen}",
        )
    if status is ResizeStatus.INFEASIBLE:
        return ResizeState(ResizePhase.INFEASIBLE, message or "the node can never hold it", since)
    if status is ResizeStatus.DEFERRED:
        return ResizeState(ResizePhase.DEFERRED, message or "the node cannot hold it now", since)
    if status is ResizeStatus.ERROR:
        return ResizeState(ResizePhase.ERROR, message or "the node failed to apply it", since)
    if status is ResizeStatus.IN_PROGRESS:
        return ResizeState(ResizePhase.IN_PROGRESS, message or "the node is applying it", since)
    gaps = differences(pod.containers, pod.applied)
    if gaps:
        return ResizeState(
            ResizePhase.UNKNOWN, "the node reports no resize but runs " + "; ".join(gaps)
        )
    return ResizeState(ResizePhase.DONE, "the node runs what the spec asks")


# ----------------------------------------------------------------------------- arithmetic


def requests_of(containers: Iterable[ContainerResources]) -> Allocation:
    """The pod's total requests: what the kubelet checks a resize against, and what the
    scheduler counts."""
    cpu = mem = 0.0
    for c in containers:
        cpu += c.cpu_request or 0.0
        mem += c.memory_request or 0.0
    return Allocation(cpu, mem)


def resized(
    containers: Sequence[ContainerResources], changes: Iterable[ContainerResize]
) -> tuple[ContainerResources, ...]:
    """``containers`` with ``changes`` applied (``None`` in a change keeps the value)."""
    by_name = {r.name: r for r in changes}
    out = []
    for c in containers:
        r = by_name.get(c.name)
        out.append(
            c
            if r is None
            else replace(
                c,
                cpu_request=c.cpu_request if r.cpu_request is None else r.cpu_request,
                cpu_limit=c.cpu_limit if r.cpu_limit is None else r.cpu_limit,
                memory_request=c.memory_request if r.memory_request is None else r.memory_request,
                memory_limit=c.memory_limit if r.memory_limit is None else r.memory_limit,
            )
        )
    return tuple(out)


def put_back(
    pod: PodView, names: Iterable[str], before: Sequence[ContainerResources] = ()
) -> tuple[ContainerResize, ...]:
    """The resize that sets the spec of containers ``names`` back to what they run: what the
    node reports (``pod.applied``), else ``before`` (what they had when the resize was asked);
    empty when neither is known, and the spec is then left as it is.

    A resource whose spec request equals its limit keeps them equal (the node reports the
    CPU request from shares and the limit from the quota, which may round apart; the API
    server refuses a resize that changes the QoS class)."""
    running = {c.name: c for c in pod.applied} or {c.name: c for c in before}
    out: list[ContainerResize] = []
    for name in names:
        have, spec = running.get(name), pod.container(name)
        if have is None or spec is None:
            continue
        cpu_req, mem_req = have.cpu_request, have.memory_request
        if spec.cpu_request is not None and spec.cpu_request == spec.cpu_limit:
            cpu_req = have.cpu_limit if have.cpu_limit is not None else cpu_req
        if spec.memory_request is not None and spec.memory_request == spec.memory_limit:
            mem_req = have.memory_limit if have.memory_limit is not None else mem_req
        back = ContainerResize(name, cpu_req, have.cpu_limit, mem_req, have.memory_limit)
        if not _same(spec, back):  # else the spec already says what runs
            out.append(back)
    return tuple(out)


def _same(spec: ContainerResources, r: ContainerResize) -> bool:
    return all(
        new is None or (old is not None and new == old)
        for new, old in (
            (r.cpu_request, spec.cpu_request),
            (r.cpu_limit, spec.cpu_limit),
            (r.memory_request, spec.memory_request),
            (r.memory_limit, spec.memory_limit),
        )
    )


def room_elsewhere(nodes: Iterable[NodeView], here: str, need: Allocation) -> bool:
    """Whether another node has ``need`` free now: the only case where rescheduling helps a
    pod its own node can never hold."""
    return any(
        n.name != here and n.cpu_free >= need.cpu and n.memory_free >= need.memory for n in nodes
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """A resize the node found infeasible, remembered so it is not asked again.

    ``cpu``/``memory``: the pod totals asked for the resources that grew (``inf`` for one that
    did not); any later ask growing a resource to at least that much is known to fail the same
    way. It holds while the pod stays on the same node with the same allocatable capacity (a
    node that grows, or a pod recreated elsewhere, may hold it)."""

    node: str
    capacity: tuple[float, float]
    cpu: float
    memory: float
    message: str
    at: float

    def holds(self, node: NodeView | None) -> bool:
        if node is None:
            return True  # the node is not in the view (yet): nothing says it changed
        return node.name == self.node and (node.cpu_allocatable, node.memory_allocatable) == (
            self.capacity
        )

    def blocks(self, asked: Allocation, current: Allocation) -> bool:
        """Whether growing from ``current`` to ``asked`` (pod totals) meets this refusal."""
        return (asked.cpu > current.cpu and asked.cpu >= self.cpu * (1 - 1e-6)) or (
            asked.memory > current.memory and asked.memory >= self.memory * (1 - 1e-6)
        )


def refusal_of(
    pod: PodView,
    before: Sequence[ContainerResources],
    node: NodeView | None,
    message: str,
    now: float,
) -> Refusal:
    """The :class:`Refusal` of ``pod``'s spec, asked while its containers had ``before``. A
    resource counts as grown when the ask is above ``before``; when nothing grew (the node's
    capacity shrank under the pod), both resources are remembered at the asked level."""
    asked = requests_of(pod.containers)
    had = requests_of(before) if before else Allocation(0.0, 0.0)
    cpu = asked.cpu if asked.cpu > had.cpu else math.inf
    memory = asked.memory if asked.memory > had.memory else math.inf
    if math.isinf(cpu) and math.isinf(memory):
        cpu, memory = asked.cpu, asked.memory
    capacity = (node.cpu_allocatable, node.memory_allocatable) if node else (math.nan, math.nan)
    return Refusal(pod.ref.node, capacity, cpu, memory, message, now)
