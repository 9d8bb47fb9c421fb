"""Adaptive conformal inference, central quantiles, and the pinball loss that judges forecasts."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from itertools import pairwise

import pytest

from presize.forecast.base import pinball_loss
from presize.forecast.calibration import AdaptiveLevel, central_quantiles

# ------------------------------------------------------------------------------ AdaptiveLevel


def test_adaptive_level_starts_at_the_target() -> None:
    aci = AdaptiveLevel(target=0.8)
    assert aci.alpha == pytest.approx(0.2)
    assert aci.level == pytest.approx(0.8)
    assert math.isnan(aci.coverage)


def test_adaptive_level_raises_the_level_after_a_miss() -> None:
    aci = AdaptiveLevel(target=0.9, gamma=0.05)
    aci.update(covered=False)
    # alpha += 0.05 * (0.1 - 1) = 0.1 - 0.045
    assert aci.alpha == pytest.approx(0.055)
    assert aci.level == pytest.approx(0.945)
    assert (aci.hits, aci.misses) == (0, 1)


def test_adaptive_level_lowers_the_level_after_a_hit() -> None:
    aci = AdaptiveLevel(target=0.9, gamma=0.05)
    aci.update(covered=True)
    # alpha += 0.05 * (0.1 - 0) = 0.1 + 0.005
    assert aci.alpha == pytest.approx(0.105)
    assert aci.level == pytest.approx(0.895)
    assert (aci.hits, aci.misses) == (1, 0)


def test_adaptive_level_run_of_misses_widens_monotonically_and_stays_below_one() -> None:
    aci = AdaptiveLevel(target=0.9, gamma=0.05)
    levels = []
    for _ in range(50):
        aci.update(covered=False)
        levels.append(aci.level)
    assert all(b >= a for a, b in pairwise(levels))
    assert levels[0] > 0.9
    assert levels[-1] < 1.0


def test_adaptive_level_run_of_hits_narrows_but_not_below_one_half() -> None:
    aci = AdaptiveLevel(target=0.9, gamma=0.05)
    for _ in range(1000):
        aci.update(covered=True)
    assert aci.level == pytest.approx(0.5)
    assert aci.coverage == 1.0


def test_adaptive_level_coverage_counts_hits() -> None:
    aci = AdaptiveLevel(target=0.9)
    for covered in (True, True, False, True):
        aci.update(covered)
    assert aci.coverage == pytest.approx(0.75)


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1, 1.5])
def test_adaptive_level_rejects_targets_outside_the_open_unit_interval(target: float) -> None:
    with pytest.raises(ValueError, match="coverage target"):
        AdaptiveLevel(target=target)


@pytest.mark.parametrize(
    ("target", "distortion"),
    [
        (0.90, float),  # a calibrated model
        (0.90, lambda level: level**3),  # an over-confident one: intervals too narrow
        (0.80, math.sqrt),  # an under-confident one: intervals too wide
    ],
)
def test_adaptive_level_long_run_coverage_approaches_the_target_on_iid_outcomes(
    target: float, distortion: Callable[[float], float]
) -> None:
    """Outcomes u ~ U(0, 1); the interval asked for at ``level`` covers u <= distortion(level).

    Whatever the distortion, ACI finds the level at which the realised coverage is the target
    (Gibbs and Candès: |misses/T - alpha| <= (1 + gamma) / (gamma T)).
    """
    rng = random.Random(20240611)
    aci = AdaptiveLevel(target=target, gamma=0.01)
    steps = 20_000
    for _ in range(steps):
        aci.update(rng.random() <= distortion(aci.level))
    assert aci.hits + aci.misses == steps
    assert aci.coverage == pytest.approx(target, abs=0.01)


# ------------------------------------------------------------------------- central_quantiles


@pytest.mark.parametrize(
    ("level", "expected"),
    [(0.9, (0.05, 0.95)), (0.5, (0.25, 0.75)), (0.0, (0.5, 0.5)), (1.0, (0.0, 1.0))],
)
def test_central_quantiles_split_the_tails_evenly(
    level: float, expected: tuple[float, float]
) -> None:
    lo, hi = central_quantiles(level)
    assert lo == pytest.approx(expected[0])
    assert hi == pytest.approx(expected[1])
    assert hi - lo == pytest.approx(level)


# ------------------------------------------------------------------------------ pinball loss


@pytest.mark.parametrize(
    ("actual", "predicted", "q", "expected"),
    [
        (10.0, 8.0, 0.95, 0.95 * 2.0),  # under-prediction costs q per unit
        (8.0, 10.0, 0.95, 0.05 * 2.0),  # over-prediction costs 1 - q per unit
        (5.0, 5.0, 0.9, 0.0),
        (3.0, 1.0, 0.5, 1.0),  # the median loss is half the absolute error
        (1.0, 3.0, 0.5, 1.0),
    ],
)
def test_pinball_loss_hand_computed(
    actual: float, predicted: float, q: float, expected: float
) -> None:
    assert pinball_loss(actual, predicted, q) == pytest.approx(expected)


def test_pinball_loss_makes_running_short_nineteen_times_worse_at_q95() -> None:
    short = pinball_loss(actual=2.0, predicted=1.0, q=0.95)
    spare = pinball_loss(actual=1.0, predicted=2.0, q=0.95)
    assert short / spare == pytest.approx(19.0)


def test_pinball_loss_is_minimised_by_the_empirical_quantile() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100

    def total(p: float) -> float:
        return sum(pinball_loss(a, p, 0.9) for a in samples)

    best = min(range(1, 101), key=lambda p: total(float(p)))
    assert best in (90, 91)
