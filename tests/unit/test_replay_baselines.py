"""Baseline policies, the VPA baseline against cases computed by hand from VPA's defaults.

VPA facts used (replay-reference.md, peers.md §1.2 and §1.5):

* histograms: first bucket 0.01 core (1e7 B for memory), each bucket 5 % wider, so bucket ``i``
  starts at ``first * (1.05**i - 1) / 0.05``; a percentile is the END of its bucket;
* target = p90 × 1.15; lower = p50 × 1.15 × (1 + 0.001/conf)^-2; upper = p95 × 1.15 × (1 + 1/conf);
  conf = min(lifespan in days, samples / 1440) with 5 one-minute samples per 5-minute step;
* memory: one peak per 24 h interval (stamped at the interval's end, so day k weighs 2^(k-1)),
  a larger peak replacing the interval's peak; OOM sample max(base + 100 MiB, 1.2 × base) with
  base = max(allocation, the interval's peak);
* per-pod minimums 25 mCPU / 250 MiB applied after the bounds;
* updater: apply the target when the allocation is outside [lower, upper], after a quick OOM,
  or when in bounds, ≥ 12 h old and Σ|target − alloc|/alloc ≥ 0.1.

None of the expected numbers below is read from presize's histogram module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from presize.replay.baselines import (
    BASELINES,
    AutopilotPolicy,
    OraclePolicy,
    ReactivePolicy,
    StaticPolicy,
    VpaPolicy,
    VpaSettings,
    block_max,
    confidence_scale,
    make_baseline,
)
from presize.replay.series import REAL_UNITS, STEP_SECONDS, STEPS_PER_DAY, Series, TraceUnits
from presize.replay.simulator import Observation, replay_series

MIB = float(2**20)
GIB = float(2**30)
DAY = 86400.0
CPU_FIRST, MEM_FIRST, GROWTH = 0.01, 1e7, 0.05


# ------------------------------------------------------------------- hand-computed buckets


def bucket_start(first: float, i: int) -> float:
    return first * ((1.0 + GROWTH) ** i - 1.0) / GROWTH


def bucket_end(first: float, value: float) -> float:
    """End of the exponential bucket holding ``value`` (VPA's reported percentile)."""
    i = math.floor(math.log(value * GROWTH / first + 1.0) / math.log(1.0 + GROWTH))
    start, end = bucket_start(first, i), bucket_start(first, i + 1)
    assert start <= value < end  # the case is not on a boundary
    return end


def cpu_end(v: float) -> float:
    return bucket_end(CPU_FIRST, v)


def mem_end(v: float) -> float:
    return bucket_end(MEM_FIRST, v)


def lower_factor(conf: float) -> float:
    return (1.0 + 0.001 / conf) ** -2


def upper_factor(conf: float) -> float:
    return 1.0 + 1.0 / conf


def test_hand_bucket_formula_matches_the_documented_layout() -> None:
    assert bucket_start(CPU_FIRST, 1) == pytest.approx(0.01)
    assert bucket_start(CPU_FIRST, 2) == pytest.approx(0.01 + 0.0105)
    assert cpu_end(0.5) == pytest.approx(0.511134, rel=1e-5)  # bucket 25, [0.4773, 0.5111)
    assert mem_end(GIB) == pytest.approx(1.07710e9, rel=1e-5)  # bucket 37


# ----------------------------------------------------------------------------- driving VPA


def series_of(
    cpu: Sequence[float],
    mem: Sequence[float],
    *,
    initial: tuple[float, float],
    start: float = 0.0,
) -> Series:
    return Series(
        "vm",
        cpu=np.asarray(cpu, dtype=np.float64),
        mem=np.asarray(mem, dtype=np.float64),
        initial_cpu=initial[0],
        initial_mem=initial[1],
        start_time=start,
    )


def replay_vpa(
    s: Series, settings: VpaSettings | None = None, units: TraceUnits = REAL_UNITS
) -> tuple[VpaPolicy, np.ndarray, np.ndarray]:
    made: list[VpaPolicy] = []

    def factory(series: Series, u: TraceUnits) -> VpaPolicy:
        made.append(VpaPolicy(series, u, settings))
        return made[0]

    run = replay_series(s, units, factory)
    return made[0], run.cpu_alloc, run.mem_alloc


def first_change(alloc: np.ndarray, after: int = 0) -> int | None:
    for t in range(after + 1, alloc.shape[0]):
        if alloc[t] != alloc[t - 1]:
            return t
    return None


def obs(t: int, cpu: float, mem: float, *, oom: bool = False, start: float = 0.0) -> Observation:
    return Observation(t, start + t * STEP_SECONDS, True, cpu, mem, cpu, mem, oom, False)


def fed_vpa(
    steps: int, cpu: Callable[[int], float], mem: Callable[[int], float],
    initial: tuple[float, float] = (4.0, 8 * GIB), units: TraceUnits = REAL_UNITS,
) -> VpaPolicy:
    p = VpaPolicy(series_of([], [], initial=initial), units)
    for t in range(steps):
        p.observe(obs(t, cpu(t), mem(t)))
    return p


# ---------------------------------------------------------------------- confidence_scale


@pytest.mark.parametrize(
    ("multiplier", "exponent", "conf", "factor"),
    [
        (1.0, 1.0, 1.0, 2.0),  # upper bound, 1 day of history: × 2
        (1.0, 1.0, 0.5, 3.0),  # upper bound, 12 h: × 3
        (1.0, 1.0, 7.0, 8.0 / 7.0),  # upper bound, a week: × 1.14
        (0.001, -2.0, 1.0, 1.001**-2),  # lower bound, 1 day
        (0.001, -2.0, 5.0 / 1440.0, 1.288**-2),  # lower bound, 5 min: × 0.60
        (0.001, -2.0, 60.0 / 1440.0, 1.024**-2),  # lower bound, 1 h: × 0.95
    ],
)
def test_confidence_scale_hand_computed(
    multiplier: float, exponent: float, conf: float, factor: float
) -> None:
    assert confidence_scale(10.0, multiplier, exponent, conf) == pytest.approx(10.0 * factor)


def test_confidence_scale_matches_the_documented_rounded_multipliers() -> None:
    # peers.md rounds them: × 0.6 at 5 min, × 0.9 at 30 min, × 0.95 at 60 min.
    assert round(confidence_scale(1.0, 0.001, -2.0, 5.0 / 1440.0), 1) == 0.6
    assert round(confidence_scale(1.0, 0.001, -2.0, 30.0 / 1440.0), 1) == 0.9
    assert round(confidence_scale(1.0, 0.001, -2.0, 60.0 / 1440.0), 2) == 0.95


def test_confidence_scale_without_history_is_unbounded_above_and_zero_below() -> None:
    assert confidence_scale(1.0, 1.0, 1.0, 0.0) == math.inf
    assert confidence_scale(1.0, 0.001, -2.0, 0.0) == 0.0


# ---------------------------------------------------------------------------- confidence


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (1, 0.0),  # lifespan 0
        (145, 0.5),  # lifespan 12 h, 725 samples (0.503 days of samples)
        (289, 1.0),  # lifespan 24 h, 1445 samples
    ],
)
def test_vpa_confidence_is_days_of_history(steps: int, expected: float) -> None:
    p = fed_vpa(steps, lambda t: 0.5, lambda t: GIB)
    assert p.confidence() == pytest.approx(expected)


