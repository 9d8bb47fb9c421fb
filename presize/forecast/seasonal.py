"""Seasonal forecaster: daily and weekly seasonality with trend, on statsmodels.

This is the only module that imports statsmodels (an import-linter contract says so). It works
on *hourly peaks*: the controller's profiles are kept at that grain, a day is 24 points and a
week 168, so a fit over two weeks is a few hundred points and takes milliseconds.

How: STL (or MSTL with a weekly period once two weeks are known) splits the hourly peaks into
trend, seasonal and residual parts. The forecast for each coming hour is the last trend level
plus its recent slope (damped, so one busy afternoon does not become a runaway line), plus the
seasonal value of that hour of the day (and week), plus an empirical quantile of the
residuals. Residual quantiles make the interval distribution-free; the caller's calibration
keeps them honest. The model is refitted on a schedule (``refit_s``), never on the request
path; between refits a forecast is a lookup.

Intervals: in-sample residual quantiles (widened, since the fit has seen those residuals) until
the forecaster has scored ``MIN_OUT_OF_SAMPLE`` of its own hourly forecasts; from then on, the
quantiles of those out-of-sample errors (split conformal prediction).

Fallback: with less than ``min_history_s`` of history, or when a fit fails (statsmodels raises
on degenerate input), ``forecast`` returns ``None`` and records why in ``last_error``; the
ensemble then uses its other members.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from statsmodels.tsa.seasonal import MSTL, STL

from presize.model import Forecast
from presize.settings import SeasonalSettings

FloatArray = npt.NDArray[np.float64]
DAMPING = 0.9
IN_SAMPLE_WIDENING = 2.5
MIN_OUT_OF_SAMPLE = 24


@dataclass(frozen=True)
class SeasonalFit:
    """What a fit leaves behind: enough to forecast any hour ahead by lookup."""

    fitted_at: float
    last_bucket: int
    level: float
    slope: float
    seasonal: FloatArray  # one full longest period, indexed by bucket % len
    resid_lo: float
    resid_mid: float
    resid_hi: float
    model: str


def fit_seasonal(
    buckets: FloatArray, *, last_bucket: int, settings: SeasonalSettings, now: float
) -> SeasonalFit:
    """Fit trend + seasonality to hourly peaks (NaN-free, oldest first). Pure; may raise."""
    daily = max(2, round(settings.daily_period_s / settings.bucket_s))
    weekly = max(2, round(settings.weekly_period_s / settings.bucket_s))
    n = buckets.shape[0]
    # statsmodels drops a period unless the series is longer than two of them.
    if n > 2 * weekly:
        res = MSTL(buckets, periods=(daily, weekly)).fit()
        seasonal_all = np.asarray(res.seasonal).sum(axis=1)
        period, model = weekly, "mstl-daily-weekly"
    else:
        res = STL(buckets, period=daily).fit()
        seasonal_all = np.asarray(res.seasonal)
        period, model = daily, "stl-daily"
    trend = np.asarray(res.trend)
    resid = np.asarray(res.resid)
    slope_window = min(daily, n - 1)
    slope = float((trend[-1] - trend[-1 - slope_window]) / slope_window) if slope_window else 0.0
    seasonal = latest_by_phase(seasonal_all, last_bucket=last_bucket, period=period)
    tail = (1.0 - settings.level) / 2.0
    lo, mid, hi = np.quantile(resid, [tail, 0.5, 1.0 - tail])
    # In-sample residuals understate out-of-sample error (the fit has seen them); until the
    # forecaster has its own out-of-sample errors, widen them by this factor.
    widen = IN_SAMPLE_WIDENING
    return SeasonalFit(now, last_bucket, float(trend[-1]), slope, seasonal,
                       float(mid + (lo - mid) * widen), float(mid), float(mid + (hi - mid) * widen),
                       model)


def latest_by_phase(values: FloatArray, *, last_bucket: int, period: int) -> FloatArray:
    """The most recent value of each phase (absolute bucket number modulo ``period``)."""
    n = values.shape[0]
    out = np.zeros(period)
    seen = np.zeros(period, dtype=bool)
    first_bucket = last_bucket - (n - 1)
    for i in range(n - 1, max(n - 1 - period, -1), -1):
        phase = (first_bucket + i) % period
        if not seen[phase]:
            out[phase] = values[i]
            seen[phase] = True
    return out


def predict_bucket(fit: SeasonalFit, bucket: int) -> tuple[float, float, float]:
    """(lower, point, upper) for one future bucket, from a fit."""
    ahead = bucket - fit.last_bucket
    damped = sum(DAMPING**k for k in range(1, ahead + 1)) if ahead > 0 else 0.0
    base = fit.level + fit.slope * damped + float(fit.seasonal[bucket % fit.seasonal.shape[0]])
    return base + fit.resid_lo, base + fit.resid_mid, base + fit.resid_hi


class SeasonalForecaster:
    """Hourly-peak STL/MSTL forecaster, refitted every ``refit_s``."""

    name = "seasonal"

    def __init__(self, settings: SeasonalSettings | None = None) -> None:
        self.s = settings or SeasonalSettings()
        self._peaks: deque[tuple[int, float]] = deque()
        self._fit: SeasonalFit | None = None
        self._predicted: dict[int, float] = {}
        self._errors: deque[float] = deque(maxlen=14 * 24)
        self.last_error: str | None = None
        self.fits = 0

    def _bucket(self, time: float) -> int:
        return math.floor(time / self.s.bucket_s)

    @property
    def fit(self) -> SeasonalFit | None:
        """The current fit, or ``None`` before the first successful one."""
        return self._fit

    def install(self, fit: SeasonalFit | None, error: str | None = None) -> None:
        """Use ``fit``, computed elsewhere (a worker thread ran :func:`fit_seasonal` on a copy
        of :meth:`history`), so the slow part never holds the caller's lock."""
        self._fit = fit
        self.last_error = error
        if fit is not None:
            self.fits += 1

    def observe(self, time: float, value: float) -> None:
        if math.isnan(value):
            return
        b = self._bucket(time)
        if self._peaks and self._peaks[-1][0] == b:
            if value > self._peaks[-1][1]:
                self._peaks[-1] = (b, value)
        else:
            if self._peaks:
                self._score_bucket(*self._peaks[-1])
            self._peaks.append((b, value))
        keep_from = b - int(self.s.history_s / self.s.bucket_s)
        while self._peaks and self._peaks[0][0] < keep_from:
            self._peaks.popleft()

    def _score_bucket(self, bucket: int, actual: float) -> None:
        """A bucket is complete: keep the error of the point forecast made for it."""
        predicted = self._predicted.pop(bucket, None)
        for old in [k for k in self._predicted if k < bucket]:
            del self._predicted[old]
        if predicted is not None:
            self._errors.append(actual - predicted)

    def _calibrated(self, fit: SeasonalFit) -> SeasonalFit:
        """Replace the in-sample band with out-of-sample error quantiles once there are enough
        (split conformal prediction on the forecaster's own past errors)."""
        if len(self._errors) < MIN_OUT_OF_SAMPLE:
            return fit
        tail = (1.0 - self.s.level) / 2.0
        lo, mid, hi = np.quantile(np.asarray(self._errors), [tail, 0.5, 1.0 - tail])
        return replace(fit, resid_lo=float(lo), resid_mid=float(mid), resid_hi=float(hi))

    def history(self) -> tuple[int, FloatArray]:
        """Complete hourly peaks (gaps forward-filled) up to the last complete bucket."""
        if len(self._peaks) < 2:
            return 0, np.empty(0)
        first, last = self._peaks[0][0], self._peaks[-1][0] - 1
        out = np.full(last - first + 1, np.nan) if last >= first else np.empty(0)
        for b, v in self._peaks:
            if b <= last:
                out[b - first] = v
        for i in range(1, out.shape[0]):
            if np.isnan(out[i]):
                out[i] = out[i - 1]
        return last, out

    def refit(self, now: float) -> SeasonalFit | None:
        last, series = self.history()
        needed = int(self.s.min_history_s / self.s.bucket_s)
        if series.shape[0] < needed or np.isnan(series).any():
            self.last_error = f"history {series.shape[0]} h < {needed} h"
            self._fit = None
            return None
        try:
            self._fit = fit_seasonal(series, last_bucket=last, settings=self.s, now=now)
            self.last_error = None
            self.fits += 1
        except (ValueError, np.linalg.LinAlgError) as exc:
            self.last_error = f"fit failed: {exc}"
            self._fit = None
        return self._fit

    def forecast(self, time: float, horizon_s: float) -> Forecast | None:
        if self._fit is None or time - self._fit.fitted_at >= self.s.refit_s:
            self.refit(time)
        fit = self._fit
        if fit is None:
            return None
        fit = self._calibrated(fit)
        first = self._bucket(time)
        last = self._bucket(time + max(horizon_s, 0.0))
        preds = [predict_bucket(fit, b) for b in range(first, last + 1)]
        self._predicted.setdefault(first, preds[0][1])
        lower = max(0.0, float(min(p[0] for p in preds)))
        point = max(0.0, float(max(p[1] for p in preds)))
        upper = max(0.0, float(max(p[2] for p in preds)))
        return Forecast(horizon_s, point, lower, upper, self.s.level, fit.model)
