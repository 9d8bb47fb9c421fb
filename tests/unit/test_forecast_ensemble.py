"""EnsembleForecaster: the member with the lowest decayed pinball loss, judged out of sample.

Members are fakes at the Forecaster boundary: each forecasts a fixed upper edge (or nothing) and
records what it was told. The workload is a constant 1.0 sampled every 300 s unless a test says
otherwise.
"""

from __future__ import annotations

import math

import pytest

from presize.forecast.base import Forecaster, pinball_loss
from presize.forecast.ensemble import EnsembleForecaster
from presize.model import Forecast

STEP = 300.0


class Fixed:
    """Forecasts ``upper`` (as point, lower and upper) once it is ``ready``; else ``None``."""

    def __init__(self, name: str, upper: float, *, ready: bool = True) -> None:
        self.name = name
        self.upper = upper
        self.ready = ready
        self.seen: list[tuple[float, float]] = []
        self.asked = 0

    def observe(self, time: float, value: float) -> None:
        self.seen.append((time, value))

    def forecast(self, time: float, horizon_s: float) -> Forecast | None:
        self.asked += 1
        if not self.ready:
            return None
        return Forecast(horizon_s, self.upper, self.upper, self.upper, 0.9, self.name)


def rounds(ens: EnsembleForecaster, values: list[float], *, start: int = 0) -> list[str | None]:
    """Forecast, then observe, once per value; the models the ensemble answered with."""
    used: list[str | None] = []
    for i, v in enumerate(values, start=start):
        fc = ens.forecast(i * STEP, STEP)
        used.append(fc.model if fc is not None else None)
        ens.observe((i + 1) * STEP, v)
    return used


def test_ensemble_satisfies_the_forecaster_protocol() -> None:
    assert isinstance(EnsembleForecaster([Fixed("a", 1.0)]), Forecaster)
    assert isinstance(Fixed("a", 1.0), Forecaster)


def test_ensemble_needs_a_member() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleForecaster([])


def test_ensemble_answers_with_the_first_member_until_anyone_is_scored() -> None:
    ens = EnsembleForecaster([Fixed("low", 0.1), Fixed("right", 1.0)])
    assert ens.best() is None
    fc = ens.forecast(0.0, STEP)
    assert fc is not None
    assert fc.model == "low"


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95])
@pytest.mark.parametrize(
    "members",
    [
        ("low", "right"),
        ("right", "low"),
        ("low", "high", "right"),
        ("high", "low", "right"),
    ],
)
def test_ensemble_switches_to_the_member_that_is_right(members: tuple[str, ...], q: float) -> None:
    uppers = {"low": 0.1, "right": 1.0, "high": 3.0}
    ens = EnsembleForecaster([Fixed(m, uppers[m]) for m in members], q=q)
    used = rounds(ens, [1.0] * 6)
    assert used[0] == members[0]  # nothing scored yet
    assert used[1:] == ["right"] * 5  # one observation is enough to tell
    assert ens.best() == members.index("right")
    assert ens.losses[members.index("right")] == 0.0


def test_ensemble_charges_running_short_more_than_holding_spare_at_a_high_q() -> None:
    # 0.5 short costs 0.95 x 0.5; 2.0 spare costs only 0.05 x 2.0.
    ens = EnsembleForecaster([Fixed("short", 0.5), Fixed("spare", 3.0)], q=0.95)
    assert rounds(ens, [1.0] * 4)[1:] == ["spare"] * 3
    ens = EnsembleForecaster([Fixed("short", 0.5), Fixed("spare", 3.0)], q=0.05)
    assert rounds(ens, [1.0] * 4)[1:] == ["short"] * 3


def test_ensemble_skips_a_member_that_cannot_forecast() -> None:
    cold, warm = Fixed("cold", 1.0, ready=False), Fixed("warm", 0.5)
    ens = EnsembleForecaster([cold, warm])
    assert rounds(ens, [1.0] * 5) == ["warm"] * 5
    # An unscored member (loss 0.0, the lowest) is never "best".
    assert ens.scored == [0, 5]
    assert ens.best() == 1
    # It is still fed every observation, so it can warm up.
    assert len(cold.seen) == 5


