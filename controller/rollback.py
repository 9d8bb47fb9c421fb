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

A change is judged only once it took effect: the window starts when the node first reports
it done (``effective_at``; :mod:`controller.resizestate`), not when it was asked. A change the
node defers is watched once it is applied; one the node refuses or can never hold is not
judged at all (nothing changed for the pod; :mod:`controller.followup` handles it).

A watch of a *growth* (nothing shrank) does not freeze the pod: what a growth can be blamed
for (a restart, a worse latency) is not what a further growth would hide, and a container
still throttled after a growth needs the next one now, not after the window. A growth made
while another is watched joins its watch (:func:`merge`): judged against the baseline from
before the first, a revert puts back what ran before the first, restarts are counted since
then, and the window starts again from the newest. A watch of a shrink still holds the pod
until its verdict: whether the shrink hurt is what it is there to tell.

A change under watch is part of its workload's checkpoint (:func:`change_to_json`,
:func:`change_from_json`): a controller that restarts, or a standby that takes over, inside the
window still judges it, against the baseline taken before the change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import TypeVar

from controller.orchestrator import ContainerResize, ContainerResources
from presize.model import WorkloadKey


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
    # The workload whose checkpoint carries this watch (None: not checkpointed).
    workload: WorkloadKey | None = None
    # When the node was first seen running it (None: not yet; only then is it judged).
    effective_at: float | None = None

    @property
    def started(self) -> float:
        """Where the watch window starts: when it took effect, else when it was asked."""
        return self.at if self.effective_at is None else self.effective_at


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
    elapsed = now - change.started
    if elapsed < change.window_s:
        return Judgement(Verdict.WAIT, f"watching, {change.window_s - elapsed:.0f}s left")
    if after.samples == 0 and elapsed < 2 * change.window_s:
        return Judgement(Verdict.WAIT, "no usage seen since the change yet")
    return Judgement(Verdict.KEEP, "nothing got worse within the window")


def grows_only(change: Change) -> bool:
    """Whether ``change`` shrank nothing: a pod under its watch may still be grown."""
    return not (change.shrank_cpu or change.shrank_memory)


def merge(earlier: Change, later: Change) -> Change:
    """One watch for ``later``, made while ``earlier`` (a growth) was still watched (module
    docstring): ``earlier``'s baseline and containers before, ``later``'s window, the
    containers after both, the directions of both."""
    had = {c.name for c in earlier.before}
    before = earlier.before + tuple(c for c in later.before if c.name not in had)
    after = {r.name: r for r in earlier.after}
    for r in later.after:
        old = after.get(r.name)
        after[r.name] = r if old is None else _overlay(old, r)
    reasons = list(dict.fromkeys((*earlier.reason.split(", "), *later.reason.split(", "))))
    return replace(
        later,
        before=before,
        after=tuple(after.values()),
        baseline=earlier.baseline,
        grew_cpu=earlier.grew_cpu or later.grew_cpu,
        grew_memory=earlier.grew_memory or later.grew_memory,
        shrank_cpu=earlier.shrank_cpu or later.shrank_cpu,
        shrank_memory=earlier.shrank_memory or later.shrank_memory,
        reason=", ".join(r for r in reasons if r),
    )


def _overlay(old: ContainerResize, new: ContainerResize) -> ContainerResize:
    """``new``, with ``old``'s values where ``new`` leaves one as it was (``None``)."""

    def pick(a: float | None, b: float | None) -> float | None:
        return b if b is not None else a

    return ContainerResize(
        name=new.name,
        cpu_request=pick(old.cpu_request, new.cpu_request),
        cpu_limit=pick(old.cpu_limit, new.cpu_limit),
        memory_request=pick(old.memory_request, new.memory_request),
        memory_limit=pick(old.memory_limit, new.memory_limit),
    )


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


# ------------------------------------------------------------------------ checkpoint form


