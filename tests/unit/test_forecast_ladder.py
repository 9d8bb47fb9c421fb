"""PeakLadderForecaster: the shortest trailing window that has earned trust, on a fixed clock.

A toy ladder keeps the cases small: windows of 2, 4 and 8 steps, factor 1.05, and trust after
10 steps (3000 s) without a breach; the series must also be 10 steps old (``min_age_s``) before
any window but the longest is used.
"""

from __future__ import annotations

import math

import pytest

from presize.errors import SettingsError
from presize.forecast.base import Forecaster
from presize.forecast.ladder import PeakLadderForecaster
from presize.settings import LadderSettings

STEP = 300.0
# insurance_ratio is huge here so these tests see the trust mechanics alone.
TOY = LadderSettings(
    windows_steps=(2, 4, 8), factor=1.05, trust_s=10 * STEP, min_age_s=10 * STEP,
    insurance_ratio=1e9,
)


class Clocked:
    """A ladder fed one sample per step; ``now`` is the time of the last sample."""

    def __init__(self, settings: LadderSettings = TOY) -> None:
        self.ladder = PeakLadderForecaster(settings)
        self.step = -1

    def feed(self, *values: float) -> Clocked:
        for v in values:
            self.step += 1
            self.ladder.observe(self.now, v)
        return self

    @property
    def now(self) -> float:
        return self.step * STEP

    def window(self) -> int:
        return self.ladder.trusted_window_steps(self.now)

    def point(self) -> float:
        fc = self.ladder.forecast(self.now, 3600.0)
        assert fc is not None
        return fc.point


def test_ladder_satisfies_the_forecaster_protocol() -> None:
    assert isinstance(PeakLadderForecaster(), Forecaster)


def test_ladder_has_no_forecast_before_any_sample() -> None:
    ladder = PeakLadderForecaster(TOY)
    assert ladder.forecast(0.0, 3600.0) is None
    assert ladder.trusted_index(0.0) == 2


def test_ladder_uses_the_longest_window_until_trust_has_been_earned() -> None:
    c = Clocked().feed(5.0)
    for step in range(1, 10):
        c.feed(1.0)
        assert c.window() == 8, step
        # The old peak counts while it is in the 8-step window (steps 0..7).
        assert c.point() == (5.0 if step < 8 else 1.0), step
    c.feed(1.0)  # step 10: 3000 s after the first sample, no breach in any window
    assert c.window() == 2
    fc = c.ladder.forecast(c.now, 3600.0)
    assert fc is not None
    assert (fc.point, fc.lower, fc.upper) == (1.0, 1.0, pytest.approx(1.05))
    assert fc.level == 1.0
    assert fc.model == "peak-ladder-2"
    assert fc.horizon_s == 3600.0


def test_ladder_trusts_a_young_series_from_min_age_on_its_whole_life() -> None:
    young = LadderSettings(windows_steps=(2, 4, 8), factor=1.05, trust_s=10 * STEP,
                           insurance_ratio=1e9, min_age_s=4 * STEP)
    c = Clocked(young).feed(2.0, 2.0, 2.0, 2.0)
    assert c.window() == 8  # 3 steps old
    c.feed(2.0)
    assert c.window() == 2  # 4 steps old, no breach in its life
    c.feed(3.0)  # a new high: breaches every window, back to the longest
    assert c.window() == 8


def test_ladder_climbs_down_to_the_shortest_window_for_a_flat_series() -> None:
    c = Clocked().feed(*[3.0] * 11)
    assert c.window() == 2
    assert c.point() == 3.0
    # Rises within the factor are not breaches.
    c.feed(3.1)
    assert c.window() == 2
    assert c.point() == 3.1


def test_ladder_falls_back_to_the_next_window_that_held_after_a_breach() -> None:
    c = Clocked().feed(*[1.0] * 12)
    assert c.window() == 2
    # A dip and a recovery: 1.0 > 1.05 × 0.5 breaches the 2-step window only; the 4-step
    # window still held the 1.0 from before the dip.
    c.feed(0.5, 0.5, 1.0)
    assert c.window() == 4
    assert c.point() == 1.0
    # It stays there for trust_s, then climbs back down.
    for _ in range(9):
        c.feed(1.0)
        assert c.window() == 4
    c.feed(1.0)  # the breach is now trust_s old
    assert c.window() == 2


