"""Flag behaviour that no forecast explains: memory leaks and runaway usage.

Why detectors and not just a wider band: the forecasters learn whatever they are shown. A leak
fed to them becomes a trend, and presize would keep giving the container more memory until the
node runs out; a runaway process fed to them becomes the new normal. Both need a person, not a
bigger request, so they are reported as :class:`Anomaly` values (kind, severity, a reason with
numbers) that the controller turns into Events and metrics and that ``policy.decide`` may use
to cap growth. Like every function in ``presize``, these are pure: arrays in, a value out, time
only as data.

**A leak** is sustained, roughly monotone growth that does not come back down, and it is
still going on. The detector takes hourly means of the trailing ``LEAK_MAX_HISTORY_S`` and
fits a line to every window that ends at the last sample. Windows that pass every test below
are candidates. ``started_at`` is where a flat-then-linear (hinge) fit of the longest candidate
starts to climb, because a window that opens on a flat stretch before the leak can still fit a
line well; the candidate starting there is the one reported.

==========================  ==================================================================
test                        why
==========================  ==================================================================
span ≥ leak_min_span_s      growth over a few minutes is a warm-up or a request burst
growth ≥ leak_min_growth    of the fitted starting level, so noise on a flat line is not growth
r² ≥ leak_min_r2, or ≥      a leak is gradual: a line fits it, or at least most hourly means
leak_min_positive_fraction  rise (a leak that slows or speeds up still rises every hour)
of hourly means rising
drawdown ≤ 25 % of growth   ``LEAK_MAX_DRAWDOWN``: memory that falls back (a GC cycle, a daily
                            sawtooth that resets) was never leaked
new high                    the end must top the previous ``LEAK_PRIOR_S`` (one day) by half the
                            growth (``LEAK_NEW_HIGH``): today's climb to yesterday's peak is a
                            cycle, not a leak
not a step                  see below
outside the band            with ``expected_upper`` (the seasonal forecast's upper edge), growth
                            that ends inside the band is explained by the profile
==========================  ==================================================================

**A step is not a leak.** A deploy, a cache warm-up or a bigger input moves memory to a new
level and it stays there. On ``STEP_BUCKETS`` fine means of the window, a piecewise-constant fit
with one (else two) breaks is compared with the line. The window is a step when that fit leaves
at most ``STEP_SSE_RATIO`` of the line's squared error, its jumps carry at least
``leak_step_fraction`` of the fitted growth, and after the last jump the series is flat (its
slope at most ``STEP_TAIL_SLOPE`` of the window's). Only windows that start after the step stay
candidates, so a real leak that follows a step is still found. Three or more jumps are not
excused: memory that keeps growing in chunks is still growing.

Leak severity is the projected time to reach ``limit`` at the fitted slope: critical within
``LEAK_CRITICAL_S`` (1 h), warning within ``LEAK_WARNING_S`` (24 h), info otherwise and when no
limit is known.

**A runaway** is usage far above the forecast band (over ``runaway_factor`` × the upper edge)
or pinned at a CPU ceiling while above the band, for at least ``runaway_sustain_s`` without a
break. A single spike is what the band's tail is for and is never a runaway. Severity grows with
how far (the median ratio to the upper edge, in multiples of ``runaway_factor``) and how long
(in multiples of ``runaway_sustain_s``):

===========  ==========================================  ====================================
severity     how far (ratio / runaway_factor)            how long (duration / sustain)
===========  ==========================================  ====================================
critical     ≥ ``RUNAWAY_FAR_CRITICAL`` (2, i.e. 3×)      or ≥ ``RUNAWAY_LONG_CRITICAL`` (6)
warning      ≥ ``RUNAWAY_FAR_WARNING`` (4/3, i.e. 2×)    or ≥ ``RUNAWAY_LONG_WARNING`` (2), or
                                                         pinned at the ceiling most of the run
info         otherwise
===========  ==========================================  ====================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from presize.settings import AnomalySettings
from presize.units import GIB, KIB, MIB

__all__ = [
    "LEAK_BUCKET_S",
    "LEAK_CRITICAL_S",
    "LEAK_MAX_DRAWDOWN",
    "LEAK_MAX_HISTORY_S",
    "LEAK_NEW_HIGH",
    "LEAK_PRIOR_S",
    "LEAK_WARNING_S",
    "RUNAWAY_FAR_CRITICAL",
    "RUNAWAY_FAR_WARNING",
    "RUNAWAY_LONG_CRITICAL",
    "RUNAWAY_LONG_WARNING",
    "STEP_BUCKETS",
    "STEP_SSE_RATIO",
    "STEP_TAIL_SLOPE",
    "Anomaly",
    "AnomalyKind",
    "Severity",
    "detect_leak",
    "detect_runaway",
]

FloatArray = npt.NDArray[np.float64]
SeriesLike = Sequence[float] | npt.NDArray[Any]

HOUR_S = 3_600.0
DAY_S = 86_400.0

LEAK_BUCKET_S = HOUR_S
LEAK_MIN_BUCKETS = 4
LEAK_MAX_HISTORY_S = 14 * DAY_S
LEAK_MAX_DRAWDOWN = 0.25
LEAK_PRIOR_S = DAY_S
LEAK_NEW_HIGH = 0.5
STEP_BUCKETS = 96
STEP_SSE_RATIO = 0.5
STEP_TAIL_SLOPE = 0.25
LEAK_CRITICAL_S = HOUR_S
LEAK_WARNING_S = DAY_S

RUNAWAY_FAR_WARNING = 4.0 / 3.0
RUNAWAY_FAR_CRITICAL = 2.0
RUNAWAY_LONG_WARNING = 2.0
RUNAWAY_LONG_CRITICAL = 6.0
# A gap longer than this many typical sampling steps breaks a run (missing data is not proof).
RUNAWAY_GAP_STEPS = 3.0


class AnomalyKind(StrEnum):
    MEMORY_LEAK = "memory-leak"
    RUNAWAY = "runaway"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Behaviour no forecast explains, with the numbers that show it.

    ``reason`` is for people (Events, logs); ``evidence`` holds the same numbers for machines
    (metrics, tests) as ``(name, value)`` pairs.
    """

    kind: AnomalyKind
    severity: Severity
    reason: str
    started_at: float
    evidence: tuple[tuple[str, float], ...] = ()

    def evidence_value(self, name: str) -> float | None:
        """The evidence called ``name``, or ``None`` when this anomaly does not carry it."""
        return next((value for key, value in self.evidence if key == name), None)


