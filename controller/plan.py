"""One pod's decision: ``presize.policy.decide`` per container, merged into one pod action.

Pure: everything comes in as values (the pod, the predictions, the signals, what the policy
allows, the node's free capacity, the per-container decision state) and a :class:`PodPlan`
comes out, with the new states to keep.

**Allocation and QoS.** ``decide`` reasons about one number per resource, the *allocation*:
for CPU the request (else the limit), since CPU demand is what the scheduler reserves; for
memory the limit (else the request), since the limit is what OOM-kills. A new allocation ``A``
is applied by scaling request and limit by the same factor, so their ratio, and with it the
pod's QoS class, never changes (Guaranteed stays request = limit; Burstable keeps its headroom;
a container without requests is BestEffort and is left alone: giving it requests would change
its QoS class, which an in-place resize may not do).

**A CPU limit is never set below the peaks.** CPU demand is sized from window means; a limit
sized like that would throttle every burst above the mean. So a CPU limit is at least the
workload's recent peak (the highest p99 of 1 s samples over the last hour, across replicas)
times the buffer; a Guaranteed container, whose request must equal its limit, gets that too.
CPU is rounded up to whole millicores and memory up to whole MiB, as people write them.

**The pod as a whole.** All containers are resized in one request (the kubelet applies one
pod resize at a time), but a growth is never mixed with a shrink (as within a container,
:mod:`presize.policy`): while one container grows, another's shrink waits. The pod's action
is the most disruptive one any container needs:
RESCHEDULE (the node cannot hold the growth) > SCALE_OUT (one replica cannot hold the
prediction; the pod still gets the policy maximum) > RESIZE_IN_PLACE > NOOP.

**Restart-requiring resizes.** A container whose ``resizePolicy`` says ``RestartContainer``
for a resource is restarted by that change; such a change is made only for growth that an
OOM kill or an SLO breach forced, never to shrink or on a forecast alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from controller.orchestrator import ContainerResize, ContainerResources, PodView
from controller.policies import Effective
from presize.model import Action, Decision, Mode, Reason
from presize.policy import Allocation, DecisionState, Limits, Signals, decide
from presize.settings import PolicySettings

MILLICORE = 0.001
MIB = float(1 << 20)
_RANK = {
    Action.NOOP: 0,
    Action.DEFER: 0,
    Action.RESIZE_IN_PLACE: 1,
    Action.SCALE_OUT: 2,
    Action.RESCHEDULE: 3,
}
_FORCED = {Reason.OOM_KILL, Reason.SLO_THROTTLING, Reason.SLO_PRESSURE, Reason.SLO_LATENCY}


@dataclass(frozen=True, slots=True)
class ContainerInput:
    """What is known about one container of the pod when deciding."""

    resources: ContainerResources
    effective: Effective
    predicted: Allocation  # NaN where the profile cannot tell yet
    signals: Signals
    state: DecisionState
    cpu_peak: float = math.nan  # the workload's recent CPU peak (cores), NaN when unknown
    # Only growth now: a growth of the pod is under rollback watch (controller.rollback).
    grow_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerOutcome:
    name: str
    decision: Decision
    state: DecisionState
    resize: ContainerResize | None
    overload: float = 1.0  # predicted need / policy maximum, for a SCALE_OUT hint


@dataclass(frozen=True, slots=True)
class PodPlan:
    """What to do with the pod, why, and the per-container detail."""

    action: Action
    reason: Reason
    message: str
    containers: tuple[ContainerOutcome, ...]

    @property
    def overload(self) -> float:
        """How many times the policy maximum one replica would need (1 when it fits)."""
        return max((c.overload for c in self.containers), default=1.0)

    @property
    def resizes(self) -> tuple[ContainerResize, ...]:
        return tuple(c.resize for c in self.containers if c.resize is not None)


def allocation_of(c: ContainerResources) -> Allocation | None:
    """The numbers ``decide`` sizes (limit, else request); ``None`` for BestEffort CPU and
    memory alike (nothing to scale without changing the QoS class)."""
    cpu = c.cpu_request if c.cpu_request is not None else c.cpu_limit
    mem = c.memory_limit if c.memory_limit is not None else c.memory_request
    if cpu is None and mem is None:
        return None
    return Allocation(cpu if cpu is not None else math.nan, mem if mem is not None else math.nan)


def _ceil(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


def scaled_resources(
    c: ContainerResources, cpu: float | None, mem: float | None, *, cpu_limit_floor: float = 0.0
) -> ContainerResize:
    """Request and limit scaled together to the new allocation, the CPU limit kept at or
    above ``cpu_limit_floor`` (module docstring)."""
    out = ContainerResize(name=c.name)
    alloc = allocation_of(c)
    if alloc is None:
        return out
    if cpu is not None and not math.isnan(alloc.cpu) and alloc.cpu > 0:
        k = cpu / alloc.cpu
        req = None if c.cpu_request is None else max(_ceil(c.cpu_request * k, MILLICORE), MILLICORE)
        lim = None if c.cpu_limit is None else max(_ceil(c.cpu_limit * k, MILLICORE), MILLICORE)
        if lim is not None and math.isfinite(cpu_limit_floor):
            lim = max(lim, _ceil(cpu_limit_floor, MILLICORE))
        if req is not None and lim is not None and c.cpu_request == c.cpu_limit:
            req = lim  # Guaranteed stays exactly equal
        out = replace(out, cpu_request=req, cpu_limit=lim)
    if mem is not None and not math.isnan(alloc.memory) and alloc.memory > 0:
        k = mem / alloc.memory
        req = None if c.memory_request is None else max(_ceil(c.memory_request * k, MIB), MIB)
        lim = None if c.memory_limit is None else max(_ceil(c.memory_limit * k, MIB), MIB)
        if req is not None and lim is not None and c.memory_request == c.memory_limit:
            req = lim
        out = replace(out, memory_request=req, memory_limit=lim)
    return out


def _settings_for(base: PolicySettings, e: Effective) -> PolicySettings:
    """The policy's buffer and SLOs over the defaults (a PresizePolicy's ``slo`` is what
    decides "throttled too much" for its workloads, not the controller-wide default)."""
    changes: dict[str, float] = {}
    if e.buffer is not None:
        changes["buffer"] = e.buffer
    if e.slo.max_throttling_ratio is not None:
        changes["throttle_slo"] = e.slo.max_throttling_ratio
    if e.slo.max_psi is not None:
        changes["pressure_slo"] = e.slo.max_psi
    return replace(base, **changes) if changes else base


def _limits_for(e: Effective) -> Limits:
    """Policy bounds only: whether the node can hold the growth is a question about the
    pod's total *requests* (what the scheduler counts), answered in :func:`plan_pod`."""
    return Limits(cpu=e.cpu, memory=e.memory)