def _finite_or_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def change_to_json(change: Change) -> dict[str, object]:
    """``change`` as a JSON-safe mapping (NaN as null); its workload is the checkpoint's own."""
    b = change.baseline
    return {
        "podUid": change.pod_uid,
        "podName": change.pod_name,
        "namespace": change.namespace,
        "at": change.at,
        "before": [asdict(c) for c in change.before],
        "after": [asdict(r) for r in change.after],
        "baseline": {
            "throttled": _finite_or_none(b.throttled),
            "cpuPsi": _finite_or_none(b.cpu_psi),
            "memPsi": _finite_or_none(b.mem_psi),
            "oomKills": b.oom_kills,
            "restarts": b.restarts,
            "latencyS": b.latency_s,
            "samples": b.samples,
        },
        "grew": [change.grew_cpu, change.grew_memory],
        "shrank": [change.shrank_cpu, change.shrank_memory],
        "reason": change.reason,
        "windowS": change.window_s,
        "effectiveAt": change.effective_at,
    }


def _number(raw: Mapping[str, object], name: str) -> float:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"watched change: {name!r} is not a number: {value!r}")
    return float(value)


def _optional(raw: Mapping[str, object], name: str) -> float | None:
    """A number that may be null (nothing was observed)."""
    return None if raw.get(name) is None else _number(raw, name)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


_C = TypeVar("_C", ContainerResources, ContainerResize)


def _containers(cls: type[_C], raw: object, what: str) -> tuple[_C, ...]:
    if not isinstance(raw, list):
        raise ValueError(f"watched change: {what!r} is not a list")
    kinds = {f.name: str(f.type) for f in fields(cls)}
    out: list[_C] = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ValueError(f"watched change: a container in {what!r} has no name")
        values = {k: v for k, v in item.items() if k in kinds}
        for k, v in values.items():
            if not _fits(kinds[k], v):
                raise ValueError(f"watched change: {what!r}: {k}={v!r} is not a {kinds[k]}")
        out.append(cls(**values))
    return tuple(out)


def _fits(kind: str, value: object) -> bool:
    """Whether ``value`` is what a container field of type ``kind`` holds."""
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    return (value is None and kind.endswith("| None")) or isinstance(value, int | float)


def _pair(raw: Mapping[str, object], name: str) -> tuple[bool, bool]:
    value = raw.get(name)
    if not (
        isinstance(value, list) and len(value) == 2 and all(isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"watched change: {name!r} is not two booleans: {value!r}")
    return bool(value[0]), bool(value[1])


def change_from_json(raw: object, workload: WorkloadKey) -> Change:
    """A watched change back from :func:`change_to_json`; ``ValueError`` when malformed."""
    if not isinstance(raw, Mapping):
        raise ValueError("watched change: not an object")
    base = raw.get("baseline")
    if not isinstance(base, Mapping):
        raise ValueError("watched change: no baseline")
    texts = {k: raw.get(k) for k in ("podUid", "podName", "namespace", "reason")}
    for k, v in texts.items():
        if not isinstance(v, str):
            raise ValueError(f"watched change: {k!r} is not a string: {v!r}")
    grew, shrank = _pair(raw, "grew"), _pair(raw, "shrank")
    return Change(
        pod_uid=str(texts["podUid"]),
        pod_name=str(texts["podName"]),
        namespace=str(texts["namespace"]),
        at=_number(raw, "at"),
        before=_containers(ContainerResources, raw.get("before"), "before"),
        after=_containers(ContainerResize, raw.get("after"), "after"),
        baseline=Health(
            throttled=_nan_if_none(_optional(base, "throttled")),
            cpu_psi=_nan_if_none(_optional(base, "cpuPsi")),
            mem_psi=_nan_if_none(_optional(base, "memPsi")),
            oom_kills=int(_number(base, "oomKills")),
            restarts=int(_number(base, "restarts")),
            latency_s=_optional(base, "latencyS"),
            samples=int(_number(base, "samples")),
        ),
        grew_cpu=grew[0],
        grew_memory=grew[1],
        shrank_cpu=shrank[0],
        shrank_memory=shrank[1],
        reason=str(texts["reason"]),
        window_s=_number(raw, "windowS"),
        workload=workload,
        # A checkpoint from before this field was judged from when it was asked.
        effective_at=_optional(raw, "effectiveAt") if "effectiveAt" in raw else _number(raw, "at"),
    )