# ------------------------------------------------------------------------------ leak


@dataclass(frozen=True, slots=True)
class _History:
    """The trailing history on an hourly grid, times relative to ``origin``, values / ``scale``.

    Relative times and scaled values keep every sum finite whatever the input magnitudes.
    """

    origin: float
    scale: float
    t: FloatArray
    v: FloatArray
    first: FloatArray
    mean_t: FloatArray
    level: FloatArray
    upper: FloatArray

    @property
    def last(self) -> float:
        return float(self.t[-1])


@dataclass(frozen=True, slots=True)
class _Growth:
    """A line fitted to the hourly means of one window; levels in scaled units."""

    start: float
    end: float
    slope: float
    start_level: float
    end_level: float
    r2: float
    rising: float

    @property
    def fraction(self) -> float:
        return (self.end_level - self.start_level) / self.start_level


def detect_leak(
    times: SeriesLike,
    values: SeriesLike,
    *,
    settings: AnomalySettings,
    expected_upper: SeriesLike | None = None,
    limit: float | None = None,
) -> Anomaly | None:
    """A memory leak in ``values`` (bytes) at ``times`` (seconds), or ``None``.

    ``expected_upper`` is the forecast band's upper edge aligned with ``values`` (NaN where
    unknown); ``limit`` is the container's memory limit in bytes, if any. Raises ``ValueError``
    when the arrays differ in length.
    """
    with np.errstate(all="ignore"):
        return _find_leak(times, values, expected_upper, settings, limit)


def _find_leak(
    times: SeriesLike,
    values: SeriesLike,
    expected_upper: SeriesLike | None,
    settings: AnomalySettings,
    limit: float | None,
) -> Anomaly | None:
    history = _leak_history(times, values, expected_upper, settings)
    if history is None or _inside_band(history):
        return None
    candidates = _leak_windows(history, settings)
    while candidates:
        onset = _onset(history, candidates[0])
        chosen = next((g for g in candidates if g.start >= onset), candidates[-1])
        step_at = _step_end(history, chosen, settings)
        if step_at is None:
            return _leak(history, chosen, settings, limit)
        candidates = [g for g in candidates if g.start >= step_at]
    return None


