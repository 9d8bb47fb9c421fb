"""ShortHorizonForecaster: trailing maximum × a learned ratio quantile, with a fixed clock.

Ratios live in a histogram whose first bucket is 0.01 wide and whose buckets grow by 1 %, so
bucket ``i`` starts at ``0.01 * (1.01**i - 1) / 0.01``; a percentile is the end of its bucket.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presize.errors import SettingsError
from presize.forecast.base import Forecaster
from presize.forecast.short_horizon import ShortHorizonForecaster
from presize.settings import ShortHorizonSettings

STEP = 300.0
FIRST, GROWTH = 0.01, 0.01


def bucket_of(value: float) -> int:
    return math.floor(math.log(value * GROWTH / FIRST + 1.0) / math.log(1.0 + GROWTH))


def bucket_start(i: int) -> float:
    return FIRST * ((1.0 + GROWTH) ** i - 1.0) / GROWTH


def ratio_end(value: float) -> float:
    """End of the ratio bucket that holds ``value`` (what a percentile reports)."""
    return bucket_start(bucket_of(value) + 1)


def ratio_start(value: float) -> float:
    return bucket_start(bucket_of(value))


def fed(
    values: list[float], settings: ShortHorizonSettings | None = None
) -> ShortHorizonForecaster:
    f = ShortHorizonForecaster(settings)
    for i, v in enumerate(values):
        f.observe(i * STEP, v)
    return f


def test_short_horizon_satisfies_the_forecaster_protocol() -> None:
    assert isinstance(ShortHorizonForecaster(), Forecaster)


def test_short_horizon_has_no_forecast_before_any_sample() -> None:
    f = ShortHorizonForecaster()
    assert f.forecast(0.0, 3600.0) is None
    assert math.isnan(f.reference())
    assert math.isnan(f.tail(0.0))


def test_short_horizon_uses_the_prior_until_min_samples() -> None:
    f = fed([3.0, 2.0])
    fc = f.forecast(2 * STEP, 600.0)
    assert fc is not None
    # Before min_samples (36) ratios: point = reference, upper = prior_upper × reference.
    assert (fc.point, fc.lower, fc.upper) == (3.0, 3.0, pytest.approx(4.5))
    assert fc.horizon_s == 600.0
    assert fc.model == "short-horizon"
    assert f.tail(2 * STEP) == pytest.approx(4.5)


def test_short_horizon_constant_series_learns_ratio_one_and_covers_it() -> None:
    f = fed([2.0] * 100)
    now = 100 * STEP
    fc = f.forecast(now, 3600.0)
    assert fc is not None
    assert f.reference() == 2.0
    # All ratios are exactly 1.0: one bucket, whose end is the learned ratio.
    assert fc.point == pytest.approx(2.0 * ratio_end(1.0), rel=1e-9)
    assert fc.point / 2.0 == pytest.approx(1.0, abs=0.02)
    assert fc.lower == pytest.approx(2.0 * ratio_start(1.0), rel=1e-9)
    assert fc.lower <= 2.0 <= fc.upper
    assert f.tail_ratio(now) == pytest.approx(ratio_end(1.0), rel=1e-9)
    assert fc.level == 0.90


def test_short_horizon_doubling_series_learns_ratio_two() -> None:
    f = fed([2.0**i for i in range(60)], ShortHorizonSettings(window_steps=4))
    now = 60 * STEP
    fc = f.forecast(now, 3600.0)
    assert fc is not None
    ref = 2.0**59
    assert f.reference() == ref
    assert fc.point / ref == pytest.approx(ratio_end(2.0), rel=1e-9)  # 2.0935
    assert 2.0 <= fc.point / ref <= 2.1
    assert fc.lower / ref <= 2.0 <= fc.upper / ref
    assert f.tail(now) / ref == pytest.approx(ratio_end(2.0), rel=1e-9)


def test_short_horizon_quantiles_refresh_only_on_schedule() -> None:
    s = ShortHorizonSettings(window_steps=1, min_samples=5, refresh_s=3600.0)
    f = ShortHorizonForecaster(s)
    t = 0.0
    for _ in range(10):
        f.observe(t, 1.0)
        t += STEP
    first = f.tail_ratio(t)  # refreshed now, at t = 3000
    assert first == pytest.approx(ratio_end(1.0), rel=1e-9)
    refreshed_at = t
    value = 1.0
    for _ in range(40):  # a run of tripling: ratio 3 dominates the histogram
        value *= 3.0
        f.observe(t, value)
        t += STEP
        if t - refreshed_at < 3600.0:
            assert f.tail_ratio(t) == first
    assert f.tail_ratio(t) == pytest.approx(ratio_end(3.0), rel=1e-9)


def test_short_horizon_scores_its_interval_on_the_next_observation() -> None:
    f = fed([1.0] * 40)
    aci = f.calibration
    before = (aci.hits, aci.misses)
    assert f.forecast(40 * STEP, 300.0) is not None
    f.observe(40 * STEP, 1.0)  # inside [0.958, 1.016]
    assert (aci.hits, aci.misses) == (before[0] + 1, before[1])
    assert f.forecast(41 * STEP, 300.0) is not None
    f.observe(41 * STEP, 10.0)  # far above
    assert (aci.hits, aci.misses) == (before[0] + 1, before[1] + 1)
    assert aci.level > 0.90  # a miss widens the next interval


def test_short_horizon_does_not_score_prior_intervals() -> None:
    f = fed([1.0] * 5)  # fewer than min_samples
    assert f.forecast(5 * STEP, 300.0) is not None
    f.observe(5 * STEP, 100.0)
    assert (f.calibration.hits, f.calibration.misses) == (0, 0)


def test_short_horizon_nan_sample_drops_the_pending_interval_and_ages_the_window() -> None:
    f = fed([5.0] + [1.0] * 40, ShortHorizonSettings(window_steps=3))
    assert f.forecast(41 * STEP, 300.0) is not None
    f.observe(41 * STEP, math.nan)
    f.observe(42 * STEP, 100.0)
    assert (f.calibration.hits, f.calibration.misses) == (0, 0)
    assert f.last == 100.0
    g = fed([5.0, math.nan, math.nan, math.nan], ShortHorizonSettings(window_steps=3))
    assert math.isnan(g.reference())  # the 5.0 left the window; NaNs never win
    assert g.forecast(4 * STEP, 300.0) is None


def test_short_horizon_idle_series_is_floored_not_divided_by_zero() -> None:
    f = fed([0.0] * 50)
    fc = f.forecast(50 * STEP, 300.0)
    assert fc is not None
    assert f.reference() == f.s.floor
    assert all(math.isfinite(v) and v >= 0 for v in (fc.lower, fc.point, fc.upper))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_steps": 0},
        {"upper_q": 1.0},
        {"upper_q": 0.4},
        {"interval_level": 1.0},
        {"half_life_s": -1.0},
        {"floor": math.nan},
        {"prior_upper": math.inf},
    ],
)
def test_short_horizon_settings_reject_out_of_range_values(kwargs: dict[str, float]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(SettingsError, match=name):
        ShortHorizonSettings(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ properties

values = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    samples=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=7200.0), values), max_size=120
    ),
    window=st.integers(min_value=1, max_value=15),
    min_samples=st.integers(min_value=0, max_value=10),
    refresh=st.sampled_from([0.0, 300.0, 3600.0]),
)
def test_short_horizon_never_raises_and_keeps_its_interval_ordered(
    samples: list[tuple[float, float]], window: int, min_samples: int, refresh: float
) -> None:
    f = ShortHorizonForecaster(
        ShortHorizonSettings(window_steps=window, min_samples=min_samples, refresh_s=refresh)
    )
    t = 0.0
    for dt, v in samples:
        t += dt
        f.observe(t, v)
        fc = f.forecast(t, 300.0)
        assert fc is not None
        assert not any(math.isnan(x) for x in (fc.lower, fc.point, fc.upper))
        assert 0.0 <= fc.lower <= fc.point <= fc.upper
        assert f.tail(t) >= 0.0
