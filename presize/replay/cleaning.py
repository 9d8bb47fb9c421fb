"""Pure cleaning steps shared by all trace loaders.

The steps follow the replay reference so that figures are comparable across implementations:

1. sort by time and drop duplicate timestamps, keeping the last;
2. put samples on a grid anchored at the first sample, rounding each time to the nearest grid
   point; several samples in one bin are combined (mean for means, max for maxima);
3. forward-fill gaps of up to ``max_fill`` steps; longer gaps stay missing (``NaN``), so they
   are neither shown to policies nor scored;
4. trim missing steps at both ends.

Every function takes arrays and returns arrays; none reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt

from presize.replay.series import STEP_SECONDS, FloatArray

Aggregate = Literal["mean", "max", "last"]


def dedupe_sorted(times: FloatArray) -> npt.NDArray[np.intp]:
    """Indices that sort ``times`` and keep only the last row of each duplicated timestamp."""
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    keep_last = np.ones(sorted_times.shape[0], dtype=bool)
    keep_last[:-1] = sorted_times[1:] != sorted_times[:-1]
    return order[keep_last]


def to_grid(
    times: FloatArray,
    columns: Mapping[str, tuple[FloatArray, Aggregate]],
    *,
    step: float = STEP_SECONDS,
) -> tuple[float, dict[str, FloatArray]]:
    """Bin samples on a grid anchored at the first sample; return (start, binned columns)."""
    if times.size == 0:
        return 0.0, {name: np.empty(0) for name in columns}
    idx = dedupe_sorted(times)
    t = times[idx]
    start = float(t[0])
    bins = np.rint((t - start) / step).astype(np.int64)
    n = int(bins[-1]) + 1
    counts = np.bincount(bins, minlength=n).astype(np.float64)
    out: dict[str, FloatArray] = {}
    for name, (values, how) in columns.items():
        v = values[idx].astype(np.float64)
        if how == "mean":
            sums = np.bincount(bins, weights=v, minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                col = np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)
        elif how == "max":
            col = np.full(n, -np.inf)
            np.maximum.at(col, bins, v)
            col[counts == 0] = np.nan
        else:
            col = np.full(n, np.nan)
            col[bins] = v  # later rows win, as the rows are time-sorted
        out[name] = col
    return start, out


def forward_fill(values: FloatArray, *, max_fill: int) -> FloatArray:
    """Fill runs of ``NaN`` of at most ``max_fill`` steps with the last value before them."""
    out = values.copy()
    n = out.shape[0]
    i = 0
    while i < n:
        if np.isnan(out[i]) and i > 0 and not np.isnan(out[i - 1]):
            j = i
            while j < n and np.isnan(out[j]):
                j += 1
            if j - i <= max_fill and j < n:
                out[i:j] = out[i - 1]
            i = j
        else:
            i += 1
    return out


def trim(columns: Mapping[str, FloatArray], *, key: str) -> tuple[int, dict[str, FloatArray]]:
    """Cut missing steps (by ``key``) at both ends; return (offset of the first kept step, cut)."""
    valid = ~np.isnan(columns[key])
    if not valid.any():
        return 0, {name: col[:0] for name, col in columns.items()}
    first = int(np.argmax(valid))
    last = int(valid.shape[0] - np.argmax(valid[::-1]))
    return first, {name: col[first:last] for name, col in columns.items()}


def clean(
    times: FloatArray,
    columns: Mapping[str, tuple[FloatArray, Aggregate]],
    *,
    key: str,
    max_fill: int = 12,
    step: float = STEP_SECONDS,
) -> tuple[float, dict[str, FloatArray]]:
    """The whole pipeline: grid, fill short gaps, trim. Returns (start time, columns)."""
    start, grid = to_grid(times, columns, step=step)
    filled = {name: forward_fill(col, max_fill=max_fill) for name, col in grid.items()}
    # A step is valid only where the key column is; align the others' gaps with it.
    invalid = np.isnan(filled[key]) if filled else np.zeros(0, dtype=bool)
    for col in filled.values():
        col[invalid] = np.nan
    first, cut = trim(filled, key=key)
    return start + first * step, cut
