"""bench.replay_bounds: the hindsight bounds, on series small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bench.replay_bounds import (
    best_at,
    causal_features,
    constant_bound,
    per_series_regression_bound,
    pooled,
    regression_bound,
)
from presize.replay.series import REAL_UNITS, STEPS_PER_DAY, Series, TraceSet


def trace(*cpus: np.ndarray) -> TraceSet:
    series = tuple(
        Series(f"s{i}", cpu=c, mem=np.ones_like(c)) for i, c in enumerate(cpus)
    )
    return TraceSet("toy", REAL_UNITS, series)


def test_pooled_is_the_replays_slack_and_shortfall() -> None:
    alloc = np.array([2.0, 2.0, 1.0])
    usage = np.array([1.0, 3.0, 1.0])
    slack, short = pooled(alloc, usage)
    assert slack == pytest.approx(1.0 / 5.0)  # Σ(a−u)⁺ / Σa
    assert short == pytest.approx(1.0 / 5.0)  # Σ(u−a)⁺ / Σu


def test_the_constant_bound_scores_only_the_steps_after_the_first_day() -> None:
    first_day = np.full(STEPS_PER_DAY, 100.0)  # warm-up: never scored
    scored = np.tile([1.0, 3.0], STEPS_PER_DAY // 2)
    alloc, usage = constant_bound(trace(np.concatenate([first_day, scored])), 1.0)
    assert usage.size == STEPS_PER_DAY
    assert np.all(alloc == 3.0)  # the q=1 quantile of the scored steps, not of the warm-up
    assert pooled(alloc, usage) == (pytest.approx(1.0 / 3.0), 0.0)


def test_a_higher_quantile_trades_slack_for_shortfall() -> None:
    rng = np.random.default_rng(0)
    t = trace(rng.gamma(2.0, 1.0, 3 * STEPS_PER_DAY), rng.gamma(2.0, 3.0, 3 * STEPS_PER_DAY))
    low = pooled(*constant_bound(t, 0.8))
    high = pooled(*constant_bound(t, 0.95))
    assert high[0] > low[0]
    assert high[1] < low[1]


def test_the_regression_bound_learns_the_last_value_when_demand_is_autocorrelated() -> None:
    rng = np.random.default_rng(1)
    n = 3 * STEPS_PER_DAY
    x = np.empty(n)
    x[0] = 1.0
    for i in range(1, n):  # AR(1) around 1.0: the last value says much about the next
        x[i] = 1.0 + 0.9 * (x[i - 1] - 1.0) + rng.normal(0, 0.1)
    t = trace(np.maximum(x, 0.01))
    feats, target, groups = causal_features(t)
    assert feats.shape == (target.size, 9)
    assert set(groups.tolist()) == {0}
    reg = pooled(*regression_bound(feats, target, 0.95))
    const = pooled(*constant_bound(t, 0.95))
    assert reg[0] < const[0]  # less slack ...
    assert reg[1] < 2 * const[1] + 0.005  # ... at a comparable shortfall


def ar1(phi: float, seed: int) -> np.ndarray:
    """Demand around 5 whose next step leans on the last by ``phi``."""
    rng = np.random.default_rng(seed)
    x = np.empty(3 * STEPS_PER_DAY)
    x[0] = 5.0
    for i in range(1, x.size):
        x[i] = 5.0 + phi * (x[i - 1] - 5.0) + rng.normal(0, 1)
    return np.maximum(x, 0.01)


def test_the_per_series_bound_fits_each_series_its_own_coefficients() -> None:
    # One series persists, the other flips around its mean: one pooled line cannot follow
    # both, one line per series can.
    x, y, groups = causal_features(trace(ar1(0.9, 1), ar1(-0.9, 2)))
    assert set(groups.tolist()) == {0, 1}
    per_series = pooled(*per_series_regression_bound(x, y, groups, 0.95))
    pooled_fit = pooled(*regression_bound(x, y, 0.95))
    assert per_series[0] < pooled_fit[0] - 0.05  # much less slack ...
    assert per_series[1] < 1.5 * pooled_fit[1] + 0.002  # ... at a comparable shortfall


def test_a_series_too_short_for_its_own_fit_gets_its_constant() -> None:
    x = np.arange(12.0).reshape(6, 2)
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    alloc, usage = per_series_regression_bound(x, y, np.zeros(6, dtype=np.intp), 1.0)
    assert np.all(alloc == 6.0)
    assert usage is y


def test_best_at_picks_the_lowest_slack_within_the_shortfall() -> None:
    points = [(0.9, 0.5, 0.05), (0.95, 0.6, 0.02), (0.99, 0.7, 0.01)]
    assert best_at(points, 0.03) == {"q": 0.95, "cpu_slack": 0.6, "cpu_shortfall": 0.02}
    assert best_at(points, 0.001) is None
