"""Watching a change, and reverting it when it hurt.

After every resize the loop keeps a :class:`Change`: the pod's containers before and after,
and a :class:`Health` baseline taken over the window before the change. For
``rollback_window_s`` the pod's health after the change is compared with that baseline by
:func:`judge` (pure):

===========================  ===============================  ==================  ==========
signal                       worse when                       blamed on           tolerance
===========================  ===============================  ==================  ==========
throttled share of periods   after − before > tolerance       a CPU shrink        absolute
CPU PSI (avg10)              after − before > tolerance       a CPU shrink        absolute
memory PSI (avg10)           after − before > tolerance       a memory shrink     absolute
OOM kills                    any after the change             a memory shrink     none
container restarts           any after the change             any change          none
latency SLO (scraped)        after > before × (1 + tol.)      any change          relative
                             and over the SLO
===========================  ===============================  ==================  ==========

Blame follows cause: throttling that rises after a CPU *growth* means the load is still
rising and the growth was too small, and reverting it would make things worse still; the
next decision grows again instead. A growth is reverted only for what a growth can cause:
a restart (a ``RestartContainer`` resize policy) or a worse application latency.

A change that made things worse is reverted to the containers' previous resources, the
reason recorded in the profile's rollback history, an Event emitted, and that direction
(grow or shrink, per resource) backed off for ``rollback_backoff_s`` through
``DecisionState.grow_blocked_until`` / ``shrink_blocked_until``. A change that survives the
window is kept. A signal that is unknown (no window reached the controller) never counts as
worse: the verdict waits, and after twice the window a change with no evidence is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from controller.orchestrator import ContainerResize, ContainerResources


@dataclass(frozen=True, slots=True)
class Health:
    """A pod's health over some span; NaN/None where nothing was observed."""

    throttled: float = math.nan
    cpu_psi: float = math.nan
    mem_psi: float = math.nan
    oom_kills: int = 0
    restarts: int = 0
    latency_s: float | None = None
    samples: int = 0


@dataclass(frozen=True, slots=True)
class Change:
    """One resize being watched."""

    pod_uid: str
    pod_name: str
    namespace: str
    at: float
    before: tuple[ContainerResources, ...]
    after: tuple[ContainerResize, ...]
    baseline: Health
    grew_cpu: bool
    grew_memory: bool
    shrank_cpu: bool
    shrank_memory: bool
    reason: str
    window_s: float


class Verdict(StrEnum):
    WAIT = "wait"
    KEEP = "keep"
    REVERT = "revert"


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    why: str


def _worse(after: float, before: float, tolerance: float) -> bool:
    if math.isnan(after):
        return False
    base = 0.0 if math.isnan(before) else before
    return after - base > tolerance


def judge(
    change: Change,
    after: Health,
    *,
    now: float,
    tolerance: float,
    latency_slo_s: float | None = None,
) -> Judgement:
    """Keep, revert or wait (module table)."""
    b = change.baseline
    reasons: list[str] = []
    if change.shrank_cpu and _worse(after.throttled, b.throttled, tolerance):
        reasons.append(f"throttling {_pct(b.throttled)} -> {_pct(after.throttled)}")
    if change.shrank_cpu and _worse(after.cpu_psi, b.cpu_psi, tolerance):
        reasons.append(f"cpu pressure {_pct(b.cpu_psi)} -> {_pct(after.cpu_psi)}")
    if change.shrank_memory and _worse(after.mem_psi, b.mem_psi, tolerance):
        reasons.append(f"memory pressure {_pct(b.mem_psi)} -> {_pct(after.mem_psi)}")
    if change.shrank_memory and after.oom_kills > 0:
        reasons.append(f"{after.oom_kills} OOM kill(s) since the change")
    if after.restarts > 0:
        reasons.append(f"{after.restarts} container restart(s) since the change")
    if (
        after.latency_s is not None
        and latency_slo_s is not None
        and after.latency_s > latency_slo_s
        and (b.latency_s is None or after.latency_s > b.latency_s * (1.0 + tolerance))
    ):
        reasons.append(f"latency {_s(b.latency_s)} -> {_s(after.latency_s)} over SLO")
    if reasons:
        return Judgement(Verdict.REVERT, "; ".join(reasons))
    elapsed = now - change.at
    if elapsed < change.window_s:
        return Judgement(Verdict.WAIT, f"watching, {change.window_s - elapsed:.0f}s left")
    if after.samples == 0 and elapsed < 2 * change.window_s:
        return Judgement(Verdict.WAIT, "no usage seen since the change yet")
    return Judgement(Verdict.KEEP, "nothing got worse within the window")


def revert_resizes(change: Change) -> tuple[ContainerResize, ...]:
    """The resize that puts back what the containers had before ``change``."""
    return tuple(
        ContainerResize(
            name=c.name,
            cpu_request=c.cpu_request,
            cpu_limit=c.cpu_limit,
            memory_request=c.memory_request,
            memory_limit=c.memory_limit,
        )
        for c in change.before
        if any(r.name == c.name for r in change.after)
    )


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.0%}"


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1000:.0f}ms"
