"""What the controller does once a node answers a resize with something other than "done".

The loop classifies every pod it is about to decide (:func:`controller.resizestate.
classify_resize`) and hands the ones whose resize is not done to :class:`ResizeFollowUp`:

================  ===========================================================================
the node says     presize
================  ===========================================================================
unknown, or       waits: no decision, no new PATCH (a second ask would only race the first).
in progress       After ``resize_settle_s`` without an answer it decides the pod again anyway
                  (a node that never reports must not freeze it)
Deferred          waits: the kubelet applies it by itself when room frees, so it is not asked
                  again; ``ResizeWaitingForNode`` Event and a DEFER (``resize-deferred``) once.
                  Still deferred after ``deferred_timeout_s``: a reschedule (eviction, only
                  with a replica to spare within the PodDisruptionBudget; else
                  ``RescheduleDeferred``)
Infeasible        never on this node, so never asked again here: a :class:`~controller.
                  resizestate.Refusal` is kept per pod until the pod or its node changes, and
                  any later plan growing as far is screened out (:meth:`screen`). Falls back
                  to a reschedule when another node has room and a replica can be spared;
                  else waits (DEFER), with presize's own resize put back to what the pod runs
                  so the spec tells the truth. ``ResizeInfeasibleOnNode`` Event, decision
                  ``resize-infeasible``
Error             (a memory limit below current usage) presize's own resize is put back to
                  what the container runs (``status.containerStatuses[].resources``) in one
                  PATCH, so the kubelet stops retrying it every 15 s; another's is left. The
                  container's memory is not shrunk again for ``rollback_backoff_s``
                  (``DecisionState.memory_shrink_blocked_until``). ``ResizeRefused`` Event,
                  decision DEFER ``resize-refused``
================  ===========================================================================

Each answer is told once (an Event and one decision record), not every cycle: the key is the
phase and the spec the node answered. A resize never judged by the rollback watch when it
never took effect is :mod:`controller.actuator`'s part. The kubelet's own Events are
``ResizeDeferred``, ``ResizeInfeasible`` and ``ResizeError``; presize's reasons differ so that
an Event says who reacted. Events and changes are made only when the controller acts (mode
``auto``, not ``--dry-run``); the decisions are kept in every mode. Docker Swarm reports a
paused service update as Error (:mod:`controller.docker.views`): the same path puts presize's
update back to what the tasks run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from controller.actuator import Actuator, WorkloadRecord
from controller.metrics import ControllerMetrics
from controller.orchestrator import (
    ContainerResources,
    EventType,
    NodeView,
    Outcome,
    PodView,
    WorkloadView,
)
from controller.plan import PodPlan, acts
from controller.policies import PolicyBook
from controller.resizestate import (
    Refusal,
    ResizePhase,
    ResizeState,
    classify_resize,
    put_back,
    refusal_of,
    requests_of,
    resized,
    room_elsewhere,
)
from controller.settings import ControllerSettings
from controller.status import DecisionRecord
from presize.model import Action, Reason, WorkloadKey
from presize.policy import Allocation, DecisionState

log = logging.getLogger("controller")

WAITING = ResizePhase.IN_PROGRESS, ResizePhase.UNKNOWN
_QUIET_REASONS = frozenset(
    {Reason.RESIZE_DEFERRED, Reason.RESIZE_INFEASIBLE, Reason.RESIZE_REFUSED}
)


def append_decision(record: WorkloadRecord, decision: DecisionRecord) -> bool:
    """Keep ``decision`` in the workload's history unless it only repeats the pod's last one
    for a node's answer (a wait is one decision, not one per cycle); ``True`` if kept."""
    last = next((d for d in reversed(record.decisions) if d.pod == decision.pod), None)
    repeat = (
        last is not None
        and decision.reason in _QUIET_REASONS
        and (last.action, last.reason) == (decision.action, decision.reason)
    )
    if not repeat:
        record.decisions.append(decision)
        record.dirty = True
    return not repeat


def _spec_key(pod: PodView) -> tuple[object, ...]:
    return tuple(
        (c.name, c.cpu_request, c.cpu_limit, c.memory_request, c.memory_limit)
        for c in pod.containers
    )