def _leak_windows(history: _History, settings: AnomalySettings) -> list[_Growth]:
    """Fits of every window ending now that passes the leak tests except step and band."""
    windows = []
    for start in range(history.level.size - LEAK_MIN_BUCKETS + 1):
        if history.last - float(history.first[start]) < settings.leak_min_span_s:
            break
        growth = _fit_window(history, start)
        if growth is not None and _leak_shaped(history, start, growth, settings):
            windows.append(growth)
    return windows


def _leak_history(
    times: SeriesLike,
    values: SeriesLike,
    expected_upper: SeriesLike | None,
    settings: AnomalySettings,
) -> _History | None:
    t = np.asarray(times, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    u = (
        np.full(v.shape, np.nan)
        if expected_upper is None
        else (np.asarray(expected_upper, dtype=np.float64).ravel())
    )
    if not t.shape == v.shape == u.shape:
        raise ValueError(
            f"times ({t.size}), values ({v.size}) and expected_upper ({u.size}) differ in length"
        )
    keep = np.isfinite(t) & np.isfinite(v)
    if not keep.any():
        return None
    t, v, u = t[keep], v[keep], u[keep]
    origin = max(float(t.min()), float(t.max()) - LEAK_MAX_HISTORY_S)
    recent = t >= origin
    order = np.argsort(t[recent], kind="stable")
    t, v, u = t[recent][order] - origin, v[recent][order], u[recent][order]
    scale = float(np.max(np.abs(v)))
    if not scale > 0:
        return None
    v, u = v / scale, u / scale
    bucket_s = max(min(LEAK_BUCKET_S, settings.leak_min_span_s / LEAK_MIN_BUCKETS), 1e-9)
    ids = np.floor(t / bucket_s).astype(np.int64)
    _, first_index, inverse, counts = np.unique(
        ids, return_index=True, return_inverse=True, return_counts=True
    )
    upper_counts = np.bincount(inverse, weights=np.isfinite(u).astype(np.float64))
    upper_sums = np.bincount(inverse, weights=np.where(np.isfinite(u), u, 0.0))
    upper = np.where(upper_counts > 0, upper_sums / upper_counts, np.nan)
    return _History(
        origin=origin,
        scale=scale,
        t=t,
        v=v,
        first=t[first_index],
        mean_t=np.bincount(inverse, weights=t) / counts,
        level=np.bincount(inverse, weights=v) / counts,
        upper=upper,
    )


def _inside_band(history: _History) -> bool:
    """Whether the latest level sits inside the seasonal band (so the profile explains it)."""
    upper = float(history.upper[-1])
    return math.isfinite(upper) and float(history.level[-1]) <= upper


def _line(x: FloatArray, y: FloatArray) -> tuple[float, float, float]:
    """Least-squares slope, intercept and r² (0 when ``y`` does not vary)."""
    x_mean, y_mean = float(np.mean(x)), float(np.mean(y))
    dx, dy = x - x_mean, y - y_mean
    sxx, syy = float(np.dot(dx, dx)), float(np.dot(dy, dy))
    if not sxx > 0:
        return 0.0, y_mean, 0.0
    slope = float(np.dot(dx, dy)) / sxx
    if not syy > 0:
        return slope, y_mean - slope * x_mean, 0.0
    r2 = 1.0 - float(np.sum((dy - slope * dx) ** 2)) / syy
    return slope, y_mean - slope * x_mean, max(0.0, r2)


def _fit_window(history: _History, start: int) -> _Growth | None:
    x, y = history.mean_t[start:], history.level[start:]
    slope, intercept, r2 = _line(x, y)
    t0, t1 = float(history.first[start]), history.last
    start_level = intercept + slope * t0
    if not start_level > 0:
        return None
    return _Growth(
        start=t0,
        end=t1,
        slope=slope,
        start_level=start_level,
        end_level=intercept + slope * t1,
        r2=r2,
        rising=float(np.mean(np.diff(y) > 0)),
    )


def _onset(history: _History, growth: _Growth) -> float:
    """Where a flat-then-linear fit of the window's hourly means starts to climb.

    A window that begins on a flat stretch before the leak can still fit a line well; the
    hinge with the least squared error places ``started_at`` where the growth began.
    """
    inside = history.first >= growth.start
    x, y = history.mean_t[inside], history.level[inside]
    onset, best = growth.start, math.inf
    for k in range(x.size - LEAK_MIN_BUCKETS + 1):
        ramp = np.maximum(x - x[k], 0.0)
        slope, intercept, _ = _line(ramp, y)
        sse = float(np.sum((y - intercept - slope * ramp) ** 2))
        if slope > 0 and sse < best:
            onset = growth.start if k == 0 else float(history.first[inside][k])
            best = sse
    return onset


def _leak_shaped(history: _History, start: int, growth: _Growth, settings: AnomalySettings) -> bool:
    """Every test of the module table except the step and the band."""
    if not growth.fraction >= settings.leak_min_growth:
        return False
    if growth.r2 < settings.leak_min_r2 and growth.rising < settings.leak_min_positive_fraction:
        return False
    level = history.level[start:]
    rise = float(level[-1] - level[0])
    drawdown = float(np.max(np.maximum.accumulate(level) - level))
    if not rise > 0 or drawdown > LEAK_MAX_DRAWDOWN * rise:
        return False
    prior = (history.first < growth.start) & (history.first >= growth.start - LEAK_PRIOR_S)
    if prior.any():
        return float(level[-1]) >= float(np.max(history.level[prior])) + LEAK_NEW_HIGH * rise
    return True


def _segment_sse(s1: FloatArray, s2: FloatArray, a: Any, b: Any) -> Any:
    """Squared error of the best constant on ``y[a:b]`` from prefix sums (vectorised)."""
    n = b - a
    total = s1[b] - s1[a]
    return s2[b] - s2[a] - total * total / n


def _best_breaks(y: FloatArray, breaks: int) -> tuple[float, tuple[int, ...]]:
    """The piecewise-constant fit of ``y`` with ``breaks`` (1 or 2) breaks: error and indices."""
    n = y.size
    s1 = np.concatenate(([0.0], np.cumsum(y)))
    s2 = np.concatenate(([0.0], np.cumsum(y * y)))
    if breaks == 1:
        k = np.arange(1, n)
        sse = _segment_sse(s1, s2, 0, k) + _segment_sse(s1, s2, k, n)
        best = int(np.argmin(sse))
        return float(sse[best]), (int(k[best]),)
    i, j = np.triu_indices(n, k=1)
    usable = i >= 1
    i, j = i[usable], j[usable]
    sse = _segment_sse(s1, s2, 0, i) + _segment_sse(s1, s2, i, j) + _segment_sse(s1, s2, j, n)
    best = int(np.argmin(sse))
    return float(sse[best]), (int(i[best]), int(j[best]))


def _fine_means(
    t: FloatArray, v: FloatArray, start: float, end: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Means on ``STEP_BUCKETS`` equal slices of [start, end]: (slice start, mean time, mean)."""
    width = max((end - start) / STEP_BUCKETS, 1e-9)
    ids = np.clip(np.floor((t - start) / width), 0, STEP_BUCKETS - 1).astype(np.int64)
    counts = np.bincount(ids, minlength=STEP_BUCKETS)
    filled = counts > 0
    mean_t = np.bincount(ids, weights=t, minlength=STEP_BUCKETS)[filled] / counts[filled]
    mean_v = np.bincount(ids, weights=v, minlength=STEP_BUCKETS)[filled] / counts[filled]
    slice_start = start + width * np.flatnonzero(filled).astype(np.float64)
    return slice_start, mean_t, mean_v


def _step_end(history: _History, growth: _Growth, settings: AnomalySettings) -> float | None:
    """When the window is one or two steps to a flat new level: the time of the last step."""
    inside = slice(int(np.searchsorted(history.t, growth.start)), None)
    first, x, y = _fine_means(history.t[inside], history.v[inside], growth.start, growth.end)
    if y.size < 3:
        return None
    slope, intercept, _ = _line(x, y)
    line_sse = float(np.sum((y - intercept - slope * x) ** 2))
    for breaks in (1, 2):
        sse, cuts = _best_breaks(y, breaks)
        if sse <= STEP_SSE_RATIO * line_sse:
            break
    else:
        return None
    bounds = (0, *cuts, y.size)
    means = [float(np.mean(y[a:b])) for a, b in pairwise(bounds)]
    jumps = sum(max(b - a, 0.0) for a, b in pairwise(means))
    if not jumps >= settings.leak_step_fraction * slope * (growth.end - growth.start):
        return None
    tail = slice(cuts[-1], None)
    tail_slope = _line(x[tail], y[tail])[0] if y.size - cuts[-1] >= 2 else 0.0
    if tail_slope > STEP_TAIL_SLOPE * slope:
        return None
    return float(first[cuts[-1]])


def _leak(
    history: _History, growth: _Growth, settings: AnomalySettings, limit: float | None
) -> Anomaly:
    scale = history.scale
    per_hour = growth.slope * scale * HOUR_S
    end_level = growth.end_level * scale
    shape = f"r²={growth.r2:.2f}"
    if growth.r2 < settings.leak_min_r2:
        shape += f", {growth.rising:.0%} of hourly means rising"
    reason = (
        f"memory grew {growth.fraction:.0%} over {_duration(growth.end - growth.start)} "
        f"({shape}, {_bytes_rate(per_hour)})"
    )
    evidence = [
        ("growth_fraction", growth.fraction),
        ("span_s", growth.end - growth.start),
        ("r2", growth.r2),
        ("rising_fraction", growth.rising),
        ("slope_bytes_per_s", growth.slope * scale),
        ("start_level", growth.start_level * scale),
        ("end_level", end_level),
    ]
    severity = Severity.INFO
    if limit is not None and math.isfinite(limit):
        rate = growth.slope * scale
        to_limit = (
            0.0 if end_level >= limit else ((limit - end_level) / rate if rate > 0 else math.inf)
        )
        evidence.append(("time_to_limit_s", to_limit))
        severity = _leak_severity(to_limit)
        reason += (
            f"; limit {_bytes(limit)} reached in ~{_duration(to_limit)}"
            if to_limit > 0
            else f"; already at the limit {_bytes(limit)}"
        )
    return Anomaly(
        kind=AnomalyKind.MEMORY_LEAK,
        severity=severity,
        reason=reason,
        started_at=history.origin + growth.start,
        evidence=tuple(evidence),
    )


def _leak_severity(to_limit_s: float) -> Severity:
    if to_limit_s <= LEAK_CRITICAL_S:
        return Severity.CRITICAL
    if to_limit_s <= LEAK_WARNING_S:
        return Severity.WARNING
    return Severity.INFO


# ------------------------------------------------------------------------------ runaway


def detect_runaway(
    times: SeriesLike,
    values: SeriesLike,
    lower: SeriesLike,
    upper: SeriesLike,
    *,
    settings: AnomalySettings,
    ceiling: float | None = None,
) -> Anomaly | None:
    """The latest sustained excursion far above the band [``lower``, ``upper``], or ``None``.

    All four arrays are aligned sample by sample; NaN in ``upper`` means "no forecast here"
    and breaks a run. ``ceiling`` is the CPU limit, if any: usage pinned at it while above the
    band counts even below ``runaway_factor`` × upper. Raises ``ValueError`` when the arrays
    differ in length.
    """
    arrays = [np.asarray(a, dtype=np.float64).ravel() for a in (times, values, lower, upper)]
    if len({a.size for a in arrays}) != 1:
        raise ValueError("times, values, lower and upper differ in length")
    keep = np.isfinite(arrays[0]) & np.isfinite(arrays[1])
    order = np.argsort(arrays[0][keep], kind="stable")
    t, v, lo, up = (a[keep][order] for a in arrays)
    if t.size == 0:
        return None
    with np.errstate(all="ignore"):
        flagged, pinned = _flag_runaway(v, up, settings, ceiling)
        steps = np.diff(t)
        step = float(np.median(steps[steps > 0])) if (steps > 0).any() else 0.0
        for first, last in reversed(_runs(t, flagged, max_gap=RUNAWAY_GAP_STEPS * step)):
            duration = float(t[last] - t[first]) + step
            if duration >= settings.runaway_sustain_s:
                run = slice(first, last + 1)
                return _runaway(
                    t[run],
                    v[run],
                    lo[run],
                    up[run],
                    pinned[run],
                    duration=duration,
                    ongoing=last == t.size - 1,
                    settings=settings,
                    ceiling=ceiling,
                )
    return None


def _flag_runaway(
    v: FloatArray, up: FloatArray, settings: AnomalySettings, ceiling: float | None
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Samples far above the band, and samples pinned at the ceiling while above it."""
    band = np.isfinite(up)
    far = band & (v > up * settings.runaway_factor)
    pinned = np.zeros(v.shape, dtype=np.bool_)
    if ceiling is not None and math.isfinite(ceiling) and ceiling > 0:
        pinned = band & (v > up) & (v >= ceiling * settings.runaway_ceiling_fraction)
    return far | pinned, pinned & ~far


def _runs(
    t: FloatArray, flagged: npt.NDArray[np.bool_], *, max_gap: float
) -> list[tuple[int, int]]:
    """Maximal runs of consecutive flagged samples no more than ``max_gap`` apart (inclusive)."""
    idx = np.flatnonzero(flagged)
    if idx.size == 0:
        return []
    new = np.ones(idx.size, dtype=np.bool_)
    new[1:] = (np.diff(idx) != 1) | (np.diff(t[idx]) > max_gap)
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:] - 1, idx.size - 1)
    return [(int(idx[a]), int(idx[b])) for a, b in zip(starts, ends, strict=True)]


