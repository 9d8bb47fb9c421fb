"""Trailing-window statistics in O(1) amortised time per sample.

The agent keeps one of these per container and resource at 1 Hz, and the replay one per series
at every step, so a window maximum must not rescan the window: a monotone deque holds only the
samples that can still become the maximum.
"""

from __future__ import annotations

import math
from collections import deque


class TrailingMax:
    """Maximum of the last ``size`` samples (by count; ``NaN`` samples count but never win)."""

    __slots__ = ("_count", "_items", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size {size}: expected >= 1")
        self.size = size
        self._count = 0
        self._items: deque[tuple[int, float]] = deque()

    def push(self, value: float) -> None:
        i = self._count
        self._count += 1
        items = self._items
        while items and items[0][0] <= i - self.size:
            items.popleft()
        if math.isnan(value):
            return
        while items and items[-1][1] <= value:
            items.pop()
        items.append((i, value))

    def value(self) -> float:
        """The maximum over the window, ``NaN`` when it holds no number."""
        items = self._items
        while items and items[0][0] <= self._count - 1 - self.size:
            items.popleft()
        return items[0][1] if items else math.nan

    @property
    def count(self) -> int:
        return self._count