def test_ladder_falls_back_to_the_longest_window_after_a_new_high() -> None:
    c = Clocked().feed(*[1.0] * 12)
    assert c.window() == 2
    c.feed(2.0)  # breaches every window
    assert c.window() == 8
    c.feed(1.0, 1.0, 1.0)
    assert c.window() == 8
    assert c.point() == 2.0
    assert c.ladder.ceiling() == pytest.approx(2.1)


def test_a_high_another_forecaster_expected_breaks_no_trust() -> None:
    c = Clocked().feed(*[1.0] * 12)
    assert c.window() == 2
    c.step += 1
    c.ladder.observe(c.now, 2.0, expected=2.1)  # foreseen (the weekly guard's level)
    assert c.window() == 2  # still the tightest window: it drops the high in two steps
    c.feed(1.0, 1.0)
    assert c.point() == 1.0
    c.step += 1
    c.ladder.observe(c.now, 3.0, expected=2.1)  # beyond what was foreseen: a surprise
    assert c.window() == 8


def test_ladder_does_not_trust_a_window_holding_only_gaps() -> None:
    c = Clocked().feed(*[1.0] * 12)
    c.feed(math.nan, math.nan)
    assert c.window() == 4
    assert c.point() == 1.0
    fc = c.ladder.forecast(c.now, 60.0)
    assert fc is not None
    assert fc.lower == 1.0  # the shortest window is empty: lower falls back to the peak


def test_ladder_forecast_falls_back_to_any_window_with_numbers() -> None:
    c = Clocked(LadderSettings(windows_steps=(1, 3), factor=1.05, trust_s=0.0, min_age_s=0.0,
                               insurance_ratio=1e9))
    c.feed(4.0, math.nan)
    # Trusted: the longest (the 1-step window holds only a gap).
    assert c.point() == 4.0
    c.feed(math.nan, math.nan)
    assert c.ladder.forecast(c.now, 60.0) is None


def test_ladder_gaps_before_the_first_number_do_not_start_the_trust_clock() -> None:
    c = Clocked().feed(math.nan, math.nan, math.nan)
    assert c.ladder.trusted_index(c.now + 100 * STEP) == 2
    assert c.ladder.forecast(c.now, 60.0) is None


@pytest.mark.parametrize("windows", [(), (8, 4), (12, 72, 36)])
def test_ladder_settings_reject_unordered_windows(windows: tuple[int, ...]) -> None:
    with pytest.raises(SettingsError, match="windows_steps"):
        LadderSettings(windows_steps=windows)


@pytest.mark.parametrize("windows", [(0, 12), (-5, 12)])
def test_ladder_settings_reject_non_positive_windows(windows: tuple[int, ...]) -> None:
    with pytest.raises(SettingsError, match="windows_steps"):
        LadderSettings(windows_steps=windows)


@pytest.mark.parametrize(
    "kwargs", [{"factor": -1.0}, {"trust_s": math.inf}, {"min_age_s": -1.0}]
)
def test_ladder_settings_reject_bad_numbers(kwargs: dict[str, float]) -> None:
    with pytest.raises(SettingsError, match=next(iter(kwargs))):
        LadderSettings(**kwargs)  # type: ignore[arg-type]


def test_longest_window_is_insurance_bought_only_when_cheap() -> None:
    """An old outlier far above the next window's peak does not hold the allocation up."""
    settings = LadderSettings(windows_steps=(2, 8), factor=1.0, trust_s=1e9, min_age_s=1e9,
                              insurance_ratio=1.25)
    ladder = PeakLadderForecaster(settings)
    for t, v in enumerate([10.0, 1.0, 1.0, 1.0, 1.0]):
        ladder.observe(t * STEP, v)
    # Nothing is trusted yet (min_age_s is huge) so the longest window would be used, but its peak
    # (10) is 10x the shorter one's (1): the shorter window is chosen.
    assert ladder.trusted_index(5 * STEP) == 1
    assert ladder.chosen_index(5 * STEP) == 0
    f = ladder.forecast(5 * STEP, STEP)
    assert f is not None
    assert f.upper == 1.0
    # A peak within the ratio is cheap insurance and is kept.
    cheap = PeakLadderForecaster(settings)
    for t, v in enumerate([1.2, 1.0, 1.0, 1.0, 1.0]):
        cheap.observe(t * STEP, v)
    assert cheap.chosen_index(5 * STEP) == 1
