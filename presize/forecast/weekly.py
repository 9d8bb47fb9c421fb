"""Weekly peak memory: what this container's memory did at this time last week.

Why: on the traces presize is measured on, many memory peaks come back on a weekly clock (a
Sunday backup, a weekly batch job, a report that runs on Mondays). A trailing window can only
cover such a peak by holding it for days after it happened, or be caught out when it returns.
Remembering the peak of each hour for the last week turns the recurrence into a forecast: for
the next step, the highest peak seen within ``± margin`` of the same time a week earlier. The
ladder can then let go of a peak sooner, because the week-ahead recurrence is covered by this
guard instead of by holding.

State is one maximum per hour over eight days (192 numbers per container), so the guard costs
a dictionary update per observation and a handful of lookups per forecast.
"""

from __future__ import annotations

import math


class WeeklyPeaks:
    """Hourly maxima over the last ``week_s`` + margin, and their value a week before a time."""

    __slots__ = ("_bucket_s", "_margin", "_peaks", "_week_s")

    def __init__(self, *, week_s: float, bucket_s: float, margin_buckets: int) -> None:
        if week_s <= 0 or bucket_s <= 0 or margin_buckets < 0:
            raise ValueError("WeeklyPeaks: week_s and bucket_s > 0, margin_buckets >= 0")
        self._week_s = week_s
        self._bucket_s = bucket_s
        self._margin = margin_buckets
        self._peaks: dict[int, float] = {}

    def observe(self, time: float, value: float) -> None:
        if math.isnan(value):
            return
        b = int(time // self._bucket_s)
        if value > self._peaks.get(b, -math.inf):
            self._peaks[b] = value
        oldest = int((time - self._week_s) // self._bucket_s) - 2 * self._margin - 1
        if len(self._peaks) > 2 * (self._week_s / self._bucket_s):
            for k in [k for k in self._peaks if k < oldest]:
                del self._peaks[k]

    def state(self) -> list[tuple[int, float]]:
        """The hourly peaks as (hour index, peak) pairs, oldest first (for checkpoints)."""
        return sorted(self._peaks.items())

    def load(self, state: list[tuple[int, float]]) -> None:
        """Take the peaks of :meth:`state` (merged into what is already known)."""
        for bucket, value in state:
            if value > self._peaks.get(int(bucket), -math.inf):
                self._peaks[int(bucket)] = float(value)

    def week_before(self, time: float) -> float:
        """The highest hourly peak within the margin of ``time`` − one week; NaN if none."""
        b = int((time - self._week_s) // self._bucket_s)
        values = [self._peaks[k] for k in range(b - self._margin, b + self._margin + 1)
                  if k in self._peaks]
        return max(values) if values else math.nan