def test_vpa_confidence_is_capped_by_the_sample_count_across_a_gap() -> None:
    p = VpaPolicy(series_of([], [], initial=(1.0, GIB)), REAL_UNITS)
    for t in [*range(144), 288]:  # half a day, a 12 h gap, one more step
        p.observe(obs(t, 0.5, GIB))
    # lifespan 1 day, but only 145 steps × 5 samples = 725 one-minute samples
    assert p.confidence() == pytest.approx(725.0 / 1440.0)


def test_vpa_confidence_ignores_missing_steps() -> None:
    p = VpaPolicy(series_of([], [], initial=(1.0, GIB)), REAL_UNITS)
    p.observe(obs(0, 0.5, GIB))
    p.observe(Observation(1, 300.0, False, math.nan, math.nan, math.nan, math.nan, False, False))
    assert p.samples == 5
    assert p.confidence() == 0.0


# ------------------------------------------------------------------------ target, bounds


def test_vpa_has_no_recommendation_before_any_sample() -> None:
    p = VpaPolicy(series_of([], [], initial=(2.0, 4 * GIB)), REAL_UNITS)
    assert p.recommendation() is None
    assert p.allocate(0, 0.0) == (2.0, 4 * GIB)


def test_vpa_target_and_bounds_after_one_day_of_constant_use() -> None:
    p = fed_vpa(289, lambda t: 0.5, lambda t: GIB)
    rec = p.recommendation()
    assert rec is not None
    cpu, mem = rec
    c = cpu_end(0.5) * 1.15  # 0.5878 cores
    m = mem_end(GIB) * 1.15
    assert cpu.target == pytest.approx(c, rel=1e-9)
    assert cpu.lower == pytest.approx(c * lower_factor(1.0), rel=1e-9)
    assert cpu.upper == pytest.approx(c * upper_factor(1.0), rel=1e-9)
    assert mem.target == pytest.approx(m, rel=1e-9)
    assert mem.lower == pytest.approx(m * lower_factor(1.0), rel=1e-9)
    assert mem.upper == pytest.approx(2.0 * m, rel=1e-9)


