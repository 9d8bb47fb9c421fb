"""Short-horizon forecaster: trailing maximum × a conformal ratio quantile.

Why this shape: what decides throttling and OOM risk in the next minutes is how far the next
peak can rise above the recent peak. Learning that *ratio* (next peak / trailing maximum) per
container in a decaying histogram gives a distribution-free forecast whose quantiles are
calibrated by construction (split conformal prediction on a multiplicative residual), costs
O(1) per sample, and adapts to each container: a flat service learns ratios near 1.0 and gets a
tight band, a bursty one learns ratios of 2 or 3 and gets headroom. The quantiles are refreshed
on a schedule (``refresh_s``) rather than on every sample, which keeps the per-second cost of
the agent to a few dictionary operations; :class:`AdaptiveLevel` corrects the interval level
when the container drifts.
"""

from __future__ import annotations

import math

from presize.forecast.calibration import AdaptiveLevel, central_quantiles
from presize.forecast.windows import TrailingMax
from presize.histogram import DecayingHistogram, HistogramOptions
from presize.model import Forecast
from presize.settings import ShortHorizonSettings

RATIO_OPTIONS_FIRST = 0.01
RATIO_OPTIONS_MAX = 1000.0
# 1 % buckets: a smooth container's ratios sit within a few percent of 1.0, and 5 % buckets
# (VPA's, fine for sizes) would make its interval a whole bucket wide and over-cover.
RATIO_GROWTH = 0.01


class ShortHorizonForecaster:
    """Forecast of the next peak as ``trailing max × ratio quantile``."""

    name = "short-horizon"

    def __init__(self, settings: ShortHorizonSettings | None = None) -> None:
        self.s = settings or ShortHorizonSettings()
        self._trailing = TrailingMax(self.s.window_steps)
        self._ratios = DecayingHistogram(
            HistogramOptions(
                first_bucket_size=RATIO_OPTIONS_FIRST,
                max_value=RATIO_OPTIONS_MAX,
                half_life_s=self.s.half_life_s,
                growth=RATIO_GROWTH,
            )
        )
        self._n = 0
        self._refreshed_at = -math.inf
        self._q_lo = self._q_mid = 1.0
        self._q_hi = self._q_tail = self.s.prior_upper
        self._pending: tuple[float, float] | None = None
        self.calibration = AdaptiveLevel(target=self.s.interval_level, gamma=self.s.aci_gamma)
        self.last = math.nan

    # ------------------------------------------------------------------------------ input
    def observe(self, time: float, value: float) -> None:
        if math.isnan(value):
            self._trailing.push(value)
            self._pending = None
            return
        ref = self._trailing.value()
        if not math.isnan(ref):
            self._ratios.add(value / max(ref, self.s.floor), 1.0, time)
            self._n += 1
        if self._pending is not None:
            lo, hi = self._pending
            self.calibration.update(lo <= value <= hi)
            self._pending = None
        self._trailing.push(value)
        self.last = value

    # ----------------------------------------------------------------------------- output
    def reference(self) -> float:
        """The trailing maximum the forecast scales (floored); NaN before any sample."""
        ref = self._trailing.value()
        return ref if math.isnan(ref) else max(ref, self.s.floor)

    def _refresh(self, time: float) -> None:
        if self._n < self.s.min_samples:
            return
        if time - self._refreshed_at < self.s.refresh_s:
            return
        lo_q, hi_q = central_quantiles(self.calibration.level)
        h = self._ratios
        self._q_lo = h.percentile_start(lo_q)
        self._q_mid = h.percentile(0.5)
        self._q_hi = h.percentile(hi_q)
        self._q_tail = h.percentile(self.s.upper_q)
        self._refreshed_at = time

    def tail(self, time: float) -> float:
        """The ``upper_q`` quantile of the next peak (what sizing uses); NaN before any sample."""
        ref = self.reference()
        if math.isnan(ref):
            return ref
        self._refresh(time)
        return ref * self._q_tail

    def tail_ratio(self, time: float) -> float:
        """How far above its trailing maximum the next peak may go (the ``upper_q`` ratio)."""
        self._refresh(time)
        return self._q_tail

    def forecast(self, time: float, horizon_s: float) -> Forecast | None:
        ref = self.reference()
        if math.isnan(ref):
            return None
        self._refresh(time)
        lower, upper = ref * self._q_lo, ref * self._q_hi
        if self._n >= self.s.min_samples:
            self._pending = (lower, upper)
        return Forecast(
            horizon_s=horizon_s,
            point=ref * self._q_mid,
            lower=lower,
            upper=upper,
            level=self.s.interval_level,
            model=self.name,
        )
