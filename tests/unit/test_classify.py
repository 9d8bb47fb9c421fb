"""Workload classification: features of synthetic histories, the ordered rules, the buffers."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from presize.classify import (
    BURSTY_RATIO,
    PERIODIC_ACF,
    Classification,
    Features,
    buffer_for,
    classify,
    features,
)
from presize.model import WorkloadClass

FloatArray = npt.NDArray[np.float64]

T0 = 1_700_000_000.0
STEP = 300.0
HOUR = 3_600.0
DAY = 86_400.0


def clock(days: float, step: float = STEP) -> FloatArray:
    """A fixed clock: ``days`` of samples every ``step`` seconds from ``T0``."""
    return T0 + np.arange(round(days * DAY / step)) * step


def noise(t: FloatArray, sd: float, seed: int = 1) -> FloatArray:
    return np.random.default_rng(seed).normal(0.0, sd, t.size)


def steady(t: FloatArray) -> FloatArray:
    return 1.0 + noise(t, 0.05)


def daily_sine(t: FloatArray) -> FloatArray:
    return 1.0 + 0.5 * np.sin(2 * np.pi * (t - T0) / DAY) + noise(t, 0.05)


def on_off_batch(t: FloatArray) -> FloatArray:
    """A job that runs 2 h every 6 h at 2 cores and idles at 10 millicores in between."""
    running = (t - T0) % (6 * HOUR) < 2 * HOUR
    return np.where(running, 2.0, 0.01) + noise(t, 0.002)


def ramp_up(t: FloatArray) -> FloatArray:
    return 1.0 + 2.0 * (t - T0) / (7 * DAY) + noise(t, 0.05)


def ramp_down(t: FloatArray) -> FloatArray:
    return 3.0 - 2.0 * (t - T0) / (7 * DAY) + noise(t, 0.05)


def spikes(t: FloatArray) -> FloatArray:
    """Steady at 1 with 3 % of samples spiking to 5."""
    hit = np.random.default_rng(2).random(t.size) < 0.03
    return 1.0 + noise(t, 0.05) + 4.0 * hit


def sine_with_ramp(t: FloatArray) -> FloatArray:
    return daily_sine(t) + (t - T0) / (7 * DAY)


Shape = Callable[[FloatArray], FloatArray]

# ------------------------------------------------------------------------------ classes


@pytest.mark.parametrize(
    ("shape", "days", "expected", "deciding_word"),
    [
        (steady, 7, WorkloadClass.STEADY, "steady"),
        (daily_sine, 7, WorkloadClass.PERIODIC, "autocorrelation"),
        (daily_sine, 2.5, WorkloadClass.PERIODIC, "autocorrelation"),
        (on_off_batch, 7, WorkloadClass.BATCH, "idle"),
        (ramp_up, 7, WorkloadClass.TRENDING, "trend"),
        (ramp_down, 7, WorkloadClass.TRENDING, "trend"),
        (sine_with_ramp, 7, WorkloadClass.TRENDING, "trend"),
        (spikes, 7, WorkloadClass.BURSTY, "p99/p50"),
        (steady, 0.5, WorkloadClass.UNKNOWN, "history"),
        (spikes, 0.9, WorkloadClass.UNKNOWN, "history"),
    ],
)
def test_synthetic_history_gets_its_class_and_names_the_deciding_feature(
    shape: Shape, days: float, expected: WorkloadClass, deciding_word: str
) -> None:
    t = clock(days)
    result = classify(features(t, shape(t), step_s=STEP))
    assert result.workload_class is expected, result.reason
    assert deciding_word in result.reason
    assert 0.0 <= result.confidence <= 1.0


def test_empty_history_is_unknown_with_no_confidence() -> None:
    result = classify(features([], [], step_s=STEP))
    assert result == Classification(WorkloadClass.UNKNOWN, result.reason, 0.0)
    assert "0.00 days" in result.reason


def test_a_day_long_cycle_is_not_called_a_trend_before_two_days() -> None:
    t = clock(1.2)
    f = features(t, daily_sine(t), step_s=STEP)
    assert abs(f.trend) > 0.05  # the first half of a cycle does look like a slope ...
    assert classify(f).workload_class is not WorkloadClass.TRENDING  # ... but is not called one


def test_confidence_grows_with_history() -> None:
    short, long = clock(1.5), clock(7)
    short_result = classify(features(short, steady(short), step_s=STEP))
    long_result = classify(features(long, steady(long), step_s=STEP))
    assert short_result.workload_class is long_result.workload_class is WorkloadClass.STEADY
    assert short_result.confidence < long_result.confidence


# ------------------------------------------------------------------------------ features


def test_steady_noise_features() -> None:
    t = clock(7)
    f = features(t, steady(t), step_s=STEP)
    assert f.mean == pytest.approx(1.0, abs=0.01)
    assert f.cv == pytest.approx(0.05, abs=0.01)
    assert 1.0 < f.burstiness < 1.3
    assert abs(f.daily_acf) < 0.3
    assert abs(f.trend) < 0.01
    assert f.idle_fraction == 0.0
    assert f.n_days == pytest.approx(7.0)


def test_daily_cycle_has_high_acf_and_no_trend() -> None:
    t = clock(7.4)  # not a whole number of days: a plain fit would see a slope
    f = features(t, daily_sine(t), step_s=STEP)
    assert f.daily_acf > 0.9
    assert abs(f.trend) < 0.01


def test_ramp_has_its_slope_and_no_daily_acf() -> None:
    t = clock(7)
    f = features(t, ramp_up(t), step_s=STEP)
    # +2 per 7 days on a mean of 2: about 14 % of the mean per day
    assert f.trend == pytest.approx(2.0 / 7.0 / 2.0, rel=0.05)
    assert abs(f.daily_acf) < PERIODIC_ACF


def test_on_off_batch_idle_share_and_finite_burstiness() -> None:
    t = clock(7)
    f = features(t, on_off_batch(t), step_s=STEP)
    assert f.idle_fraction == pytest.approx(4.0 / 6.0, abs=0.01)
    assert BURSTY_RATIO < f.burstiness <= 1_000.0


def test_mostly_zero_series_has_capped_burstiness() -> None:
    t = clock(3)
    values = np.zeros(t.size)
    values[::50] = 1.0
    f = features(t, values, step_s=STEP)
    assert f.burstiness == pytest.approx(1_000.0)
    assert f.idle_fraction > 0.95


def test_acf_is_zero_below_two_days() -> None:
    t = clock(1.9)
    assert features(t, daily_sine(t), step_s=STEP).daily_acf == 0.0


def test_missing_samples_and_nans_change_nothing_essential() -> None:
    t = clock(7)
    v = daily_sine(t)
    gappy = v.copy()
    gappy[np.random.default_rng(5).random(t.size) < 0.2] = np.nan
    gappy[1000:1100] = np.nan  # an 8 h hole
    f = features(t, gappy, step_s=STEP)
    assert all(math.isfinite(x) for x in _fields(f))
    assert classify(f).workload_class is WorkloadClass.PERIODIC


def test_sample_order_does_not_matter() -> None:
    t = clock(3)
    v = spikes(t)
    order = np.random.default_rng(9).permutation(t.size)
    assert features(t[order], v[order], step_s=STEP) == features(t, v, step_s=STEP)


def test_negative_usage_reads_as_zero() -> None:
    t = clock(2)
    assert features(t, -np.ones(t.size), step_s=STEP) == features(t, np.zeros(t.size), step_s=STEP)


def test_mismatched_lengths_and_bad_step_raise() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        features([1.0, 2.0], [1.0], step_s=STEP)
    with pytest.raises(ValueError, match="step_s"):
        features([1.0], [1.0], step_s=-1.0)


# ------------------------------------------------------------------------------ buffers


@pytest.mark.parametrize(
    ("cls", "buffer"),
    [
        (WorkloadClass.STEADY, 1.05),
        (WorkloadClass.PERIODIC, 1.10),
        (WorkloadClass.TRENDING, 1.10),
        (WorkloadClass.BURSTY, 1.20),
        (WorkloadClass.BATCH, 1.15),
        (WorkloadClass.UNKNOWN, 1.20),
    ],
)
def test_buffer_per_class(cls: WorkloadClass, buffer: float) -> None:
    assert buffer_for(cls) == buffer


def test_every_class_has_a_buffer_of_at_least_one() -> None:
    assert all(buffer_for(cls) >= 1.0 for cls in WorkloadClass)


# ------------------------------------------------------------------------------ properties


def _fields(f: Features) -> tuple[float, ...]:
    return (f.mean, f.cv, f.burstiness, f.daily_acf, f.trend, f.idle_fraction, f.n_days)


finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    n = draw(st.integers(min_value=0, max_value=200))
    times = draw(st.lists(finite, min_size=n, max_size=n))
    values = draw(st.lists(finite, min_size=n, max_size=n))
    return times, values


@given(histories(), st.sampled_from([1.0, 60.0, STEP, 7200.0]))
def test_any_finite_history_classifies_without_raising(
    history: tuple[list[float], list[float]], step: float
) -> None:
    f = features(*history, step_s=step)
    assert all(math.isfinite(x) for x in _fields(f))
    assert 0.0 <= f.idle_fraction <= 1.0
    assert -1.0 <= f.daily_acf <= 1.0
    result = classify(f)
    assert 0.0 <= result.confidence <= 1.0
    assert result.reason


@given(
    st.floats(min_value=0.0, max_value=1e12),
    st.floats(min_value=0.0, max_value=30.0),
)
def test_constant_usage_is_steady_or_unknown(level: float, days: float) -> None:
    t = clock(days, step=1800.0)
    result = classify(features(t, np.full(t.size, level), step_s=1800.0))
    assert result.workload_class in (WorkloadClass.STEADY, WorkloadClass.UNKNOWN)


@given(
    st.lists(st.just(0.0) | st.floats(min_value=1e-6, max_value=1e6), min_size=1, max_size=100),
    st.floats(min_value=1e-3, max_value=1e3),
)
def test_features_are_scale_free(values: list[float], k: float) -> None:
    t = T0 + np.arange(len(values)) * 3_600.0
    a = features(t, values, step_s=3_600.0)
    b = features(t, np.asarray(values) * k, step_s=3_600.0)
    assert b.mean == pytest.approx(a.mean * k, rel=1e-6, abs=1e-300)
    assert b.cv == pytest.approx(a.cv, rel=1e-6, abs=1e-9)
    assert b.idle_fraction == pytest.approx(a.idle_fraction, abs=0.02)