def test_vpa_target_is_the_p90_bucket_end_of_a_mixed_cpu_history() -> None:
    # Repeating 0.2, 0.2, 0.2, 0.2, 1.0 over a day: about a fifth of the (decayed) weight
    # sits at 1.0, so p90 and p95 are in 1.0's bucket and p50 in 0.2's.
    def cpu(t: int) -> float:
        return 1.0 if t % 5 == 4 else 0.2

    steps = 289
    weights = [(cpu(t), 2.0 ** (t * STEP_SECONDS / DAY)) for t in range(steps)]
    share_high = sum(w for v, w in weights if v == 1.0) / sum(w for _, w in weights)
    assert 0.12 < share_high < 0.45  # the premise of the hand computation
    p = fed_vpa(steps, cpu, lambda t: GIB)
    rec = p.recommendation()
    assert rec is not None
    assert rec[0].target == pytest.approx(cpu_end(1.0) * 1.15, rel=1e-9)  # 1.1687
    assert rec[0].lower == pytest.approx(cpu_end(0.2) * 1.15 * lower_factor(1.0), rel=1e-9)
    assert rec[0].upper == pytest.approx(cpu_end(1.0) * 1.15 * 2.0, rel=1e-9)


def test_vpa_memory_keeps_one_peak_per_day_and_a_larger_peak_replaces_it() -> None:
    def mem(t: int) -> float:
        day, step = divmod(t, STEPS_PER_DAY)
        if day == 0:
            return 2 * GIB if step == 100 else (GIB if step < 100 else 1.5 * GIB)
        return 0.5 * GIB

    # Day 1 only: 1 GiB, then a 2 GiB peak replaces it; the later 1.5 GiB does not.
    p = fed_vpa(STEPS_PER_DAY, lambda t: 0.5, mem)
    rec = p.recommendation()
    assert rec is not None
    conf = p.confidence()
    assert rec[1].target == pytest.approx(mem_end(2 * GIB) * 1.15, rel=1e-9)
    # Had the 1 GiB peak stayed, p50 would sit in its bucket; it is gone.
    assert rec[1].lower == pytest.approx(mem_end(2 * GIB) * 1.15 * lower_factor(conf), rel=1e-9)

    # Days 1-2: peaks 2 GiB (weight 1) and 0.5 GiB (weight 2): p50 at 0.5 GiB, p90 at 2 GiB.
    p = fed_vpa(2 * STEPS_PER_DAY, lambda t: 0.5, mem)
    rec = p.recommendation()
    assert rec is not None
    conf = p.confidence()
    assert rec[1].target == pytest.approx(mem_end(2 * GIB) * 1.15, rel=1e-9)
    assert rec[1].lower == pytest.approx(mem_end(0.5 * GIB) * 1.15 * lower_factor(conf), rel=1e-9)

    # Days 1-3: weights 1 : 2 + 4, the 2 GiB peak is 1/7 > 10 %: p90 still at 2 GiB.
    p = fed_vpa(3 * STEPS_PER_DAY, lambda t: 0.5, mem)
    rec = p.recommendation()
    assert rec is not None
    assert rec[1].target == pytest.approx(mem_end(2 * GIB) * 1.15, rel=1e-9)

    # The first sample of day 4 adds a peak of weight 8: 1/15 < 10 %, p90 drops to 0.5 GiB,
    # while p95 (the upper bound) still sees the 2 GiB day (14/15 < 95 %).
    p = fed_vpa(3 * STEPS_PER_DAY + 1, lambda t: 0.5, mem)
    rec = p.recommendation()
    assert rec is not None
    conf = p.confidence()
    assert rec[1].target == pytest.approx(mem_end(0.5 * GIB) * 1.15, rel=1e-9)
    assert rec[1].upper == pytest.approx(mem_end(2 * GIB) * 1.15 * upper_factor(conf), rel=1e-9)


