"""A decaying, mergeable, serialisable histogram of usage samples, in the manner of VPA's.

What it is: exponential buckets (each ``growth`` = 5 % wider than the one before, the first
``first_bucket_size`` wide, the last one open-ended from ``max_value``), and samples whose
weight doubles every ``half_life_s`` of sample time, so a sample one half-life older than
another counts half as much. A percentile is the *end* of the bucket in which the cumulative
weight reaches the quantile, which errs towards giving a container more, never less.

Design decisions:

* **Time is an argument.** ``add(value, weight, time)``: nothing here reads a clock, so the
  replay, the controller and the tests drive it with whatever time they live in.
* **Weights grow instead of shrinking.** A sample at ``time`` is stored with weight
  ``weight * 2 ** ((time - reference) / half_life_s)``. Only ratios matter to a percentile, so
  nothing has to be rewritten as time passes. When the exponent would pass
  ``max_decay_exponent`` (100, as in VPA) the reference moves forward and every stored weight
  is divided accordingly, so floats never overflow; buckets that fall below ``epsilon`` are
  dropped then, which is how old history finally disappears.
* **References sit on a grid of whole half-lives** (multiples of ``half_life_s`` since the
  epoch). Moving the reference then divides weights by an exact power of two (``math.ldexp``),
  so renormalising, and merging two histograms, changes no weight ratio at all.
* **Sparse state.** The buckets are a ``dict`` from bucket index to weight. A container's usage
  usually sits in a dozen or two of the ~176 buckets, so the sparse form is what we want to
  persist (WorkloadProfile status, checkpoints), and a single ``add`` on a dict is cheaper than
  numpy's per-call overhead. Bulk work (the replay's vectorised VPA baseline) uses
  :func:`bucket_boundaries` with numpy directly; :func:`bucket_index` agrees with
  ``np.searchsorted(bucket_boundaries(o), v, side="right") - 1`` (clipped at 0) bit for bit,
  because both read the same cached boundaries.
* **Versioned wire form.** :meth:`DecayingHistogram.to_dict` is plain JSON/msgpack data with
  a ``"version"``; :meth:`DecayingHistogram.from_dict` validates it strictly and raises
  :class:`~presize.errors.WireError` (``WireVersionError`` for an unknown version).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from itertools import accumulate

import numpy as np
import numpy.typing as npt

from presize.errors import SettingsError, WireError, WireVersionError

__all__ = [
    "DAY_S",
    "SCHEMA_VERSION",
    "DecayingHistogram",
    "HistogramOptions",
    "bucket_boundaries",
    "bucket_end",
    "bucket_index",
    "bucket_start",
    "cpu_options",
    "memory_options",
    "num_buckets",
]

SCHEMA_VERSION = 1
DAY_S = 86_400.0
_MAX_BUCKETS = 10_000  # far above any sensible option set; bounds what from_dict may build


@dataclass(frozen=True, slots=True, kw_only=True)
class HistogramOptions:
    """Bucket layout and decay of a histogram.

    ``first_bucket_size``: width of bucket 0, in the sample's unit (cores, bytes).
    ``max_value``: values at or above the start of the last bucket all land in it.
    ``half_life_s``: sample time after which a sample's weight has doubled (relative to older).
    ``growth``: each bucket is this fraction wider than the previous (0.05 = 5 %).
    ``epsilon``: bucket weights below it count as empty and are dropped on renormalisation.
    ``max_decay_exponent``: how far (in half-lives) the reference may lag before it moves.
    """

    first_bucket_size: float
    max_value: float
    half_life_s: float
    growth: float = 0.05
    epsilon: float = 1e-4
    max_decay_exponent: float = 100.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"histogram {f.name} {value!r}: expected a number")
            if not math.isfinite(value) or value <= 0:
                raise SettingsError(f"histogram {f.name} {value!r}: expected a positive number")
        if self.max_value <= self.first_bucket_size:
            raise SettingsError(
                f"histogram max_value {self.max_value!r} must exceed "
                f"first_bucket_size {self.first_bucket_size!r}"
            )
        if not 1.0 <= self.max_decay_exponent <= 500.0:
            raise SettingsError(
                f"histogram max_decay_exponent {self.max_decay_exponent!r}: expected 1..500"
            )
        try:
            too_many = _bucket_count(self) > _MAX_BUCKETS
        except OverflowError:
            too_many = True
        if too_many:
            raise SettingsError(f"histogram options {self!r} need more than {_MAX_BUCKETS} buckets")


def cpu_options(*, half_life_s: float = DAY_S) -> HistogramOptions:
    """VPA's CPU layout: first bucket 0.01 core, top 1000 cores, 5 % growth, 24 h half-life."""
    return HistogramOptions(first_bucket_size=0.01, max_value=1000.0, half_life_s=half_life_s)


