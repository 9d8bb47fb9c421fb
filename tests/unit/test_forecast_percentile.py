"""PercentileForecaster: decayed percentiles of observed peaks, ignoring time of day.

Histograms use VPA's CPU layout (first bucket 0.01, 5 % growth), so a percentile is known to
within one bucket: at most 5 % (plus the first bucket's width) above or below the sample
quantile. Samples are synthetic with fixed seeds; times are explicit seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from presize.forecast.base import Forecaster
from presize.forecast.percentile import PercentileForecaster
from presize.histogram import HistogramOptions, cpu_options
from presize.model import Forecast

HOUR = 3600.0
BUCKET = 0.05  # relative width of a bucket (growth)
FIRST = 0.01  # width of the first bucket


def fed(values: list[float] | np.ndarray, *, options: HistogramOptions | None = None,
        step_s: float = 300.0, **kw: float) -> PercentileForecaster:
    f = PercentileForecaster(options or cpu_options(), **kw)
    for i, v in enumerate(list(values)):
        f.observe(i * step_s, float(v))
    return f


def must(fc: Forecast | None) -> Forecast:
    assert fc is not None
    return fc


def test_percentile_satisfies_the_forecaster_protocol() -> None:
    assert isinstance(PercentileForecaster(cpu_options()), Forecaster)


@pytest.mark.parametrize("values", [[], [math.nan], [math.nan, math.nan, math.nan]])
def test_percentile_has_no_forecast_without_a_real_sample(values: list[float]) -> None:
    assert fed(values).forecast(0.0, HOUR) is None


@pytest.mark.parametrize("value", [0.05, 0.5, 2.0, 37.0])
def test_percentile_of_a_constant_brackets_it_within_one_bucket(value: float) -> None:
    fc = must(fed([value] * 50).forecast(50 * 300.0, HOUR))
    assert fc.lower <= value <= fc.upper
    assert fc.upper <= value * (1 + BUCKET) + FIRST
    assert fc.lower >= value / (1 + BUCKET) - FIRST
    assert fc.point == fc.upper  # one bucket: every percentile ends where it does


SAMPLES = {
    "uniform": np.random.default_rng(11).uniform(1.0, 2.0, 2000),
    "lognormal": np.random.default_rng(12).lognormal(0.0, 0.5, 2000),
    "bimodal": np.concatenate(
        [np.random.default_rng(13).normal(0.5, 0.02, 1600),
         np.random.default_rng(14).normal(3.0, 0.1, 400)]
    ),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize(("lower_q", "upper_q"), [(0.05, 0.95), (0.10, 0.90), (0.01, 0.99)])
def test_percentile_edges_are_the_sample_quantiles_to_within_a_bucket(
    name: str, lower_q: float, upper_q: float
) -> None:
    x = np.random.default_rng(0).permutation(SAMPLES[name])
    # All at one instant, so decay plays no part and the histogram holds the plain sample.
    f = PercentileForecaster(cpu_options(), lower_q=lower_q, upper_q=upper_q)
    for v in x.tolist():
        f.observe(1000.0, v)
    fc = must(f.forecast(1000.0, HOUR))
    q_lo, q_mid, q_hi = np.quantile(x, [lower_q, 0.5, upper_q])
    assert q_hi <= fc.upper <= q_hi * (1 + BUCKET) + FIRST
    assert q_lo / (1 + BUCKET) - FIRST <= fc.lower <= q_lo
    assert q_mid / (1 + BUCKET) - FIRST <= fc.point <= q_mid * (1 + BUCKET) + FIRST
    assert fc.level == pytest.approx(upper_q - lower_q)


def test_percentile_forecast_names_its_model_and_keeps_the_horizon() -> None:
    f = fed([1.0, 2.0, 3.0])
    for horizon in (300.0, HOUR, 86400.0):
        fc = must(f.forecast(900.0, horizon))
        assert fc.model == "percentile"
        assert fc.horizon_s == horizon


def test_percentile_ignores_the_horizon_and_time_of_day() -> None:
    f = fed(np.random.default_rng(1).uniform(0.2, 0.8, 288))
    a = must(f.forecast(86400.0, 300.0))
    b = must(f.forecast(86400.0 + 12 * HOUR, 86400.0))
    assert (a.lower, a.point, a.upper) == (b.lower, b.point, b.upper)


def test_percentile_skips_nan_samples() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    clean = fed(values, step_s=600.0)
    gappy = fed([x for v in values for x in (v, math.nan)], step_s=300.0)  # same times
    a, b = must(clean.forecast(3000.0, HOUR)), must(gappy.forecast(3000.0, HOUR))
    assert (a.lower, a.point, a.upper) == (b.lower, b.point, b.upper)
    assert a.lower < a.point < a.upper


@pytest.mark.parametrize(
    ("gap_half_lives", "upper_is_new_level"),
    [
        (0, False),  # same age: the old high level is a quarter of the weight, above p95
        (1, False),  # old samples at half weight: still 1/7 of it
        (8, True),  # 1/256 weight: the old level is forgotten
    ],
)
def test_percentile_forgets_old_peaks_as_they_decay(
    gap_half_lives: int, upper_is_new_level: bool
) -> None:
    half_life = HOUR
    f = PercentileForecaster(cpu_options(half_life_s=half_life))
    for _ in range(100):
        f.observe(0.0, 10.0)
    later = gap_half_lives * half_life
    for _ in range(300):
        f.observe(later, 1.0)
    upper = must(f.forecast(later, HOUR)).upper
    if upper_is_new_level:
        assert upper <= 1.0 * (1 + BUCKET) + FIRST
    else:
        assert upper >= 10.0