def test_vpa_minimums_are_applied_after_the_bounds() -> None:
    p = fed_vpa(289, lambda t: 0.001, lambda t: 10 * MIB)
    rec = p.recommendation()
    assert rec is not None
    cpu, mem = rec
    # Raw CPU: bucket 0 ends at 0.01 -> target 0.0115, upper 0.023: all below 25 mCPU.
    # (A minimum applied before the confidence multiplier would make the upper 0.05.)
    assert (cpu.target, cpu.lower, cpu.upper) == (0.025, 0.025, 0.025)
    # Raw memory: bucket 1 ends at 2.05e7 -> target 2.36e7, upper 4.7e7: all below 250 MiB.
    assert mem_end(10 * MIB) == pytest.approx(2.05e7)
    assert (mem.target, mem.lower, mem.upper) == (250 * MIB, 250 * MIB, 250 * MIB)


def test_vpa_uses_no_minimum_where_the_trace_units_have_none() -> None:
    units = TraceUnits("u", "u", 0.001, 0.01, 0.0, 0.0, 0.0)
    p = fed_vpa(289, lambda t: 0.0005, lambda t: 0.005, units=units)
    rec = p.recommendation()
    assert rec is not None
    assert rec[0].target == pytest.approx(0.001 * 1.15)  # end of bucket 0, no floor
    assert rec[1].target == pytest.approx(0.01 * 1.15)


# ------------------------------------------------------------------------------- OOM bump


def test_vpa_oom_bump_uses_the_uncensored_interval_peak_as_base() -> None:
    # Allocation 1 GiB; usage 1.5 GiB at step 3 is an OOM: base = max(1 GiB, 1.5 GiB),
    # sample = max(1.5 GiB + 100 MiB, 1.8 GiB) = 1.8 GiB, replacing the 1.5 GiB peak.
    p = VpaPolicy(series_of([], [], initial=(1.0, GIB)), REAL_UNITS)
    for t in range(3):
        p.observe(obs(t, 0.5, 0.9 * GIB))
    p.observe(obs(3, 0.5, 1.5 * GIB, oom=True))
    rec = p.recommendation()
    assert rec is not None
    assert rec[1].target == pytest.approx(mem_end(1.8 * GIB) * 1.15, rel=1e-9)
    assert p.oom_peak == pytest.approx(1.8 * GIB)


def test_vpa_oom_bump_adds_at_least_100_mib() -> None:
    # Base 300 MiB: max(300 + 100, 1.2 × 300 = 360) MiB = 400 MiB.
    p = VpaPolicy(series_of([], [], initial=(1.0, 256 * MIB)), REAL_UNITS)
    p.observe(obs(0, 0.5, 200 * MIB))
    p.observe(obs(1, 0.5, 300 * MIB, oom=True))
    assert p.oom_peak == pytest.approx(400 * MIB)
    rec = p.recommendation()
    assert rec is not None
    assert rec[1].target == pytest.approx(mem_end(400 * MIB) * 1.15, rel=1e-9)


def test_vpa_record_oom_bases_on_the_allocation_when_it_is_larger() -> None:
    p = VpaPolicy(series_of([], [], initial=(1.0, GIB)), REAL_UNITS)
    p.observe(obs(0, 0.5, GIB))
    p.record_oom(600.0, 2 * GIB)  # base = max(2 GiB, 1 GiB): max(2 GiB + 100 MiB, 2.4 GiB)
    assert p.oom_peak == pytest.approx(2.4 * GIB)
    rec = p.recommendation()
    assert rec is not None
    assert rec[1].target == pytest.approx(mem_end(2.4 * GIB) * 1.15, rel=1e-9)


def test_vpa_oom_bump_has_no_absolute_part_on_normalised_units() -> None:
    units = TraceUnits("u", "u", 0.001, 0.01, 0.0, 0.0, 0.0)
    p = VpaPolicy(series_of([], [], initial=(1.0, 10.0)), units)
    p.observe(obs(0, 0.5, 12.0, oom=True))
    assert p.oom_peak == pytest.approx(14.4)  # 1.2 × max(10, 12)