def memory_options(*, half_life_s: float = DAY_S) -> HistogramOptions:
    """VPA's memory layout: first bucket 1e7 bytes, top 1e12 bytes, 5 % growth, 24 h half-life."""
    return HistogramOptions(first_bucket_size=1e7, max_value=1e12, half_life_s=half_life_s)


def _bucket_count(options: HistogramOptions) -> int:
    """Smallest n whose last bucket starts at or above ``max_value`` (or anything over
    ``_MAX_BUCKETS`` for a layout too fine to build)."""
    spread = options.max_value * options.growth / options.first_bucket_size + 1.0
    estimate = math.log(spread) / math.log1p(options.growth) if math.isfinite(spread) else math.inf
    if estimate > _MAX_BUCKETS:
        return _MAX_BUCKETS + 1
    n = math.ceil(estimate) + 1
    while _starts_upto(options, n)[-1] < options.max_value and n <= _MAX_BUCKETS:
        n += 1
    return n


def _starts_upto(options: HistogramOptions, n: int) -> list[float]:
    """Starts of the first ``n`` buckets, summed bucket by bucket so bucket 1 starts exactly at
    ``first_bucket_size`` (the closed form ``f * (r**i - 1) / g`` is off in the last bits)."""
    ratio = 1.0 + options.growth
    starts = [0.0]
    for i in range(n - 1):
        starts.append(starts[-1] + options.first_bucket_size * ratio**i)
    return starts


@lru_cache(maxsize=64)
def _starts(options: HistogramOptions) -> tuple[float, ...]:
    return tuple(_starts_upto(options, _bucket_count(options)))


def num_buckets(options: HistogramOptions) -> int:
    """How many buckets ``options`` lay out (176 for both VPA layouts)."""
    return len(_starts(options))


def bucket_boundaries(options: HistogramOptions) -> npt.NDArray[np.float64]:
    """The start of every bucket, ascending, starting with 0.0 (a fresh array each call).

    Bucket ``i`` is ``[b[i], b[i + 1])``; the last bucket has no end.
    """
    return np.array(_starts(options), dtype=np.float64)


def bucket_start(options: HistogramOptions, index: int) -> float:
    """Smallest value that falls in bucket ``index``."""
    return _starts(options)[_checked_index(options, index)]


def bucket_end(options: HistogramOptions, index: int) -> float:
    """Where bucket ``index`` ends: the next bucket's start, or, for the open last bucket,
    its own start (as VPA reports it)."""
    starts = _starts(options)
    index = _checked_index(options, index)
    return starts[min(index + 1, len(starts) - 1)]


def bucket_index(options: HistogramOptions, value: float) -> int:
    """The bucket ``value`` falls in; negatives land in bucket 0, huge values in the last."""
    if math.isnan(value):
        raise ValueError("histogram value is NaN")
    return max(bisect_right(_starts(options), value) - 1, 0)


def _checked_index(options: HistogramOptions, index: int) -> int:
    if not 0 <= index < num_buckets(options):
        raise IndexError(f"bucket {index} outside 0..{num_buckets(options) - 1}")
    return index


def _pow2(exponent: float) -> float:
    """2 ** exponent, saturating to inf instead of raising OverflowError."""
    return math.inf if exponent > 1000.0 else 2.0**exponent


