"""Percentile forecaster: the VPA-style answer, kept as an ensemble member and a fallback.

It forgets slowly (a decaying histogram, 24 h half-life by default) and ignores time of day, so
it is the right answer for a steady container and a safe one for a new container with too
little history for anything else.
"""

from __future__ import annotations

import math

from presize.histogram import DecayingHistogram, HistogramOptions
from presize.model import Forecast


class PercentileForecaster:
    """Decayed percentiles of observed peaks: ``upper_q`` for the upper edge."""

    name = "percentile"

    def __init__(
        self, options: HistogramOptions, *, lower_q: float = 0.05, upper_q: float = 0.95
    ) -> None:
        self._hist = DecayingHistogram(options)
        self.lower_q = lower_q
        self.upper_q = upper_q

    def observe(self, time: float, value: float) -> None:
        if not math.isnan(value):
            self._hist.add(value, 1.0, time)

    def forecast(self, time: float, horizon_s: float) -> Forecast | None:
        if self._hist.is_empty():
            return None
        h = self._hist
        return Forecast(
            horizon_s=horizon_s,
            point=h.percentile(0.5),
            lower=h.percentile_start(self.lower_q),
            upper=h.percentile(self.upper_q),
            level=self.upper_q - self.lower_q,
            model=self.name,
        )
