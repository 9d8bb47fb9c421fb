"""``decide``: from forecasts, signals and limits to one decision with its reasons.

The seed rule, generalised. Per resource:

==========================  ==========================================================
predicted upper > alloc     grow at once to ``predicted × buffer``     (predicted-over)
OOM kill (memory)           grow at once to ≥ ``alloc × oom_bump`` and ≥ the seen peak
throttling / PSI over SLO   grow CPU at once to ≥ ``alloc × throttle_bump`` (CPU PSI only
                            while throttled, memory PSI only near the limit: pressure from a
                            busy node is not cured by a bigger limit); the reason is the
                            breach even when the forecast asks for more
latency over its SLO        likewise (the application's own metric, when a policy names one)
predicted < threshold×alloc shrink to where the prediction is ``scale_down_to`` (90 %) of
                            the allocation, but only after the signal held ``down_stable_s``,
                            not within ``down_cooldown_s`` of a change, never by more than
                            ``1 − scale_down_step`` per change, never below the seen peak
otherwise                   keep (within-band / hysteresis / cooldown)
==========================  ==========================================================

A growth and a shrink are never one change: the growth is made and the shrink waits (the
cooldown of that change, then a change of its own). A mixed change could only be watched as
a shrink, holding the pod (a container still throttled after its growth could not be grown
again meanwhile), and reverting it for what the shrink did would take the growth back too.

Then the pod as a whole: a target above the policy maximum becomes a SCALE_OUT hint (the pod
is given the maximum and one replica cannot hold the prediction); a growth the pod's node
cannot hold becomes RESCHEDULE; anything else is RESIZE_IN_PLACE or NOOP. Growth is never
delayed (running short costs more than slack), shrinking always is: that asymmetry is what
keeps the allocation from flapping while still acting before the bottleneck.

The function is pure: the caller passes ``now`` and the previous :class:`DecisionState`, and
gets the new state back with the decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from presize.model import Action, Bounds, Decision, Reason
from presize.settings import PolicySettings


@dataclass(frozen=True, slots=True)
class Allocation:
    """CPU (cores) and memory (bytes) of one container."""

    cpu: float
    memory: float


@dataclass(frozen=True, slots=True)
class Signals:
    """What was observed since the last decision, besides usage."""

    oom_kill: bool = False
    throttled_fraction: float = 0.0
    cpu_pressure: float = 0.0
    memory_pressure: float = 0.0
    memory_peak: float = 0.0
    leak_suspected: bool = False
    latency_over_slo: bool = False  # the application's own latency metric breaks its SLO


@dataclass(frozen=True, slots=True)
class Limits:
    """What the container may be given: policy/LimitRange bounds and what its node has free."""

    cpu: Bounds = Bounds()
    memory: Bounds = Bounds()
    node_free_cpu: float = math.inf
    node_free_memory: float = math.inf


@dataclass(frozen=True, slots=True)
class DecisionState:
    """What ``decide`` remembers between calls (per container)."""

    last_change: float = -math.inf
    cpu_down_since: float | None = None
    memory_down_since: float | None = None
    grow_blocked_until: float = -math.inf
    shrink_blocked_until: float = -math.inf
    memory_shrunk_at: float = -math.inf
    memory_cautious_until: float = -math.inf
    # Memory alone is not shrunk before this: the node refused a memory decrease (the kubelet
    # will not lower a limit below current usage), so asking again soon only repeats it.
    memory_shrink_blocked_until: float = -math.inf


@dataclass(frozen=True, slots=True)
class _Plan:
    target: float
    reason: Reason
    down_since: float | None


def _plan_resource(
    *,
    now: float,
    current: float,
    predicted: float,
    urgent: tuple[Reason, float] | None,
    floor: float,
    down_since: float | None,
    state: DecisionState,
    s: PolicySettings,
    step: float,
    shrink_blocked_until: float,
) -> _Plan:
    """Target for one resource, before bounds and node checks."""
    target, reason = current, Reason.WITHIN_BAND
    if not math.isnan(predicted) and predicted > current:
        if now >= state.grow_blocked_until:
            target, reason = predicted * s.buffer, Reason.PREDICTED_OVER
        else:
            reason = Reason.ROLLBACK_BACKOFF
    if urgent is not None and urgent[1] > current:
        # The evidence is what the reason tells, even when the forecast asks for more: a
        # throttled container's usage is censored at its limit, so its forecast only sees
        # the limit, and the breach is why it grows (and what lets a restart-requiring
        # resize go ahead).
        target, reason = max(target, urgent[1]), urgent[0]
    if target > current:
        return _Plan(max(target, floor), reason, None)
    if reason is Reason.ROLLBACK_BACKOFF:
        return _Plan(current, reason, None)
    if math.isnan(predicted) or predicted >= s.scale_down_threshold * current:
        return _Plan(current, Reason.WITHIN_BAND, None)
    since = down_since if down_since is not None else now
    if now - since < s.down_stable_s:
        return _Plan(current, Reason.HYSTERESIS, since)
    if now - state.last_change < s.down_cooldown_s or now < shrink_blocked_until:
        return _Plan(current, Reason.COOLDOWN, since)
    # Never shrink below what a growth would have set (a buffer above 1/scale_down_to wins).
    target = predicted * max(s.buffer, 1.0 / s.scale_down_to)
    shrunk = max(target, current * step, floor)
    if shrunk >= current:
        return _Plan(current, Reason.WITHIN_BAND, None)
    return _Plan(shrunk, Reason.SCALE_DOWN, None)


def _changed(a: float, b: float, fraction: float) -> bool:
    return abs(a - b) > fraction * max(abs(b), 1e-12)


def decide(
    *,
    now: float,
    current: Allocation,
    predicted: Allocation,
    signals: Signals = Signals(),
    limits: Limits = Limits(),
    settings: PolicySettings = PolicySettings(),
    state: DecisionState = DecisionState(),
) -> tuple[Decision, DecisionState]:
    """Decide what to do with one container now; see the module docstring for the rule."""
    s = settings
    cpu_urgent: tuple[Reason, float] | None = None
    if signals.throttled_fraction > s.throttle_slo:
        cpu_urgent = (Reason.SLO_THROTTLING, current.cpu * s.throttle_bump)
    elif signals.cpu_pressure > s.pressure_slo and signals.throttled_fraction > 0.0:
        # CPU pressure counts only while the container is held by its own quota: stalls from
        # a busy node are not cured by a larger limit, and growing on them feeds itself.
        cpu_urgent = (Reason.SLO_PRESSURE, current.cpu * s.throttle_bump)
    elif signals.latency_over_slo:
        cpu_urgent = (Reason.SLO_LATENCY, current.cpu * s.throttle_bump)
    mem_urgent: tuple[Reason, float] | None = None
    if signals.oom_kill:
        bump = max(current.memory * s.oom_bump, signals.memory_peak * s.buffer)
        mem_urgent = (Reason.OOM_KILL, bump)
    elif (
        signals.memory_pressure > s.pressure_slo
        and signals.memory_peak >= s.pressure_near_limit * current.memory
    ):
        # Likewise memory pressure: reclaim near the container's own limit, not the node's.
        mem_urgent = (Reason.SLO_PRESSURE, current.memory * s.buffer)

    if signals.oom_kill and now - state.memory_shrunk_at < s.shrink_regret_s:
        # An OOM soon after a memory shrink: this container does come back to its old level,
        # so shrink its memory slowly for a while (backoff on a direction that hurt).
        state = replace(state, memory_cautious_until=now + s.cautious_s)
    mem_step = (
        s.cautious_scale_down_step
        if now < state.memory_cautious_until
        else s.memory_scale_down_step
    )
    cpu = _plan_resource(
        now=now,
        current=current.cpu,
        predicted=predicted.cpu,
        urgent=cpu_urgent,
        floor=0.0,
        down_since=state.cpu_down_since,
        state=state,
        s=s,
        step=s.scale_down_step,
        shrink_blocked_until=state.shrink_blocked_until,
    )
    mem = _plan_resource(
        now=now,
        current=current.memory,
        predicted=predicted.memory,
        urgent=mem_urgent,
        floor=signals.memory_peak * s.mem_floor_factor,
        down_since=state.memory_down_since,
        state=state,
        s=s,
        step=mem_step,
        shrink_blocked_until=max(state.shrink_blocked_until, state.memory_shrink_blocked_until),
    )
    new_state = replace(state, cpu_down_since=cpu.down_since, memory_down_since=mem.down_since)

    cpu_target = limits.cpu.clamp(cpu.target)
    mem_target = limits.memory.clamp(mem.target)
    # Only growth past the maximum means one replica is too small; an allocation above a
    # lowered maximum is simply brought down to it.
    capped = (cpu.target > limits.cpu.maximum and cpu.target > current.cpu) or (
        mem.target > limits.memory.maximum and mem.target > current.memory
    )
    leak_capped = signals.leak_suspected and mem_target > current.memory
    if leak_capped:
        # A leak is not fed: hold memory where it is unless an OOM forces the issue.
        mem_target = current.memory if not signals.oom_kill else mem_target
    cpu_moves = _changed(cpu_target, current.cpu, s.min_change_fraction)
    mem_moves = _changed(mem_target, current.memory, s.min_change_fraction)
    # A growth is never mixed with a shrink (module docstring): the growth goes now, the
    # shrink waits for a change of its own.
    cpu_up = cpu_moves and cpu_target > current.cpu
    mem_up = mem_moves and mem_target > current.memory
    if cpu_up and not mem_up:
        mem_moves = False
    if mem_up and not cpu_up:
        cpu_moves = False
    reasons = tuple(r for r, moved in ((cpu.reason, cpu_moves), (mem.reason, mem_moves)) if moved)
    if leak_capped:
        reasons += (Reason.LEAK_CAPPED,)
    if not (cpu_moves or mem_moves):
        why = _quiet_reason(cpu.reason, mem.reason, capped, leak_capped)
        return Decision(Action.NOOP, why, _quiet_message(why)), new_state

    final_cpu = cpu_target if cpu_moves else current.cpu
    final_mem = mem_target if mem_moves else current.memory
    new_state = replace(new_state, last_change=now, cpu_down_since=None, memory_down_since=None)
    if mem_moves and final_mem < current.memory:
        new_state = replace(new_state, memory_shrunk_at=now)
    message = _change_message(current, final_cpu, final_mem, reasons)
    if capped:
        return (
            Decision(
                Action.SCALE_OUT,
                Reason.EXCEEDS_MAX,
                f"one replica cannot hold the prediction within the policy maximum; "
                f"{message}; add replicas",
                final_cpu,
                final_mem,
                (*reasons, Reason.EXCEEDS_MAX),
            ),
            new_state,
        )
    grow_cpu = final_cpu - current.cpu
    grow_mem = final_mem - current.memory
    if grow_cpu > limits.node_free_cpu or grow_mem > limits.node_free_memory:
        return (
            Decision(
                Action.RESCHEDULE,
                Reason.EXCEEDS_NODE,
                f"the node cannot hold the growth; {message}",
                final_cpu,
                final_mem,
                (*reasons, Reason.EXCEEDS_NODE),
            ),
            new_state,
        )
    return (
        Decision(Action.RESIZE_IN_PLACE, reasons[0], message, final_cpu, final_mem, reasons),
        new_state,
    )


def _quiet_reason(cpu: Reason, mem: Reason, capped: bool, leak: bool) -> Reason:
    if leak:
        return Reason.LEAK_CAPPED
    for r in (Reason.ROLLBACK_BACKOFF, Reason.COOLDOWN, Reason.HYSTERESIS):
        if r in (cpu, mem):
            return r
    return Reason.EXCEEDS_MAX if capped else Reason.WITHIN_BAND


_QUIET = {
    Reason.WITHIN_BAND: "allocation fits the forecast",
    Reason.HYSTERESIS: "forecast below allocation, waiting for it to hold before shrinking",
    Reason.COOLDOWN: "forecast below allocation, too soon after the last change",
    Reason.LEAK_CAPPED: "suspected memory leak: memory held, not grown",
    Reason.EXCEEDS_MAX: "already at the policy maximum",
    Reason.ROLLBACK_BACKOFF: "growth held back: a recent change in that direction was rolled back",
}


def _quiet_message(reason: Reason) -> str:
    return _QUIET.get(reason, reason.value)


def _change_message(
    current: Allocation, cpu: float, mem: float, reasons: tuple[Reason, ...]
) -> str:
    why = ", ".join(r.value for r in reasons)
    return f"cpu {_cores(current.cpu, cpu)}, memory {_mib(current.memory, mem)} ({why})"


def _cores(old: float, new: float) -> str:
    if old == new:
        return f"{old:.3g} cores (kept)"
    return f"{old:.3g} -> {new:.3g} cores"


def _mib(old: float, new: float) -> str:
    mib = 1024.0 * 1024.0
    if old == new:
        return f"{old / mib:.0f}Mi (kept)"
    return f"{old / mib:.0f}Mi -> {new / mib:.0f}Mi"