class DecayingHistogram:
    """Weighted samples in exponential buckets; newer samples weigh more (see module doc).

    Mutable: ``add``, ``subtract`` and ``merge`` change it in place. Weights and times must
    be finite; a weight must not be negative.
    """

    __slots__ = ("_options", "_reference", "_weights")

    def __init__(self, options: HistogramOptions) -> None:
        self._options = options
        self._reference = 0.0
        self._weights: dict[int, float] = {}

    @property
    def options(self) -> HistogramOptions:
        return self._options

    @property
    def reference(self) -> float:
        """Time at which a stored weight equals the weight it was added with."""
        return self._reference

    def __repr__(self) -> str:
        return (
            f"DecayingHistogram(buckets={len(self._weights)}, reference={self._reference!r}, "
            f"options={self._options!r})"
        )

    def bucket_index(self, value: float) -> int:
        return bucket_index(self._options, value)

    def bucket_start(self, index: int) -> float:
        return bucket_start(self._options, index)

    def copy(self) -> DecayingHistogram:
        twin = DecayingHistogram(self._options)
        twin._reference = self._reference
        twin._weights = dict(self._weights)
        return twin

    def add(self, value: float, weight: float, time: float) -> None:
        """Record ``value`` observed at ``time`` with ``weight`` (a zero weight is a no-op)."""
        _check_sample(weight, time)
        if weight == 0:
            return
        index = self.bucket_index(value)
        scaled = weight * self._scale_at(time)
        self._weights[index] = self._weights.get(index, 0.0) + scaled

    def subtract(self, value: float, weight: float, time: float) -> None:
        """Take back a sample added earlier with the same value, weight and time.

        Used to replace a peak (VPA's memory aggregation). A bucket left below ``epsilon``
        is removed; a bucket never goes negative.
        """
        _check_sample(weight, time)
        index = self.bucket_index(value)
        if index not in self._weights:
            return
        remaining = self._weights[index] - weight * self._scale_at(time)
        if remaining < self._options.epsilon:
            del self._weights[index]
        else:
            self._weights[index] = remaining

    def merge(self, other: DecayingHistogram) -> None:
        """Add every sample of ``other`` (same options) to this histogram."""
        if other._options != self._options:
            raise ValueError("cannot merge histograms with different options")
        if not other._weights:
            return
        if not self._weights:
            self._reference = other._reference
        elif other._reference > self._reference:
            self._shift_reference(other._reference)
        factor_exponent = (other._reference - self._reference) / self._options.half_life_s
        for index, weight in other._weights.items():
            scaled = _rescale(weight, factor_exponent)
            self._weights[index] = self._weights.get(index, 0.0) + scaled
        self._drop_below_epsilon()

    def is_empty(self) -> bool:
        """True when no bucket holds at least ``epsilon``."""
        return not self._counted()

    def total_weight(self, at: float | None = None) -> float:
        """Sum of the bucket weights, as they stand at time ``at``.

        Without ``at`` the sum is in the histogram's own scale (weights as of
        :attr:`reference`), which is fine for ratios and emptiness but not comparable across
        histograms.
        """
        total = sum(w for _, w in self._counted())
        if at is None:
            return total
        if not math.isfinite(at):
            raise ValueError(f"histogram time {at!r} is not finite")
        return total * _pow2((self._reference - at) / self._options.half_life_s)

    def percentile(self, q: float) -> float:
        """End of the bucket where the cumulative weight first reaches ``q`` of the total.

        ``q`` is in [0, 1]; an empty histogram answers 0.0.
        """
        index = self._percentile_index(q)
        return 0.0 if index is None else bucket_end(self._options, index)

    def percentile_start(self, q: float) -> float:
        """Start of the bucket :meth:`percentile` ends; the conservative choice for a lower edge."""
        index = self._percentile_index(q)
        return 0.0 if not index else bucket_start(self._options, index)

    def _percentile_index(self, q: float) -> int | None:
        """Bucket where the cumulative weight first reaches ``q`` of the total (None: empty)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"percentile {q!r} outside [0, 1]")
        counted = self._counted()
        if not counted:
            return None
        cumulative = list(accumulate(w for _, w in counted))
        position = bisect_left(cumulative, q * cumulative[-1])
        return counted[min(position, len(counted) - 1)][0]

    def to_dict(self) -> dict[str, object]:
        """Plain, versioned data (JSON- and msgpack-safe) that :meth:`from_dict` reads back."""
        return {
            "version": SCHEMA_VERSION,
            "options": {f.name: getattr(self._options, f.name) for f in fields(self._options)},
            "reference": self._reference,
            "buckets": [[i, w] for i, w in sorted(self._weights.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DecayingHistogram:
        """Rebuild a histogram from :meth:`to_dict` output; raises ``WireError`` if malformed."""
        if not isinstance(data, Mapping):
            raise WireError(f"histogram: expected a mapping, got {type(data).__name__}")
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise WireError(f"histogram version {_show(version)}: expected an integer")
        if version != SCHEMA_VERSION:
            raise WireVersionError(
                f"histogram version {version}: this build reads only {SCHEMA_VERSION}"
            )
        if set(data) != {"version", "options", "reference", "buckets"}:
            raise WireError(f"histogram fields {sorted(map(str, data))}: unexpected set")
        histogram = cls(_options_from_dict(data["options"]))
        histogram._reference = _finite(data["reference"], "histogram reference")
        histogram._weights = _buckets_from_list(data["buckets"], histogram._options)
        return histogram

    def _counted(self) -> list[tuple[int, float]]:
        eps = self._options.epsilon
        return [(i, w) for i, w in sorted(self._weights.items()) if w >= eps]

    def _scale_at(self, time: float) -> float:
        """Stored weight of a unit sample at ``time``; moves the reference when needed."""
        half_life = self._options.half_life_s
        if not self._weights:
            self._reference = math.floor(time / half_life) * half_life
        elif (time - self._reference) / half_life > self._options.max_decay_exponent:
            self._shift_reference(math.floor(time / half_life) * half_life)
        return _pow2((time - self._reference) / half_life)

    def _shift_reference(self, new_reference: float) -> None:
        exponent = (self._reference - new_reference) / self._options.half_life_s
        self._weights = {i: _rescale(w, exponent) for i, w in self._weights.items()}
        self._reference = new_reference
        self._drop_below_epsilon()

    def _drop_below_epsilon(self) -> None:
        eps = self._options.epsilon
        self._weights = {i: w for i, w in self._weights.items() if w >= eps}


def _rescale(weight: float, exponent: float) -> float:
    """weight * 2 ** exponent, exact (``ldexp``) when the exponent is whole."""
    if exponent.is_integer() and abs(exponent) < 2000:
        return math.ldexp(weight, int(exponent))
    return weight * _pow2(exponent)


def _check_sample(weight: float, time: float) -> None:
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"histogram weight {weight!r}: expected a finite, non-negative number")
    if not math.isfinite(time):
        raise ValueError(f"histogram time {time!r} is not finite")


def _show(value: object) -> str:
    """A value as it appears in an error message: its repr, cut short if it is long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _finite(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{what} {_show(value)}: expected a number")
    try:
        number = float(value)
    except OverflowError as exc:
        raise WireError(f"{what}: number out of range") from exc
    if not math.isfinite(number):
        raise WireError(f"{what} {_show(value)}: expected a finite number")
    return number


def _options_from_dict(raw: object) -> HistogramOptions:
    if not isinstance(raw, Mapping):
        raise WireError(f"histogram options {_show(raw)}: expected a mapping")
    names = {f.name for f in fields(HistogramOptions)}
    if set(raw) != names:
        raise WireError(
            f"histogram options fields {sorted(map(str, raw))}: expected {sorted(names)}"
        )
    values = {name: _finite(raw[name], f"histogram options {name}") for name in names}
    try:
        return HistogramOptions(**values)
    except SettingsError as exc:
        raise WireError(f"histogram options: {exc}") from exc


def _buckets_from_list(raw: object, options: HistogramOptions) -> dict[int, float]:
    if not isinstance(raw, list | tuple):
        raise WireError(f"histogram buckets: expected a list, got {type(raw).__name__}")
    weights: dict[int, float] = {}
    count = num_buckets(options)
    for entry in raw:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise WireError(f"histogram bucket {_show(entry)}: expected [index, weight]")
        index, weight = entry
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise WireError(f"histogram bucket index {_show(index)}: expected 0..{count - 1}")
        if index in weights:
            raise WireError(f"histogram bucket index {index} appears twice")
        value = _finite(weight, "histogram bucket weight")
        if value < 0:
            raise WireError(f"histogram bucket weight {value!r}: must not be negative")
        weights[index] = value
    return weights
