"""Weekly peak memory: what this container's memory did at this time last week.

Why: on the traces presize is measured on, some memory peaks come back on a weekly clock (a
weekly spike to 20-30 GB on some Bitbrains VMs, day-1 and day-8 peaks of a family of Google
2011 jobs; in a cluster, a weekly batch or backup). A trailing window can only cover such a
peak by holding it for days after it happened, or be caught out when it returns. Remembering
the peak of each hour for the last week turns the recurrence into a forecast: for the next
step, the highest peak seen within ``± margin`` of the same time a week earlier. The ladder
can then let go of a peak sooner, because the week-ahead recurrence is covered by this guard
instead of by holding.

State is one maximum per hour in a fixed ring of a week and a few hours (about 180 slots of
two machine numbers, ~3 KB; the controller keeps one per container profile, that is per
workload and container name), so the guard costs an array update per observation and a
handful of lookups per forecast.
"""

from __future__ import annotations

import math
from array import array


class WeeklyPeaks:
    """Hourly maxima over the last week and a margin, and their value a week before a time."""

    __slots__ = ("_bucket_s", "_ids", "_margin", "_peaks", "_week_s")

    def __init__(self, *, week_s: float, bucket_s: float, margin_buckets: int) -> None:
        if week_s <= 0 or bucket_s <= 0 or margin_buckets < 0:
            raise ValueError("WeeklyPeaks: week_s and bucket_s > 0, margin_buckets >= 0")
        self._week_s = week_s
        self._bucket_s = bucket_s
        self._margin = margin_buckets
        # Slot k % size holds hour k's peak while _ids says it is hour k (else it is stale).
        size = math.ceil(week_s / bucket_s) + 2 * margin_buckets + 2
        self._ids = array("q", [-1]) * size
        self._peaks = array("d", [math.nan]) * size

    def observe(self, time: float, value: float) -> None:
        if math.isnan(value):
            return
        b = int(time // self._bucket_s)
        slot = b % len(self._ids)
        if self._ids[slot] != b:
            self._ids[slot] = b
            self._peaks[slot] = value
        elif value > self._peaks[slot]:
            self._peaks[slot] = value

    def state(self) -> list[tuple[int, float]]:
        """The hourly peaks as (hour index, peak) pairs, oldest first (for checkpoints)."""
        return sorted((b, p) for b, p in zip(self._ids, self._peaks, strict=True) if b >= 0)

    def load(self, state: list[tuple[int, float]]) -> None:
        """Take the peaks of :meth:`state` (merged into what is already known)."""
        for bucket, value in state:
            self.observe(int(bucket) * self._bucket_s, float(value))

    def week_before(self, time: float) -> float:
        """The highest hourly peak within the margin of ``time`` − one week; NaN if none."""
        b = int((time - self._week_s) // self._bucket_s)
        size = len(self._ids)
        best = math.nan
        for k in range(b - self._margin, b + self._margin + 1):
            slot = k % size
            if self._ids[slot] == k and not self._peaks[slot] <= best:
                best = self._peaks[slot]
        return best