class ResizeFollowUp:
    """Per-pod memory of the node's answers: when an answer started, what was told, what
    was refused (module docstring)."""

    def __init__(
        self,
        actuator: Actuator,
        *,
        settings: ControllerSettings,
        metrics: ControllerMetrics,
        record_for: Callable[[WorkloadKey], WorkloadRecord],
        act: bool,
    ) -> None:
        self.actuator = actuator
        self.s = settings
        self.metrics = metrics
        self.record_for = record_for
        self.act = act
        self.refused: dict[str, Refusal] = {}
        self._unknown_since: dict[str, float] = {}
        self._pending_since: dict[str, float] = {}
        self._told: dict[str, tuple[object, ...]] = {}
        self._put_back: dict[str, tuple[object, ...]] = {}
        self._cycle: dict[str, ResizeState] = {}

    # ------------------------------------------------------------------ reading

    def begin_cycle(self, pods: Mapping[str, PodView], nodes: Mapping[str, NodeView]) -> None:
        """Forget what was kept for pods that are gone, and refusals whose node changed."""
        self._cycle = {}
        for uid, refusal in list(self.refused.items()):
            pod = pods.get(uid)
            if pod is None or not refusal.holds(nodes.get(pod.ref.node)):
                del self.refused[uid]
        for kept in (
            self._unknown_since, self._pending_since, self._told, self._put_back,
            self.actuator.asked,
        ):  # fmt: skip
            for uid in [u for u in kept if u not in pods]:
                del kept[uid]

    def state_of(self, pod: PodView, now: float) -> ResizeState:
        """:func:`classify_resize`, once per pod per cycle; an answer missing for longer than
        ``resize_settle_s`` counts as done (a node that never reports must not freeze a pod)."""
        uid = pod.ref.uid
        cached = self._cycle.get(uid)
        if cached is not None:
            return cached
        state = classify_resize(pod)
        if state.phase is ResizePhase.UNKNOWN:
            since = self._unknown_since.setdefault(uid, now)
            if now - since >= self.s.resize_settle_s:
                state = ResizeState(ResizePhase.DONE, f"taken as done: {state.reason}", since)
        else:
            self._unknown_since.pop(uid, None)
        if state.phase is ResizePhase.DONE:  # answered: a later answer is a new one
            self.actuator.took_effect(pod, now)
            self._pending_since.pop(uid, None)
            self._put_back.pop(uid, None)
            self._told.pop(uid, None)
        self._cycle[uid] = state
        return state

    # ------------------------------------------------------------------ answers

    async def follow(
        self,
        pod: PodView,
        state: ResizeState,
        now: float,
        *,
        workload: WorkloadView | None,
        nodes: Mapping[str, NodeView],
        book: PolicyBook,
    ) -> Action:
        """React to a Deferred, Infeasible or Error answer (module table)."""
        acting = self.act and acts(
            book.resolve(pod.ref.namespace, pod.containers[0].name, pod.labels).mode
        )
        if state.phase is ResizePhase.DEFERRED:
            return await self._deferred(pod, state, now, workload=workload, book=book,
                                        acting=acting)  # fmt: skip
        if state.phase is ResizePhase.INFEASIBLE:
            return await self._infeasible(pod, state, now, workload=workload, nodes=nodes,
                                          book=book, acting=acting)  # fmt: skip
        return await self._refused(pod, state, now, acting=acting)

    async def _deferred(
        self,
        pod: PodView,
        state: ResizeState,
        now: float,
        *,
        workload: WorkloadView | None,
        book: PolicyBook,
        acting: bool,
    ) -> Action:
        since = self._pending_since.setdefault(pod.ref.uid, state.since or now)
        waited = now - since
        if waited < self.s.deferred_timeout_s:
            message = (f"the node defers the resize ({state.reason}); it applies it by itself "
                       f"when room frees, so it is not asked again; rescheduling after "
                       f"{_ago(self.s.deferred_timeout_s)} if it still cannot")  # fmt: skip
            await self._tell(pod, ("deferred",), now, action=Action.DEFER,
                             reason=Reason.RESIZE_DEFERRED, event="ResizeWaitingForNode",
                             type_=EventType.NORMAL, message=message, acting=acting)  # fmt: skip
            return Action.DEFER
        why = f"resize deferred for {_ago(waited)}: {state.reason}"
        self._decided(pod, ("late",), now, action=Action.RESCHEDULE,
                      reason=Reason.RESIZE_DEFERRED, message=why)  # fmt: skip
        if acting:
            await self.actuator.reschedule(pod, now, workload, why, book)
        return Action.RESCHEDULE

    async def _infeasible(
        self,
        pod: PodView,
        state: ResizeState,
        now: float,
        *,
        workload: WorkloadView | None,
        nodes: Mapping[str, NodeView],
        book: PolicyBook,
        acting: bool,
    ) -> Action:
        uid = pod.ref.uid
        asked = self.actuator.asked.get(uid)
        ours = asked is not None and not asked.putting_back
        before = pod.applied or (asked.before if asked is not None else ())
        if ours:
            node = nodes.get(pod.ref.node)
            refusal = refusal_of(pod, before, node, state.reason, now)
            kept = self.refused.get(uid)
            if kept is not None and kept.holds(node):  # the lowest refused level stands
                refusal = replace(
                    refusal, cpu=min(refusal.cpu, kept.cpu), memory=min(refusal.memory, kept.memory)
                )
            self.refused[uid] = refusal
        why = f"resize infeasible on node {pod.ref.node}: {state.reason}"
        blocked = self._fallback_blocked(pod, requests_of(pod.containers), now,
                                         workload=workload, nodes=nodes, book=book)  # fmt: skip
        action, outcome = Action.RESCHEDULE, "rescheduling"
        if blocked is not None:
            action, outcome = Action.DEFER, f"waiting: {blocked}"
        elif acting and not await self.actuator.reschedule(pod, now, workload, why, book):
            action, outcome = Action.DEFER, "waiting: the eviction was refused"
        if action is Action.DEFER and ours and asked is not None and acting:
            outcome += await self._put_spec_back(pod, asked.names, asked.before, now)
        message = f"the node can never hold this resize ({state.reason}); {outcome}"
        await self._tell(pod, ("infeasible",), now, action=action,
                         reason=Reason.RESIZE_INFEASIBLE, event="ResizeInfeasibleOnNode",
                         type_=EventType.WARNING, message=message, acting=acting)  # fmt: skip
        return action

    async def _refused(
        self, pod: PodView, state: ResizeState, now: float, *, acting: bool
    ) -> Action:
        uid = pod.ref.uid
        asked = self.actuator.asked.get(uid)
        before = pod.applied or (asked.before if asked is not None else ())
        had = {c.name: c for c in before}
        shrunk = [
            c.name
            for c in pod.containers
            if (old := had.get(c.name)) is not None
            and (c.memory_limit or c.memory_request or 0.0)
            < (old.memory_limit or old.memory_request or 0.0)
        ]
        until = now + self.s.rollback_backoff_s
        self._hold_memory(pod, shrunk, until)
        if asked is None:
            outcome = "the spec is left as it is (not presize's resize)"
        elif asked.putting_back:
            outcome = "the spec is left as it is (it was putting a change back)"
        elif not acting:
            outcome = "the spec is left as it is (presize does not change this pod now)"
        else:
            outcome = await self._put_spec_back(pod, asked.names, asked.before, now)
            outcome = outcome.removeprefix("; ")
        held = f"; memory of {', '.join(shrunk)} not shrunk for {_ago(until - now)}"
        message = f"the node refused the resize ({state.reason}); {outcome}{held if shrunk else ''}"
        await self._tell(pod, ("refused",), now, action=Action.DEFER,
                         reason=Reason.RESIZE_REFUSED, event="ResizeRefused",
                         type_=EventType.WARNING, message=message, acting=acting)  # fmt: skip
        return Action.DEFER

    async def _put_spec_back(
        self,
        pod: PodView,
        names: tuple[str, ...],
        before: tuple[ContainerResources, ...],
        now: float,
    ) -> str:
        """Set the spec back to what the containers run, once per answered spec (tried again
        only when the API could not be reached); the words for the Event."""
        key = _spec_key(pod)
        if self._put_back.get(pod.ref.uid) == key:
            return "; the spec was put back to what the pod runs"
        back = put_back(pod, names, before)
        if not back:
            return "; nothing to put back (what the pod runs is not known)"
        result = await self.actuator.orch.resize(pod.ref, back)
        self.metrics.actions.labels("put-back", result.outcome.value).inc()
        if result.outcome is not Outcome.FAILED:
            self._put_back[pod.ref.uid] = key
        if not result.ok:
            return f"; putting the spec back failed ({result.outcome.value}: {result.message})"
        self.actuator.note_asked(pod, back, now, putting_back=True)
        return "; the spec is put back to what the pod runs"

    def _hold_memory(self, pod: PodView, names: list[str], until: float) -> None:
        record = self.record_for(pod.workload)
        per_pod = record.states.setdefault(pod.ref.uid, {})
        for name in names:
            current = per_pod.get(name) or record.backoff.get(name, DecisionState())
            per_pod[name] = replace(
                current,
                memory_shrink_blocked_until=max(current.memory_shrink_blocked_until, until),
            )
        if names:
            record.dirty = True

    # ------------------------------------------------------------------ telling

    async def _tell(
        self,
        pod: PodView,
        kind: tuple[object, ...],
        now: float,
        *,
        action: Action,
        reason: Reason,
        event: str,
        type_: EventType,
        message: str,
        acting: bool,
    ) -> None:
        """One Event and one decision per answer (the phase and the spec it answers)."""
        if not self._decided(pod, kind, now, action=action, reason=reason, message=message):
            return
        log.info("resize of %s/%s: %s", pod.ref.namespace, pod.ref.name, message)
        if acting:
            await self.actuator.orch.record_event(
                pod=pod.ref, workload=pod.workload, type=type_, reason=event, message=message
            )

    def _decided(
        self,
        pod: PodView,
        kind: tuple[object, ...],
        now: float,
        *,
        action: Action,
        reason: Reason,
        message: str,
    ) -> bool:
        """Count and keep one decision per answer; ``False`` when it was already kept."""
        key = (*kind, _spec_key(pod))
        if self._told.get(pod.ref.uid) == key:
            return False
        self._told[pod.ref.uid] = key
        self.metrics.decisions.labels(action.value, reason.value).inc()
        record = self.record_for(pod.workload)
        record.decisions.append(
            DecisionRecord(now, pod.ref.name, action.value, reason.value, message)
        )
        record.dirty = True
        return True

    # ------------------------------------------------------------------ screening plans

    def screen(
        self,
        pod: PodView,
        plan: PodPlan,
        now: float,
        *,
        workload: WorkloadView | None,
        nodes: Mapping[str, NodeView],
        book: PolicyBook,
    ) -> PodPlan:
        """``plan`` unless it grows the pod as far as a resize this node found infeasible:
        then a reschedule when it can help and is allowed, else a wait, without any resize."""
        refusal = self.refused.get(pod.ref.uid)
        if refusal is None or not plan.resizes:
            return plan
        current = requests_of(pod.containers)
        asked = requests_of(resized(pod.containers, plan.resizes))
        if not refusal.blocks(asked, current):
            return plan
        held = tuple(replace(o, resize=None) for o in plan.containers)
        why = (f"{plan.message}; not asked: node {refusal.node} found such a resize infeasible "
               f"({refusal.message})")  # fmt: skip
        blocked = self._fallback_blocked(pod, asked, now, workload=workload, nodes=nodes,
                                         book=book)  # fmt: skip
        if blocked is None:
            return PodPlan(Action.RESCHEDULE, Reason.RESIZE_INFEASIBLE, why, held)
        return PodPlan(Action.DEFER, Reason.RESIZE_INFEASIBLE, f"{why}; waiting: {blocked}", held)

    def _fallback_blocked(
        self,
        pod: PodView,
        need: Allocation,
        now: float,
        *,
        workload: WorkloadView | None,
        nodes: Mapping[str, NodeView],
        book: PolicyBook,
    ) -> str | None:
        """Why a growth this node cannot hold is not rescheduled (``None``: it is): no other
        node has room for the pod, or it cannot be evicted now."""
        if not room_elsewhere(nodes.values(), pod.ref.node, need):
            return "no other node has room for it either"
        return self.actuator.reschedule_blocked(pod, now, workload, book)


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"
