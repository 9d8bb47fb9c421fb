"""Sort a workload into a behaviour class from its usage history.

Why classify at all: one forecaster and one safety buffer do not suit every workload. A steady
API server needs little headroom; a job that is idle most of the day and then saturates its CPU
needs the peak of its runs, not its median; a service whose load climbs every week needs its
trend extrapolated. The class is also shown to users (``WorkloadProfile`` status), so it must
come with a reason in words that names the feature that decided it.

How: :func:`features` condenses a history into a handful of scale-free numbers and
:func:`classify` applies ordered rules to them. The rules are deliberately plain thresholds, not
a fitted model: a user who disagrees with a class can read the reason, see the number and the
bar it crossed, and know what would change it.

Features (all computed on finite samples only, negative usage read as zero):

* ``cv``: standard deviation over mean, the overall noise.
* ``burstiness``: p99 / p50. The median is floored at ``p99 / BURSTINESS_CAP`` so a series that
  is mostly zero gives a large finite number rather than a division by zero.
* ``daily_acf``: autocorrelation at a 24 h lag of the hourly means after the linear trend is
  removed (a trend alone would otherwise look periodic), 0 below ``ACF_MIN_DAYS`` of history.
* ``trend``: Theil-Sen slope per day of the 24 h rolling mean of hourly means (so a daily cycle
  does not read as a trend), as a fraction of the mean. Theil-Sen is the median of pairwise
  slopes, so a few spikes cannot tilt it.
* ``idle_fraction``: share of samples below ``IDLE_LEVEL`` × p95.

Rules, first match wins (the order is part of the design: an on/off job is also bursty, and a
trending service usually also correlates with itself a day later):

=============  ===========================================================  ===================
class          rule                                                         constants
=============  ===========================================================  ===================
``UNKNOWN``    history < 1 day                                              MIN_HISTORY_DAYS
``BATCH``      idle_fraction ≥ 0.30 and bursty (p99/p50 ≥ 3 or cv ≥ 0.5)    BATCH_IDLE_FRACTION
``TRENDING``   history ≥ 2 days, ``abs(trend)`` ≥ 5 %/day and               TREND_MIN_DAYS,
               ``abs(trend)`` × days ≥ 1.0 × cv                             TREND_MIN_PER_DAY,
                                                                            TREND_NOISE_RATIO
``PERIODIC``   daily_acf ≥ 0.5                                              PERIODIC_ACF
``BURSTY``     p99/p50 ≥ 3 or cv ≥ 0.5                                      BURSTY_RATIO,
                                                                            BURSTY_CV
``STEADY``     none of the above                                            -
=============  ===========================================================  ===================

"Trend relative to noise" compares the total relative change the trend predicts over the
history with the coefficient of variation: a slope that moves the level by less than the series
already wobbles is not worth extrapolating. Under two days a rise may be the first half of a
daily cycle, so no trend is declared before a cycle could have been seen twice.

Confidence is history × margin: history grows linearly to 1 at ``CONFIDENT_DAYS``, margin is
0.5 at the deciding threshold and 1 when the feature is twice past it (for ``STEADY``: how far
below every threshold the series stays). ``UNKNOWN`` carries no confidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from presize.model import WorkloadClass

__all__ = [
    "ACF_MIN_DAYS",
    "BATCH_IDLE_FRACTION",
    "BURSTINESS_CAP",
    "BURSTY_CV",
    "BURSTY_RATIO",
    "CLASS_BUFFERS",
    "CONFIDENT_DAYS",
    "IDLE_LEVEL",
    "MIN_HISTORY_DAYS",
    "PERIODIC_ACF",
    "TREND_MIN_DAYS",
    "TREND_MIN_PER_DAY",
    "TREND_NOISE_RATIO",
    "Classification",
    "Features",
    "buffer_for",
    "classify",
    "features",
]

FloatArray = npt.NDArray[np.float64]
SeriesLike = Sequence[float] | npt.NDArray[Any]

DAY_S = 86_400.0
HOUR_S = 3_600.0

MIN_HISTORY_DAYS = 1.0
ACF_MIN_DAYS = 2.0
CONFIDENT_DAYS = 7.0
IDLE_LEVEL = 0.05
BURSTINESS_CAP = 1_000.0
BATCH_IDLE_FRACTION = 0.30
TREND_MIN_DAYS = 2.0
TREND_MIN_PER_DAY = 0.05
TREND_NOISE_RATIO = 1.0
PERIODIC_ACF = 0.5
BURSTY_RATIO = 3.0
BURSTY_CV = 0.5

# Only the trailing GRID_DAYS are resampled hourly: enough for any seasonality we model, and it
# bounds memory whatever the timestamps look like.
GRID_DAYS = 90
# Fewer overlapping pairs than this and an autocorrelation is noise.
MIN_ACF_PAIRS = 12
# Theil-Sen is quadratic in points; longer hourly series are thinned evenly to this many.
MAX_THEIL_SEN_POINTS = 400
# Hourly variation below this share of the mean is float rounding, not signal.
FLAT_RELATIVE = 1e-9

# Why each class gets its buffer (headroom multiplied onto the forecast upper bound):
#   steady    1.05  the forecast band already spans the noise; a little for forecast error.
#   periodic  1.10  the cycle is modelled; the buffer covers drift in its phase and amplitude
#                   (the seed rule's default).
#   trending  1.10  the slope is extrapolated; the buffer covers its error until the next refit.
#   batch     1.15  sizing follows the runs' peaks, and runs differ from one another in size.
#   bursty    1.20  spikes outrun any quantile of the past; throttling is the cost of too little.
#   unknown   1.20  no evidence yet, so be generous, as for a cold start.
CLASS_BUFFERS: Mapping[WorkloadClass, float] = MappingProxyType(
    {
        WorkloadClass.STEADY: 1.05,
        WorkloadClass.PERIODIC: 1.10,
        WorkloadClass.TRENDING: 1.10,
        WorkloadClass.BATCH: 1.15,
        WorkloadClass.BURSTY: 1.20,
        WorkloadClass.UNKNOWN: 1.20,
    }
)


@dataclass(frozen=True, slots=True)
class Features:
    """Scale-free summary of a usage history; every field is finite.

    ``trend`` is per day, as a fraction of ``mean`` (0.1 = the level rises 10 % of the mean
    each day). ``n_days`` is the span the samples cover, counting one step for the last one.
    """

    mean: float
    cv: float
    burstiness: float
    daily_acf: float
    trend: float
    idle_fraction: float
    n_days: float


@dataclass(frozen=True, slots=True)
class Classification:
    """A class with the reason that decided it and a confidence in 0..1."""

    workload_class: WorkloadClass
    reason: str
    confidence: float


# ------------------------------------------------------------------------------ features


def features(times: SeriesLike, values: SeriesLike, *, step_s: float) -> Features:
    """Summarise a usage history (any order, NaN allowed) into :class:`Features`.

    ``step_s`` is the nominal sampling step; the hourly grid is never finer than it.
    Raises ``ValueError`` when ``times`` and ``values`` differ in length or ``step_s`` is
    negative or not finite.
    """
    if not math.isfinite(step_s) or step_s < 0:
        raise ValueError(f"step_s={step_s!r}: expected a finite number >= 0")
    t, v = _clean(times, values)
    if v.size == 0:
        return Features(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    scale = float(np.max(v))
    if scale > 0:
        v = v / scale
    n_days = _n_days(t, step_s)
    with np.errstate(all="ignore"):
        mean = float(np.mean(v))
        cv = float(np.std(v)) / mean if mean > 0 else 0.0
        times_h, hourly = _hourly_means(t, v, bucket_s=max(HOUR_S, step_s))
        slope = _trend_slope_per_day(times_h, hourly, n_days=n_days)
        acf = 0.0
        if n_days >= ACF_MIN_DAYS:
            acf = _daily_acf(times_h, hourly, slope, bucket_s=max(HOUR_S, step_s))
    return Features(
        mean=_finite(mean * scale if scale > 0 else 0.0),
        cv=_finite(cv),
        burstiness=_burstiness(v),
        daily_acf=_finite(acf),
        trend=_finite(slope / mean if mean > 0 else 0.0),
        idle_fraction=_idle_fraction(v),
        n_days=n_days,
    )


def _clean(times: SeriesLike, values: SeriesLike) -> tuple[FloatArray, FloatArray]:
    """Finite (time, value) pairs sorted by time, with negative usage read as zero."""
    t = np.asarray(times, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if t.shape != v.shape:
        raise ValueError(f"times ({t.size}) and values ({v.size}) differ in length")
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], np.maximum(v[keep], 0.0)
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


def _finite(x: float, default: float = 0.0) -> float:
    return x if math.isfinite(x) else default


def _n_days(t: FloatArray, step_s: float) -> float:
    span = float(t[-1]) - float(t[0]) + step_s
    return min(span, np.finfo(np.float64).max) / DAY_S


def _burstiness(v: FloatArray) -> float:
    p50, p99 = (float(q) for q in np.percentile(v, [50.0, 99.0]))
    if p99 <= 0:
        return 1.0
    return p99 / max(p50, p99 / BURSTINESS_CAP)


def _idle_fraction(v: FloatArray) -> float:
    p95 = float(np.percentile(v, 95.0))
    if p95 <= 0:
        return 1.0
    return float(np.mean(v < IDLE_LEVEL * p95))


def _hourly_means(
    t: FloatArray, v: FloatArray, *, bucket_s: float
) -> tuple[FloatArray, FloatArray]:
    """Means on a regular grid of ``bucket_s`` over the trailing ``GRID_DAYS``; NaN if empty.

    Returns grid times in days since the grid origin, and the means.
    """
    origin = max(float(t[0]), float(t[-1]) - GRID_DAYS * DAY_S)
    keep = t >= origin
    idx = np.floor((t[keep] - origin) / bucket_s).astype(np.int64)
    counts = np.bincount(idx)
    sums = np.bincount(idx, weights=v[keep])
    means = np.full(counts.size, np.nan)
    filled = counts > 0
    means[filled] = sums[filled] / counts[filled]
    times_days: FloatArray = (np.arange(counts.size, dtype=np.float64) + 0.5) * (bucket_s / DAY_S)
    return times_days, means


def _rolling_day_mean(times_days: FloatArray, hourly: FloatArray) -> tuple[FloatArray, FloatArray]:
    """24 h centred rolling mean of an hourly grid, kept where at least half the hours exist."""
    width = max(1, round(1.0 / float(times_days[1] - times_days[0]))) if times_days.size > 1 else 1
    if hourly.size < width:
        return times_days[:0], hourly[:0]
    finite = np.isfinite(hourly)
    kernel = np.ones(width)
    sums = np.convolve(np.where(finite, hourly, 0.0), kernel, mode="valid")
    counts = np.convolve(finite.astype(np.float64), kernel, mode="valid")
    ok = counts >= width / 2
    centres = np.convolve(times_days, kernel / width, mode="valid")
    return centres[ok], sums[ok] / counts[ok]


def _theil_sen_slope(x: FloatArray, y: FloatArray) -> float:
    """Median of pairwise slopes over finite points (0 when fewer than two)."""
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size > MAX_THEIL_SEN_POINTS:
        pick = np.linspace(0, x.size - 1, MAX_THEIL_SEN_POINTS).round().astype(np.int64)
        x, y = x[pick], y[pick]
    if x.size < 2:
        return 0.0
    i, j = np.triu_indices(x.size, k=1)
    dx = x[j] - x[i]
    usable = dx > 0
    if not usable.any():
        return 0.0
    return float(np.median((y[j] - y[i])[usable] / dx[usable]))


def _trend_slope_per_day(times_days: FloatArray, hourly: FloatArray, *, n_days: float) -> float:
    if n_days >= ACF_MIN_DAYS:
        times_days, hourly = _rolling_day_mean(times_days, hourly)
    return _theil_sen_slope(times_days, hourly)


def _daily_acf(
    times_days: FloatArray, hourly: FloatArray, slope: float, *, bucket_s: float
) -> float:
    """Autocorrelation at a one-day lag of the hourly means with the trend line removed."""
    lag = round(DAY_S / bucket_s)
    finite = np.isfinite(hourly)
    if lag < 1 or hourly.size <= lag or finite.sum() < 2:
        return 0.0
    detrended = hourly - slope * times_days
    centred = detrended - np.nanmean(detrended)
    variance = float(np.nanmean(centred**2))
    level = float(np.nanmean(np.abs(hourly)))
    if not variance > (FLAT_RELATIVE * level) ** 2:
        return 0.0
    a, b = centred[:-lag], centred[lag:]
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < MIN_ACF_PAIRS:
        return 0.0
    covariance = float(np.mean(a[both] * b[both]))
    return max(-1.0, min(1.0, covariance / variance))


# ------------------------------------------------------------------------------ rules


def classify(f: Features) -> Classification:
    """Apply the ordered rules of the module docstring to ``f``."""
    if not f.n_days >= MIN_HISTORY_DAYS:
        return Classification(
            WorkloadClass.UNKNOWN,
            f"only {f.n_days:.2f} days of history; {MIN_HISTORY_DAYS:g} day is needed to classify",
            0.0,
        )
    history = min(1.0, f.n_days / CONFIDENT_DAYS)
    burst_margin = max(_past(f.burstiness, BURSTY_RATIO), _past(f.cv, BURSTY_CV))
    bursty = f.burstiness >= BURSTY_RATIO or f.cv >= BURSTY_CV
    bursty_text = f"p99/p50={f.burstiness:.1f}, cv={f.cv:.2f}"

    if f.idle_fraction >= BATCH_IDLE_FRACTION and bursty:
        margin = min(_past(f.idle_fraction, BATCH_IDLE_FRACTION), burst_margin)
        reason = (
            f"on/off: idle {f.idle_fraction:.0%} of the time (below {IDLE_LEVEL:.0%} of p95, "
            f"bar {BATCH_IDLE_FRACTION:.0%}) and bursty when running ({bursty_text})"
        )
        return _decided(WorkloadClass.BATCH, reason, history, margin)

    total_change = abs(f.trend) * f.n_days
    if (
        f.n_days >= TREND_MIN_DAYS
        and abs(f.trend) >= TREND_MIN_PER_DAY
        and total_change >= TREND_NOISE_RATIO * f.cv
    ):
        margin = min(
            _past(abs(f.trend), TREND_MIN_PER_DAY),
            _past(total_change, TREND_NOISE_RATIO * f.cv) if f.cv > 0 else 1.0,
        )
        reason = (
            f"trend {f.trend:+.1%}/day of the mean ({f.trend * f.n_days:+.0%} over "
            f"{f.n_days:.1f} days) outweighs the noise (cv={f.cv:.2f})"
        )
        return _decided(WorkloadClass.TRENDING, reason, history, margin)

    if f.daily_acf >= PERIODIC_ACF:
        reason = f"daily cycle: autocorrelation at 24 h is {f.daily_acf:.2f} (bar {PERIODIC_ACF})"
        return _decided(WorkloadClass.PERIODIC, reason, history, _past(f.daily_acf, PERIODIC_ACF))

    if bursty:
        reason = f"bursty: {bursty_text} (bars {BURSTY_RATIO:g} and {BURSTY_CV:g})"
        return _decided(WorkloadClass.BURSTY, reason, history, burst_margin)

    nearest = max(
        f.cv / BURSTY_CV,
        (f.burstiness - 1.0) / (BURSTY_RATIO - 1.0),
        max(f.daily_acf, 0.0) / PERIODIC_ACF,
        abs(f.trend) / TREND_MIN_PER_DAY,
    )
    reason = (
        f"steady: cv={f.cv:.2f}, p99/p50={f.burstiness:.2f}, daily acf {f.daily_acf:.2f}, "
        f"trend {f.trend:+.1%}/day, all below their bars"
    )
    return _decided(WorkloadClass.STEADY, reason, history, max(0.0, 1.0 - nearest))


def _past(x: float, threshold: float) -> float:
    """How far past ``threshold`` ``x`` is: 0 at it, 1 at twice it, clamped to 0..1."""
    if threshold <= 0:
        return 1.0
    return max(0.0, min(1.0, (x - threshold) / threshold))


def _decided(cls: WorkloadClass, reason: str, history: float, margin: float) -> Classification:
    confidence = max(0.0, min(1.0, history * (0.5 + 0.5 * margin)))
    return Classification(cls, reason, confidence)


def buffer_for(cls: WorkloadClass) -> float:
    """The suggested sizing buffer for a class; see ``CLASS_BUFFERS`` for why each value."""
    return CLASS_BUFFERS[cls]
