"""The controller's loop against an in-memory orchestrator (tests/controller/fakes.py).

Each test drives the loop with its own clock: agent reports every 10 s, urgent cycles every
5 s, full cycles every 30 s, exactly as the runtime would, only faster than real time.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from controller_fakes import (
    FakeOrchestrator,
    MemoryStore,
    MiB,
    deployment,
    node,
    pod,
    window,
)

from controller.loop import Controller
from controller.orchestrator import ActionResult, ContainerResize
from controller.settings import ControllerSettings
from presize.model import Mode, PodRef
from presize.wire import Report

NS = "shop"
WEB = deployment(NS, "web")


def make(orch: FakeOrchestrator, store: MemoryStore | None = None, **kw: float) -> Controller:
    options: dict[str, float] = {"step_s": 10.0, "profile_period_s": 30.0, **kw}
    settings = ControllerSettings(**options)  # type: ignore[arg-type]
    return Controller(orch, store, settings=settings, default_mode=Mode.AUTO)


def cluster(n_pods: int = 1, *, cpu: float = 0.5, mem: float = 256 * MiB) -> FakeOrchestrator:
    orch = FakeOrchestrator(modes={NS: Mode.AUTO})
    orch.nodes["node-0"] = node()
    for i in range(n_pods):
        p = pod(NS, f"web-{i}", WEB, cpu=cpu, mem=mem)
        orch.pods[p.ref.uid] = p
    return orch


class Driver:
    """Sends reports and runs cycles on a simulated clock."""

    def __init__(self, orch: FakeOrchestrator, ctl: Controller) -> None:
        self.orch = orch
        self.ctl = ctl
        self.now = 1_700_000_000.0
        self.seq = 0
        self.log: list[tuple[float, str]] = []

    def run(
        self,
        seconds: float,
        usage: Callable[[float], tuple[float, float]],
        *,
        urgent: Callable[[float, float, float], str | None] | None = None,
        throttled: Callable[[float, float], float] | None = None,
    ) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += 5.0
            if int(self.now) % 10 == 0:
                windows = []
                reasons: list[str] = []
                for p in list(self.orch.pods.values()):
                    cpu, mem = usage(self.now)
                    limit = p.containers[0].cpu_limit or math.inf
                    thr = throttled(cpu, limit) if throttled else (1.0 if cpu > limit else 0.0)
                    windows.append(window(p, self.now - 10.0, cpu=min(cpu, limit), mem=mem,
                                          throttled=thr))  # fmt: skip
                    if urgent is not None:
                        text = urgent(self.now, cpu, limit)
                        if text:
                            reasons.append(text.format(pod=p.ref.name))
                self.seq += 1
                report = Report(node="node-0", agent_id="a", sent_at=self.now, sequence=self.seq,
                                windows=tuple(windows), urgent=bool(reasons),
                                urgent_reasons=tuple(reasons))  # fmt: skip
                self.ctl.on_report(report, self.now)
            before = len(self.orch.resizes)
            asyncio.run(self.ctl.cycle(self.now, urgent_only=int(self.now) % 30 != 0))
            if len(self.orch.resizes) > before:
                self.log.append((self.now, "resize"))


def cpu_limit(orch: FakeOrchestrator, name: str = "web-0") -> float:
    p = next(p for p in orch.pods.values() if p.ref.name == name)
    value = p.containers[0].cpu_limit
    assert value is not None
    return value


def test_an_idle_allocation_shrinks_gradually_and_not_below_the_usage() -> None:
    orch = cluster(cpu=2.0)
    ctl = make(orch)
    d = Driver(orch, ctl)
    d.run(3 * 3600, lambda t: (0.3, 100 * MiB))
    limit = cpu_limit(orch)
    assert limit < 1.0  # it came down from 2 cores
    assert limit >= 0.3 * 1.05  # but stays above what is used
    steps = [r for _, r in orch.resizes]
    assert len(steps) >= 2  # gradually: more than one step
    assert all(e.reason == "Resized" for e in orch.events)


def test_a_rising_load_is_met_before_it_reaches_the_limit() -> None:
    """Load ramps from 0.2 to 0.9 cores over 20 minutes with a 0.5-core limit; the agent's
    short-horizon forecast (an urgent reason) reaches the limit first."""
    orch = cluster(cpu=0.5)
    ctl = make(orch)
    d = Driver(orch, ctl)
    d.run(3600, lambda t: (0.2, 100 * MiB))
    start = d.now
    limit_before = cpu_limit(orch)

    def usage(t: float) -> tuple[float, float]:
        return min(0.9, 0.2 + 0.7 * (t - start) / 1200.0), 100 * MiB

    def urgent(t: float, cpu: float, limit: float) -> str | None:
        upper = cpu * 1.5  # the agent's cold prior: 1.5x the trailing peak
        if upper >= limit:
            return (f"forecast-cpu-limit: {NS}/{{pod}}/app: cpu upper {upper:.3f} >= limit "
                    f"{limit:.3f} cores within 300s")  # fmt: skip
        return None

    d.run(1200, usage, urgent=urgent)
    during = [t for t, _ in d.log if t > start]
    assert during, "no resize during the ramp"
    first_t = during[0]
    # Usage would have crossed the old limit at:
    crossing = start + (limit_before - 0.2) / 0.7 * 1200.0
    assert first_t < crossing, f"resized {first_t - crossing:.0f}s after the crossing"
    assert cpu_limit(orch) >= 0.9 * 0.95  # followed the ramp up


def test_a_change_that_makes_throttling_worse_is_rolled_back() -> None:
    orch = cluster(cpu=2.0)
    ctl = make(orch, rollback_window_s=300.0)
    d = Driver(orch, ctl)
    # Steady 0.3 cores: the controller shrinks; after a shrink this workload throttles badly
    # (as if its real need were hidden behind a burst pattern the windows do not show).
    shrunk: list[float] = []

    def throttled(cpu: float, limit: float) -> float:
        if limit < 2.0:
            shrunk.append(limit)
            return 0.6
        return 0.0

    d.run(2 * 3600, lambda t: (0.3, 100 * MiB), throttled=throttled)
    assert shrunk, "the controller never shrank"
    kinds = [e.reason for e in orch.events]
    assert "ResizeRolledBack" in kinds
    rollback = next(e for e in orch.events if e.reason == "ResizeRolledBack")
    assert "throttling" in rollback.message
    # ... and the shrink direction is backed off: no second shrink right after.
    record = ctl.workloads[WEB]
    assert record.rollbacks
    assert "throttling" in record.rollbacks[-1].reason


def test_restart_from_the_store_loses_no_profile_and_repeats_no_action() -> None:
    orch = cluster(cpu=2.0)
    store = MemoryStore()
    ctl = make(orch, store)
    d = Driver(orch, ctl)
    d.run(2 * 3600, lambda t: (0.3, 100 * MiB))
    asyncio.run(ctl.checkpoint(d.now, all_=True))
    resizes_before = len(orch.resizes)
    steps_before = {k: p.steps for k, p in ctl.profiles.items()}

    ctl2 = make(orch, store)
    restored = asyncio.run(ctl2.restore())
    assert restored == len(steps_before)
    for key, steps in steps_before.items():
        assert ctl2.profiles[key].steps >= min(steps, 8640)
    d2 = Driver(orch, ctl2)
    d2.now, d2.seq = d.now, d.seq
    d2.run(60, lambda t: (0.3, 100 * MiB))
    # The restored cooldown holds: no action repeated in the first minute after the restart.
    assert len(orch.resizes) == resizes_before


def _stored_watches(store: MemoryStore) -> list[object]:
    status = store.saved[WEB]
    raw = status["checkpoint"]
    assert isinstance(raw, str)
    watches = json.loads(raw)["watches"]
    assert isinstance(watches, list)
    return watches


def _a_watched_shrink(
    store: MemoryStore, window_s: float = 300.0
) -> tuple[FakeOrchestrator, Controller, Driver]:
    """A controller that has just shrunk a healthy, over-provisioned pod, with the change
    under watch and checkpointed to ``store``."""
    orch = cluster(cpu=2.0)
    ctl = make(orch, store, rollback_window_s=window_s)
    d = Driver(orch, ctl)
    for _ in range(24 * 60):
        d.run(30, lambda t: (0.3, 100 * MiB), throttled=lambda cpu, limit: 0.0)
        if ctl.actuator.watching:
            asyncio.run(ctl.checkpoint(d.now, all_=True))
            return orch, ctl, d
    raise AssertionError("the controller never shrank")


def test_a_restart_inside_the_watch_window_still_rolls_the_change_back() -> None:
    store = MemoryStore()
    orch, _, d = _a_watched_shrink(store, window_s=600.0)
    assert cpu_limit(orch) < 2.0
    assert len(_stored_watches(store)) == 1

    # The controller dies here; a new one (or a standby) takes over from the store.
    ctl2 = make(orch, store, rollback_window_s=600.0)
    asyncio.run(ctl2.restore())
    assert set(ctl2.actuator.watching) == {"uid-web-0"}
    d2 = Driver(orch, ctl2)
    d2.now, d2.seq = d.now, d.seq

    def throttled(cpu: float, limit: float) -> float:
        return 0.6 if limit < 2.0 else 0.0  # the shrink hurts (as in the test above)

    d2.run(300, lambda t: (0.3, 100 * MiB), throttled=throttled)

    rollback = next(e for e in orch.events if e.reason == "ResizeRolledBack")
    assert "throttling" in rollback.message
    assert cpu_limit(orch) == 2.0  # back to what it had before the shrink
    assert ctl2.workloads[WEB].rollbacks
    assert not ctl2.actuator.watching
    asyncio.run(ctl2.checkpoint(d2.now))
    assert _stored_watches(store) == []


def test_a_kept_change_leaves_the_checkpoint() -> None:
    store = MemoryStore()
    orch, ctl, d = _a_watched_shrink(store)
    assert len(_stored_watches(store)) == 1
    d.run(700, lambda t: (0.3, 100 * MiB))  # nothing got worse: the change is kept
    assert not any(e.reason == "ResizeRolledBack" for e in orch.events)
    uid = "uid-web-0"
    assert uid not in ctl.actuator.watching or ctl.actuator.watching[uid].at > d.now - 700
    asyncio.run(ctl.checkpoint(d.now))
    stored = _stored_watches(store)
    assert all(w["at"] > d.now - 700 for w in stored)  # type: ignore[index]


def test_an_unreadable_watch_is_dropped_and_nothing_else_is_lost() -> None:
    store = MemoryStore()
    orch, ctl, _ = _a_watched_shrink(store)
    status = dict(store.saved[WEB])
    data = json.loads(str(status["checkpoint"]))
    data["watches"] = [{"podUid": "uid-web-0", "baseline": "corrupt"}, *data["watches"]]
    status["checkpoint"] = json.dumps(data)
    store.saved[WEB] = status

    ctl2 = make(orch, store)
    assert asyncio.run(ctl2.restore()) == len(ctl.profiles)  # every profile is back
    assert set(ctl2.actuator.watching) == {"uid-web-0"}  # and the readable watch


def test_a_standby_that_follows_the_checkpoints_mirrors_them_without_duplicates() -> None:
    store = MemoryStore()
    orch, leader, d = _a_watched_shrink(store)
    standby = make(orch, store, rollback_window_s=300.0)
    for _ in range(3):  # the runtime's standby restores on every pass
        asyncio.run(standby.restore())
    decisions = list(leader.workloads[WEB].decisions)
    assert list(standby.workloads[WEB].decisions) == decisions  # once each, not three times
    assert set(standby.actuator.watching) == {"uid-web-0"}

    d.run(700, lambda t: (0.3, 100 * MiB))  # the leader keeps the change; watch over
    asyncio.run(leader.checkpoint(d.now))
    asyncio.run(standby.restore())
    assert {c.at for c in standby.actuator.watching.values()} == {
        c.at for c in leader.actuator.watching.values()
    }


def test_an_oom_kill_grows_memory_at_once() -> None:
    orch = cluster(mem=256 * MiB)
    ctl = make(orch)
    d = Driver(orch, ctl)
    d.run(600, lambda t: (0.1, 200 * MiB))
    p = orch.pods["uid-web-0"]
    ctl.on_report(Report(node="node-0", agent_id="a", sent_at=d.now, sequence=999,
                         windows=(window(p, d.now, cpu=0.1, mem=255 * MiB, oom=1),),
                         urgent=True, urgent_reasons=("oom-kill: x",)), d.now + 10)  # fmt: skip
    asyncio.run(ctl.cycle(d.now + 15, urgent_only=True))
    limit = orch.pods["uid-web-0"].containers[0].memory_limit
    assert limit is not None
    assert limit >= 256 * MiB * 1.2 - MiB


def test_mode_initial_decides_but_does_not_act() -> None:
    orch = cluster(cpu=2.0)
    orch.modes[NS] = Mode.INITIAL
    ctl = make(orch)
    Driver(orch, ctl).run(2 * 3600, lambda t: (0.3, 100 * MiB))
    assert orch.resizes == []
    assert ctl.workloads[WEB].decisions  # but the decisions are kept, with reasons
    assert (
        ctl.metrics.decisions.labels("RESIZE_IN_PLACE", "predicted-under-allocation")._value.get()
        > 0
    )


def test_unmanaged_namespaces_are_left_alone() -> None:
    orch = cluster(cpu=2.0)
    orch.modes.clear()
    ctl = make(orch)
    Driver(orch, ctl).run(3600, lambda t: (0.3, 100 * MiB))
    assert orch.resizes == []
    assert WEB not in ctl.workloads or not ctl.workloads[WEB].decisions


@pytest.mark.parametrize("spare", [True, False])
def test_a_growth_the_node_cannot_hold_reschedules_only_with_a_replica_to_spare(
    spare: bool,
) -> None:
    from controller.orchestrator import WorkloadView

    orch = cluster(2 if spare else 1, cpu=0.5)
    orch.nodes["node-0"] = node(cpu=1.05)  # free: 1.05 - nothing requested in the fake
    orch.workloads[WEB] = WorkloadView(WEB, replicas=2 if spare else 1, ready=2 if spare else 1,
                                       disruptions_allowed=1 if spare else 0)  # fmt: skip
    ctl = make(orch)
    d = Driver(orch, ctl)
    d.run(600, lambda t: (0.45, 100 * MiB),
          urgent=lambda t, cpu, lim: (f"forecast-cpu-limit: {NS}/{{pod}}/app: cpu upper 1.500 "
                                      f">= limit {lim:.3f} cores within 300s"))  # fmt: skip
    if spare:
        assert orch.evictions, "expected a reschedule through eviction"
        assert any(e.reason == "Rescheduled" for e in orch.events)
    else:
        assert not orch.evictions
        assert any(e.reason == "RescheduleDeferred" for e in orch.events)


def test_a_leak_raises_an_alert_and_is_not_fed() -> None:
    orch = cluster(cpu=0.5, mem=512 * MiB)
    ctl = make(orch, step_s=60.0)
    now = 1_700_000_000.0
    seq = 0
    p = orch.pods["uid-web-0"]
    grown_after_alert: list[float] = []
    alerted_at: float | None = None
    for minute in range(14 * 60):
        now += 60.0
        mem = (150 + 25 * minute / 60.0) * MiB  # +25 MiB an hour, for 14 hours
        p = orch.pods["uid-web-0"]
        seq += 1
        ctl.on_report(Report(node="node-0", agent_id="a", sent_at=now, sequence=seq,
                             windows=(window(p, now - 60.0, cpu=0.1, mem=mem, seconds=60.0),)),
                      now)  # fmt: skip
        before = p.containers[0].memory_limit or 0.0
        asyncio.run(ctl.cycle(now))
        if minute % 15 == 0:
            asyncio.run(ctl.detect_anomalies(now))
        if alerted_at is None and any(e.reason == "MemoryLeakSuspected" for e in orch.events):
            alerted_at = now
        after = orch.pods["uid-web-0"].containers[0].memory_limit or 0.0
        if alerted_at is not None and after > before:
            grown_after_alert.append(after)
    assert alerted_at is not None, "no leak alert in 14 hours of steady growth"
    event = next(e for e in orch.events if e.reason == "MemoryLeakSuspected")
    assert event.type.value == "Warning"
    assert event.workload == WEB
    leak_series = [
        s for m in ctl.metrics.registry.collect() for s in m.samples
        if s.name == "presize_anomaly" and s.labels["kind"] == "memory-leak"
    ]  # fmt: skip
    assert leak_series
    assert all(s.value == 1 for s in leak_series)
    assert leak_series[0].labels["workload"] == "web"
    assert grown_after_alert == [], "memory was grown after the leak was flagged"
    # The agent on the pod's node is asked for a diagnostics snapshot of the container.
    ack = ctl.on_report(Report(node="node-0", agent_id="a", sent_at=now, sequence=seq + 1), now)
    assert [(d.pod_uid, d.container) for d in ack.diagnose] == [("uid-web-0", "app")]


def test_profiles_of_workloads_that_are_gone_are_forgotten() -> None:
    orch = cluster()
    store = MemoryStore()
    ctl = make(orch, store)
    d = Driver(orch, ctl)
    d.run(600, lambda t: (0.3, 100 * MiB))
    assert any(k.workload == WEB for k in ctl.profiles)
    orch.pods.clear()  # the Deployment is deleted...
    asyncio.run(ctl.cycle(d.now + 5))
    assert any(k.workload == WEB for k in ctl.profiles)  # ... kept while it may come back
    orch.modes.clear()  # ... and its namespace with it
    asyncio.run(ctl.cycle(d.now + 10))
    assert not ctl.profiles
    assert WEB not in ctl.workloads
    assert asyncio.run(ctl.checkpoint(d.now + 15)) == 0  # nothing left to write


def test_network_rates_reach_the_snapshot_for_the_webhooks_bandwidth_annotations() -> None:
    from dataclasses import replace as with_

    orch = cluster()
    ctl = make(orch)
    now = 1_700_000_000.0
    p = orch.pods["uid-web-0"]
    for i in range(30):
        w = with_(window(p, now + 10 * i, cpu=0.2, mem=100 * MiB),
                  net_rx_bytes=1_000_000.0, net_tx_bytes=250_000.0)  # fmt: skip
        ctl.on_report(Report(node="node-0", agent_id="a", sent_at=now, sequence=i + 1,
                             windows=(w,)), now + 10 * i + 10)  # fmt: skip
    asyncio.run(ctl.cycle(now + 400))
    (rec,) = ctl.snapshot(now + 400).recommendations
    assert rec.net_ingress_bps == pytest.approx(8 * 100_000.0)  # 1 MB per 10 s, in bits/s
    assert rec.net_egress_bps == pytest.approx(8 * 25_000.0)


def test_a_store_that_is_down_loses_nothing_and_an_orchestrator_that_is_down_crashes_nothing() -> (
    None
):
    orch = cluster(cpu=2.0)
    store = MemoryStore(fail=True)
    ctl = make(orch, store)
    d = Driver(orch, ctl)
    orch.down = True  # every action fails, as when the API server is away
    d.run(2 * 3600, lambda t: (0.3, 100 * MiB))
    assert orch.resizes == []
    assert ctl.metrics.actions.labels("resize", "failed")._value.get() > 0
    assert asyncio.run(ctl.checkpoint(d.now)) == 0
    assert ctl.metrics.store_errors._value.get() >= 1
    # Both come back: the pending shrink is made, and every profile is written.
    orch.down = False
    store.fail = False
    d.run(120, lambda t: (0.3, 100 * MiB))
    assert orch.resizes
    assert asyncio.run(ctl.checkpoint(d.now)) == 1
    assert WEB in store.saved


def test_a_diagnostics_snapshot_from_the_agent_becomes_an_event_on_the_pod() -> None:
    from presize.wire import Diagnostics, ProcessSample

    orch = cluster()
    ctl = make(orch)
    p = orch.pods["uid-web-0"]
    asyncio.run(ctl.refresh(0.0))
    snapshot = Diagnostics(
        pod=p.ref, container="app", taken_at=5.0,
        processes=(ProcessSample(7, "java", 0.5, 900 * MiB), ProcessSample(9, "sh", 0.0, MiB)),
        memory_stat=(("anon", int(850 * MiB)), ("file", int(40 * MiB))),
        log_lines=("java.lang.OutOfMemoryError: Java heap space",),
    )  # fmt: skip
    ctl.on_report(Report(node="node-0", agent_id="a", sent_at=5.0, sequence=1,
                         diagnostics=(snapshot,)), 5.0)  # fmt: skip
    asyncio.run(ctl.cycle(10.0))
    (event,) = [e for e in orch.events if e.reason == "DiagnosticsTaken"]
    assert event.pod == p.ref
    assert "java[7] 900Mi 0.50 cores" in event.message
    assert "anon 850Mi" in event.message
    assert "1 recent log match" in event.message
    asyncio.run(ctl.cycle(20.0))
    assert len([e for e in orch.events if e.reason == "DiagnosticsTaken"]) == 1  # once


class SlowResizes(FakeOrchestrator):
    """Resizes take a moment, as over the API server: other tasks run while one is in flight."""

    async def resize(self, pod: PodRef, changes: Sequence[ContainerResize]) -> ActionResult:
        await asyncio.sleep(0.01)
        return await super().resize(pod, changes)


def test_an_urgent_cycle_waits_for_a_full_cycle_whose_rollback_is_in_flight() -> None:
    """The runtime's urgent (5 s) and full (30 s) timers can fire together. A rollback judged
    by one cycle must not race a decision on the same pod in the other, made from the view
    the rollback is undoing: the pod ends at the limit the rollback restored."""
    orch = SlowResizes(modes={NS: Mode.AUTO})
    orch.nodes["node-0"] = node()
    p = pod(NS, "web-0", WEB, cpu=2.0, mem=256 * MiB)
    orch.pods[p.ref.uid] = p
    ctl = make(orch, rollback_window_s=300.0)
    d = Driver(orch, ctl)

    def throttled(cpu: float, limit: float) -> float:
        return 0.6 if limit < 2.0 else 0.0  # the shrink hurts

    while not ctl.actuator.watching:  # until the first shrink is under watch
        d.run(5.0, lambda t: (0.3, 100 * MiB), throttled=throttled)
        assert d.now < 1_700_000_000.0 + 4 * 3600, "the controller never shrank"
    change = ctl.actuator.watching[p.ref.uid]
    assert cpu_limit(orch) < 2.0
    # Reports (throttled) arrive until the watch has its answer; no cycles meanwhile.
    while d.now < change.at + 300.0:
        d.now += 10.0
        d.seq += 1
        view = orch.pods[p.ref.uid]
        limit = view.containers[0].cpu_limit or math.inf
        ctl.on_report(Report(node="node-0", agent_id="a", sent_at=d.now, sequence=d.seq,
                             windows=(window(view, d.now - 10.0, cpu=0.3, mem=100 * MiB,
                                             throttled=throttled(0.3, limit)),)),
                      d.now)  # fmt: skip
    ctl.urgent.add(p.ref.uid)  # an agent flagged the pod: the urgent cycle will decide it

    async def both() -> None:
        await asyncio.gather(ctl.cycle(d.now), ctl.cycle(d.now, urgent_only=True))

    asyncio.run(both())
    assert [e.reason for e in orch.events].count("ResizeRolledBack") == 1
    assert cpu_limit(orch) == pytest.approx(2.0)  # the rollback's limit, not a bump of the shrink


def test_an_oom_kill_the_kubelet_reports_grows_memory_without_the_agent() -> None:
    """On cgroup v1 the kill is counted only in the container's cgroup, which the kubelet
    removes as it restarts the container: the agent may never see it. The pod's
    ``lastState.terminated.reason: OOMKilled`` is enough, once (a later cycle does not grow
    again for the same kill)."""
    orch = cluster(mem=256 * MiB)
    ctl = make(orch)
    d = Driver(orch, ctl)
    d.run(600, lambda t: (0.1, 200 * MiB))
    p = orch.pods["uid-web-0"]
    killed = replace(p.containers[0], oom_killed_at=d.now + 5)
    orch.pods["uid-web-0"] = replace(p, containers=(killed, *p.containers[1:]))
    asyncio.run(ctl.cycle(d.now + 10))
    limit = orch.pods["uid-web-0"].containers[0].memory_limit
    assert limit is not None
    assert limit >= 256 * MiB * 1.2 - MiB
    assert ctl.metrics.decisions.labels("RESIZE_IN_PLACE", "oom-kill")._value.get() == 1
    asyncio.run(ctl.cycle(d.now + 60))
    assert orch.pods["uid-web-0"].containers[0].memory_limit == limit  # the same kill, once
