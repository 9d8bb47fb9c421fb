"""TrailingMax: the maximum of the last ``size`` samples, counted by samples, NaN never wins."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presize.forecast.windows import TrailingMax

NAN = math.nan


def pushed(size: int, values: list[float]) -> list[float]:
    """The window maximum after each push."""
    window = TrailingMax(size)
    out = []
    for v in values:
        window.push(v)
        out.append(window.value())
    return out


def same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize(
    ("size", "values", "expected"),
    [
        # Hand-computed: a window of 3 over a rise, a fall and a plateau.
        (3, [1.0, 5.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0], [1, 5, 5, 5, 4, 4, 4, 0]),
        # A window of 1 is the last sample.
        (1, [3.0, 1.0, 2.0], [3, 1, 2]),
        # NaN counts as a sample (the window moves) but never becomes the maximum.
        (2, [4.0, NAN, 1.0, NAN, NAN, 2.0], [4, 4, 1, 1, NAN, 2]),
        # A window holding only NaN has no maximum.
        (3, [NAN, NAN], [NAN, NAN]),
        # Equal values: the newer one takes over, so the window still expires correctly.
        (2, [5.0, 5.0, 1.0, 1.0], [5, 5, 5, 1]),
        # Larger than the sequence: the running maximum.
        (100, [2.0, 7.0, 3.0, 9.0, 1.0], [2, 7, 7, 9, 9]),
        # Negative values are numbers like any other.
        (2, [-1.0, -3.0, -2.0], [-1, -1, -2]),
    ],
)
def test_trailing_max_matches_hand_computed_windows(
    size: int, values: list[float], expected: list[float]
) -> None:
    assert same(pushed(size, values), [float(e) for e in expected])


def test_trailing_max_is_nan_before_any_sample() -> None:
    window = TrailingMax(4)
    assert math.isnan(window.value())
    assert window.count == 0


def test_trailing_max_counts_every_push_including_nan() -> None:
    window = TrailingMax(2)
    for v in (1.0, NAN, 2.0):
        window.push(v)
    assert window.count == 3
    assert window.size == 2


def test_trailing_max_value_is_idempotent() -> None:
    window = TrailingMax(2)
    for v in (9.0, 1.0, 2.0):
        window.push(v)
    assert window.value() == 2.0
    assert window.value() == 2.0


@pytest.mark.parametrize("size", [0, -1])
def test_trailing_max_rejects_empty_windows(size: int) -> None:
    with pytest.raises(ValueError, match="window size"):
        TrailingMax(size)


def brute_force(size: int, values: list[float]) -> list[float]:
    out = []
    for i in range(len(values)):
        numbers = [v for v in values[max(0, i - size + 1) : i + 1] if not math.isnan(v)]
        out.append(max(numbers) if numbers else NAN)
    return out


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=20),
    values=st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=True, width=64),
            st.just(NAN),
            st.sampled_from([0.0, 1.0, 2.0]),  # ties
        ),
        max_size=80,
    ),
)
def test_trailing_max_equals_brute_force_max(size: int, values: list[float]) -> None:
    assert same(pushed(size, values), brute_force(size, values))
