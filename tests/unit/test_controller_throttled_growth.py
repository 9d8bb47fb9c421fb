"""A container throttled after a growth is grown again, at once and for throttling.

The case seen on a real kubelet node, with the chart's defaults and real time: a Guaranteed
pod (300m CPU, 128Mi) whose CPU demand ramps from 0.05 to 0.6 cores over 240 s. The
controller grew it once ahead of the crossing (a forecast), then held it for the whole
rollback watch of that growth while the container was throttled in half its periods and the
agent kept flagging it urgent; usage, censored at the limit, could not show the demand.

The agent and the node are played at their real cadence: a 60 s window per container every
minute (the agent's batch), and every 10 s an urgent report with the last 10 s window when a
reason holds (each reason at most once a minute per container); resizes are answered by a
kubelet that applies them. Cycles run every 5 s (urgent) and 30 s (full), on the controller's
default settings.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import replace

import pytest
from controller_fakes import (
    FakeKubelet,
    FakeOrchestrator,
    MiB,
    deployment,
    node,
    pod,
    window,
)

from controller.loop import Controller
from controller.orchestrator import ContainerResize, ContainerResources, PodView
from controller.plan import ContainerInput, plan_pod
from controller.policies import Effective
from controller.recent import RecentWindows
from controller.rollback import Change, Health, Verdict, grows_only, judge, merge
from controller.settings import ControllerSettings
from presize.model import Action, Mode, PodRef, Reason
from presize.policy import Allocation, DecisionState, Signals
from presize.settings import PolicySettings
from presize.wire import Report

NS = "app1"
RAMP = deployment(NS, "ramp")
UID = "uid-ramp-0"
THROTTLE_BUMP = PolicySettings().throttle_bump


class Node:
    """A node running the ramp pod, its agent reporting to ``ctl`` (module docstring)."""

    def __init__(self, *, forecasts: bool, ramp_s: float = 240.0, ramp_at: float = 300.0) -> None:
        self.orch = FakeOrchestrator(modes={NS: Mode.AUTO}, kubelet=FakeKubelet())
        self.orch.nodes["node-0"] = node()
        p = pod(NS, "ramp-0", RAMP, cpu=0.3, mem=128 * MiB)
        self.orch.pods[UID] = replace(p, applied=p.containers, generation=1,
                                      observed_generation=1)  # fmt: skip
        self.ctl = Controller(self.orch, None, settings=ControllerSettings(),
                              default_mode=Mode.AUTO)  # fmt: skip
        self.t0 = 1_700_000_000.0
        self.now = self.t0
        self.ramp = self.t0 + ramp_at
        self.forecasts = forecasts
        self.ramp_s = ramp_s
        self.seq = 0
        self.sent: dict[str, float] = {}
        # (time, limit before, limit after) of every resize
        self.resizes: list[tuple[float, float, float]] = []
        # (time, throttled fraction, limit) of every 10 s step
        self.steps: list[tuple[float, float, float]] = []

    def demand(self, t: float) -> float:
        if t < self.ramp:
            return 0.05
        return 0.05 + 0.55 * min((t - self.ramp) / self.ramp_s, 1.0)

    def limit(self) -> float:
        value = self.orch.pods[UID].containers[0].cpu_limit
        assert value is not None
        return value

    @staticmethod
    def throttled(demand: float, limit: float) -> float:
        """Share of CFS periods throttled: none below the limit, most of them well above."""
        return 0.0 if demand <= limit else min(0.95, 0.2 + 2.0 * (demand - limit) / demand)

    def _report(self, windows: list[object], reasons: list[str]) -> None:
        self.seq += 1
        report = Report(node="node-0", agent_id="agent", sent_at=self.now, sequence=self.seq,
                        windows=tuple(windows), urgent=bool(reasons),  # type: ignore[arg-type]
                        urgent_reasons=tuple(reasons))  # fmt: skip
        self.ctl.on_report(report, self.now)

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += 1.0
            tick = round(self.now - self.t0)
            p = self.orch.pods[UID]
            limit = self.limit()
            usage = min(self.demand(self.now), limit)  # censored at the limit
            throttled = self.throttled(self.demand(self.now), limit)
            if tick % 10 == 0:
                self.steps.append((self.now, throttled, limit))
                reasons = []
                who = f"{NS}/{p.ref.name}/app"
                upper = 1.5 * usage  # the agent's cold prior on the trailing peak
                if self.forecasts and upper >= limit and self._due("forecast"):
                    reasons.append(f"forecast-cpu-limit: {who}: cpu upper {upper:.3f} >= "
                                   f"limit {limit:.3f} cores within 300s")  # fmt: skip
                if throttled > 0.2 and self._due("throttling"):
                    reasons.append(f"slo-throttling: {who}: throttled {throttled:.0%} of "
                                   "periods > SLO 20%")  # fmt: skip
                if reasons:
                    w = window(p, self.now - 10.0, cpu=usage, mem=5 * MiB, throttled=throttled)
                    self._report([w], reasons)
            if tick % 60 == 0:
                w = window(p, self.now - 60.0, seconds=60.0, cpu=usage, mem=5 * MiB,
                           throttled=throttled)  # fmt: skip
                self._report([w], [])
            if tick % 5 == 0:
                before = self.limit()
                asyncio.run(self.ctl.cycle(self.now, urgent_only=tick % 30 != 0))
                if self.limit() != before:
                    self.resizes.append((self.now, before, self.limit()))

    def _due(self, code: str) -> bool:
        if self.now - self.sent.get(code, -math.inf) < 60.0:
            return False
        self.sent[code] = self.now
        return True


def _growths_after(n: Node, t: float) -> list[tuple[float, float, float]]:
    return [r for r in n.resizes if r[0] > t and r[2] > r[1]]


def test_throttling_after_a_growth_grows_it_again_within_that_growths_watch() -> None:
    """Only throttling tells the demand here (no forecast reaches the controller): each
    growth is at least the throttling bump, made while the first growth is still watched,
    and its reason says throttling."""
    n = Node(forecasts=False)
    n.run(n.ramp - n.now + 240.0 + 300.0)

    assert n.resizes, "never resized"
    first = n.resizes[0]
    later = _growths_after(n, first[0])
    assert later, "throttled for minutes after the first growth and never grown again"
    # Promptly: within about a minute of the first throttled step after the first growth
    # (the agent reports a reason at most once a minute), not after the 5-minute watch.
    throttled_at = next(t for t, f, lim in n.steps if t > first[0] and f > 0.1)
    assert later[0][0] - throttled_at <= 75.0
    for _, before, after in later:
        assert after >= before * THROTTLE_BUMP - 0.001  # at least the bump (millicores)
    # Each growth answers throttling measured after the one before took effect, not the
    # window that caused that one (which arrives again in the next batch): one per report.
    times = [t for t, _, _ in n.resizes]
    assert all(b - a >= 30.0 for a, b in itertools.pairwise(times)), times
    decisions = [d for d in n.ctl.workloads[RAMP].decisions if d.action == "RESIZE_IN_PLACE"]
    assert any(d.reason == "slo-throttling" for d in decisions)
    # Grown until it is no longer throttled over the SLO, within 2 minutes of the ramp's end.
    assert n.limit() >= 0.6
    last = [f for t, f, _ in n.steps if t > n.ramp + 240.0 + 120.0]
    assert last
    assert max(last) <= PolicySettings().throttle_slo
    # Nothing was rolled back: throttling after a growth is the load's, not the growth's.
    assert not any(e.reason == "ResizeRolledBack" for e in n.orch.events)
    assert not n.ctl.workloads[RAMP].rollbacks


def test_with_the_agents_forecast_the_reason_is_still_the_throttling() -> None:
    """Demand jumps to 0.6 cores at once: the agent flags both a forecast (1.5 x a peak
    censored at the limit) and the throttling. The growth takes the forecast's larger target,
    and its reason is the throttling it answers; it goes on until the demand fits."""
    n = Node(forecasts=True, ramp_s=1.0)
    n.run(n.ramp - n.now + 300.0)

    growths = _growths_after(n, n.ramp)
    assert len(growths) >= 2, "never grown again after the first growth"
    record = n.ctl.workloads[RAMP]
    grown = [d for d in record.decisions if d.action == "RESIZE_IN_PLACE" and d.at > n.ramp]
    # Every growth made while the container was throttled over the SLO says so (a later
    # one, once it no longer is, is the forecast's).
    slo = PolicySettings().throttle_slo
    throttled = [d for d in grown if any(d.at - 10.0 <= t <= d.at and f > slo
                                         for t, f, _ in n.steps)]  # fmt: skip
    assert len(throttled) >= 2
    assert all(d.reason == "slo-throttling" for d in throttled), throttled
    assert growths[1][2] >= growths[1][1] * THROTTLE_BUMP - 0.001
    assert growths[1][0] - growths[0][0] <= 75.0  # not after the first one's 5-minute watch
    assert n.limit() >= 0.6
    assert not any(e.reason == "ResizeRolledBack" for e in n.orch.events)


def test_the_growths_made_under_one_watch_are_judged_as_one() -> None:
    """The second growth joins the first one's watch: judged from before the first (its
    baseline, its containers: a revert would put back the 300m), the window from the last."""
    n = Node(forecasts=False)
    n.run(n.ramp - n.now + 240.0 + 120.0)
    growths = [r for r in n.resizes if r[2] > r[1]]
    assert len(growths) >= 2
    change = n.ctl.actuator.watching[UID]
    assert change.before[0].cpu_limit == 0.3
    assert change.after[0].cpu_limit == n.limit()
    assert change.grew_cpu
    assert grows_only(change)
    assert change.at == growths[-1][0]
    assert "slo-throttling" in change.reason
    # The windows measured before the last growth no longer speak for the CPU; the memory's
    # (never resized) still do.
    cpu_at, memory_at = n.ctl.recent.changed_at(UID, "app")
    assert growths[-1][0] <= cpu_at <= growths[-1][0] + 5.0
    assert memory_at == -math.inf


# ------------------------------------------------------------------------- the pure parts


def _rows(recent: RecentWindows, *rows: tuple[float, float, float, int, float]) -> None:
    """Windows (start, seconds, throttled, oom kills) received at the last value."""
    p = pod("shop", "a", deployment("shop", "a"))
    for start, seconds, throttled, oom, at in rows:
        w = window(p, start, seconds=seconds, cpu=0.1, mem=10 * MiB, throttled=throttled,
                   oom=oom)  # fmt: skip
        recent.add([w], at)


def test_a_window_counts_once_from_when_it_arrives_not_from_when_it_ended() -> None:
    recent = RecentWindows(keep_s=900.0)
    # Ended at 100, arrived at 101.5: a decision at 101 had not seen it.
    _rows(recent, (40.0, 60.0, 0.5, 0, 101.5))
    assert recent.signals("uid-a", "app", since=101.0, peak_s=3600.0).throttled_fraction == 0.5
    # Counted by the decision at 105; not again by the next one.
    assert recent.signals("uid-a", "app", since=105.0, peak_s=3600.0).throttled_fraction == 0.0
    # A spool's backlog is history: ended long before the last decision.
    _rows(recent, (0.0, 10.0, 0.9, 1, 300.0))
    s = recent.signals("uid-a", "app", since=200.0, peak_s=3600.0)
    assert (s.throttled_fraction, s.oom_kill) == (0.0, False)


def test_a_resize_makes_earlier_windows_stale_for_the_resource_it_changed() -> None:
    recent = RecentWindows(keep_s=900.0)
    recent.allocation_changed("uid-a", "app", 130.0, cpu=True, memory=False)
    # The batch window that straddles the growth: its throttling was the old limit's; the
    # OOM kill in it still counts (memory was not resized).
    _rows(recent, (100.0, 60.0, 0.6, 1, 160.5))
    s = recent.signals("uid-a", "app", since=150.0, peak_s=3600.0)
    assert (s.throttled_fraction, s.oom_kill) == (0.0, True)
    # Throttling measured after the growth is what counts.
    _rows(recent, (150.0, 10.0, 0.45, 0, 160.6))
    assert recent.signals("uid-a", "app", since=150.0, peak_s=3600.0).throttled_fraction == 0.45
    recent.allocation_changed("uid-a", "app", 170.0, cpu=False, memory=True)
    assert recent.changed_at("uid-a", "app") == (130.0, 170.0)
    s = recent.signals("uid-a", "app", since=150.0, peak_s=3600.0)
    assert (s.throttled_fraction, s.oom_kill) == (0.45, False)
    recent.prune(2000.0)
    assert recent.changed_at("uid-a", "app") == (-math.inf, -math.inf)


def _growth(at: float, before: float, after: float, reason: str, **kw: object) -> Change:
    base: dict[str, object] = {
        "pod_uid": "u", "pod_name": "p", "namespace": "ns", "at": at,
        "before": (ContainerResources("a", before, before, 128 * MiB, 128 * MiB, restarts=0),),
        "after": (ContainerResize("a", cpu_request=after, cpu_limit=after),),
        "baseline": Health(throttled=0.0, samples=300), "grew_cpu": True,
        "grew_memory": False, "shrank_cpu": False, "shrank_memory": False, "reason": reason,
        "window_s": 300.0,
    }  # fmt: skip
    base.update(kw)
    return Change(**base)  # type: ignore[arg-type]


def test_a_growth_during_a_growths_watch_joins_it() -> None:
    first = _growth(100.0, 0.3, 0.36, "predicted-over-allocation", effective_at=101.0)
    second = _growth(
        160.0, 0.36, 0.432, "slo-throttling", baseline=Health(throttled=0.47, samples=300)
    )
    sidecar = ContainerResources("b", 0.1, 0.1, 64 * MiB, 64 * MiB)
    second = replace(second, before=(*second.before, sidecar),
                     after=(*second.after, ContainerResize("b", memory_request=80 * MiB,
                                                           memory_limit=80 * MiB)),
                     grew_memory=True)  # fmt: skip
    m = merge(first, second)
    assert grows_only(first)
    assert grows_only(m)
    assert m.before == (first.before[0], sidecar)  # what ran before the first
    assert m.after == (second.after[0], second.after[1])
    assert m.baseline == first.baseline  # judged against before the first growth
    assert (m.at, m.effective_at) == (160.0, None)  # the window starts again
    assert (m.grew_cpu, m.grew_memory, m.shrank_cpu, m.shrank_memory) == (True, True, False, False)
    assert m.reason == "predicted-over-allocation, slo-throttling"
    assert merge(m, _growth(200.0, 0.432, 0.52, "slo-throttling")).reason == m.reason
    # More throttling after the growths is the load's: kept, never reverted for it.
    after = Health(throttled=0.6, samples=300)
    assert judge(m, after, now=400.0, tolerance=0.1).verdict is Verdict.WAIT
    assert judge(m, after, now=461.0, tolerance=0.1).verdict is Verdict.KEEP
    # A restart since before the first growth is still blamed on the growths.
    assert judge(m, replace(after, restarts=1), now=200.0, tolerance=0.1).verdict is Verdict.REVERT
    assert not grows_only(replace(first, shrank_memory=True))


def test_under_a_growths_watch_a_pod_is_grown_but_not_shrunk() -> None:
    a = ContainerResources("a", 0.5, 0.5, 256 * MiB, 256 * MiB)
    p = PodView(ref=PodRef("shop", "p", "u", "n"), workload=RAMP, containers=(a,))
    # Memory has been due to shrink long enough; CPU is throttled over the SLO.
    state = DecisionState(memory_down_since=0.0, shrink_blocked_until=5.0)
    signals = Signals(throttled_fraction=0.5)
    free = Allocation(8.0, 1e12)
    base = ContainerInput(a, Effective(mode=Mode.AUTO), Allocation(0.3, 50 * MiB), signals,
                          state, grow_only=True)  # fmt: skip
    plan = plan_pod(10_000.0, p, {"a": base}, free, PolicySettings())
    assert plan.action is Action.RESIZE_IN_PLACE
    assert plan.reason is Reason.SLO_THROTTLING
    (r,) = plan.resizes
    assert r.cpu_limit == pytest.approx(0.6)
    assert r.memory_limit is None  # memory kept: no shrink under a growth's watch
    assert plan.containers[0].state.shrink_blocked_until == 5.0  # the hold is not kept
    quiet = replace(base, signals=Signals())
    plan = plan_pod(10_000.0, p, {"a": quiet}, free, PolicySettings())
    assert (plan.action, plan.reason) == (Action.NOOP, Reason.COOLDOWN)
    plan = plan_pod(10_000.0, p, {"a": replace(quiet, grow_only=False)}, free, PolicySettings())
    assert plan.action is Action.RESIZE_IN_PLACE  # the same shrink once nothing is watched


def test_one_containers_growth_is_not_mixed_with_anothers_shrink() -> None:
    """A mixed resize would be watched as a shrink and hold the pod: the growth goes alone."""
    app = ContainerResources("app", 0.5, 0.5, 256 * MiB, 256 * MiB)
    sidecar = ContainerResources("sidecar", 1.0, 1.0, 256 * MiB, 256 * MiB)
    p = PodView(ref=PodRef("shop", "p", "u", "n"), workload=RAMP, containers=(app, sidecar))
    due = DecisionState(cpu_down_since=0.0, memory_down_since=0.0)
    throttled = ContainerInput(app, Effective(mode=Mode.AUTO), Allocation(0.4, 200 * MiB),
                               Signals(throttled_fraction=0.5), due)  # fmt: skip
    idle = ContainerInput(sidecar, Effective(mode=Mode.AUTO), Allocation(0.1, 200 * MiB),
                          Signals(), due)  # fmt: skip
    inputs = {"app": throttled, "sidecar": idle}
    plan = plan_pod(10_000.0, p, inputs, Allocation(8.0, 1e12), PolicySettings())
    assert (plan.action, plan.reason) == (Action.RESIZE_IN_PLACE, Reason.SLO_THROTTLING)
    assert [r.name for r in plan.resizes] == ["app"]
    held = plan.containers[1]
    assert held.decision.action is Action.NOOP
    assert held.state == due  # no change made: no cooldown started for it
    # Once nothing grows, the sidecar's shrink goes.
    calm = {"app": replace(throttled, signals=Signals()), "sidecar": idle}
    plan = plan_pod(10_000.0, p, calm, Allocation(8.0, 1e12), PolicySettings())
    assert "sidecar" in [r.name for r in plan.resizes]
