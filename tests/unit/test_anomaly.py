"""Leak and runaway detection on synthetic histories with fixed seeds and a fixed clock."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from presize.anomaly import Anomaly, AnomalyKind, Severity, detect_leak, detect_runaway
from presize.settings import AnomalySettings

FloatArray = npt.NDArray[np.float64]

T0 = 1_700_000_000.0
STEP = 60.0
MINUTE = 60.0
HOUR = 3_600.0
DAY = 86_400.0
MIB = 1024.0**2
SETTINGS = AnomalySettings()


def clock(hours: float, step: float = STEP) -> FloatArray:
    """A fixed clock: ``hours`` of samples every ``step`` seconds from ``T0``."""
    return T0 + np.arange(round(hours * HOUR / step)) * step


def noise(t: FloatArray, sd: float = 0.5 * MIB, seed: int = 7) -> FloatArray:
    return np.random.default_rng(seed).normal(0.0, sd, t.size)


def hours_since_start(t: FloatArray) -> FloatArray:
    return (t - T0) / HOUR


# ------------------------------------------------------------------------------ leak shapes


def linear_leak(t: FloatArray) -> FloatArray:
    """100 MiB growing 4 MiB/h: +38 % over 9.5 h."""
    return 100 * MIB + 4 * MIB * hours_since_start(t) + noise(t)


def step_change(t: FloatArray) -> FloatArray:
    """100 MiB, then 150 MiB from hour 4 on, flat."""
    return np.where(hours_since_start(t) < 4, 100 * MIB, 150 * MIB) + noise(t)


def two_steps(t: FloatArray) -> FloatArray:
    h = hours_since_start(t)
    return 100 * MIB + 25 * MIB * (h >= 3) + 25 * MIB * (h >= 6) + noise(t)


def daily_sawtooth(t: FloatArray) -> FloatArray:
    """Grows 100 -> 150 MiB over each day, then resets (a daily restart or cache flush)."""
    return 100 * MIB + 50 * MIB * ((t - T0) % DAY) / DAY + noise(t)


def daily_wave(t: FloatArray) -> FloatArray:
    return 100 * MIB + 30 * MIB * np.sin(2 * np.pi * (t - T0) / DAY) + noise(t)


def noisy_flat(t: FloatArray) -> FloatArray:
    return 100 * MIB + noise(t, 5 * MIB)


def shrinking(t: FloatArray) -> FloatArray:
    return 200 * MIB - 4 * MIB * hours_since_start(t) + noise(t)


def flat_then_leak(t: FloatArray) -> FloatArray:
    """Flat for two days, then 4 MiB/h for the last 10 h."""
    return 100 * MIB + 4 * MIB * np.maximum(hours_since_start(t) - 48, 0) + noise(t)


def step_then_leak(t: FloatArray) -> FloatArray:
    h = hours_since_start(t)
    return 100 * MIB + 30 * MIB * (h >= 20) + 3 * MIB * np.maximum(h - 30, 0) + noise(t)


Shape = Callable[[FloatArray], FloatArray]


@pytest.mark.parametrize(
    ("shape", "hours"),
    [
        (linear_leak, 9.5),
        (linear_leak, 14 * 24),
        (flat_then_leak, 58),
        (step_then_leak, 58),
        (lambda t: 100 * MIB + 50 * MIB * (t - T0) / DAY + noise(t), 3.6 * 24),
    ],
    ids=["linear-9.5h", "linear-14d", "flat-then-leak", "step-then-leak", "monotone-3.6d"],
)
def test_sustained_growth_is_a_leak(shape: Shape, hours: float) -> None:
    t = clock(hours)
    anomaly = detect_leak(t, shape(t), settings=SETTINGS)
    assert anomaly is not None
    assert anomaly.kind is AnomalyKind.MEMORY_LEAK
    assert anomaly.severity is Severity.INFO  # no limit given
    growth = anomaly.evidence_value("growth_fraction")
    assert growth is not None
    assert growth >= SETTINGS.leak_min_growth


@pytest.mark.parametrize(
    ("shape", "hours"),
    [
        (step_change, 10),
        (two_steps, 10),
        (daily_sawtooth, 3.6 * 24),
        (daily_sawtooth, 4 * 24),
        (daily_wave, 3 * 24 + 14),
        (noisy_flat, 58),
        (shrinking, 20),
        (linear_leak, 4),
        (lambda t: 100 * MIB + 1 * MIB * hours_since_start(t) + noise(t), 12),
    ],
    ids=[
        "step",
        "two-steps",
        "sawtooth-mid-tooth",
        "sawtooth-whole-teeth",
        "daily-wave",
        "noisy-flat",
        "shrinking",
        "too-short",
        "too-little-growth",
    ],
)
def test_growth_that_is_not_a_leak(shape: Shape, hours: float) -> None:
    t = clock(hours)
    assert detect_leak(t, shape(t), settings=SETTINGS) is None


def test_memory_that_falls_back_was_not_leaked() -> None:
    t = clock(22)
    h = hours_since_start(t)
    # +50 % in 10 h, released back to the start in 2 h, climbing again (not yet past the peak)
    values = np.where(
        h < 10, 100 + 5 * h, np.where(h < 12, 150 - 25 * (h - 10), 100 + 6 * (h - 12))
    )
    assert detect_leak(t, values * MIB + noise(t), settings=SETTINGS) is None


def test_growth_that_continues_after_a_step_is_not_excused() -> None:
    t = clock(8)
    h = hours_since_start(t)
    values = (100 + 30 * (h >= 3) + 5 * np.maximum(h - 3, 0)) * MIB + noise(t)
    anomaly = detect_leak(t, values, settings=SETTINGS)
    assert anomaly is not None
    assert anomaly.kind is AnomalyKind.MEMORY_LEAK


def test_leak_reason_reads_with_numbers() -> None:
    t = clock(9.5)
    anomaly = detect_leak(t, linear_leak(t), settings=SETTINGS, limit=160 * MIB)
    assert anomaly is not None
    assert re.fullmatch(
        r"memory grew 3[78]% over 9\.5 h \(r²=1\.00, \+4(\.0\d)? MiB/h\); "
        r"limit 160 MiB reached in ~5\.\d h",
        anomaly.reason,
    ), anomaly.reason


@pytest.mark.parametrize(
    ("limit_mib", "severity"),
    [
        (None, Severity.INFO),
        (1024, Severity.INFO),  # ~220 h away
        (160, Severity.WARNING),  # ~5.5 h away
        (141, Severity.CRITICAL),  # ~45 min away
        (120, Severity.CRITICAL),  # already past it
    ],
)
def test_leak_severity_follows_time_to_limit(limit_mib: float | None, severity: Severity) -> None:
    t = clock(9.5)
    limit = None if limit_mib is None else limit_mib * MIB
    anomaly = detect_leak(t, linear_leak(t), settings=SETTINGS, limit=limit)
    assert anomaly is not None
    assert anomaly.severity is severity
    assert (anomaly.evidence_value("time_to_limit_s") is None) == (limit is None)


def test_leak_slope_and_time_to_limit_are_measured() -> None:
    t = clock(9.5)
    anomaly = detect_leak(t, linear_leak(t), settings=SETTINGS, limit=160 * MIB)
    assert anomaly is not None
    assert anomaly.evidence_value("slope_bytes_per_s") == pytest.approx(4 * MIB / HOUR, rel=0.02)
    assert anomaly.evidence_value("time_to_limit_s") == pytest.approx(5.5 * HOUR, rel=0.05)
    r2 = anomaly.evidence_value("r2")
    assert r2 is not None
    assert r2 > 0.99


@pytest.mark.parametrize(
    ("shape", "hours", "onset_h"),
    [
        (linear_leak, 9.5, 0.0),
        (flat_then_leak, 58, 48.0),
        (lambda t: 100 * MIB + 4 * MIB * np.maximum(hours_since_start(t) - 312, 0), 336, 312.0),
    ],
    ids=["from-start", "after-two-flat-days", "last-day-of-two-weeks"],
)
def test_leak_started_at_is_the_onset(shape: Shape, hours: float, onset_h: float) -> None:
    t = clock(hours)
    anomaly = detect_leak(t, shape(t), settings=SETTINGS)
    assert anomaly is not None
    assert (anomaly.started_at - T0) / HOUR == pytest.approx(onset_h, abs=1.5)


def test_growth_inside_the_seasonal_band_is_not_a_leak() -> None:
    t = clock(10)
    values = 100 * MIB * (1 + 0.3 * hours_since_start(t) / 10) + noise(t)
    profile = 100 * MIB * (1 + 0.3 * hours_since_start(t) / 10)
    assert detect_leak(t, values, settings=SETTINGS, expected_upper=profile * 1.1) is None
    flat_band = np.full(t.size, 105 * MIB)
    assert detect_leak(t, values, settings=SETTINGS, expected_upper=flat_band) is not None


def test_unknown_band_does_not_explain_growth() -> None:
    t = clock(10)
    values = 100 * MIB * (1 + 0.3 * hours_since_start(t) / 10)
    band = np.full(t.size, np.nan)
    assert detect_leak(t, values, settings=SETTINGS, expected_upper=band) is not None


def test_rising_hourly_means_count_when_the_line_fits_less_well() -> None:
    t = clock(12)
    # accelerating growth: every hour higher than the last, but bent away from a line
    values = 100 * MIB * (1 + 0.6 * (hours_since_start(t) / 12) ** 6)
    strict_fit = AnomalySettings(leak_min_r2=0.99)
    anomaly = detect_leak(t, values, settings=strict_fit)
    assert anomaly is not None
    assert "hourly means rising" in anomaly.reason
    no_monotone = AnomalySettings(leak_min_r2=0.99, leak_min_positive_fraction=1.01)
    assert detect_leak(t, values, settings=no_monotone) is None


def test_min_span_setting_is_honoured() -> None:
    t = clock(9.5)
    assert (
        detect_leak(t, linear_leak(t), settings=AnomalySettings(leak_min_span_s=12 * HOUR)) is None
    )


def test_step_fraction_setting_decides_between_step_and_leak() -> None:
    t = clock(10)
    values = two_steps(t)
    assert detect_leak(t, values, settings=SETTINGS) is None
    # demand that the steps carry more than all the growth: no window can be a step any more
    assert detect_leak(t, values, settings=AnomalySettings(leak_step_fraction=2.0)) is not None


def test_leak_arrays_must_align() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        detect_leak([1.0, 2.0], [1.0], settings=SETTINGS)
    with pytest.raises(ValueError, match="differ in length"):
        detect_leak([1.0], [1.0], settings=SETTINGS, expected_upper=[1.0, 2.0])


def test_samples_in_any_order_and_with_gaps() -> None:
    t = clock(9.5)
    values = linear_leak(t)
    values[100:160] = np.nan
    order = np.random.default_rng(3).permutation(t.size)
    anomaly = detect_leak(t[order], values[order], settings=SETTINGS)
    assert anomaly is not None
    assert anomaly.started_at == pytest.approx(T0)


# ------------------------------------------------------------------------------ runaway

RUN_HOURS = 2.0
LOWER, UPPER = 0.4, 0.8


def cpu_with_excursion(level: float, start_min: int, minutes: int) -> tuple[FloatArray, ...]:
    """Two hours of CPU at 0.6 cores in a band of 0.4-0.8, with ``level`` for ``minutes``."""
    t = clock(RUN_HOURS)
    values = 0.6 + noise(t, 0.03, seed=3)
    values[start_min : start_min + minutes] = level
    return t, values, np.full(t.size, LOWER), np.full(t.size, UPPER)


@pytest.mark.parametrize(
    ("level", "minutes", "severity"),
    [
        (1.28, 12, Severity.INFO),  # 1.6x upper, just over the 10 min
        (2.0, 12, Severity.WARNING),  # 2.5x upper
        (1.28, 25, Severity.WARNING),  # 2.5x the sustain time
        (3.2, 12, Severity.CRITICAL),  # 4x upper
        (1.28, 70, Severity.CRITICAL),  # 7x the sustain time
    ],
)
def test_sustained_excursion_is_a_runaway_with_graded_severity(
    level: float, minutes: int, severity: Severity
) -> None:
    t, values, lower, upper = cpu_with_excursion(level, 40, minutes)
    anomaly = detect_runaway(t, values, lower, upper, settings=SETTINGS)
    assert anomaly is not None
    assert anomaly.kind is AnomalyKind.RUNAWAY
    assert anomaly.severity is severity
    assert anomaly.started_at == t[40]
    assert anomaly.evidence_value("duration_s") == pytest.approx(minutes * MINUTE)
    assert f"{level / UPPER:.1f}× the forecast upper bound" in anomaly.reason
    assert "0.4–0.8" in anomaly.reason


@pytest.mark.parametrize(
    ("level", "start_min", "minutes"),
    [
        (8.0, 60, 1),  # a single spike
        (2.0, 60, 5),  # a five-minute burst
        (2.0, 60, 9),  # one sample short of the sustain time
        (1.12, 30, 60),  # an hour at 1.4x upper: outside the band, not far outside
        (0.8, 0, 120),  # at the upper edge all along: the band is respected
    ],
)
def test_what_is_not_a_runaway(level: float, start_min: int, minutes: int) -> None:
    t, values, lower, upper = cpu_with_excursion(level, start_min, minutes)
    assert detect_runaway(t, values, lower, upper, settings=SETTINGS) is None


def test_interrupted_excursions_do_not_add_up() -> None:
    t, values, lower, upper = cpu_with_excursion(2.0, 40, 6)
    values[47:53] = 2.0  # six more minutes after one normal sample
    assert detect_runaway(t, values, lower, upper, settings=SETTINGS) is None
    values[46] = 2.0  # fill the gap: now it is thirteen minutes in a row
    assert detect_runaway(t, values, lower, upper, settings=SETTINGS) is not None


def test_missing_samples_break_a_run() -> None:
    t, values, lower, upper = cpu_with_excursion(2.0, 40, 16)
    hole = np.r_[0:48, 52 : t.size]  # four minutes without samples inside the excursion
    args = (t[hole], values[hole], lower[hole], upper[hole])
    assert detect_runaway(*args, settings=SETTINGS) is None
    assert detect_runaway(t, values, lower, upper, settings=SETTINGS) is not None


def test_unknown_band_breaks_a_run() -> None:
    t, values, lower, upper = cpu_with_excursion(2.0, 40, 14)
    upper[47] = np.nan
    assert detect_runaway(t, values, lower, upper, settings=SETTINGS) is None


def test_pinned_at_the_cpu_ceiling_counts_when_above_the_band() -> None:
    t, values, lower, upper = cpu_with_excursion(1.0, 60, 30)  # 1.25x upper, at the 1-core limit
    assert detect_runaway(t, values, lower, upper, settings=SETTINGS) is None
    anomaly = detect_runaway(t, values, lower, upper, settings=SETTINGS, ceiling=1.0)
    assert anomaly is not None
    assert "pinned at the ceiling 1" in anomaly.reason
    assert anomaly.severity is Severity.WARNING
    at_limit = np.full(t.size, 1.0)  # a forecast that expects the ceiling explains it
    assert detect_runaway(t, values, lower, at_limit, settings=SETTINGS, ceiling=1.0) is None


def test_latest_run_is_reported_and_marked_ongoing() -> None:
    t, values, lower, upper = cpu_with_excursion(2.0, 10, 15)
    values[100:] = 2.0
    anomaly = detect_runaway(t, values, lower, upper, settings=SETTINGS)
    assert anomaly is not None
    assert anomaly.started_at == t[100]
    assert anomaly.evidence_value("ongoing") == 1.0
    assert anomaly.reason.endswith("still going")


def test_sustain_setting_is_honoured() -> None:
    t, values, lower, upper = cpu_with_excursion(2.0, 40, 12)
    longer = AnomalySettings(runaway_sustain_s=15 * MINUTE)
    assert detect_runaway(t, values, lower, upper, settings=longer) is None


def test_runaway_arrays_must_align() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        detect_runaway([1.0], [1.0], [0.0], [1.0, 2.0], settings=SETTINGS)


def test_anomaly_evidence_lookup() -> None:
    anomaly = Anomaly(AnomalyKind.RUNAWAY, Severity.INFO, "x", 0.0, (("a", 1.0),))
    assert anomaly.evidence_value("a") == 1.0
    assert anomaly.evidence_value("b") is None


# ------------------------------------------------------------------------------ properties

finite = st.floats(allow_nan=False, allow_infinity=False)


def aligned(count: int) -> st.SearchStrategy[list[list[float]]]:
    return st.integers(min_value=0, max_value=120).flatmap(
        lambda n: st.lists(st.lists(finite, min_size=n, max_size=n), min_size=count, max_size=count)
    )


@given(aligned(3), st.none() | finite)
def test_leak_detector_never_raises_on_finite_input(
    arrays: list[list[float]], limit: float | None
) -> None:
    times, values, upper = arrays
    for band in (None, upper):
        anomaly = detect_leak(times, values, settings=SETTINGS, expected_upper=band, limit=limit)
        assert anomaly is None or math.isfinite(anomaly.started_at)


@given(
    st.floats(min_value=-1e12, max_value=1e12),
    st.integers(min_value=0, max_value=400),
    st.sampled_from([60.0, 600.0, 3600.0]),
)
def test_constant_memory_is_never_a_leak(level: float, n: int, step: float) -> None:
    t = T0 + np.arange(n) * step
    assert detect_leak(t, np.full(n, level), settings=SETTINGS) is None


@given(aligned(4), st.none() | finite)
def test_runaway_detector_never_raises_on_finite_input(
    arrays: list[list[float]], ceiling: float | None
) -> None:
    times, values, lower, upper = arrays
    anomaly = detect_runaway(times, values, lower, upper, settings=SETTINGS, ceiling=ceiling)
    assert anomaly is None or anomaly.kind is AnomalyKind.RUNAWAY


@given(
    st.lists(st.tuples(st.floats(0.0, 1e9), st.floats(0.0, 1e9)), max_size=200),
    st.floats(min_value=1.0, max_value=3600.0),
)
def test_usage_within_the_band_is_never_a_runaway(
    pairs: list[tuple[float, float]], step: float
) -> None:
    t = T0 + np.arange(len(pairs)) * step
    values = np.array([v for v, _ in pairs])
    upper = values + np.array([slack for _, slack in pairs])
    assert detect_runaway(t, values, np.zeros(t.size), upper, settings=SETTINGS) is None


@given(st.floats(min_value=0.0, max_value=1e9), st.integers(min_value=0, max_value=300))
def test_constant_usage_at_its_forecast_is_never_a_runaway(level: float, n: int) -> None:
    t = T0 + np.arange(n) * STEP
    constant = np.full(n, level)
    assert detect_runaway(t, constant, constant, constant, settings=SETTINGS, ceiling=level) is None
