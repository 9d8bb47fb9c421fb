"""The controller's pure parts: policies, plans, step aggregation, rollback verdicts, status."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from controller_fakes import MiB, deployment, pod, window

from controller.orchestrator import ContainerResources, PodView
from controller.plan import ContainerInput, allocation_of, plan_pod, scaled_resources
from controller.policies import (
    Effective,
    PolicyBook,
    PolicyError,
    Slo,
    parse_duration,
    parse_policy,
)
from controller.rollback import Change, Health, Verdict, judge, revert_resizes
from controller.steps import StepAccumulator
from presize.model import Action, Bounds, ContainerKey, Mode, PodRef, Reason
from presize.policy import Allocation, DecisionState, Signals
from presize.settings import PolicySettings

WEB = deployment("shop", "web")


# ------------------------------------------------------------------------- policies


def test_a_full_policy_parses_with_units_and_durations() -> None:
    p = parse_policy("shop", "p", {
        "mode": "auto", "buffer": 1.3,
        "selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]},
        "containers": [{"name": "*", "minAllowed": {"cpu": "100m", "memory": "64Mi"},
                        "maxAllowed": {"cpu": 2, "memory": "1Gi"}},
                       {"name": "app", "mode": "off", "controlledResources": ["cpu"]}],
        "slo": {"maxThrottlingRatio": 0.05, "maxPSI": 20,
                "latency": {"metric": "lat", "maxSeconds": 0.2, "url": "http://127.0.0.1:1/m"}},
        "rollback": {"window": "1h30m"},
        "eviction": {"allowed": True},
        "io": {"readBytesPerSecond": 1e6},
    })  # fmt: skip
    star = p.rule_for("sidecar")
    assert star is not None
    assert star.cpu == Bounds(0.1, 2.0)
    assert star.memory == Bounds(64 * MiB, 1024 * MiB)
    app = p.rule_for("app")
    assert app is not None
    assert app.mode is Mode.OFF
    assert app.controlled == frozenset({"cpu"})
    assert p.slo.max_psi == pytest.approx(0.2)
    assert p.rollback_window_s == 5400.0
    assert p.eviction_allowed
    assert p.io == (1e6, None, None, None)
    assert p.matches({"app": "web", "tier": "a"})
    assert not p.matches({"app": "web"})


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"mode": "sometimes"}, "spec.mode"),
        ({"buffer": 0.5}, "spec.buffer"),
        (
            {"containers": [{"name": "a", "minAllowed": {"cpu": "2"}, "maxAllowed": {"cpu": "1"}}]},
            "minAllowed is above maxAllowed",
        ),
        ({"containers": [{"name": "a", "maxAllowed": {"memory": "lots"}}]}, "maxAllowed.memory"),
        ({"slo": {"latency": {"metric": "x", "maxSeconds": 1}}}, "give a url or a port"),
        ({"rollback": {"window": "soon"}}, "duration"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(PolicyError, match=field):
        parse_policy("ns", "p", spec)
    book = PolicyBook.build({"ns": [{"name": "p", "spec": spec}]}, {"ns": Mode.AUTO}, Mode.INITIAL)
    assert len(book.errors) == 1
    assert book.policies == {}  # skipped, never half-applied


def test_the_most_specific_policy_and_container_entry_win() -> None:
    book = PolicyBook.build(
        {"ns": [
            {"name": "wide", "spec": {"mode": "initial", "containers": [
                {"name": "*", "maxAllowed": {"cpu": "4"}}]}},
            {"name": "narrow", "spec": {
                "mode": "auto", "selector": {"matchLabels": {"app": "db"}},
                "containers": [{"name": "db", "maxAllowed": {"cpu": "8"}}]}},
        ]},
        {"ns": Mode.OFF, "other": Mode.AUTO}, Mode.INITIAL,
    )  # fmt: skip
    db = book.resolve("ns", "db", {"app": "db"})
    assert db.mode is Mode.AUTO
    assert db.cpu.maximum == 8.0
    assert db.policy == "ns/narrow"
    web = book.resolve("ns", "web", {"app": "web"})
    assert web.mode is Mode.INITIAL
    assert web.cpu.maximum == 4.0
    assert book.resolve("other", "x", {}).mode is Mode.AUTO
    assert not book.managed("unlabelled")
    bounds = book.snapshot_bounds()
    assert [(b.namespace, b.container, b.cpu_max) for b in bounds] == [("ns", None, 4.0)]


def test_go_durations() -> None:
    assert parse_duration("15m") == 900
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    with pytest.raises(PolicyError):
        parse_duration("15 m")


# ------------------------------------------------------------------------- plans


def test_scaling_keeps_the_qos_class_and_the_request_limit_ratio() -> None:
    guaranteed = ContainerResources("a", 0.5, 0.5, 256 * MiB, 256 * MiB)
    r = scaled_resources(guaranteed, 0.8, 300 * MiB)
    assert r.cpu_request == r.cpu_limit == pytest.approx(0.8)
    assert r.memory_request == r.memory_limit == 300 * MiB
    burstable = ContainerResources("a", 0.25, 1.0, 128 * MiB, 512 * MiB)
    # CPU is sized by its request, memory by its limit; the other side keeps the ratio.
    r = scaled_resources(burstable, 0.5, 1024 * MiB)
    assert (r.cpu_request, r.cpu_limit) == (pytest.approx(0.5), pytest.approx(2.0))
    assert (r.memory_request, r.memory_limit) == (256 * MiB, 1024 * MiB)
    request_only = ContainerResources("a", cpu_request=0.3)
    alloc = allocation_of(request_only)
    assert alloc is not None
    assert alloc.cpu == 0.3
    assert math.isnan(alloc.memory)
    r = scaled_resources(request_only, 0.6, None)
    assert r.cpu_request == pytest.approx(0.6)
    assert r.cpu_limit is None
    assert r.memory_limit is None
    assert allocation_of(ContainerResources("be")) is None


def test_a_cpu_limit_is_never_set_below_the_recent_peak() -> None:
    burstable = ContainerResources("a", 0.4, 0.8, 128 * MiB, 256 * MiB)
    r = scaled_resources(burstable, 0.1, None, cpu_limit_floor=0.55)
    assert r.cpu_request == pytest.approx(0.1)
    assert r.cpu_limit == pytest.approx(0.55)  # not 0.2: the bursts reach 0.5
    guaranteed = ContainerResources("a", 1.0, 1.0, 128 * MiB, 128 * MiB)
    r = scaled_resources(guaranteed, 0.2, None, cpu_limit_floor=0.66)
    assert r.cpu_request == r.cpu_limit == pytest.approx(0.66)


def test_policy_slos_decide_what_counts_as_throttled() -> None:
    a = ContainerResources("a", 1.0, 1.0, 256 * MiB, 256 * MiB)
    signals = Signals(throttled_fraction=0.05)
    default = ContainerInput(a, Effective(mode=Mode.AUTO), Allocation(0.8, 200 * MiB), signals,
                             DecisionState())  # fmt: skip
    strict = replace(
        default, effective=Effective(mode=Mode.AUTO, slo=Slo(max_throttling_ratio=0.01))
    )
    args = (_pod(a), Allocation(8.0, 1e12), PolicySettings())
    assert plan_pod(0.0, args[0], {"a": default}, args[1], args[2]).action is Action.NOOP
    plan = plan_pod(0.0, args[0], {"a": strict}, args[1], args[2])
    assert plan.action is Action.RESIZE_IN_PLACE
    assert plan.reason is Reason.SLO_THROTTLING


def _input(res: ContainerResources, predicted: Allocation, **kw: object) -> ContainerInput:
    return ContainerInput(res, Effective(mode=Mode.AUTO, **kw), predicted, Signals(),  # type: ignore[arg-type]
                          DecisionState())  # fmt: skip


def _pod(*containers: ContainerResources) -> PodView:
    return PodView(ref=PodRef("shop", "p", "u", "n"), workload=WEB, containers=containers)


def test_all_containers_are_resized_in_one_plan() -> None:
    a = ContainerResources("a", 0.5, 0.5, 256 * MiB, 256 * MiB)
    b = ContainerResources("b", 0.2, 0.2, 128 * MiB, 128 * MiB)
    plan = plan_pod(0.0, _pod(a, b), {
        "a": _input(a, Allocation(0.8, 200 * MiB)), "b": _input(b, Allocation(0.4, 100 * MiB)),
    }, Allocation(8.0, 1e12), PolicySettings())  # fmt: skip
    assert plan.action is Action.RESIZE_IN_PLACE
    assert {r.name for r in plan.resizes} == {"a", "b"}


def test_growth_the_node_cannot_hold_becomes_a_reschedule() -> None:
    a = ContainerResources("a", 0.5, 0.5, 256 * MiB, 256 * MiB)
    plan = plan_pod(0.0, _pod(a), {"a": _input(a, Allocation(2.0, 200 * MiB))},
                    Allocation(0.5, 1e12), PolicySettings())  # fmt: skip
    assert plan.action is Action.RESCHEDULE
    assert plan.reason is Reason.EXCEEDS_NODE


def test_growth_past_the_policy_maximum_is_a_scale_out_hint_at_the_maximum() -> None:
    a = ContainerResources("a", 0.5, 0.5, 256 * MiB, 256 * MiB)
    plan = plan_pod(0.0, _pod(a), {"a": _input(a, Allocation(4.0, 200 * MiB), cpu=Bounds(0, 1.0))},
                    Allocation(8.0, 1e12), PolicySettings())  # fmt: skip
    assert plan.action is Action.SCALE_OUT
    assert plan.resizes[0].cpu_limit == pytest.approx(1.0)


def test_a_restarting_resize_is_not_made_on_a_forecast_alone() -> None:
    a = ContainerResources("a", 0.5, 0.5, 256 * MiB, 256 * MiB, cpu_restart=True)
    plan = plan_pod(0.0, _pod(a), {"a": _input(a, Allocation(0.8, 200 * MiB))},
                    Allocation(8.0, 1e12), PolicySettings())  # fmt: skip
    assert plan.action is Action.NOOP
    assert "restarts" in plan.containers[0].decision.message


def test_best_effort_containers_are_left_alone() -> None:
    a = ContainerResources("a")
    plan = plan_pod(0.0, _pod(a), {"a": _input(a, Allocation(0.8, 200 * MiB))},
                    Allocation(8.0, 1e12), PolicySettings())  # fmt: skip
    assert plan.action is Action.NOOP
    assert "BestEffort" in plan.containers[0].decision.message


# ------------------------------------------------------------------------- steps


def test_steps_take_the_busiest_replica_and_count_an_oom_once() -> None:
    acc = StepAccumulator(60.0)
    p1, p2 = pod("shop", "a", WEB), pod("shop", "b", WEB)
    key = ContainerKey(WEB, "app")
    w1 = window(p1, 0.0, cpu=0.2, mem=100 * MiB, oom=1)
    acc.add(key, [w1, window(p2, 10.0, cpu=0.6, mem=80 * MiB), w1])  # w1 resent
    assert acc.close(60.0) == []  # still open for late windows
    ((k, start, v),) = acc.close(121.0)
    assert (k, start) == (key, 0.0)
    assert v.cpu == 0.6
    assert v.mem == 100 * MiB
    assert v.oom_kills == 1
    assert v.pods == {"uid-a", "uid-b"}
    acc.add(key, [window(p1, 20.0, cpu=5.0, mem=1.0)])  # too late: its step is closed
    assert acc.late == 1
    bad = window(p1, 200.0, cpu=math.nan, mem=1.0)
    acc.add(key, [bad])
    assert acc.invalid == 1


# ------------------------------------------------------------------------- rollback


def _change(**kw: object) -> Change:
    base: dict[str, object] = {
        "pod_uid": "u", "pod_name": "p", "namespace": "ns", "at": 100.0,
        "before": (ContainerResources("a", 1.0, 1.0),), "after": (),
        "baseline": Health(throttled=0.02), "grew_cpu": False, "grew_memory": False,
        "shrank_cpu": True, "shrank_memory": False, "reason": "r", "window_s": 300.0,
    }  # fmt: skip
    base.update(kw)
    return Change(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "after", "now", "verdict"),
    [
        (_change(), Health(throttled=0.5, samples=10), 150.0, Verdict.REVERT),
        (_change(), Health(throttled=0.05, samples=10), 150.0, Verdict.WAIT),
        (_change(), Health(throttled=0.05, samples=10), 450.0, Verdict.KEEP),
        (
            _change(shrank_cpu=False, grew_cpu=True),
            Health(throttled=0.9, samples=10),
            150.0,
            Verdict.WAIT,
        ),  # growth does not cause throttling: not blamed
        (
            _change(shrank_cpu=False, grew_cpu=True),
            Health(restarts=1, samples=5),
            150.0,
            Verdict.REVERT,
        ),
        (_change(shrank_memory=True), Health(oom_kills=1, samples=5), 150.0, Verdict.REVERT),
        (_change(), Health(), 450.0, Verdict.WAIT),  # no evidence yet: wait up to 2 windows
        (_change(), Health(), 750.0, Verdict.KEEP),
    ],
)
def test_rollback_verdicts(change: Change, after: Health, now: float, verdict: Verdict) -> None:
    assert judge(change, after, now=now, tolerance=0.1).verdict is verdict


def test_a_revert_puts_back_exactly_what_was_there() -> None:
    from controller.orchestrator import ContainerResize

    c = _change(after=(ContainerResize("a", cpu_limit=0.5),))
    (r,) = revert_resizes(c)
    assert (r.name, r.cpu_request, r.cpu_limit) == ("a", 1.0, 1.0)


# ------------------------------------------------------------------------- urgent reasons


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "forecast-cpu-limit: shop/web-0/app: cpu upper 0.612 >= limit 0.500 cores within 300s",
            ("shop", "web-0", "app", "cpu", 0.612),
        ),
        (
            "forecast-memory-limit: shop/db-1/pg: memory upper 1073741824 >= limit 1000 bytes x",
            ("shop", "db-1", "pg", "memory", 1073741824.0),
        ),
        ("oom-kill: shop/web-0/app: 1 OOM kill(s)", None),
        ("forecast-cpu-limit: shop/web-0/app: cpu upper nan >= limit 1", None),
        ("forecast-cpu-limit: garbage", None),
        ("", None),
    ],
)
def test_urgent_forecasts_are_read_back_from_the_agents_reasons(
    text: str, expected: tuple[str, str, str, str, float] | None
) -> None:
    from controller.recent import parse_urgent

    got = parse_urgent(text)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got.namespace, got.pod, got.container, got.resource, got.upper) == expected


def test_recent_windows_give_signals_and_health_and_forget_old_pods() -> None:
    from controller.recent import RecentWindows

    recent = RecentWindows(keep_s=100.0)
    p = pod("shop", "a", WEB)
    recent.add([window(p, 0.0, cpu=0.1, mem=50 * MiB), window(p, 10.0, cpu=0.1, mem=80 * MiB,
                                                              throttled=0.4, oom=1)])  # fmt: skip
    recent.add([window(p, 10.0, cpu=0.1, mem=80 * MiB, throttled=0.4, oom=1)])  # resent
    s = recent.signals("uid-a", "app", since=5.0, peak_s=3600.0)
    assert s.oom_kill
    assert s.throttled_fraction == 0.4
    assert s.memory_peak == 80 * MiB
    h = recent.health("uid-a", ["app"], 0.0, 20.0)
    assert h.throttled == pytest.approx(0.2)
    assert h.oom_kills == 1  # the resent window did not count twice
    assert h.samples == 20
    recent.prune(200.0)
    assert len(recent) == 0


@pytest.mark.parametrize(
    ("autoscaled", "expected"),
    [(False, "run at least 9 replicas (now 2)"), (True, "let it reach at least 9 replicas")],
)
def test_a_scale_out_hint_names_the_replicas_the_forecast_needs(
    autoscaled: bool, expected: str
) -> None:
    from controller.actuator import scale_out_hint
    from controller.orchestrator import WorkloadView

    a = ContainerResources("a", 0.5, 0.5, 256 * MiB, 256 * MiB)
    plan = plan_pod(0.0, _pod(a), {"a": _input(a, Allocation(4.0, 200 * MiB), cpu=Bounds(0, 1.0))},
                    Allocation(8.0, 1e12), PolicySettings())  # fmt: skip
    assert plan.overload == pytest.approx(4.4)
    hint = scale_out_hint(plan, WorkloadView(WEB, replicas=2, ready=2, autoscaled=autoscaled))
    assert expected in hint