def plan_container(now: float, c: ContainerInput, base: PolicySettings) -> ContainerOutcome:
    """``decide`` for one container, with the policy's buffer and controlled resources."""
    alloc = allocation_of(c.resources)
    name = c.resources.name
    if alloc is None:
        d = Decision(
            Action.NOOP,
            Reason.WITHIN_BAND,
            "no requests or limits (BestEffort): resizing would change its QoS class",
        )
        return ContainerOutcome(name, d, c.state, None)
    settings = _settings_for(base, c.effective)
    predicted = Allocation(
        c.predicted.cpu if "cpu" in c.effective.controlled else math.nan,
        c.predicted.memory if "memory" in c.effective.controlled else math.nan,
    )
    # A resource without any request or limit is not sized: keep its NaN out of decide.
    current = Allocation(
        alloc.cpu if not math.isnan(alloc.cpu) else 0.0,
        alloc.memory if not math.isnan(alloc.memory) else 0.0,
    )
    if math.isnan(alloc.cpu):
        predicted = Allocation(math.nan, predicted.memory)
    if math.isnan(alloc.memory):
        predicted = Allocation(predicted.cpu, math.nan)
    # Under the watch of a growth nothing shrinks (a shrink is judged by a watch of its own,
    # against a baseline no growth has moved); the hold is this decision's, not kept.
    held_from = replace(c.state, shrink_blocked_until=math.inf) if c.grow_only else c.state
    decision, state = decide(
        now=now,
        current=current,
        predicted=predicted,
        signals=c.signals,
        limits=_limits_for(c.effective),
        settings=settings,
        state=held_from,
    )
    if c.grow_only:
        state = replace(state, shrink_blocked_until=c.state.shrink_blocked_until)
    if not decision.changes_allocation and decision.action is not Action.SCALE_OUT:
        return ContainerOutcome(name, decision, state, None)
    cpu = decision.cpu if decision.cpu is not None and not math.isnan(alloc.cpu) else None
    mem = decision.memory if decision.memory is not None and not math.isnan(alloc.memory) else None
    if cpu is not None and abs(cpu - current.cpu) <= 1e-12:
        cpu = None
    if mem is not None and abs(mem - current.memory) <= 1e-12:
        mem = None
    forced = bool(set(decision.reasons) & _FORCED)
    if cpu is not None and c.resources.cpu_restart and not (forced and cpu > current.cpu):
        cpu = None
    if mem is not None and c.resources.memory_restart and not (forced and mem > current.memory):
        mem = None
    if cpu is None and mem is None:
        held = Decision(
            Action.NOOP,
            decision.reason,
            f"{decision.message}; not applied: the container restarts on this "
            "change and nothing forces it",
        )
        return ContainerOutcome(name, held, c.state, None)
    floor = c.cpu_peak * settings.buffer if math.isfinite(c.cpu_peak) else 0.0
    resize = scaled_resources(c.resources, cpu, mem, cpu_limit_floor=floor)
    overload = 1.0
    if decision.action is Action.SCALE_OUT:
        for need, bound in (
            (predicted.cpu, c.effective.cpu),
            (predicted.memory, c.effective.memory),
        ):
            if math.isfinite(need) and math.isfinite(bound.maximum) and bound.maximum > 0:
                overload = max(overload, need * settings.buffer / bound.maximum)
    if _unchanged(c.resources, resize):
        held = Decision(Action.NOOP, Reason.WITHIN_BAND,
                        f"{decision.message}; already there once rounded and kept above the "
                        "CPU peak")  # fmt: skip
        return ContainerOutcome(name, held, c.state, None)
    return ContainerOutcome(name, decision, state, resize, overload)