def test_ensemble_falls_back_when_its_best_member_stops_forecasting() -> None:
    low, right = Fixed("low", 0.1), Fixed("right", 1.0)
    ens = EnsembleForecaster([low, right])
    assert rounds(ens, [1.0] * 3)[-1] == "right"
    right.ready = False
    assert rounds(ens, [1.0] * 2, start=3) == ["low", "low"]
    right.ready = True
    assert rounds(ens, [1.0], start=5) == ["right"]


def test_ensemble_has_no_forecast_when_no_member_has_one() -> None:
    ens = EnsembleForecaster([Fixed("a", 1.0, ready=False), Fixed("b", 1.0, ready=False)])
    assert rounds(ens, [1.0] * 3) == [None, None, None]
    assert ens.scored == [0, 0]


def test_ensemble_add_member_joins_scoring_and_selection() -> None:
    low = Fixed("low", 0.1)
    ens = EnsembleForecaster([low])
    assert rounds(ens, [1.0] * 3) == ["low"] * 3
    late = Fixed("late", 1.0)
    ens.add_member(late)
    assert ens.members == [low, late]
    assert ens.losses[1] == 0.0
    assert ens.scored[1] == 0
    assert late.seen == []  # only what comes after it joined
    used = rounds(ens, [1.0] * 3, start=3)
    assert used[0] == "low"  # the newcomer has no record yet
    assert used[1:] == ["late", "late"]
    assert ens.scored == [6, 3]
    assert len(late.seen) == 3


# ----------------------------------------------------------------------- loss bookkeeping
@pytest.mark.parametrize(
    ("actual", "predicted", "q", "loss"),
    [
        (4.0, 2.0, 0.9, 1.8),  # short by 2, q per unit
        (1.0, 2.0, 0.9, 0.1),  # spare 1, (1 - q) per unit
        (2.0, 2.0, 0.9, 0.0),
        (3.0, 1.0, 0.5, 1.0),
        (1.0, 3.0, 0.5, 1.0),
        (0.0, 10.0, 0.95, 0.5),
    ],
)
def test_pinball_loss_charges_q_short_and_one_minus_q_spare(
    actual: float, predicted: float, q: float, loss: float
) -> None:
    assert pinball_loss(actual, predicted, q) == pytest.approx(loss)


@pytest.mark.parametrize(
    ("actuals", "losses"),
    [
        # q = 0.9, decay = 0.5, upper edge 2.0: loss <- 0.5 loss + 0.5 pinball
        ([4.0], [0.9]),
        ([4.0, 1.0], [0.9, 0.5]),
        ([4.0, 1.0, 2.0], [0.9, 0.5, 0.25]),
        ([1.0, 1.0, 1.0], [0.05, 0.075, 0.0875]),
    ],
)
def test_ensemble_decays_each_members_pinball_loss_of_its_upper_edge(
    actuals: list[float], losses: list[float]
) -> None:
    ens = EnsembleForecaster([Fixed("two", 2.0)], q=0.9, decay=0.5)
    for i, a in enumerate(actuals):
        ens.forecast(i * STEP, STEP)
        ens.observe((i + 1) * STEP, a)
        assert ens.losses[0] == pytest.approx(losses[i])
        assert ens.scored[0] == i + 1


def test_ensemble_scores_only_observations_that_follow_a_forecast() -> None:
    ens = EnsembleForecaster([Fixed("two", 2.0)], q=0.9, decay=0.5)
    ens.observe(0.0, 4.0)  # nothing was forecast
    assert ens.scored == [0]
    ens.forecast(0.0, STEP)
    ens.observe(STEP, math.nan)  # a gap: nothing to score, and the forecast is spent
    ens.observe(2 * STEP, 4.0)
    assert ens.scored == [0]
    assert ens.losses == [0.0]
    ens.forecast(2 * STEP, STEP)
    ens.observe(3 * STEP, 4.0)
    ens.observe(4 * STEP, 100.0)  # one forecast is charged once
    assert ens.scored == [1]
    assert ens.losses[0] == pytest.approx(0.9)


def test_ensemble_feeds_every_observation_to_every_member() -> None:
    a, b = Fixed("a", 1.0), Fixed("b", 1.0, ready=False)
    ens = EnsembleForecaster([a, b])
    ens.observe(0.0, 1.0)
    ens.observe(STEP, math.nan)
    ens.observe(2 * STEP, 3.0)
    for m in (a, b):
        assert [t for t, _ in m.seen] == [0.0, STEP, 2 * STEP]
        assert [v for _, v in m.seen if not math.isnan(v)] == [1.0, 3.0]