def _runaway(
    t: FloatArray,
    v: FloatArray,
    lo: FloatArray,
    up: FloatArray,
    pinned: npt.NDArray[np.bool_],
    *,
    duration: float,
    ongoing: bool,
    settings: AnomalySettings,
    ceiling: float | None,
) -> Anomaly:
    ratio = float(np.median(np.where(up > 0, v / up, np.inf)))
    pinned_share = float(np.mean(pinned))
    med_v, med_up, peak = float(np.median(v)), float(np.median(up)), float(np.max(v))
    med_lo = float(np.nanmedian(lo)) if np.isfinite(lo).any() else math.nan
    far = ratio / settings.runaway_factor if settings.runaway_factor > 0 else ratio
    long = duration / settings.runaway_sustain_s if settings.runaway_sustain_s > 0 else math.inf
    if far >= RUNAWAY_FAR_CRITICAL or long >= RUNAWAY_LONG_CRITICAL:
        severity = Severity.CRITICAL
    elif far >= RUNAWAY_FAR_WARNING or long >= RUNAWAY_LONG_WARNING or pinned_share >= 0.5:
        severity = Severity.WARNING
    else:
        severity = Severity.INFO
    band = f"a band of {med_lo:.3g}–{med_up:.3g}"
    if pinned_share >= 0.5 and ceiling is not None:
        reason = (
            f"usage pinned at the ceiling {ceiling:.3g} for {_duration(duration)} "
            f"(median {med_v:.3g} against {band})"
        )
    else:
        reason = (
            f"usage at {ratio:.1f}× the forecast upper bound for {_duration(duration)} "
            f"(median {med_v:.3g} against {band}, peak {peak:.3g})"
        )
    reason += "; still going" if ongoing else "; ended"
    return Anomaly(
        kind=AnomalyKind.RUNAWAY,
        severity=severity,
        reason=reason,
        started_at=float(t[0]),
        evidence=(
            ("duration_s", duration),
            ("ratio_to_upper", ratio),
            ("median_value", med_v),
            ("median_lower", med_lo),
            ("median_upper", med_up),
            ("peak_value", peak),
            ("pinned_fraction", pinned_share),
            ("ongoing", 1.0 if ongoing else 0.0),
        ),
    )


# ------------------------------------------------------------------------------ wording


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "an unbounded time"
    if seconds < HOUR_S:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY_S:
        return f"{seconds / HOUR_S:.1f} h"
    return f"{seconds / DAY_S:.1f} days"


def _bytes(n: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.3g} B"


def _bytes_rate(per_hour: float) -> str:
    return ("+" if per_hour >= 0 else "") + _bytes(per_hour) + "/h"