def _unchanged(c: ContainerResources, r: ContainerResize) -> bool:
    pairs = ((r.cpu_request, c.cpu_request), (r.cpu_limit, c.cpu_limit),
             (r.memory_request, c.memory_request), (r.memory_limit, c.memory_limit))  # fmt: skip
    return all(new is None or new == old for new, old in pairs)


def plan_pod(
    now: float,
    pod: PodView,
    inputs: Mapping[str, ContainerInput],
    node_free: Allocation,
    base: PolicySettings,
) -> PodPlan:
    """Decide every container of ``pod`` and merge (module docstring)."""
    outcomes = tuple(
        plan_container(now, inputs[c.name], base) for c in pod.containers if c.name in inputs
    )
    if not outcomes:
        return PodPlan(Action.NOOP, Reason.NO_HISTORY, "no profile for any container yet", ())
    if any(_moves(pod, o) > 0 for o in outcomes):
        # One container's growth is never mixed with another's shrink (as within one:
        # presize.policy): the shrink waits, its state as it was.
        outcomes = tuple(
            _held(o, inputs[o.name].state) if _moves(pod, o) < 0 else o for o in outcomes
        )
    acting = [o for o in outcomes if o.resize is not None]
    if not acting:
        first = outcomes[0].decision
        return PodPlan(Action.NOOP, first.reason, first.message, outcomes)
    top = max(acting, key=lambda o: _RANK[o.decision.action])
    action = top.decision.action
    if action in (Action.RESIZE_IN_PLACE, Action.SCALE_OUT):
        # The growth of all containers together must fit the node too.
        growth = _growth(pod, acting)
        if growth.cpu > node_free.cpu or growth.memory > node_free.memory:
            action = Action.RESCHEDULE
            why = (
                f"together the containers grow by {growth.cpu:.3f} cores and "
                f"{growth.memory / MIB:.0f} MiB; the node has less free"
            )
            return PodPlan(action, Reason.EXCEEDS_NODE, why, outcomes)
    message = "; ".join(f"{o.name}: {o.decision.message}" for o in acting)
    return PodPlan(action, top.decision.reason, message, outcomes)


def _moves(pod: PodView, o: ContainerOutcome) -> int:
    """1 when ``o``'s resize grows a value of its container, -1 when it only shrinks, 0 when
    there is none."""
    c, r = pod.container(o.name), o.resize
    if c is None or r is None:
        return 0
    pairs = ((r.cpu_request, c.cpu_request), (r.cpu_limit, c.cpu_limit),
             (r.memory_request, c.memory_request), (r.memory_limit, c.memory_limit))  # fmt: skip
    deltas = [new - old for new, old in pairs if new is not None and old is not None]
    if any(d > 0 for d in deltas):
        return 1
    return -1 if any(d < 0 for d in deltas) else 0


def _held(o: ContainerOutcome, state: DecisionState) -> ContainerOutcome:
    d = o.decision
    why = f"{d.message}; held: not shrunk in the change that grows another container"
    return ContainerOutcome(o.name, Decision(Action.NOOP, Reason.COOLDOWN, why), state, None)


def _growth(pod: PodView, acting: list[ContainerOutcome]) -> Allocation:
    """The increase of the pod's total *requests* (what the scheduler counts)."""
    cpu = mem = 0.0
    for o in acting:
        c = pod.container(o.name)
        r = o.resize
        if c is None or r is None:
            continue
        if r.cpu_request is not None and c.cpu_request is not None:
            cpu += r.cpu_request - c.cpu_request
        if r.memory_request is not None and c.memory_request is not None:
            mem += r.memory_request - c.memory_request
    return Allocation(max(cpu, 0.0), max(mem, 0.0))


def acts(mode: Mode) -> bool:
    """Only ``auto`` changes running pods; ``off`` and ``initial`` only recommend."""
    return mode is Mode.AUTO
