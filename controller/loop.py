"""The controller's brain: reports in, profiles kept, pods decided, actions taken and watched.

:class:`Controller` is driven from outside (:mod:`controller.__main__` runs the timers; tests
and the benchmark call the methods directly with their own clock):

* :meth:`ingest` takes a decoded report: windows go to the step accumulator (profiles) and to
  the recent-window store (per-pod signals); urgent reasons mark pods to decide next.
* :meth:`cycle` (every ``urgent_period_s`` for marked pods, every ``profile_period_s`` for all)
  reads the orchestrator's state, closes finished steps into the profiles, judges the changes
  under watch (rollback), follows resizes the node has not carried out (Deferred,
  Infeasible, refused: :mod:`controller.followup`), and decides each pod through
  :func:`controller.plan.plan_pod`, acting when the mode is ``auto``.
* :meth:`detect_anomalies`, :meth:`refit` (worker thread) and :meth:`checkpoint` run on
  their own periods; :meth:`restore` takes profiles back from the store at start.

Nothing here knows Kubernetes: pods, nodes and actions go through
:class:`controller.orchestrator.Orchestrator`. Every decision is a value with its reason,
counted in metrics, kept in the profile's status (the last ``max_decisions_kept``), and
logged; dry-run (``act=False``) decides and logs everything but sends no action.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time as _time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace

from controller.actuator import Actuator, WorkloadRecord
from controller.appmetrics import LatencyScraper
from controller.followup import WAITING, ResizeFollowUp, append_decision
from controller.metrics import ControllerMetrics
from controller.orchestrator import (
    ClusterState,
    EventType,
    NodeView,
    Orchestrator,
    PodView,
    ProfileStore,
    WorkloadView,
)
from controller.plan import ContainerInput, acts, plan_pod
from controller.policies import PolicyBook
from controller.profile import ContainerProfile
from controller.recent import RecentWindows, parse_urgent
from controller.resizestate import ResizePhase
from controller.rollback import change_from_json, change_to_json, grows_only
from controller.settings import ControllerSettings
from controller.status import (
    build_status,
    decision_record,
    restore_status,
)
from controller.steps import StepAccumulator
from presize.model import (
    Action,
    ContainerKey,
    Mode,
    Recommendation,
    UsageWindow,
    WorkloadKey,
)
from presize.policy import Allocation, DecisionState
from presize.wire import DiagnoseRequest, Diagnostics, IoLimit, Report, ReportAck, Snapshot

log = logging.getLogger("controller")


class Controller:
    def __init__(
        self,
        orchestrator: Orchestrator,
        store: ProfileStore | None,
        *,
        settings: ControllerSettings,
        metrics: ControllerMetrics | None = None,
        default_mode: Mode = Mode.INITIAL,
        act: bool = True,
    ) -> None:
        self.orch = orchestrator
        self.store = store
        self.s = settings.compressed()
        self.metrics = metrics or ControllerMetrics()
        self.default_mode = default_mode
        self.act = act
        self.steps = StepAccumulator(self.s.step_s)
        self.recent = RecentWindows(
            keep_s=max(3 * self.s.rollback_window_s, 900.0 / settings.time_scale)
        )
        self.profiles: dict[ContainerKey, ContainerProfile] = {}
        self.workloads: dict[WorkloadKey, WorkloadRecord] = {}
        self.pods_by_uid: dict[str, PodView] = {}
        self.pods_by_name: dict[tuple[str, str], PodView] = {}
        self.pods_by_node: dict[str, list[PodView]] = {}
        self._io_limits: dict[str, tuple[IoLimit, ...]] = {}
        self.book = PolicyBook.build({}, {}, default_mode)
        self.cluster = ClusterState(taken_at=0.0)
        self.urgent: set[str] = set()
        # One cycle at a time: the urgent and full timers can fire together, and a cycle that
        # awaits the API server (a rollback in flight) must not let another decide the same
        # pod from the view that rollback is undoing.
        self._cycling = asyncio.Lock()
        self.unresolved: deque[tuple[float, Report]] = deque(maxlen=1000)
        self.diagnostics: dict[tuple[str, str], Diagnostics] = {}
        self.diagnose_wanted: set[DiagnoseRequest] = set()
        self.last_decided: dict[str, float] = {}
        self.last_seen: dict[WorkloadKey, float] = {}
        self.generation = 0
        self._predicted: dict[ContainerKey, Allocation] = {}
        self.latency = LatencyScraper()
        self.actuator = Actuator(
            orchestrator,
            settings=self.s,
            metrics=self.metrics,
            recent=self.recent,
            record_for=self._workload,
            latency_of=self.latency.value,
            time_scale=settings.time_scale,
            act=act,
        )
        self.followup = ResizeFollowUp(
            self.actuator,
            settings=self.s,
            metrics=self.metrics,
            record_for=self._workload,
            act=act,
        )

    # ------------------------------------------------------------------ ingest

    def ingest(self, report: Report, now: float) -> None:
        """Take one (already authenticated, decoded, deduplicated) report."""
        self.recent.add(report.windows, now)
        for text in report.urgent_reasons:
            forecast = parse_urgent(text)
            if forecast is not None:
                self.recent.add_urgent(forecast, now)
                pod = self.pods_by_name.get((forecast.namespace, forecast.pod))
                if pod is not None:
                    self.urgent.add(pod.ref.uid)
        for d in report.diagnostics:
            self.diagnostics[(d.pod.uid, d.container)] = d
            self.diagnose_wanted.discard(DiagnoseRequest(d.pod.uid, d.container))
        unresolved = self._route(report.windows)
        if unresolved:
            self.unresolved.append((now, replace(report, windows=tuple(unresolved))))
        if report.urgent:
            self.urgent.update(
                w.pod.uid
                for w in report.windows
                if w.pod.uid in self.pods_by_uid and (w.oom_kills or w.cpu_throttled_fraction > 0)
            )

    def on_report(self, report: Report, now: float) -> ReportAck:
        """Ingest ``report`` and answer with what this agent's node should do."""
        self.ingest(report, now)
        diagnose: tuple[DiagnoseRequest, ...] = ()
        if self.diagnose_wanted:
            on_node = {p.ref.uid for p in self.pods_by_node.get(report.node, ())}
            diagnose = tuple(sorted(d for d in self.diagnose_wanted if d.pod_uid in on_node))
        return ReportAck(
            sequence=report.sequence, diagnose=diagnose, io_limits=self.io_limits_for(report.node)
        )

    def io_limits_for(self, node: str) -> tuple[IoLimit, ...]:
        """The I/O limits policies ask for on ``node``'s pods (``auto`` mode only); computed
        once per node per refresh (every report of the node asks)."""
        cached = self._io_limits.get(node)
        if cached is not None:
            return cached
        out: list[IoLimit] = []
        for pod in self.pods_by_node.get(node, ()):
            if pod.excluded or not self.book.managed(pod.ref.namespace):
                continue
            for c in pod.containers:
                e = self.book.resolve(pod.ref.namespace, c.name, pod.labels)
                if e.io is not None and acts(e.mode):
                    out.append(IoLimit(pod.ref.uid, c.name, *e.io))
        self._io_limits[node] = tuple(out)
        return self._io_limits[node]

    def _route(self, windows: Iterable[UsageWindow]) -> list[UsageWindow]:
        """Windows to profiles by their pod's workload; the ones of unknown pods back."""
        unresolved: list[UsageWindow] = []
        by_key: dict[tuple[WorkloadKey, str], list[UsageWindow]] = {}
        pods = self.pods_by_uid
        for w in windows:
            pod = pods.get(w.pod.uid)
            if pod is None:
                unresolved.append(w)
                continue
            group = by_key.get((pod.workload, w.container))
            if group is None:
                by_key[(pod.workload, w.container)] = [w]
            else:
                group.append(w)
        accepted = 0
        for (workload, container), ws in by_key.items():
            self.steps.add(ContainerKey(workload, container), ws)
            accepted += len(ws)
        if accepted:
            self.metrics.windows.labels("accepted").inc(accepted)
        if unresolved:
            self.metrics.windows.labels("unknown-pod").inc(len(unresolved))
        return unresolved

    # ------------------------------------------------------------------ state

    async def refresh(self, now: float) -> ClusterState:
        """Read the orchestrator's view and index it; retry windows of pods now known."""
        state = await self.orch.state()
        self.cluster = state
        self.pods_by_uid = {p.ref.uid: p for p in state.pods}
        self.pods_by_name = {(p.ref.namespace, p.ref.name): p for p in state.pods}
        self.pods_by_node = {}
        for p in state.pods:
            self.pods_by_node.setdefault(p.ref.node, []).append(p)
        self._io_limits = {}
        self.book = PolicyBook.build(state.policies, state.namespace_modes, self.default_mode)
        pending = list(self.unresolved)
        self.unresolved.clear()
        for at, report in pending:
            left = self._route(report.windows)
            if left and now - at < self.s.stale_pod_s:
                self.unresolved.append((at, replace(report, windows=tuple(left))))
        return state

    def forget_gone(self, now: float) -> int:
        """Drop the profiles of workloads that are gone: at once when their namespace is no
        longer managed (unlabelled or deleted), else after ``forget_after_s`` without a pod.
        Their ``WorkloadProfile`` objects stay (deleted with their namespace, or by users)."""
        present = {p.workload for p in self.cluster.pods}
        for key in present:
            self.last_seen[key] = now
        gone = {
            k.workload
            for k in self.profiles
            if k.workload not in present
            and (
                not self.book.managed(k.workload.namespace)
                or now - self.last_seen.setdefault(k.workload, now) > self.s.forget_after_s
            )
        }
        for ckey in [k for k in self.profiles if k.workload in gone]:
            del self.profiles[ckey]
            self.steps.forget(ckey)
            self._predicted.pop(ckey, None)
        for wkey in gone:
            self.workloads.pop(wkey, None)
            self.last_seen.pop(wkey, None)
        return len(gone)

    def close_steps(self, now: float) -> int:
        closed = self.steps.close(now)
        for key, start, values in closed:
            profile = self._profile(key, start)
            profile.observe_step(start, values)
            self._predicted.pop(key, None)
            record = self._workload(key.workload)
            record.dirty = True
        self.metrics.profiles.set(len(self.profiles))
        return len(closed)

    def _profile(self, key: ContainerKey, start: float) -> ContainerProfile:
        profile = self.profiles.get(key)
        if profile is None:
            profile = self.profiles[key] = ContainerProfile(
                key,
                start=start,
                step_s=self.s.step_s,
                history_s=self.s.history_s,
                predictor=self.s.predictor_for_steps(),
                seasonal=self.s.seasonal,
            )
        return profile

    def _workload(self, key: WorkloadKey) -> WorkloadRecord:
        record = self.workloads.get(key)
        if record is None:
            record = self.workloads[key] = WorkloadRecord(
                key,
                decisions=deque(maxlen=self.s.max_decisions_kept),
                rollbacks=deque(maxlen=self.s.max_rollbacks_kept),
            )
        return record

    def predicted(self, key: ContainerKey, now: float) -> Allocation:
        """The profile's prediction for the next step, cached until the next closed step."""
        cached = self._predicted.get(key)
        if cached is not None:
            return cached
        profile = self.profiles.get(key)
        if profile is None or profile.steps == 0:
            value = Allocation(math.nan, math.nan)
        else:
            value = profile.predict(now).usage
        self._predicted[key] = value
        return value

    # ------------------------------------------------------------------ the cycle

    async def cycle(self, now: float, *, urgent_only: bool = False) -> dict[str, int]:
        """One decision cycle; returns counts by action for logs, tests and the benchmark.
        Cycles never overlap (a second one waits for the first)."""
        async with self._cycling:
            return await self._cycle(now, urgent_only=urgent_only)

    async def _cycle(self, now: float, *, urgent_only: bool) -> dict[str, int]:
        started = _time.perf_counter()
        await self.refresh(now)
        self.forget_gone(now)
        self.close_steps(now)
        self.recent.prune(now)
        counts: dict[str, int] = {}
        if not urgent_only:
            slos = [p.slo.latency for ps in self.book.policies.values() for p in ps]
            await self.latency.scrape(s for s in slos if s is not None)
        await self._publish_diagnostics()
        nodes = {n.name: n for n in self.cluster.nodes}
        self.followup.begin_cycle(self.pods_by_uid, nodes)
        reverted = await self.actuator.judge_changes(
            now, self.pods_by_uid, self.book, self.followup.state_of
        )
        if urgent_only:
            targets = [self.pods_by_uid[u] for u in self.urgent if u in self.pods_by_uid]
        else:
            targets = list(self.cluster.pods)
        self.urgent.clear()
        workloads = {w.key: w for w in self.cluster.workloads}
        for pod in targets:
            if pod.ref.uid in reverted:
                continue
            action = await self._decide_pod(pod, now, nodes, workloads)
            if action is not None:
                counts[action.value] = counts.get(action.value, 0) + 1
        kind = "urgent" if urgent_only else "full"
        self.metrics.cycle.labels(kind).observe(_time.perf_counter() - started)
        return counts

    async def _decide_pod(
        self,
        pod: PodView,
        now: float,
        nodes: dict[str, NodeView],
        workloads: dict[WorkloadKey, WorkloadView],
    ) -> Action | None:
        if pod.excluded or not pod.running or not self.book.managed(pod.ref.namespace):
            return None
        resize = self.followup.state_of(pod, now)
        if resize.phase in WAITING:
            return None  # the node has not answered the last resize yet: never race it
        if resize.phase is not ResizePhase.DONE:
            return await self.followup.follow(
                pod, resize, now, workload=workloads.get(pod.workload), nodes=nodes, book=self.book
            )
        watched = self.actuator.watching.get(pod.ref.uid)
        if watched is not None and not grows_only(watched):
            return None  # a shrink is under watch: judge it before changing again
        # A growth under watch does not hold the pod: a container still throttled after a
        # growth is grown again now (controller.rollback); only shrinking waits.
        grow_only = watched is not None
        record = self._workload(pod.workload)
        states = record.states.setdefault(pod.ref.uid, {})
        inputs: dict[str, ContainerInput] = {}
        modes: set[Mode] = set()
        since = self.last_decided.get(pod.ref.uid, now - self.s.profile_period_s)
        for c in pod.containers:
            effective = self.book.resolve(pod.ref.namespace, c.name, pod.labels)
            modes.add(effective.mode)
            key = ContainerKey(pod.workload, c.name)
            predicted = self.predicted(key, now)
            urgent_cpu, urgent_mem = self.recent.urgent_for(
                pod.ref.namespace, pod.ref.name, c.name, since
            )
            if not math.isnan(urgent_cpu):
                predicted = Allocation(max(_nz(predicted.cpu), urgent_cpu), predicted.memory)
            if not math.isnan(urgent_mem):
                predicted = Allocation(predicted.cpu, max(_nz(predicted.memory), urgent_mem))
            signals = self.recent.signals(
                pod.ref.uid, c.name, since=since, peak_s=3600.0 / max(self.s.time_scale, 1.0)
            )
            if c.oom_killed_at is not None and c.oom_killed_at > since:
                signals = replace(signals, oom_kill=True)  # the kubelet saw it (podview)
            profile = self.profiles.get(key)
            if profile is not None and any(
                a.kind.value == "memory-leak" for a in profile.anomalies
            ):
                signals = replace(signals, leak_suspected=True)
            latency = self.latency.value(effective.slo.latency)
            if latency is not None and effective.slo.latency is not None:
                over = latency > effective.slo.latency.max_seconds
                signals = replace(signals, latency_over_slo=over)
            state = states.get(c.name) or self._inherit(record, c.name)
            peak = profile.cpu_peak() if profile is not None else math.nan
            inputs[c.name] = ContainerInput(
                c, effective, predicted, signals, state, peak, grow_only=grow_only
            )
        self.last_decided[pod.ref.uid] = now
        if not inputs:
            return None
        node = nodes.get(pod.ref.node)
        free = Allocation(
            getattr(node, "cpu_free", math.inf), getattr(node, "memory_free", math.inf)
        )
        plan = self.followup.screen(
            pod,
            plan_pod(now, pod, inputs, free, self.s.predictor.policy),
            now,
            workload=workloads.get(pod.workload),
            nodes=nodes,
            book=self.book,
        )
        previous = {name: i.state for name, i in inputs.items()}
        for o in plan.containers:
            states[o.name] = o.state
        self.metrics.decisions.labels(plan.action.value, plan.reason.value).inc()
        if plan.action is Action.NOOP:
            return plan.action
        mode = (
            Mode.AUTO if modes == {Mode.AUTO} else (Mode.OFF if Mode.OFF in modes else Mode.INITIAL)
        )
        first = plan.containers[0].decision
        append_decision(
            record,
            decision_record(
                now,
                pod.ref.name,
                replace(first, action=plan.action, reason=plan.reason, message=plan.message),
            ),
        )
        log.info(
            "decision %s %s/%s: %s (%s) mode=%s",
            plan.action.value,
            pod.ref.namespace,
            pod.ref.name,
            plan.message,
            plan.reason.value,
            mode.value,
        )
        if not (self.act and acts(mode)):
            return plan.action
        done = await self.actuator.carry_out(pod, plan, now, workloads.get(pod.workload), self.book)
        if not done:
            # Nothing changed: no cooldown starts. The signal's own tracking (since when a
            # shrink has been due) is kept, so the change is made as soon as it can be.
            for o in plan.containers:
                old = previous[o.name]
                states[o.name] = replace(
                    o.state,
                    last_change=old.last_change,
                    memory_shrunk_at=old.memory_shrunk_at,
                    cpu_down_since=o.state.cpu_down_since or old.cpu_down_since,
                    memory_down_since=o.state.memory_down_since or old.memory_down_since,
                )
        return plan.action

    async def _publish_diagnostics(self) -> None:
        """Diagnostics snapshots the agents took on request go to the pod as an Event (the
        processes by memory and CPU, and the memory.stat lines that explain a leak)."""
        pending, self.diagnostics = self.diagnostics, {}
        for (uid, container), d in pending.items():
            pod = self.pods_by_uid.get(uid)
            await self.orch.record_event(
                pod=pod.ref if pod else d.pod, workload=pod.workload if pod else None,
                type=EventType.NORMAL, reason="DiagnosticsTaken",
                message=diagnostics_summary(container, d),
            )  # fmt: skip

    def _inherit(self, record: WorkloadRecord, container: str) -> DecisionState:
        """A new pod starts with its workload's backoff (a rolled-back direction stays held)."""
        return record.backoff.get(container, DecisionState())

    # ------------------------------------------------------------------ profiles out

    def recommendation(self, profile: ContainerProfile, now: float) -> Recommendation | None:
        """One container's recommendation with its namespace's policy applied (buffer, min and
        max; memory never below the recent peak): what the webhook injects and the
        WorkloadProfile shows, the same numbers in both places."""
        key = profile.key
        effective = self.book.resolve(key.workload.namespace, key.container, {})
        rec = profile.recommendation(now, effective.buffer or self.s.predictor.policy.buffer)
        if rec is None:
            return None
        return replace(
            rec,
            cpu=replace(rec.cpu, target=effective.cpu.clamp(rec.cpu.target)),
            memory=replace(
                rec.memory, target=effective.memory.clamp(max(rec.memory.target, rec.mem_peak))
            ),
        )

    def recommendations(self, now: float) -> list[Recommendation]:
        recs = (self.recommendation(p, now) for p in self.profiles.values())
        return [r for r in recs if r is not None]

    def snapshot(self, now: float) -> Snapshot:
        """What the webhook serves from; rebuilt when profiles changed."""
        self.generation += 1
        snap = Snapshot(
            generation=self.generation,
            generated_at=now,
            recommendations=tuple(self.recommendations(now)),
            namespace_modes=tuple(sorted(self.book.namespace_modes.items())),
            policy_bounds=self.book.snapshot_bounds(),
        )
        self.metrics.snapshot_generation.set(self.generation)
        return snap

    # ------------------------------------------------------------------ anomalies

    async def detect_anomalies(self, now: float) -> int:
        found = 0
        for key, profile in self.profiles.items():
            limits = self._limits_of(key)
            anomalies = profile.detect_anomalies(
                self.s.anomaly, mem_limit=limits[1], cpu_limit=limits[0]
            )
            record = self._workload(key.workload)
            current = {(a.kind.value, a.severity.value) for a in anomalies}
            for kind, severity in list(record.alerted):
                if (kind, severity) not in current:
                    self.metrics.anomaly.remove(
                        key.workload.namespace, key.workload.name, key.container, kind, severity
                    )
                    record.alerted.discard((kind, severity))
            for a in anomalies:
                found += 1
                self.metrics.anomaly.labels(
                    key.workload.namespace,
                    key.workload.name,
                    key.container,
                    a.kind.value,
                    a.severity.value,
                ).set(1)
                if (a.kind.value, a.severity.value) in record.alerted:
                    continue
                record.alerted.add((a.kind.value, a.severity.value))
                record.dirty = True
                pods = [p for p in self.cluster.pods if p.workload == key.workload]
                for p in pods[:1]:
                    self.diagnose_wanted.add(DiagnoseRequest(p.ref.uid, key.container))
                reason = "MemoryLeakSuspected" if a.kind.value == "memory-leak" else "RunawayUsage"
                message = f"{key.container}: {a.severity.value}: {a.reason}"
                await self.orch.record_event(
                    pod=pods[0].ref if pods else None,
                    workload=key.workload,
                    type=EventType.WARNING,
                    reason=reason,
                    message=message,
                )
                await self._remediate(key, a.kind.value, pods, now)
            cov = profile.accuracy().coverage
            if not math.isnan(cov):
                self.metrics.coverage.labels(
                    key.workload.namespace, key.workload.name, key.container
                ).set(cov)
        return found

    def _limits_of(self, key: ContainerKey) -> tuple[float | None, float | None]:
        for p in self.cluster.pods:
            if p.workload == key.workload:
                c = p.container(key.container)
                if c is not None:
                    return c.cpu_limit, c.memory_limit
        return None, None

    async def _remediate(
        self, key: ContainerKey, kind: str, pods: list[PodView], now: float
    ) -> None:
        """Only when the policy opts in: restart a leaking pod through eviction."""
        if kind != "memory-leak" or not pods:
            return
        pod = pods[0]
        effective = self.book.resolve(pod.ref.namespace, key.container, pod.labels)
        if effective.remediate_leaks and acts(effective.mode) and self.act:
            workload = next((w for w in self.cluster.workloads if w.key == key.workload), None)
            await self.actuator.reschedule(
                pod, now, workload, f"restarting {key.container}: suspected memory leak", self.book
            )

    # ------------------------------------------------------------------ background refits

    def refit(self, now: float) -> int:
        """Refit the seasonal models (call from a worker thread); returns profiles refitted."""
        n = 0
        for profile in list(self.profiles.values()):
            profile.refit_seasonal(now)
            n += 1
        return n

    # ------------------------------------------------------------------ checkpoints

    async def checkpoint(self, now: float, *, all_: bool = False) -> int:
        """Write changed workloads' profiles to the store; returns how many were written."""
        if self.store is None:
            return 0
        by_workload: dict[WorkloadKey, list[ContainerProfile]] = {}
        for key, profile in self.profiles.items():
            by_workload.setdefault(key.workload, []).append(profile)
        watches: dict[WorkloadKey, list[dict[str, object]]] = {}
        for change in self.actuator.watching.values():
            if change.workload is not None:
                watches.setdefault(change.workload, []).append(change_to_json(change))
        written = 0
        for wkey, profiles in by_workload.items():
            record = self._workload(wkey)
            if not (all_ or record.dirty or any(p.dirty for p in profiles)):
                continue
            recs = {
                r.key.container: r for r in (self.recommendation(p, now) for p in profiles) if r
            }
            status = build_status(
                now=now,
                profiles=profiles,
                recommendations=recs,
                decisions=list(record.decisions),
                rollbacks=list(record.rollbacks),
                states=record.states,
                checkpoint_s=self.s.checkpoint_history_s,
                watches=watches.get(wkey, ()),
            )
            try:
                await self.store.save(wkey, status)
            except Exception as exc:  # the store's errors, and anything its client raises
                self.metrics.store_errors.inc()
                log.warning("checkpoint of %s failed: %s", wkey, exc)
                continue
            record.dirty = False
            for p in profiles:
                p.dirty = False
            written += 1
        return written

    async def restore(self) -> int:
        """Take every stored profile back (at start, or on becoming leader)."""
        if self.store is None:
            return 0
        stored = await self.store.load_all()
        restored = 0
        for wkey, status in stored.items():
            try:
                data = restore_status(status)
            except (ValueError, TypeError) as exc:
                log.warning("profile %s not restored: %s", wkey, exc)
                continue
            record = self._workload(wkey)
            # The store is authoritative: a standby restores again and again to follow the
            # leader, so what it holds is replaced, never appended to.
            record.decisions.clear()
            record.decisions.extend(data.decisions)
            record.rollbacks.clear()
            record.rollbacks.extend(data.rollbacks)
            record.states = {uid: dict(per) for uid, per in data.states.items()}
            self._restore_watches(wkey, data.watches)
            for container, checkpoint in data.containers.items():
                key = ContainerKey(wkey, container)
                profile = self.profiles[key] = ContainerProfile(
                    key,
                    start=0.0,
                    step_s=self.s.step_s,
                    history_s=self.s.history_s,
                    predictor=self.s.predictor_for_steps(),
                    seasonal=self.s.seasonal,
                )
                try:
                    profile.restore(checkpoint)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("profile %s not restored: %s", key, exc)
                    del self.profiles[key]
                    continue
                profile.dirty = False
                if math.isfinite(profile.last_step):
                    self.steps.resume_after(key, profile.last_step)
                restored += 1
            record.dirty = False
        self.metrics.profiles.set(len(self.profiles))
        return restored

    def _restore_watches(self, wkey: WorkloadKey, raw: Sequence[object]) -> None:
        """Put a workload's checkpointed changes under watch, in place of those held for it
        (restore runs before a leader acts, so the store's are the newest). One that cannot
        be read is logged and dropped: the change itself stays, only its verdict is lost."""
        watching = self.actuator.watching
        for uid in [uid for uid, c in watching.items() if c.workload == wkey]:
            del watching[uid]
        for item in raw:
            try:
                change = change_from_json(item, wkey)
            except ValueError as exc:
                log.warning("a watched change of %s not restored: %s", wkey, exc)
                continue
            watching[change.pod_uid] = change


def diagnostics_summary(container: str, d: Diagnostics, top: int = 5) -> str:
    """One line for people: the heaviest processes and the memory.stat figures that matter."""
    procs = sorted(d.processes, key=lambda p: p.rss_bytes, reverse=True)[:top]
    shown = ", ".join(
        f"{p.name}[{p.pid}] {p.rss_bytes / 2**20:.0f}Mi {p.cpu_cores:.2f} cores" for p in procs
    )
    stat = dict(d.memory_stat)
    keys = ("anon", "rss", "file", "cache", "shmem", "inactive_file")
    memory = ", ".join(f"{k} {stat[k] / 2**20:.0f}Mi" for k in keys if k in stat)
    logs = f"; {len(d.log_lines)} recent log match(es)" if d.log_lines else ""
    return f"{container}: processes {shown or 'none seen'}; memory.stat {memory or 'n/a'}{logs}"


def _nz(x: float) -> float:
    return 0.0 if math.isnan(x) else x
