"""The decaying histogram: bucket layout, percentiles, decay, renormalisation, merge, wire form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presize.errors import SettingsError, WireError, WireVersionError
from presize.histogram import (
    DecayingHistogram,
    HistogramOptions,
    bucket_boundaries,
    bucket_end,
    bucket_index,
    bucket_start,
    cpu_options,
    memory_options,
    num_buckets,
)

HALF_LIFE = 100.0
# Doubling buckets, so the layout can be checked by hand:
# [0, 1) [1, 3) [3, 7) [7, 15) [15, 31) [31, 63) [63, 127) [127, inf)
TOY = HistogramOptions(first_bucket_size=1.0, max_value=100.0, half_life_s=HALF_LIFE, growth=1.0)
TOY_STARTS = [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 127.0]
QS = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]


def toy(*samples: tuple[float, float, float], options: HistogramOptions = TOY) -> DecayingHistogram:
    histogram = DecayingHistogram(options)
    for value, weight, time in samples:
        histogram.add(value, weight, time)
    return histogram


def stored(histogram: DecayingHistogram) -> dict[int, float]:
    """The stored bucket weights, read through the public wire form."""
    buckets = histogram.to_dict()["buckets"]
    assert isinstance(buckets, list)
    return {int(i): float(w) for i, w in buckets}


# ------------------------------------------------------------------------------ layout


def test_toy_layout_doubles_each_bucket() -> None:
    assert num_buckets(TOY) == 8
    assert [bucket_start(TOY, i) for i in range(8)] == TOY_STARTS
    assert bucket_boundaries(TOY).tolist() == TOY_STARTS


def test_vpa_layouts_have_176_buckets_growing_five_percent() -> None:
    cpu, memory = cpu_options(), memory_options()
    assert num_buckets(cpu) == num_buckets(memory) == 176
    assert cpu.half_life_s == memory.half_life_s == 86_400.0
    assert [bucket_start(cpu, i) for i in range(3)] == [0.0, 0.01, 0.01 + 0.0105]
    assert bucket_start(cpu, 3) == pytest.approx(0.031525)
    assert bucket_start(memory, 1) == 1e7
    assert bucket_start(cpu, 175) >= 1000.0 > bucket_start(cpu, 174)


@pytest.mark.parametrize(
    ("value", "index"),
    [(-5.0, 0), (0.0, 0), (0.99, 0), (1.0, 1), (2.9, 1), (3.0, 2), (100.0, 6), (127.0, 7),
     (1e12, 7)],
)  # fmt: skip
def test_bucket_index_finds_the_half_open_bucket(value: float, index: int) -> None:
    assert bucket_index(TOY, value) == index
    assert DecayingHistogram(TOY).bucket_index(value) == index


@pytest.mark.parametrize(("index", "end"), [(0, 1.0), (3, 15.0), (6, 127.0), (7, 127.0)])
def test_bucket_end_is_the_next_start_except_for_the_open_last_bucket(
    index: int, end: float
) -> None:
    assert bucket_end(TOY, index) == end


@pytest.mark.parametrize("index", [-1, 8])
def test_bucket_start_rejects_indices_outside_the_layout(index: int) -> None:
    with pytest.raises(IndexError):
        bucket_start(TOY, index)


@pytest.mark.parametrize(
    "changes",
    [
        {"first_bucket_size": 0.0},
        {"first_bucket_size": -1.0},
        {"max_value": 0.5},
        {"growth": 0.0},
        {"half_life_s": math.nan},
        {"epsilon": math.inf},
        {"max_decay_exponent": 0.5},
        {"max_decay_exponent": 600.0},
        {"growth": True},
        {"first_bucket_size": 1e-9, "growth": 1e-6},  # would need millions of buckets
    ],
)
def test_options_reject_values_outside_their_range(changes: dict[str, float]) -> None:
    values: dict[str, float] = {"first_bucket_size": 1.0, "max_value": 100.0, "half_life_s": 1.0}
    with pytest.raises(SettingsError):
        HistogramOptions(**(values | changes))


# ------------------------------------------------------------------------------ percentiles


def test_empty_histogram_answers_zero() -> None:
    histogram = DecayingHistogram(TOY)
    assert histogram.is_empty()
    assert histogram.total_weight() == 0.0
    assert [histogram.percentile(q) for q in QS] == [0.0] * len(QS)


@pytest.mark.parametrize(("q", "expected"), [(0.0, 1.0), (0.25, 1.0), (0.26, 3.0), (0.5, 3.0),
                                             (0.75, 7.0), (0.9, 15.0), (1.0, 15.0)])  # fmt: skip
def test_percentile_is_the_end_of_the_bucket_reaching_the_quantile(
    q: float, expected: float
) -> None:
    histogram = toy((0.5, 1, 0), (2, 1, 0), (5, 1, 0), (10, 1, 0))
    assert histogram.percentile(q) == expected


def test_percentile_follows_weights() -> None:
    histogram = toy((10, 3, 0), (0.5, 1, 0))
    assert histogram.percentile(0.25) == 1.0
    assert histogram.percentile(0.3) == 15.0


def test_percentile_in_the_open_last_bucket_is_its_start() -> None:
    assert toy((1e6, 1, 0)).percentile(0.5) == 127.0


@pytest.mark.parametrize("q", [-0.1, 1.1, math.nan])
def test_percentile_rejects_quantiles_outside_zero_one(q: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        toy((1, 1, 0)).percentile(q)


@pytest.mark.parametrize(
    ("value", "weight", "time"),
    [(math.nan, 1.0, 0.0), (1.0, -1.0, 0.0), (1.0, math.inf, 0.0), (1.0, 1.0, math.inf)],
)
def test_add_rejects_nan_values_negative_weights_and_infinite_times(
    value: float, weight: float, time: float
) -> None:
    with pytest.raises(ValueError, match="histogram"):
        DecayingHistogram(TOY).add(value, weight, time)


# ------------------------------------------------------------------------------ decay


def test_a_weight_halves_after_one_half_life() -> None:
    histogram = toy((5, 1, 0))
    assert histogram.total_weight(at=0) == 1.0
    assert histogram.total_weight(at=HALF_LIFE) == 0.5
    assert histogram.total_weight(at=2 * HALF_LIFE) == 0.25
    assert histogram.total_weight(at=-HALF_LIFE) == 2.0


def test_a_newer_sample_outweighs_an_older_one() -> None:
    # 0.5 at t=0 weighs 1, 10 at t=100 weighs 2 (as of t=100: 0.5 and 1).
    histogram = toy((0.5, 1, 0), (10, 1, HALF_LIFE))
    assert histogram.total_weight(at=HALF_LIFE) == 1.5
    assert histogram.percentile(1 / 3) == 1.0
    assert histogram.percentile(0.34) == 15.0


def test_reference_sits_on_whole_half_lives() -> None:
    histogram = toy((5, 1, 250))
    assert histogram.reference == 200.0
    assert histogram.total_weight(at=250) == pytest.approx(1.0)


def test_renormalisation_moves_the_reference_and_rescales_exactly() -> None:
    options = HistogramOptions(
        first_bucket_size=1.0, max_value=100.0, half_life_s=HALF_LIFE, growth=1.0,
        max_decay_exponent=1.0,
    )  # fmt: skip
    histogram = toy((0.5, 1, 0), (10, 1, 250), options=options)
    assert histogram.reference == 200.0
    buckets = stored(histogram)
    assert buckets[0] == 0.25  # 1 * 2**-2, exactly
    assert buckets[3] == pytest.approx(2**0.5)
    reference = toy((0.5, 1, 0), (10, 1, 250))
    assert histogram.total_weight(at=250) == pytest.approx(reference.total_weight(at=250))
    assert [histogram.percentile(q) for q in QS] == [reference.percentile(q) for q in QS]


def test_renormalisation_drops_buckets_decayed_below_epsilon() -> None:
    options = HistogramOptions(
        first_bucket_size=1.0, max_value=100.0, half_life_s=HALF_LIFE, growth=1.0,
        max_decay_exponent=1.0,
    )  # fmt: skip
    histogram = toy((0.5, 1e-3, 0), (10, 1, 10 * HALF_LIFE), options=options)
    assert stored(histogram) == {3: 1.0}
    assert histogram.percentile(0.0) == 15.0


# ------------------------------------------------------------------------------ subtract


def test_subtract_takes_back_an_added_sample() -> None:
    histogram = toy((10, 1, 0), (10, 1, 0), (0.5, 1, 0))
    histogram.subtract(10, 1, 0)
    assert histogram.total_weight() == 2.0
    assert histogram.percentile(0.5) == 1.0
    histogram.subtract(10, 1, 0)
    histogram.subtract(0.5, 5, 0)  # more than is there: the bucket goes, never negative
    histogram.subtract(50, 1, 0)  # a bucket that was never filled: nothing happens
    assert histogram.is_empty()
    assert stored(histogram) == {}


# ------------------------------------------------------------------------------ merge


def test_merge_adds_the_other_samples() -> None:
    a, b = toy((0.5, 1, 0)), toy((10, 1, 0))
    a.merge(b)
    assert a.percentile(0.5) == 1.0
    assert a.percentile(0.51) == 15.0
    assert stored(b) == {3: 1.0}  # the other histogram is left alone


def test_merge_aligns_references_by_exact_powers_of_two() -> None:
    a, b = toy((0.5, 1, 0)), toy((10, 1, 3 * HALF_LIFE))
    a.merge(b)
    assert a.reference == 3 * HALF_LIFE
    assert stored(a) == {0: 0.125, 3: 1.0}
    c, d = toy((10, 1, 3 * HALF_LIFE)), toy((0.5, 1, 0))
    c.merge(d)
    assert c.to_dict() == a.to_dict()


def test_merge_with_empty_histograms() -> None:
    a = toy((5, 1, 1000))
    a.merge(DecayingHistogram(TOY))
    empty = DecayingHistogram(TOY)
    empty.merge(a)
    assert empty.to_dict() == a.to_dict()


def test_merge_rejects_other_options() -> None:
    with pytest.raises(ValueError, match="options"):
        DecayingHistogram(TOY).merge(DecayingHistogram(cpu_options()))


# ------------------------------------------------------------------------------ wire form


def test_to_dict_is_versioned_plain_data() -> None:
    data = toy((0.5, 1, 0), (10, 2, 0)).to_dict()
    assert data == {
        "version": 1,
        "options": {
            "first_bucket_size": 1.0, "max_value": 100.0, "half_life_s": 100.0, "growth": 1.0,
            "epsilon": 1e-4, "max_decay_exponent": 100.0,
        },
        "reference": 0.0,
        "buckets": [[0, 1.0], [3, 2.0]],
    }  # fmt: skip


def test_from_dict_rejects_an_unknown_version() -> None:
    data = toy((1, 1, 0)).to_dict() | {"version": 2}
    with pytest.raises(WireVersionError):
        DecayingHistogram.from_dict(data)


def _valid() -> dict[str, object]:
    return toy((1, 1, 0)).to_dict()


@pytest.mark.parametrize(
    "data",
    [
        {},
        _valid() | {"version": "1"},
        _valid() | {"version": True},
        _valid() | {"extra": 1},
        _valid() | {"reference": math.inf},
        _valid() | {"reference": "0"},
        _valid() | {"buckets": {"1": 1.0}},
        _valid() | {"buckets": [[1]]},
        _valid() | {"buckets": [[8, 1.0]]},
        _valid() | {"buckets": [[-1, 1.0]]},
        _valid() | {"buckets": [[True, 1.0]]},
        _valid() | {"buckets": [[1, -1.0]]},
        _valid() | {"buckets": [[1, math.nan]]},
        _valid() | {"buckets": [[1, 1.0], [1, 2.0]]},
        _valid() | {"options": None},
        _valid() | {"options": {"first_bucket_size": 1.0}},
        _valid() | {"options": cpu_options().__class__.__name__},
        _valid() | {"options": {**_valid()["options"], "growth": -1.0}},  # type: ignore[dict-item]
    ],
)
def test_from_dict_rejects_malformed_data_with_wire_errors(data: dict[str, object]) -> None:
    with pytest.raises(WireError):
        DecayingHistogram.from_dict(data)


def test_from_dict_rejects_a_non_mapping() -> None:
    with pytest.raises(WireError):
        DecayingHistogram.from_dict([1, 2])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ properties

OPTIONS = cpu_options(half_life_s=3600.0)
values = st.floats(min_value=0.0, max_value=2000.0)
weights = st.floats(min_value=0.1, max_value=10.0)
times = st.floats(min_value=0.0, max_value=8 * 3600.0)
samples = st.lists(st.tuples(values, weights, times), min_size=1, max_size=40)
# Samples whose weights add up exactly in floats: whole weights at whole half-lives.
exact_samples = st.lists(
    st.tuples(values, st.integers(1, 10).map(float), st.integers(0, 8).map(lambda k: k * 3600.0)),
    min_size=1,
    max_size=40,
)
quantiles = st.floats(min_value=0.0, max_value=1.0)


def build(items: list[tuple[float, float, float]], options: HistogramOptions = OPTIONS) -> (
    DecayingHistogram
):
    histogram = DecayingHistogram(options)
    for value, weight, time in items:
        histogram.add(value, weight, time)
    return histogram


def assert_same_percentile(
    actual: DecayingHistogram, expected: DecayingHistogram, q: float
) -> None:
    """Equal up to float rounding: a quantile that falls exactly on a bucket's cumulative
    weight may tip either way, so bracket by nudging q."""
    low = expected.percentile(max(q - 1e-9, 0.0))
    high = expected.percentile(min(q + 1e-9, 1.0))
    assert low <= actual.percentile(q) <= high


@given(samples, quantiles, quantiles)
def test_percentile_is_monotone_in_q(items: list[tuple[float, float, float]], q1: float,
                                     q2: float) -> None:  # fmt: skip
    histogram = build(items)
    low, high = sorted((q1, q2))
    assert histogram.percentile(low) <= histogram.percentile(high)


@given(st.lists(st.tuples(st.floats(0.0, 999.0), weights, times), min_size=1, max_size=40))
def test_percentiles_bracket_the_samples(items: list[tuple[float, float, float]]) -> None:
    """Below the open last bucket, every percentile lies above the smallest sample and within
    one bucket (5 % + the first bucket's width) of the largest."""
    histogram = build(items)
    assert histogram.percentile(0.0) > min(v for v, _, _ in items)
    assert histogram.percentile(1.0) > max(v for v, _, _ in items)
    assert histogram.percentile(1.0) <= max(v for v, _, _ in items) * 1.05 + 0.01 + 1e-9


@given(samples, samples, quantiles)
def test_merge_matches_one_histogram_of_all_samples(
    a: list[tuple[float, float, float]], b: list[tuple[float, float, float]], q: float
) -> None:
    merged = build(a)
    merged.merge(build(b))
    assert_same_percentile(merged, build(a + b), q)


@given(exact_samples, exact_samples)
def test_merge_is_exact_when_the_weights_are(
    a: list[tuple[float, float, float]], b: list[tuple[float, float, float]]
) -> None:
    merged = build(a)
    merged.merge(build(b))
    whole = build(a + b)
    assert [merged.percentile(q) for q in QS] == [whole.percentile(q) for q in QS]
    assert merged.total_weight(at=0.0) == whole.total_weight(at=0.0)


@given(values, weights, st.floats(min_value=-1e9, max_value=1e10))
def test_decay_halves_a_weight_after_one_half_life(value: float, weight: float,
                                                   time: float) -> None:  # fmt: skip
    histogram = build([(value, weight, time)])
    assert histogram.total_weight(at=time) == pytest.approx(weight, rel=1e-9)
    assert histogram.total_weight(at=time + OPTIONS.half_life_s) == pytest.approx(
        weight / 2, rel=1e-9
    )


@given(samples, quantiles)
def test_renormalisation_keeps_percentiles(
    items: list[tuple[float, float, float]], q: float
) -> None:
    eager = HistogramOptions(
        first_bucket_size=OPTIONS.first_bucket_size, max_value=OPTIONS.max_value,
        half_life_s=OPTIONS.half_life_s, max_decay_exponent=1.0,
    )  # fmt: skip
    assert_same_percentile(build(items, eager), build(items), q)


@given(exact_samples)
def test_renormalisation_is_exact_when_the_weights_are(
    items: list[tuple[float, float, float]],
) -> None:
    eager = HistogramOptions(
        first_bucket_size=OPTIONS.first_bucket_size, max_value=OPTIONS.max_value,
        half_life_s=OPTIONS.half_life_s, max_decay_exponent=1.0,
    )  # fmt: skip
    renormalised, plain = build(items, eager), build(items)
    assert [renormalised.percentile(q) for q in QS] == [plain.percentile(q) for q in QS]


@given(samples)
def test_to_dict_from_dict_round_trips_through_json(
    items: list[tuple[float, float, float]],
) -> None:
    histogram = build(items)
    data = histogram.to_dict()
    back = DecayingHistogram.from_dict(json.loads(json.dumps(data)))
    assert back.to_dict() == data
    assert [back.percentile(q) for q in QS] == [histogram.percentile(q) for q in QS]


@settings(max_examples=300)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e3, max_value=1e5))
def test_bucket_index_agrees_with_numpy_searchsorted(value: float) -> None:
    boundaries = bucket_boundaries(OPTIONS)
    index = bucket_index(OPTIONS, value)
    assert index == max(int(np.searchsorted(boundaries, value, side="right")) - 1, 0)
    if value >= 0:
        assert bucket_start(OPTIONS, index) <= value
    if index < num_buckets(OPTIONS) - 1:
        assert value < bucket_start(OPTIONS, index + 1)


def test_a_zero_weight_sample_changes_nothing() -> None:
    histogram = DecayingHistogram(TOY)
    histogram.add(5, 0.0, 0)
    assert histogram.is_empty()
    assert stored(histogram) == {}