# -------------------------------------------------------------------------------- updater

CPU_TARGET = cpu_end(0.5) * 1.15
MEM_TARGET = mem_end(GIB) * 1.15


def constant(steps: int) -> tuple[list[float], list[float]]:
    return [0.5] * steps, [GIB] * steps


def test_vpa_updater_applies_the_target_once_the_allocation_leaves_the_bounds() -> None:
    cpu, mem = constant(100)
    _, ca, ma = replay_vpa(series_of(cpu, mem, initial=(4.0, MEM_TARGET)))
    # After n steps conf = (n - 1) / 288; the upper bound target × (1 + 288/(n - 1)) first
    # falls below the 4-core allocation at:
    n = next(n for n in range(2, 100) if CPU_TARGET * (1 + 288.0 / (n - 1)) < 4.0)
    assert n == 51
    assert first_change(ca) == n  # allocate(n) comes after n observations
    assert ca[n - 1] == 4.0
    assert ca[n] == pytest.approx(CPU_TARGET, rel=1e-9)
    assert ma[n] == pytest.approx(MEM_TARGET, rel=1e-9)  # both resources are set


def test_vpa_updater_leaves_a_young_in_bounds_allocation_then_applies_it_after_12h() -> None:
    cpu, mem = constant(200)
    _, ca, ma = replay_vpa(series_of(cpu, mem, initial=(0.7, MEM_TARGET), start=5000.0))
    # |0.5878 - 0.7| / 0.7 = 0.16 >= 0.1, inside [lower, upper] throughout.
    assert abs(CPU_TARGET - 0.7) / 0.7 >= 0.1
    assert first_change(ca) == 144  # 144 × 300 s = 12 h
    assert ca[143] == 0.7
    assert ca[144] == pytest.approx(CPU_TARGET, rel=1e-9)
    assert ma[144] == pytest.approx(MEM_TARGET, rel=1e-9)


def test_vpa_updater_ignores_an_in_bounds_change_under_the_threshold() -> None:
    cpu, mem = constant(2 * STEPS_PER_DAY)
    _, ca, ma = replay_vpa(series_of(cpu, mem, initial=(0.62, MEM_TARGET)))
    assert abs(CPU_TARGET - 0.62) / 0.62 < 0.1
    assert first_change(ca) is None
    assert first_change(ma) is None


def test_vpa_updater_sums_the_relative_change_over_both_resources() -> None:
    # cpu 5.2 % + memory 5.7 %: each under 10 %, together over it.
    alloc = (0.62, MEM_TARGET * 1.06)
    diff = abs(CPU_TARGET - alloc[0]) / alloc[0] + abs(MEM_TARGET - alloc[1]) / alloc[1]
    assert diff >= 0.1
    cpu, mem = constant(200)
    _, ca, ma = replay_vpa(series_of(cpu, mem, initial=alloc))
    assert first_change(ca) == 144
    assert (ca[144], ma[144]) == (
        pytest.approx(CPU_TARGET, rel=1e-9), pytest.approx(MEM_TARGET, rel=1e-9)
    )


def test_vpa_updater_applies_at_once_after_a_quick_oom() -> None:
    # Memory 1.5 GiB allocated; 1.6 GiB used at step 1 (300 s after start): a quick OOM.
    # Sample: max(1.6 GiB + 100 MiB, 1.92 GiB) = 1.92 GiB.
    cpu = [0.5] * 6
    mem = [GIB, 1.6 * GIB, GIB, GIB, GIB, GIB]
    _, ca, ma = replay_vpa(series_of(cpu, mem, initial=(CPU_TARGET, 1.5 * GIB)))
    new_mem = mem_end(1.92 * GIB) * 1.15
    # In bounds at step 2 (conf = 300 s / 1 day): the update is due to the quick OOM alone.
    conf = STEP_SECONDS / DAY
    assert new_mem * lower_factor(conf) <= 1.5 * GIB <= new_mem * upper_factor(conf)
    assert first_change(ma) == 2
    assert ma[2] == pytest.approx(new_mem, rel=1e-9)
    assert ca[2] == pytest.approx(CPU_TARGET, rel=1e-9)


