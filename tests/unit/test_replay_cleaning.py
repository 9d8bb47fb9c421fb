"""The cleaning steps shared by the trace loaders: dedupe, grid, forward-fill, trim."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presize.replay.cleaning import clean, dedupe_sorted, forward_fill, to_grid, trim

NAN = np.nan


def arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(actual, expected)  # NaN == NaN here


# --------------------------------------------------------------------------------- dedupe


def test_dedupe_sorted_orders_by_time_and_keeps_the_last_duplicate() -> None:
    times = arr(600, 0, 300, 300, 0)
    idx = dedupe_sorted(times)
    assert idx.tolist() == [4, 3, 0]  # the later row of each duplicated time
    assert times[idx].tolist() == [0, 300, 600]


def test_dedupe_sorted_of_nothing_is_nothing() -> None:
    assert dedupe_sorted(arr()).tolist() == []


# ----------------------------------------------------------------------------------- grid


def test_to_grid_rounds_to_the_nearest_step_from_the_first_sample() -> None:
    start, cols = to_grid(arr(1000, 1290, 1610, 1900), {"v": (arr(1, 2, 3, 4), "mean")})
    # Offsets 0, 290, 610, 900 -> bins 0, 1, 2, 3.
    assert start == 1000.0
    assert_same(cols["v"], arr(1, 2, 3, 4))


def test_to_grid_combines_samples_in_one_bin_per_column() -> None:
    times = arr(0, 100, 300, 1200)  # 0 and 100 share bin 0; bins 2 and 3 are empty
    values = arr(2, 6, 5, 7)
    _, cols = to_grid(
        times, {"mean": (values, "mean"), "max": (values, "max"), "last": (values, "last")}
    )
    assert_same(cols["mean"], arr(4, 5, NAN, NAN, 7))
    assert_same(cols["max"], arr(6, 5, NAN, NAN, 7))
    assert_same(cols["last"], arr(6, 5, NAN, NAN, 7))


def test_to_grid_drops_duplicate_timestamps_before_binning() -> None:
    _, cols = to_grid(arr(0, 300, 300, 600), {"v": (arr(1, 2, 3, 4), "mean")})
    assert_same(cols["v"], arr(1, 3, 4))  # not the mean of 2 and 3


def test_to_grid_sorts_unsorted_input() -> None:
    start, cols = to_grid(arr(600, 0, 300), {"v": (arr(3, 1, 2), "mean")})
    assert start == 0.0
    assert_same(cols["v"], arr(1, 2, 3))


def test_to_grid_of_nothing_is_empty_columns() -> None:
    start, cols = to_grid(arr(), {"v": (arr(), "mean")})
    assert start == 0.0
    assert cols["v"].size == 0


# ---------------------------------------------------------------------------- forward fill


@pytest.mark.parametrize(
    ("values", "max_fill", "expected"),
    [
        ((1, NAN, NAN, 2), 2, (1, 1, 1, 2)),  # a gap of exactly max_fill is filled
        ((1, NAN, NAN, NAN, 2), 2, (1, NAN, NAN, NAN, 2)),  # a longer one stays missing
        ((NAN, NAN, 1, 2), 5, (NAN, NAN, 1, 2)),  # nothing to fill from at the start
        ((1, 2, NAN), 5, (1, 2, NAN)),  # a trailing gap is not a gap yet: left for trim
        ((1, NAN, 2, NAN, NAN, NAN, 3), 1, (1, 1, 2, NAN, NAN, NAN, 3)),
        ((1, NAN, 2), 0, (1, NAN, 2)),
    ],
)
def test_forward_fill_fills_only_short_inner_gaps(
    values: tuple[float, ...], max_fill: int, expected: tuple[float, ...]
) -> None:
    original = arr(*values)
    filled = forward_fill(original, max_fill=max_fill)
    assert_same(filled, arr(*expected))
    assert_same(original, arr(*values))  # the input is not modified


# ------------------------------------------------------------------------------------ trim


def test_trim_cuts_missing_steps_at_both_ends_by_key() -> None:
    offset, cols = trim(
        {"k": arr(NAN, NAN, 1, NAN, 2, NAN), "other": arr(0, 1, 2, 3, 4, 5)}, key="k"
    )
    assert offset == 2
    assert_same(cols["k"], arr(1, NAN, 2))
    assert_same(cols["other"], arr(2, 3, 4))


def test_trim_of_an_all_missing_key_is_empty() -> None:
    offset, cols = trim({"k": arr(NAN, NAN), "o": arr(1, 2)}, key="k")
    assert offset == 0
    assert cols["k"].size == 0
    assert cols["o"].size == 0


# ---------------------------------------------------------------------------- the pipeline


def test_clean_fills_short_gaps_keeps_long_ones_and_trims() -> None:
    step = 300.0
    # Steps 0..2, a 2-step hole (3, 4), steps 5..6, a 4-step hole (7..10), steps 11..12.
    present = [0, 1, 2, 5, 6, 11, 12]
    times = arr(*[100.0 + i * step for i in present])
    values = arr(*[float(i) for i in present])
    start, cols = clean(times, {"cpu": (values, "mean")}, key="cpu", max_fill=3)
    assert start == 100.0
    assert_same(
        cols["cpu"], arr(0, 1, 2, 2, 2, 5, 6, NAN, NAN, NAN, NAN, 11, 12)
    )


def test_clean_aligns_every_column_with_the_key_column_gaps() -> None:
    times = arr(0, 300, 600, 900, 1200, 1500, 1800, 2100, 2400)
    cpu = arr(NAN, 1, 2, NAN, NAN, NAN, NAN, 3, 4)
    mem = arr(9, 9, 9, 9, 9, 9, 9, 9, 9)
    start, cols = clean(
        times, {"cpu": (cpu, "mean"), "mem": (mem, "mean")}, key="cpu", max_fill=2
    )
    # The leading NaN is trimmed (start moves by one step); the 4-step hole stays in both.
    assert start == 300.0
    assert_same(cols["cpu"], arr(1, 2, NAN, NAN, NAN, NAN, 3, 4))
    assert_same(cols["mem"], arr(9, 9, NAN, NAN, NAN, NAN, 9, 9))


def test_clean_of_nothing_is_empty() -> None:
    _, cols = clean(arr(), {"cpu": (arr(), "mean")}, key="cpu")
    assert cols["cpu"].size == 0


@settings(max_examples=150, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=40),
    max_fill=st.integers(min_value=0, max_value=13),
)
def test_clean_never_invents_values_and_never_leaves_short_inner_gaps(
    offsets: list[int], max_fill: int
) -> None:
    times = arr(*[o * 300.0 for o in offsets])
    values = arr(*[float(o) for o in offsets])
    start, cols = clean(times, {"v": (values, "last")}, key="v", max_fill=max_fill)
    v = cols["v"]
    assert not np.isnan(v[0])
    assert not np.isnan(v[-1])
    assert set(v[~np.isnan(v)].tolist()) <= set(values.tolist())
    assert start == min(offsets) * 300.0
    # Every remaining gap is longer than max_fill.
    gap = 0
    for x in v:
        if np.isnan(x):
            gap += 1
        else:
            assert gap == 0 or gap > max_fill
            gap = 0
