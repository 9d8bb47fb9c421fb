"""Actions and their watch: resize, reschedule, the pending-resize fallback, rollback.

The :class:`Actuator` is the only part of the controller that changes anything. It sends a
pod's plan to the orchestrator, puts every resize under watch (:mod:`controller.rollback`),
and reverts what made things worse, backing off that direction for the workload. A
reschedule is an eviction, made only when the workload has a replica to spare (or the policy
allows evicting the last one), never for a bare pod, and at most ``evictions_per_minute``;
PodDisruptionBudgets are enforced by the Eviction API in any case and a refusal is an
outcome, not an error.

Changes under watch are checkpointed with their workload (:mod:`controller.rollback`); a
change is judged only once the node reports it done (:mod:`controller.resizestate`), and one
the node refuses is dropped without a verdict. Every resize sent is remembered as
:class:`Asked` until the node answers, so :mod:`controller.followup` knows which pending or
refused resizes are presize's own (and which of them were already put back).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from controller.metrics import ControllerMetrics
from controller.orchestrator import (
    ContainerResize,
    ContainerResources,
    EventType,
    Orchestrator,
    Outcome,
    PodView,
    WorkloadView,
)
from controller.plan import PodPlan
from controller.policies import LatencySlo, PolicyBook
from controller.recent import RecentWindows
from controller.resizestate import ResizePhase, ResizeState
from controller.rollback import Change, Verdict, grows_only, judge, merge, revert_resizes
from controller.settings import ControllerSettings
from controller.status import DecisionRecord, RollbackRecord
from presize.model import Action, WorkloadKey
from presize.policy import DecisionState
from presize.units import format_bytes, format_cpu

log = logging.getLogger("controller")


@dataclass(slots=True)
class WorkloadRecord:
    """What the controller keeps per workload besides its container profiles."""

    key: WorkloadKey
    decisions: deque[DecisionRecord] = field(default_factory=lambda: deque(maxlen=10))
    rollbacks: deque[RollbackRecord] = field(default_factory=lambda: deque(maxlen=10))
    states: dict[str, dict[str, DecisionState]] = field(default_factory=dict)
    backoff: dict[str, DecisionState] = field(default_factory=dict)
    dirty: bool = True
    alerted: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Asked:
    """A resize sent and not yet answered by the node: the containers as they were when it
    was asked, which of them it changed, and whether it was itself a putting back (a
    rollback, or a refused resize undone), which is never put back in turn."""

    at: float
    before: tuple[ContainerResources, ...]
    names: tuple[str, ...]
    putting_back: bool = False


class Actuator:
    def __init__(
        self,
        orch: Orchestrator,
        *,
        settings: ControllerSettings,
        metrics: ControllerMetrics,
        recent: RecentWindows,
        record_for: Callable[[WorkloadKey], WorkloadRecord],
        time_scale: float,
        act: bool,
        latency_of: Callable[[LatencySlo | None], float | None] = lambda slo: None,
    ) -> None:
        self.orch = orch
        self.s = settings
        self.metrics = metrics
        self.recent = recent
        self.record_for = record_for
        self.time_scale = time_scale
        self.act = act
        self.latency_of = latency_of
        self.watching: dict[str, Change] = {}
        self.asked: dict[str, Asked] = {}
        self.evictions: deque[float] = deque()
        self._deferral_told: dict[str, float] = {}

    def window_for(self, policy_window_s: float | None) -> float:
        """The rollback window: the policy's (compressed like every duration), else ours."""
        if policy_window_s is None:
            return self.s.rollback_window_s
        return policy_window_s / self.time_scale

    async def carry_out(
        self,
        pod: PodView,
        plan: PodPlan,
        now: float,
        workload: WorkloadView | None,
        book: PolicyBook,
    ) -> bool:
        """Send ``plan`` to the orchestrator and put a resize under watch; ``True`` when the
        pod's resources were changed (a reschedule changes them through a new pod)."""
        if plan.action is Action.SCALE_OUT:
            await self.orch.record_event(
                pod=pod.ref,
                workload=pod.workload,
                type=EventType.WARNING,
                reason="ScaleOutHint",
                message=scale_out_hint(plan, workload),
            )
        if plan.action is Action.RESCHEDULE:
            return await self.reschedule(pod, now, workload, plan.message, book)
        if not plan.resizes:
            return False
        result = await self.orch.resize(pod.ref, plan.resizes)
        self.metrics.actions.labels("resize", result.outcome.value).inc()
        if not result.ok:
            log.warning(
                "resize %s/%s %s: %s",
                pod.ref.namespace,
                pod.ref.name,
                result.outcome.value,
                result.message,
            )
            return False
        self.note_asked(pod, plan.resizes, now)
        baseline = self.recent.health(
            pod.ref.uid, [c.name for c in pod.containers], now - self.s.rollback_window_s, now
        )
        effective = book.resolve(pod.ref.namespace, pod.containers[0].name, pod.labels)
        baseline = replace(baseline, latency_s=self.latency_of(effective.slo.latency))
        before = {c.name: c for c in pod.containers}
        grew = {"cpu": False, "memory": False}
        shrank = {"cpu": False, "memory": False}
        for r in plan.resizes:
            old = before.get(r.name)
            if old is None:
                continue
            for res, new, cur in (
                ("cpu", r.cpu_limit or r.cpu_request, old.cpu_limit or old.cpu_request),
                (
                    "memory",
                    r.memory_limit or r.memory_request,
                    old.memory_limit or old.memory_request,
                ),
            ):
                if new is not None and cur is not None:
                    grew[res] |= new > cur
                    shrank[res] |= new < cur
        if effective.rollback_enabled:
            change = Change(
                pod_uid=pod.ref.uid,
                pod_name=pod.ref.name,
                namespace=pod.ref.namespace,
                at=now,
                before=tuple(c for c in pod.containers if c.name in {r.name for r in plan.resizes}),
                after=plan.resizes,
                baseline=baseline,
                grew_cpu=grew["cpu"],
                grew_memory=grew["memory"],
                shrank_cpu=shrank["cpu"],
                shrank_memory=shrank["memory"],
                reason=plan.reason.value,
                window_s=self.window_for(effective.rollback_window_s),
                workload=pod.workload,
            )
            watched = self.watching.get(pod.ref.uid)
            if watched is not None and grows_only(watched):
                # A growth while a growth is watched (the load still rising): one watch for
                # both, from before the first (controller.rollback).
                change = merge(watched, change)
            self._keep(change)
        await self.orch.record_event(
            pod=pod.ref,
            workload=None,
            type=EventType.NORMAL,
            reason="Resized",
            message=plan.message,
        )
        return True

    def note_asked(
        self,
        pod: PodView,
        changes: Sequence[ContainerResize],
        now: float,
        *,
        putting_back: bool = False,
    ) -> None:
        """Remember a resize the orchestrator accepted, until the node answers it."""
        names = tuple(r.name for r in changes)
        self.asked[pod.ref.uid] = Asked(now, pod.containers, names, putting_back)

    def took_effect(self, pod: PodView, now: float) -> None:
        """The node runs what ``pod``'s spec asks (first seen at ``now``): the resize asked
        last, if any, is answered, and the windows measured before it no longer tell how the
        resources it changed cope (:meth:`controller.recent.RecentWindows.allocation_changed`;
        an orchestrator that does not report what runs applied it when it was asked)."""
        asked = self.asked.pop(pod.ref.uid, None)
        if asked is None:
            return
        at = now if pod.applied else asked.at
        had = {c.name: c for c in asked.before}
        for name in asked.names:
            old, new = had.get(name), pod.container(name)
            if old is None or new is None:
                continue
            cpu = (old.cpu_request, old.cpu_limit) != (new.cpu_request, new.cpu_limit)
            memory = (old.memory_request, old.memory_limit) != (
                new.memory_request,
                new.memory_limit,
            )
            if cpu or memory:
                self.recent.allocation_changed(pod.ref.uid, name, at, cpu=cpu, memory=memory)

    async def reschedule(
        self, pod: PodView, now: float, workload: WorkloadView | None, why: str, book: PolicyBook
    ) -> bool:
        """Evict ``pod`` so it is recreated elsewhere, when that is safe and allowed; ``True``
        when it was evicted. A deferral is told once per pod per ``deferred_timeout_s``."""
        blocked = self.reschedule_blocked(pod, now, workload, book)
        if blocked is not None:
            msg = blocked
        else:
            result = await self.orch.evict(pod.ref, why)
            self.metrics.actions.labels("evict", result.outcome.value).inc()
            if result.ok:
                self.evictions.append(now)
                await self.orch.record_event(
                    pod=pod.ref,
                    workload=pod.workload,
                    type=EventType.NORMAL,
                    reason="Rescheduled",
                    message=why,
                )
                return True
            msg = f"eviction {result.outcome.value}: {result.message}"
        log.info("reschedule of %s/%s deferred: %s", pod.ref.namespace, pod.ref.name, msg)
        told = self._deferral_told.get(pod.ref.uid)
        if told is not None and now - told < self.s.deferred_timeout_s:
            return False
        self._deferral_told[pod.ref.uid] = now
        await self.orch.record_event(
            pod=pod.ref,
            workload=None,
            type=EventType.NORMAL,
            reason="RescheduleDeferred",
            message=f"{why}; {msg}",
        )
        return False

    def reschedule_blocked(
        self, pod: PodView, now: float, workload: WorkloadView | None, book: PolicyBook
    ) -> str | None:
        """Why ``pod`` cannot be evicted now (``None``: it can): a bare pod, no replica to
        spare within the PodDisruptionBudget (unless the policy allows evicting the last
        one), or the eviction rate limit."""
        effective = book.resolve(pod.ref.namespace, pod.containers[0].name, pod.labels)
        spare = (
            workload is not None
            and workload.ready > 1
            and (workload.disruptions_allowed is None or workload.disruptions_allowed > 0)
        )
        if pod.workload.kind.value in ("Pod", "Container"):
            return "cannot reschedule a pod no controller recreates"
        if not (spare or effective.eviction_allowed):
            return "no replica to spare and the policy does not allow evicting the last one"
        if not self._eviction_allowed(now):
            return f"eviction rate limit ({self.s.evictions_per_minute}/min) reached"
        return None

    def _eviction_allowed(self, now: float) -> bool:
        window = 60.0 / self.s.time_scale if self.s.time_scale != 1 else 60.0
        while self.evictions and self.evictions[0] < now - window:
            self.evictions.popleft()
        return len(self.evictions) < self.s.evictions_per_minute

    async def judge_changes(
        self,
        now: float,
        pods_by_uid: Mapping[str, PodView],
        book: PolicyBook,
        state_of: Callable[[PodView, float], ResizeState],
    ) -> set[str]:
        """Keep or revert every change whose watch has an answer (:func:`judge`); returns the
        pods reverted, which the caller must not decide again from its older view this cycle
        (that view still shows the change being undone).

        Only a change the node has carried out is judged (``state_of``, the follow-up's view
        of :func:`controller.resizestate.classify_resize`): its window starts when it is first
        seen done; one still deferred, in progress or unanswered waits; one the node refused
        or can never hold ends its watch with no verdict, since nothing changed for the pod."""
        reverted: set[str] = set()
        for uid, watched in list(self.watching.items()):
            pod = pods_by_uid.get(uid)
            if pod is None:
                self._unwatch(watched)
                continue
            change = watched
            phase = state_of(pod, now).phase
            if phase in (ResizePhase.INFEASIBLE, ResizePhase.ERROR):
                log.info("watch of %s/%s ends: the node did not apply the change (%s)",
                         change.namespace, change.pod_name, phase.value)  # fmt: skip
                # After a restart the checkpointed watch is what tells it was presize's.
                resized = tuple(r.name for r in change.after)
                self.asked.setdefault(uid, Asked(change.at, change.before, resized))
                self._unwatch(change)
                continue
            if phase is ResizePhase.DEFERRED:
                self._rebase_restarts(change, pod)
            if phase is not ResizePhase.DONE:
                continue
            if change.effective_at is None:
                change = self._took_effect(change, pod, now)
            names = [r.name for r in change.after]
            after = self.recent.health(uid, names, change.started, now)
            restarts = sum(
                max(0, c.restarts - b.restarts)
                for c in pod.containers
                for b in change.before
                if b.name == c.name
            )
            effective = book.resolve(pod.ref.namespace, names[0], pod.labels)
            after = replace(
                after, restarts=restarts, latency_s=self.latency_of(effective.slo.latency)
            )
            latency = effective.slo.latency.max_seconds if effective.slo.latency else None
            verdict = judge(
                change, after, now=now, tolerance=self.s.rollback_tolerance, latency_slo_s=latency
            )
            if verdict.verdict is Verdict.WAIT:
                continue
            self._unwatch(change)
            if verdict.verdict is Verdict.REVERT:
                await self._revert(pod, change, verdict.why, now)
                reverted.add(uid)
        return reverted

    def _took_effect(self, change: Change, pod: PodView, now: float) -> Change:
        """Start the watch window of ``change``, seen done at ``now`` (an orchestrator that
        does not report what runs applies synchronously: then when it was asked)."""
        change = replace(change, effective_at=now if pod.applied else change.at)
        self._keep(change)
        return change

    def _rebase_restarts(self, change: Change, pod: PodView) -> None:
        """A restart while the node defers the change is not its doing (the node has not
        touched the pod for it): count restarts from now. Restarts while it is applied are
        still counted (a ``RestartContainer`` resize policy restarts it then)."""
        restarts = {c.name: c.restarts for c in pod.containers}
        before = tuple(replace(b, restarts=restarts.get(b.name, b.restarts)) for b in change.before)
        if before != change.before:
            self._keep(replace(change, before=before))

    def _keep(self, change: Change) -> None:
        self.watching[change.pod_uid] = change
        if change.workload is not None:
            self.record_for(change.workload).dirty = True

    def _unwatch(self, change: Change) -> None:
        """End a watch; its workload's checkpoint must drop it too."""
        del self.watching[change.pod_uid]
        if change.workload is not None:
            self.record_for(change.workload).dirty = True

    async def _revert(self, pod: PodView, change: Change, why: str, now: float) -> None:
        back = revert_resizes(change)
        result = await self.orch.resize(pod.ref, back)
        self.metrics.actions.labels("rollback", result.outcome.value).inc()
        if result.outcome is Outcome.GONE:
            return
        if result.ok:
            self.note_asked(pod, back, now, putting_back=True)
        self.metrics.rollbacks.inc()
        record = self.record_for(pod.workload)
        until = now + self.s.rollback_backoff_s
        for before in change.before:
            after = next((r for r in change.after if r.name == before.name), None)
            record.rollbacks.append(
                RollbackRecord(
                    now,
                    pod.ref.name,
                    before.name,
                    why,
                    _quantities(before),
                    _quantities_resize(after),
                )
            )
            base = record.backoff.get(before.name, DecisionState())
            grew = change.grew_cpu or change.grew_memory
            base = (
                replace(base, grow_blocked_until=until)
                if grew
                else replace(base, shrink_blocked_until=until)
            )
            record.backoff[before.name] = base
            per_pod = record.states.setdefault(pod.ref.uid, {})
            current = per_pod.get(before.name, DecisionState())
            per_pod[before.name] = replace(
                current,
                grow_blocked_until=base.grow_blocked_until,
                shrink_blocked_until=base.shrink_blocked_until,
                last_change=now,
            )
        record.dirty = True
        message = f"reverted the change of {_ago(now - change.at)} ago ({change.reason}): {why}"
        log.warning("rollback %s/%s: %s", pod.ref.namespace, pod.ref.name, message)
        await self.orch.record_event(
            pod=pod.ref,
            workload=pod.workload,
            type=EventType.WARNING,
            reason="ResizeRolledBack",
            message=message,
        )