def test_vpa_recreate_restarts_the_12h_clock_but_in_place_counts_pod_age() -> None:
    # 0.5 cores for 12 h (first change at 12 h), then 0.56 cores: the target moves by 14 %
    # within the bounds. In place, the pod is already 12 h old, so the updater follows at
    # once; in Recreate mode the new pod has to age first.
    steps = 3 * STEPS_PER_DAY
    cpu = [0.5 if t < 144 else 0.56 for t in range(steps)]
    mem = [GIB] * steps
    s = series_of(cpu, mem, initial=(0.7, MEM_TARGET))
    _, ca_r, _ = replay_vpa(s)
    _, ca_i, _ = replay_vpa(s, VpaSettings(in_place_clock=True))
    assert first_change(ca_r) == first_change(ca_i) == 144
    new_target = cpu_end(0.56) * 1.15
    assert abs(new_target - CPU_TARGET) / CPU_TARGET >= 0.1
    second_i = first_change(ca_i, after=144)
    second_r = first_change(ca_r, after=144)
    assert second_i is not None
    assert second_r is not None
    assert ca_i[second_i] == pytest.approx(new_target, rel=1e-9)
    assert second_i < second_r
    assert ca_r[second_i] == pytest.approx(CPU_TARGET, rel=1e-9)  # declined while young


# ----------------------------------------------------------------------------- reactive


def reactive_obs(t: int, cpu: float, mem: float) -> Observation:
    valid = not math.isnan(cpu)
    return Observation(t, t * STEP_SECONDS, valid, cpu, mem, cpu, mem, False, False)


def test_reactive_sizes_to_1_1_times_the_last_hour_and_day() -> None:
    p = ReactivePolicy(series_of([], [], initial=(2.0, 4 * GIB)), REAL_UNITS)
    assert p.allocate(0, 0.0) == (2.0, 4 * GIB)
    p.observe(reactive_obs(0, 3.0, 3 * GIB))
    for t in range(1, 13):
        p.observe(reactive_obs(t, 1.0, GIB))
    # The 3-core step is 13 steps old: out of the hour, still in the day.
    cpu, mem = p.allocate(13, 13 * STEP_SECONDS)
    assert cpu == pytest.approx(1.1)
    assert mem == pytest.approx(3.3 * GIB)
    for t in range(13, STEPS_PER_DAY + 1):
        p.observe(reactive_obs(t, 1.0, GIB))
    assert p.allocate(0, 0.0)[1] == pytest.approx(1.1 * GIB)


def test_reactive_counts_missing_steps_as_time_and_applies_minimums() -> None:
    p = ReactivePolicy(series_of([], [], initial=(2.0, 4 * GIB)), REAL_UNITS)
    p.observe(reactive_obs(0, 0.001, 1 * MIB))
    assert p.allocate(1, 300.0) == (0.025, 250 * MIB)
    for t in range(1, 13):
        p.observe(reactive_obs(t, math.nan, math.nan))
    # Only gaps in the last hour: CPU has nothing to go on, so the allocation holds.
    assert p.allocate(13, 13 * 300.0) == (0.025, 250 * MIB)


# ------------------------------------------------------------------------------- oracle


def test_block_max_hand_computed() -> None:
    values = np.array([1, 3, 2, 5, 4, np.nan, np.nan, np.nan, np.nan, 0.5])
    out = block_max(values, 3)
    assert out.tolist() == [3, 3, 3, 5, 5, 5, 5, 5, 5, 0.5]


def test_oracle_sets_the_exact_maximum_of_the_coming_block() -> None:
    s = Series(
        "o",
        cpu=np.array([np.nan, np.nan, 1.0, 4.0, 2.0, 3.0]),
        mem=np.array([np.nan, np.nan, 5.0, 6.0, 9.0, 7.0]),
        initial_cpu=8.0,
        initial_mem=80.0,
    )
    p = OraclePolicy(s, REAL_UNITS, block=2)
    assert [p.allocate(t, 0.0) for t in range(6)] == [
        (8.0, 80.0), (8.0, 80.0), (4.0, 6.0), (4.0, 6.0), (3.0, 9.0), (3.0, 9.0)
    ]


def test_oracle_uses_window_peaks_when_the_trace_has_them() -> None:
    s = Series(
        "o", cpu=np.ones(2), mem=np.ones(2),
        cpu_peak=np.array([1.0, 7.0]), mem_peak=np.array([2.0, 3.0]),
    )
    assert OraclePolicy(s, REAL_UNITS, block=2).allocate(0, 0.0) == (7.0, 3.0)


# ---------------------------------------------------------------------------- autopilot


