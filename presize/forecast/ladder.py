"""Peak ladder: the shortest trailing window whose maximum has earned trust.

Memory is unforgiving: running short is an OOM kill, not a slowdown. A forecast of memory
therefore sizes to a trailing *maximum*, and the question is how far back to look. A long
window (days) is safe but holds on to old peaks; a short one (an hour) is tight but is only safe
for a container whose usage never jumps. The ladder answers per container from evidence: a
window is trusted when, over the last ``trust_s`` (or the container's whole life, if shorter,
once it is ``min_age_s`` old), usage never rose above ``factor`` × that window's trailing
maximum. A new container, or one that just surprised us, falls back to the longest window; a
container that has behaved climbs down to the tightest window that would have held. This is
record statistics made operational: new highs are common early in a container's life and rare
later, and the ladder spends headroom accordingly.
"""

from __future__ import annotations

import math
from collections import deque

from presize.forecast.windows import TrailingMax
from presize.model import Forecast
from presize.settings import LadderSettings


class PeakLadderForecaster:
    """Upper bound of the next peak from the tightest trusted trailing window."""

    name = "peak-ladder"

    def __init__(self, settings: LadderSettings | None = None) -> None:
        self.s = settings or LadderSettings()
        self._windows = [TrailingMax(w) for w in self.s.windows_steps]
        self._breaches: list[deque[float]] = [deque() for _ in self.s.windows_steps]
        self._first: float | None = None

    def observe(self, time: float, value: float, *, expected: float = math.nan) -> None:
        """One sample. ``expected`` is a level another forecaster had already predicted for
        this time (the weekly guard's): a value within it is no surprise and breaks no trust."""
        if not math.isnan(value):
            if self._first is None:
                self._first = time
            surprise = math.isnan(expected) or value > expected
            for window, breaches in zip(self._windows, self._breaches, strict=True):
                m = window.value()
                if surprise and not math.isnan(m) and value > self.s.factor * m:
                    breaches.append(time)
        horizon = time - self.s.trust_s
        for breaches in self._breaches:
            while breaches and breaches[0] <= horizon:
                breaches.popleft()
        for window in self._windows:
            window.push(value)

    def trusted_index(self, time: float) -> int:
        """Index of the window in use: the shortest trusted one, else the longest."""
        last = len(self._windows) - 1
        if self._first is None or time - self._first < self.s.min_age_s:
            return last
        for i, breaches in enumerate(self._breaches[:-1]):
            if not breaches and not math.isnan(self._windows[i].value()):
                return i
        return last

    def chosen_index(self, time: float) -> int:
        """The window the forecast uses: the trusted one, except that the longest window is
        insurance bought only when it is cheap (its peak within ``insurance_ratio`` of the
        next-longest window's); an old outlier that would hold the allocation far up for days
        is not worth it, a recurring level is."""
        i = self.trusted_index(time)
        last = len(self._windows) - 1
        if i == last and last > 0:
            long_peak = self._windows[last].value()
            shorter = self._windows[last - 1].value()
            if not math.isnan(shorter) and long_peak > self.s.insurance_ratio * shorter:
                return last - 1
        return i

    def trusted_window_steps(self, time: float) -> int:
        return self.s.windows_steps[self.trusted_index(time)]

    def ceiling(self) -> float:
        """``factor`` × the longest window's maximum: the most the ladder would ever ask for."""
        return self._windows[-1].value() * self.s.factor

    def forecast(self, time: float, horizon_s: float) -> Forecast | None:
        i = self.chosen_index(time)
        peak = self._windows[i].value()
        if math.isnan(peak):
            peak = max((w.value() for w in self._windows if not math.isnan(w.value())),
                       default=math.nan)
        if math.isnan(peak):
            return None
        recent = self._windows[0].value()
        return Forecast(
            horizon_s=horizon_s,
            point=peak,
            lower=recent if not math.isnan(recent) else peak,
            upper=peak * self.s.factor,
            level=1.0,
            model=f"{self.name}-{self.s.windows_steps[i]}",
        )
