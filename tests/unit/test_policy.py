"""decide(): table-driven cases, each asserting the action, the reason and the new allocation.

Defaults (PolicySettings): buffer 1.1, shrink below 0.8 × allocation, by at most 10 % per change,
after the signal held 900 s and not within 1800 s of a change; OOM × 1.2; throttling × 1.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presize.errors import SettingsError
from presize.model import Action, Bounds, Reason
from presize.policy import Allocation, DecisionState, Limits, Signals, decide
from presize.settings import AnomalySettings, PolicySettings, SeasonalSettings

NOW = 1_000_000.0
GB = 1e9
CUR = Allocation(cpu=1.0, memory=1 * GB)
STABLE = DecisionState(cpu_down_since=NOW - 900.0, memory_down_since=NOW - 900.0)
# The table below was written for a slow, 10 %-per-step shrink; these settings pin it (the
# shrink target predicted / scale_down_to equals predicted × 1.1 here). The product's own
# defaults are tested separately at the end of this file.
SLOW = PolicySettings(
    scale_down_to=1 / 1.1, scale_down_step=0.9, memory_scale_down_step=0.9,
    down_stable_s=900.0, down_cooldown_s=1800.0,
)


@dataclass(frozen=True)
class Case:
    predicted: Allocation
    action: Action
    reason: Reason
    cpu: float | None
    memory: float | None
    current: Allocation = CUR
    signals: Signals = field(default_factory=Signals)
    limits: Limits = field(default_factory=Limits)
    settings: PolicySettings = SLOW
    state: DecisionState = field(default_factory=DecisionState)
    reasons: tuple[Reason, ...] = field(default=())


CASES = {
    # ---------------------------------------------------------------------------- growth
    "cpu-predicted-over-grows-to-predicted-times-buffer": Case(
        Allocation(2.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.PREDICTED_OVER, 2.2, 1 * GB,
        reasons=(Reason.PREDICTED_OVER,),
    ),
    "memory-predicted-over-grows-to-predicted-times-buffer": Case(
        Allocation(1.0, 1.5 * GB), Action.RESIZE_IN_PLACE, Reason.PREDICTED_OVER, 1.0, 1.65 * GB,
    ),
    "growth-is-not-delayed-by-cooldown": Case(
        Allocation(2.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.PREDICTED_OVER, 2.2, 1 * GB,
        state=DecisionState(last_change=NOW - 1.0),
    ),
    "growth-resumes-once-the-rollback-backoff-has-passed": Case(
        Allocation(2.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.PREDICTED_OVER, 2.2, 1 * GB,
        state=DecisionState(grow_blocked_until=NOW),
    ),
    # ------------------------------------------------------------------------ urgent bumps
    "oom-bumps-memory-by-oom-bump": Case(
        Allocation(1.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.OOM_KILL, 1.0, 1.2 * GB,
        signals=Signals(oom_kill=True, memory_peak=1 * GB),
    ),
    "oom-bump-covers-the-seen-peak-with-buffer": Case(
        Allocation(1.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.OOM_KILL, 1.0, 1.43 * GB,
        signals=Signals(oom_kill=True, memory_peak=1.3 * GB),
    ),
    "oom-bump-applies-even-during-rollback-backoff": Case(
        Allocation(1.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.OOM_KILL, 1.0, 1.2 * GB,
        signals=Signals(oom_kill=True), state=DecisionState(grow_blocked_until=NOW + 60.0),
    ),
    "throttling-over-slo-bumps-cpu": Case(
        Allocation(1.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.SLO_THROTTLING, 1.2, 1 * GB,
        signals=Signals(throttled_fraction=0.25),
    ),
    "throttling-at-slo-is-not-a-breach": Case(
        Allocation(1.0, 1 * GB), Action.NOOP, Reason.WITHIN_BAND, None, None,
        signals=Signals(throttled_fraction=0.10),
    ),
    "cpu-pressure-over-slo-while-throttled-bumps-cpu": Case(
        Allocation(1.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.SLO_PRESSURE, 1.2, 1 * GB,
        signals=Signals(cpu_pressure=0.5, throttled_fraction=0.05),
    ),
    "cpu-pressure-from-a-busy-node-is-not-a-reason-to-grow": Case(
        Allocation(1.0, 1 * GB), Action.NOOP, Reason.WITHIN_BAND, None, None,
        signals=Signals(cpu_pressure=0.5),
    ),
    "memory-pressure-near-the-limit-grows-memory-by-buffer": Case(
        Allocation(1.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.SLO_PRESSURE, 1.0, 1.1 * GB,
        signals=Signals(memory_pressure=0.5, memory_peak=0.95 * GB),
    ),
    "memory-pressure-far-below-the-limit-is-not-a-reason-to-grow": Case(
        Allocation(1.0, 1 * GB), Action.NOOP, Reason.WITHIN_BAND, None, None,
        signals=Signals(memory_pressure=0.5, memory_peak=0.5 * GB),
    ),
    # The larger target wins; the reason is still the breach (a throttled container's usage
    # is censored at its limit: the throttling is why it grows).
    "a-larger-prediction-sets-the-target-of-a-throttling-growth": Case(
        Allocation(2.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.SLO_THROTTLING, 2.2, 1 * GB,
        signals=Signals(throttled_fraction=0.5), reasons=(Reason.SLO_THROTTLING,),
    ),
    "a-larger-prediction-sets-the-target-of-an-oom-growth": Case(
        Allocation(1.0, 1.5 * GB), Action.RESIZE_IN_PLACE, Reason.OOM_KILL, 1.0, 1.65 * GB,
        signals=Signals(oom_kill=True, memory_peak=1.0 * GB), reasons=(Reason.OOM_KILL,),
    ),
    # A growth and a shrink are never one change: the growth goes, the shrink waits.
    "a-throttled-cpu-grows-while-the-due-memory-shrink-waits": Case(
        Allocation(0.5, 0.5 * GB), Action.RESIZE_IN_PLACE, Reason.SLO_THROTTLING, 1.2, 1 * GB,
        signals=Signals(throttled_fraction=0.5), state=STABLE, reasons=(Reason.SLO_THROTTLING,),
    ),
    "an-oom-grows-memory-while-the-due-cpu-shrink-waits": Case(
        Allocation(0.5, 0.5 * GB), Action.RESIZE_IN_PLACE, Reason.OOM_KILL, 1.0, 1.2 * GB,
        signals=Signals(oom_kill=True, memory_peak=0.5 * GB), state=STABLE,
        reasons=(Reason.OOM_KILL,),
    ),
    # --------------------------------------------------------------------------- shrinking
    "no-shrink-before-down-stable": Case(
        Allocation(0.5, 1 * GB), Action.NOOP, Reason.HYSTERESIS, None, None,
        state=DecisionState(cpu_down_since=NOW - 899.0),
    ),
    "shrink-after-down-stable-by-at-most-one-step": Case(
        Allocation(0.5, 1 * GB), Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN, 0.9, 1 * GB,
        state=STABLE,
    ),
    "shrink-to-predicted-times-buffer-when-that-is-within-one-step": Case(
        Allocation(0.7, 1 * GB), Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN, 0.77, 1 * GB,
        settings=replace(SLOW, scale_down_step=0.5), state=STABLE,
    ),
    "no-shrink-within-cooldown": Case(
        Allocation(0.5, 1 * GB), Action.NOOP, Reason.COOLDOWN, None, None,
        state=DecisionState(last_change=NOW - 1799.0, cpu_down_since=NOW - 900.0),
    ),
    "no-shrink-while-shrink-is-blocked": Case(
        Allocation(0.5, 1 * GB), Action.NOOP, Reason.COOLDOWN, None, None,
        state=DecisionState(shrink_blocked_until=NOW + 1.0, cpu_down_since=NOW - 900.0),
    ),
    "memory-never-shrinks-below-the-seen-peak": Case(
        Allocation(1.0, 0.1 * GB), Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN, 1.0, 0.95 * GB,
        signals=Signals(memory_peak=0.95 * GB), state=STABLE,
    ),
    "memory-shrinks-by-a-step-when-the-peak-is-low": Case(
        Allocation(1.0, 0.1 * GB), Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN, 1.0, 0.9 * GB,
        signals=Signals(memory_peak=0.5 * GB), state=STABLE,
    ),
    # ------------------------------------------------------------------------------- quiet
    "within-band-is-a-noop": Case(
        Allocation(0.9, 0.85 * GB), Action.NOOP, Reason.WITHIN_BAND, None, None,
    ),
    "exactly-at-the-prediction-is-a-noop": Case(
        Allocation(1.0, 1 * GB), Action.NOOP, Reason.WITHIN_BAND, None, None,
    ),
    "no-prediction-is-a-noop": Case(
        Allocation(math.nan, math.nan), Action.NOOP, Reason.WITHIN_BAND, None, None,
        state=STABLE,
    ),
    "min-change-fraction-suppresses-tiny-growth": Case(
        Allocation(1.01, 1 * GB), Action.NOOP, Reason.WITHIN_BAND, None, None,
        settings=PolicySettings(buffer=1.0),
    ),
    "without-min-change-fraction-tiny-growth-happens": Case(
        Allocation(1.01, 1 * GB), Action.RESIZE_IN_PLACE, Reason.PREDICTED_OVER, 1.01, 1 * GB,
        settings=PolicySettings(buffer=1.0, min_change_fraction=0.0),
    ),
    "min-change-fraction-suppresses-a-tiny-shrink": Case(
        Allocation(0.1, 1 * GB), Action.NOOP, Reason.WITHIN_BAND, None, None,
        settings=replace(SLOW, scale_down_step=0.99), state=STABLE,
    ),
    # ------------------------------------------------------------------- limits and node
    "over-the-policy-maximum-is-a-scale-out-hint-capped-at-the-maximum": Case(
        Allocation(3.0, 1 * GB), Action.SCALE_OUT, Reason.EXCEEDS_MAX, 2.0, 1 * GB,
        limits=Limits(cpu=Bounds(0.0, 2.0)),
        reasons=(Reason.PREDICTED_OVER, Reason.EXCEEDS_MAX),
    ),
    "memory-over-the-policy-maximum-is-a-scale-out-hint": Case(
        Allocation(1.0, 4 * GB), Action.SCALE_OUT, Reason.EXCEEDS_MAX, 1.0, 2 * GB,
        limits=Limits(memory=Bounds(0.0, 2 * GB)),
    ),
    "already-at-the-policy-maximum-is-a-noop": Case(
        Allocation(3.0, 1 * GB), Action.NOOP, Reason.EXCEEDS_MAX, None, None,
        current=Allocation(2.0, 1 * GB), limits=Limits(cpu=Bounds(0.0, 2.0)),
    ),
    "shrink-stops-at-the-policy-minimum": Case(
        Allocation(0.1, 1 * GB), Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN, 0.95, 1 * GB,
        limits=Limits(cpu=Bounds(0.95, 8.0)), state=STABLE,
    ),
    "growth-beyond-node-free-capacity-reschedules": Case(
        Allocation(2.0, 1 * GB), Action.RESCHEDULE, Reason.EXCEEDS_NODE, 2.2, 1 * GB,
        limits=Limits(node_free_cpu=1.0),
        reasons=(Reason.PREDICTED_OVER, Reason.EXCEEDS_NODE),
    ),
    "memory-growth-beyond-node-free-capacity-reschedules": Case(
        Allocation(1.0, 2 * GB), Action.RESCHEDULE, Reason.EXCEEDS_NODE, 1.0, 2.2 * GB,
        limits=Limits(node_free_memory=1 * GB),
    ),
    "growth-that-fits-the-node-resizes-in-place": Case(
        Allocation(2.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.PREDICTED_OVER, 2.2, 1 * GB,
        limits=Limits(node_free_cpu=1.25),
    ),
    "a-shrink-never-needs-the-node": Case(
        Allocation(0.5, 1 * GB), Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN, 0.9, 1 * GB,
        limits=Limits(node_free_cpu=0.0, node_free_memory=0.0), state=STABLE,
    ),
    # -------------------------------------------------------------------------------- leak
    "suspected-leak-holds-memory": Case(
        Allocation(1.0, 2 * GB), Action.NOOP, Reason.LEAK_CAPPED, None, None,
        signals=Signals(leak_suspected=True),
    ),
    "suspected-leak-holds-memory-while-cpu-grows": Case(
        Allocation(2.0, 2 * GB), Action.RESIZE_IN_PLACE, Reason.PREDICTED_OVER, 2.2, 1 * GB,
        signals=Signals(leak_suspected=True),
        reasons=(Reason.PREDICTED_OVER, Reason.LEAK_CAPPED),
    ),
    "an-oom-overrides-the-leak-cap": Case(
        Allocation(1.0, 1 * GB), Action.RESIZE_IN_PLACE, Reason.OOM_KILL, 1.0, 1.2 * GB,
        signals=Signals(leak_suspected=True, oom_kill=True),
        reasons=(Reason.OOM_KILL, Reason.LEAK_CAPPED),
    ),
    "a-leak-does-not-block-shrinking-memory": Case(
        Allocation(1.0, 0.1 * GB), Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN, 1.0, 0.9 * GB,
        signals=Signals(leak_suspected=True), state=STABLE,
    ),
}


def run(case: Case) -> tuple[Any, DecisionState]:
    return decide(
        now=NOW,
        current=case.current,
        predicted=case.predicted,
        signals=case.signals,
        limits=case.limits,
        settings=case.settings,
        state=case.state,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide_table(case: Case) -> None:
    decision, _ = run(case)
    assert (decision.action, decision.reason) == (case.action, case.reason)
    if case.cpu is None:
        assert decision.cpu is None
    else:
        assert decision.cpu == pytest.approx(case.cpu)
    if case.memory is None:
        assert decision.memory is None
    else:
        assert decision.memory == pytest.approx(case.memory)
    if case.reasons:
        assert decision.reasons == case.reasons
    assert decision.message.strip()
    assert decision.changes_allocation is (
        case.action in (Action.RESIZE_IN_PLACE, Action.RESCHEDULE)
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide_records_a_change_in_its_state(case: Case) -> None:
    decision, state = run(case)
    if decision.action is Action.NOOP:
        assert state.last_change == case.state.last_change
    else:
        assert state.last_change == NOW
        assert (state.cpu_down_since, state.memory_down_since) == (None, None)
    # What decide does not own passes through untouched.
    assert state.grow_blocked_until == case.state.grow_blocked_until
    assert state.shrink_blocked_until == case.state.shrink_blocked_until


# --------------------------------------------------------------------------- state over time


def test_decide_hysteresis_starts_holds_and_then_shrinks() -> None:
    low = Allocation(0.5, 1 * GB)
    d1, s1 = decide(now=NOW, current=CUR, predicted=low, settings=SLOW)
    assert (d1.action, d1.reason, s1.cpu_down_since) == (Action.NOOP, Reason.HYSTERESIS, NOW)
    d2, s2 = decide(now=NOW + 600.0, current=CUR, predicted=low, state=s1, settings=SLOW)
    assert (d2.action, d2.reason, s2.cpu_down_since) == (Action.NOOP, Reason.HYSTERESIS, NOW)
    d3, s3 = decide(now=NOW + 900.0, current=CUR, predicted=low, state=s2, settings=SLOW)
    assert (d3.action, d3.reason, d3.cpu) == (Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN, 0.9)
    assert s3.last_change == NOW + 900.0
    # Right after the shrink, the next one waits for the hysteresis and for the cooldown.
    shrunk = Allocation(0.9, 1 * GB)
    d4, s4 = decide(now=NOW + 1000.0, current=shrunk, predicted=low, state=s3, settings=SLOW)
    assert (d4.action, d4.reason, s4.cpu_down_since) == (
        Action.NOOP, Reason.HYSTERESIS, NOW + 1000.0
    )
    d5, s5 = decide(now=NOW + 1900.0, current=shrunk, predicted=low, state=s4, settings=SLOW)
    assert (d5.action, d5.reason, s5.cpu_down_since) == (
        Action.NOOP, Reason.COOLDOWN, NOW + 1000.0
    )
    d6, _ = decide(
        now=NOW + 900.0 + 1800.0, current=shrunk, predicted=low, state=s5, settings=SLOW
    )
    assert (d6.action, d6.reason) == (Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN)
    assert d6.cpu == pytest.approx(0.81)


def test_decide_hysteresis_resets_when_the_prediction_recovers() -> None:
    _, s1 = decide(now=NOW, current=CUR, predicted=Allocation(0.5, 1 * GB))
    assert s1.cpu_down_since == NOW
    _, s2 = decide(now=NOW + 300.0, current=CUR, predicted=Allocation(0.95, 1 * GB), state=s1)
    assert s2.cpu_down_since is None
    d3, s3 = decide(now=NOW + 900.0, current=CUR, predicted=Allocation(0.5, 1 * GB), state=s2)
    assert (d3.action, d3.reason, s3.cpu_down_since) == (
        Action.NOOP, Reason.HYSTERESIS, NOW + 900.0
    )


def test_decide_blocks_growth_during_rollback_backoff() -> None:
    decision, state = decide(
        now=NOW, current=CUR, predicted=Allocation(2.0, 2 * GB),
        state=DecisionState(grow_blocked_until=NOW + 60.0),
    )
    assert decision.action is Action.NOOP
    assert (decision.cpu, decision.memory) == (None, None)
    assert decision.message.strip()
    assert state.last_change == -math.inf


def test_decide_names_the_rollback_backoff_as_the_reason_growth_was_blocked() -> None:
    decision, _ = decide(
        now=NOW, current=CUR, predicted=Allocation(2.0, 2 * GB),
        state=DecisionState(grow_blocked_until=NOW + 60.0),
    )
    assert decision.reason is Reason.ROLLBACK_BACKOFF


def test_decide_clamps_an_allocation_above_a_lowered_maximum_without_scale_out() -> None:
    decision, _ = decide(
        now=NOW, current=Allocation(4.0, 1 * GB), predicted=Allocation(0.5, 1 * GB),
        limits=Limits(cpu=Bounds(0.0, 2.0)),
    )
    assert decision.cpu == 2.0
    assert decision.action is Action.RESIZE_IN_PLACE


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"buffer": 0.9}, "buffer"),
        ({"buffer": math.nan}, "buffer"),
        ({"scale_down_threshold": 0.0}, "scale_down_threshold"),
        ({"scale_down_threshold": 1.5}, "scale_down_threshold"),
        ({"scale_down_step": 0.0}, "scale_down_step"),
        ({"scale_down_step": 1.1}, "scale_down_step"),
        ({"oom_bump": 0.5}, "bumps"),
        ({"throttle_bump": 0.99}, "bumps"),
        ({"down_stable_s": -1.0}, "down_stable_s"),
        ({"down_cooldown_s": math.inf}, "down_cooldown_s"),
        ({"min_change_fraction": -0.01}, "min_change_fraction"),
    ],
)
def test_policy_settings_reject_out_of_range_values(
    kwargs: dict[str, float], field_name: str
) -> None:
    with pytest.raises(SettingsError, match=field_name):
        PolicySettings(**kwargs)  # type: ignore[arg-type]


def test_policy_settings_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="buffer"):
        PolicySettings(buffer=-1.0)


def test_policy_settings_accept_the_edges() -> None:
    s = PolicySettings(
        buffer=1.0, scale_down_threshold=1.0, scale_down_to=1.0, scale_down_step=1.0, oom_bump=1.0
    )
    assert (s.buffer, s.scale_down_step) == (1.0, 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"bucket_s": 0.0}, {"bucket_s": 3600.0, "min_history_s": 3600.0}, {"refit_s": -1.0}],
)
def test_seasonal_settings_reject_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(SettingsError):
        SeasonalSettings(**kwargs)  # type: ignore[arg-type]


def test_anomaly_settings_reject_negative_values() -> None:
    with pytest.raises(SettingsError, match="leak_min_growth"):
        AnomalySettings(leak_min_growth=-0.1)


# ---------------------------------------------------------------------------- properties

sizes = st.floats(min_value=1e-3, max_value=1e12, allow_nan=False, allow_infinity=False)
fractions = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def bounds_and_current(draw: st.DrawFn) -> tuple[Bounds, float]:
    a, b, c = sorted(draw(st.lists(sizes, min_size=3, max_size=3)))
    maximum = draw(st.sampled_from([c, math.inf]))
    # The current allocation is within bounds: decide() is asked to keep it there.
    return Bounds(a, maximum), b


@settings(max_examples=400, deadline=None)
@given(
    cpu=bounds_and_current(),
    mem=bounds_and_current(),
    predicted_cpu=st.one_of(sizes, st.just(0.0)),
    predicted_mem=st.one_of(sizes, st.just(0.0)),
    oom=st.booleans(),
    leak=st.booleans(),
    throttled=fractions,
    pressure=fractions,
    peak=st.one_of(st.just(0.0), sizes),
    free_cpu=st.one_of(st.just(math.inf), sizes),
    free_mem=st.one_of(st.just(math.inf), sizes),
    since=st.one_of(st.none(), st.floats(min_value=0.0, max_value=4000.0)),
    last_change=st.one_of(st.just(-math.inf), st.floats(min_value=0.0, max_value=4000.0)),
)
def test_decide_keeps_allocations_within_bounds_and_finite(
    *,
    cpu: tuple[Bounds, float],
    mem: tuple[Bounds, float],
    predicted_cpu: float,
    predicted_mem: float,
    oom: bool,
    leak: bool,
    throttled: float,
    pressure: float,
    peak: float,
    free_cpu: float,
    free_mem: float,
    since: float | None,
    last_change: float,
) -> None:
    (cpu_bounds, cpu_now), (mem_bounds, mem_now) = cpu, mem
    down = None if since is None else NOW - since
    decision, state = decide(
        now=NOW,
        current=Allocation(cpu_now, mem_now),
        predicted=Allocation(predicted_cpu, predicted_mem),
        signals=Signals(
            oom_kill=oom, throttled_fraction=throttled, cpu_pressure=pressure,
            memory_pressure=pressure, memory_peak=peak, leak_suspected=leak,
        ),
        limits=Limits(cpu=cpu_bounds, memory=mem_bounds,
                      node_free_cpu=free_cpu, node_free_memory=free_mem),
        state=DecisionState(last_change=NOW - last_change, cpu_down_since=down,
                            memory_down_since=down),
    )
    assert decision.message.strip()
    if decision.action is Action.NOOP:
        assert (decision.cpu, decision.memory) == (None, None)
        return
    assert decision.cpu is not None
    assert decision.memory is not None
    assert math.isfinite(decision.cpu)
    assert math.isfinite(decision.memory)
    assert cpu_bounds.minimum <= decision.cpu <= cpu_bounds.maximum
    assert mem_bounds.minimum <= decision.memory <= mem_bounds.maximum
    if decision.memory < mem_now:
        assert decision.memory >= min(peak, mem_bounds.maximum)
    if decision.action is Action.RESIZE_IN_PLACE:
        assert decision.cpu - cpu_now <= free_cpu
        assert decision.memory - mem_now <= free_mem
    if leak and not oom:
        assert decision.memory <= mem_now
    assert state.last_change == NOW


# ------------------------------------------------------------------ the product's defaults


def test_default_shrink_goes_to_ninety_percent_utilisation_after_ten_minutes() -> None:
    """Defaults: below 80 % predicted utilisation for 10 min, shrink so the prediction is 90 %."""
    low = Allocation(0.72, 1 * GB)  # 72 % of the CPU allocation
    _, s1 = decide(now=NOW, current=CUR, predicted=low)
    d_early, _ = decide(now=NOW + 599.0, current=CUR, predicted=low, state=s1)
    assert (d_early.action, d_early.reason) == (Action.NOOP, Reason.HYSTERESIS)
    d, s2 = decide(now=NOW + 600.0, current=CUR, predicted=low, state=s1)
    assert (d.action, d.reason) == (Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN)
    assert d.cpu == pytest.approx(0.8)  # 0.72 / 0.9
    # A second shrink waits out the 15-minute cooldown.
    d2, _ = decide(now=NOW + 600.0 + 899.0, current=Allocation(0.8, 1 * GB),
                   predicted=Allocation(0.3, 1 * GB), state=s2)
    assert d2.action is Action.NOOP


def test_default_shrink_never_more_than_halves_cpu_or_cuts_memory_by_over_15_percent() -> None:
    d, _ = decide(now=NOW, current=CUR, predicted=Allocation(0.01, 0.01 * GB), state=STABLE)
    assert (d.action, d.cpu) == (Action.RESIZE_IN_PLACE, pytest.approx(0.5))
    assert d.memory == pytest.approx(0.85 * GB)


def test_scale_down_to_below_the_threshold_is_rejected() -> None:
    with pytest.raises(SettingsError, match="scale_down_to"):
        PolicySettings(scale_down_threshold=0.8, scale_down_to=0.7)


def test_an_oom_soon_after_a_memory_shrink_makes_memory_shrink_cautiously() -> None:
    """Regret: shrink memory, OOM within 6 h, and the next shrinks are 10 % steps for 3 days."""
    s = PolicySettings(memory_scale_down_step=0.5, cautious_scale_down_step=0.9)
    big = Allocation(1.0, 4 * GB)
    d1, st = decide(now=NOW, current=big, predicted=Allocation(1.0, 1 * GB), state=STABLE,
                    settings=s)
    assert (d1.action, d1.memory) == (Action.RESIZE_IN_PLACE, 2 * GB)  # halved at most
    assert st.memory_shrunk_at == NOW
    # Two hours later the container OOMs at 2 GB: growth, and caution from now on.
    d2, st = decide(now=NOW + 7200.0, current=Allocation(1.0, 2 * GB),
                    predicted=Allocation(1.0, 3 * GB), signals=Signals(oom_kill=True), state=st,
                    settings=s)
    assert d2.action is Action.RESIZE_IN_PLACE
    assert st.memory_cautious_until == NOW + 7200.0 + s.cautious_s
    # A day later the prediction drops again: memory shrinks by 10 %, not by half.
    later = NOW + 7200.0 + 86400.0
    st = replace(st, memory_down_since=later - 3600.0, last_change=later - 3600.0)
    d3, _ = decide(now=later, current=Allocation(1.0, 4 * GB),
                   predicted=Allocation(1.0, 1 * GB), state=st, settings=s)
    assert d3.memory == pytest.approx(3.6 * GB)


def test_an_oom_long_after_a_shrink_leaves_memory_shrinking_at_full_pace() -> None:
    st = replace(STABLE, memory_shrunk_at=NOW - 7 * 3600.0)
    _, st2 = decide(now=NOW, current=Allocation(1.0, 1 * GB),
                    predicted=Allocation(1.0, 1 * GB), signals=Signals(oom_kill=True), state=st)
    assert st2.memory_cautious_until == st.memory_cautious_until


def test_an_application_latency_over_its_slo_grows_cpu_at_once() -> None:
    d, _ = decide(
        now=0.0,
        current=Allocation(1.0, 1e9),
        predicted=Allocation(0.5, 5e8),
        signals=Signals(latency_over_slo=True),
    )
    assert d.action is Action.RESIZE_IN_PLACE
    assert d.reason is Reason.SLO_LATENCY
    assert d.cpu is not None
    assert d.cpu >= 1.2 - 1e-9