def test_autopilot_cpu_is_the_load_adjusted_p95_plus_10_percent() -> None:
    # One step at 1.0 core, then 39 at 0.1: 2.5 % of the samples but a fifth of the load.
    p = AutopilotPolicy(series_of([], [], initial=(4.0, 8 * GIB)), REAL_UNITS)
    assert p.allocate(0, 0.0) == (4.0, 8 * GIB)
    for t in range(40):
        p.observe(obs(t, 1.0 if t == 0 else 0.1, GIB))
    cpu, mem = p.allocate(40, 40 * STEP_SECONDS)
    assert cpu == pytest.approx(cpu_end(1.0) * 1.1, rel=1e-9)
    assert mem == pytest.approx(1.1 * GIB)


def test_autopilot_memory_is_the_peak_of_the_last_day_plus_10_percent() -> None:
    p = AutopilotPolicy(series_of([], [], initial=(4.0, 8 * GIB)), REAL_UNITS)
    p.observe(obs(0, 0.5, 3 * GIB))
    for t in range(1, STEPS_PER_DAY):
        p.observe(obs(t, 0.5, GIB))
    assert p.allocate(0, 0.0)[1] == pytest.approx(3.3 * GIB)
    p.observe(obs(STEPS_PER_DAY, 0.5, GIB))  # the 3 GiB peak leaves the 24 h window
    assert p.allocate(0, 0.0)[1] == pytest.approx(1.1 * GIB)


def test_autopilot_applies_the_per_pod_minimums() -> None:
    p = AutopilotPolicy(series_of([], [], initial=(4.0, 8 * GIB)), REAL_UNITS)
    p.observe(obs(0, 0.001, MIB))
    assert p.allocate(1, 300.0) == (0.025, 250 * MIB)


# ------------------------------------------------------------------------------- static


def test_static_follows_the_provisioned_capacity_and_holds_it_over_gaps() -> None:
    s = Series(
        "s", cpu=np.ones(3), mem=np.ones(3),
        cpu_capacity=np.array([2.0, np.nan, 4.0]), mem_capacity=np.array([8.0, np.nan, 9.0]),
        initial_cpu=2.0, initial_mem=8.0,
    )
    p = StaticPolicy(s, REAL_UNITS)
    assert [p.allocate(t, 0.0) for t in range(3)] == [(2.0, 8.0), (2.0, 8.0), (4.0, 9.0)]


def test_static_needs_a_provisioned_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        StaticPolicy(Series("s", cpu=np.ones(1), mem=np.ones(1)), REAL_UNITS)


# --------------------------------------------------------------------------- the factory


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("vpa", VpaPolicy), ("vpa-inplace", VpaPolicy), ("autopilot", AutopilotPolicy),
        ("reactive", ReactivePolicy), ("oracle-1h", OraclePolicy), ("oracle-24h", OraclePolicy),
    ],
)
def test_make_baseline_builds_each_named_policy(name: str, kind: type) -> None:
    s = Series("s", cpu=np.ones(2), mem=np.ones(2))
    policy = make_baseline(name, s, REAL_UNITS)
    assert isinstance(policy, kind)
    assert name in BASELINES


def test_make_baseline_vpa_inplace_uses_the_pod_age_clock() -> None:
    s = Series("s", cpu=np.ones(2), mem=np.ones(2))
    vpa = make_baseline("vpa", s, REAL_UNITS)
    inplace = make_baseline("vpa-inplace", s, REAL_UNITS)
    assert isinstance(vpa, VpaPolicy)
    assert isinstance(inplace, VpaPolicy)
    assert (vpa.s.in_place_clock, inplace.s.in_place_clock) == (False, True)


def test_make_baseline_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("hpa", Series("s", cpu=np.ones(1), mem=np.ones(1)), REAL_UNITS)


def test_vpa_settings_defaults_are_vpas() -> None:
    s = VpaSettings()
    assert (s.half_life_s, s.cpu_sample_weight) == (DAY, 0.1)
    assert (s.target_q, s.lower_q, s.upper_q, s.margin) == (0.90, 0.50, 0.95, 0.15)
    assert (s.memory_interval_s, s.oom_bump_ratio) == (DAY, 1.2)
    assert (s.update_threshold, s.in_bounds_lifetime_s, s.quick_oom_s) == (0.1, DAY / 2, 600.0)
    assert s.samples_per_step == 5