def scale_out_hint(plan: PodPlan, workload: WorkloadView | None) -> str:
    """The SCALE_OUT Event: the replicas the forecast needs, or, when a HorizontalPodAutoscaler
    owns the replica count, what to change in it (presize never fights an HPA)."""
    replicas = workload.replicas if workload is not None and workload.replicas > 0 else 1
    needed = max(replicas + 1, math.ceil(replicas * plan.overload))
    if workload is not None and workload.autoscaled:
        advice = (f"an autoscaler owns the replica count: let it reach at least {needed} "
                  "replicas (maxReplicas, or a lower target)")  # fmt: skip
    else:
        advice = f"run at least {needed} replicas (now {replicas})"
    return (f"one replica cannot hold the forecast within its maximum "
            f"({plan.overload:.2f}x): {advice}; {plan.message}")  # fmt: skip


def _quantities(c: ContainerResources) -> dict[str, str]:
    out: dict[str, str] = {}
    if c.cpu_request is not None:
        out["cpuRequest"] = format_cpu(c.cpu_request)
    if c.cpu_limit is not None:
        out["cpuLimit"] = format_cpu(c.cpu_limit)
    if c.memory_request is not None:
        out["memoryRequest"] = format_bytes(c.memory_request)
    if c.memory_limit is not None:
        out["memoryLimit"] = format_bytes(c.memory_limit)
    return out


def _quantities_resize(r: object) -> dict[str, str]:
    if r is None:
        return {}
    return _quantities(
        ContainerResources(
            name=getattr(r, "name", ""),
            cpu_request=getattr(r, "cpu_request", None),
            cpu_limit=getattr(r, "cpu_limit", None),
            memory_request=getattr(r, "memory_request", None),
            memory_limit=getattr(r, "memory_limit", None),
        )
    )


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"
