"""WeeklyPeaks: hourly maxima kept for a week, looked up around the same time a week earlier."""

from __future__ import annotations

import math

import pytest

from presize.forecast.weekly import WeeklyPeaks

HOUR = 3600.0
WEEK = 7 * 24 * HOUR


def peaks(margin: int = 1) -> WeeklyPeaks:
    return WeeklyPeaks(week_s=WEEK, bucket_s=HOUR, margin_buckets=margin)


def test_nothing_is_known_before_a_week_of_history() -> None:
    w = peaks()
    w.observe(0.0, 5.0)
    assert math.isnan(w.week_before(10 * HOUR))
    assert math.isnan(w.week_before(0.0))


def test_a_peak_comes_back_a_week_later_within_the_margin() -> None:
    w = peaks(margin=1)
    w.observe(10 * HOUR + 60, 8.0)  # a spike inside hour 10
    w.observe(10 * HOUR + 120, 2.0)  # the same hour's lower samples do not replace it
    assert w.week_before(WEEK + 10 * HOUR + 1800) == 8.0
    assert w.week_before(WEEK + 9 * HOUR) == 8.0  # an hour early: inside the margin
    assert w.week_before(WEEK + 11 * HOUR + 3599) == 8.0  # an hour late: inside too
    assert math.isnan(w.week_before(WEEK + 12 * HOUR))  # two hours late: outside
    assert math.isnan(w.week_before(WEEK + 8 * HOUR))


def test_the_margin_takes_the_highest_hour_around_the_time() -> None:
    w = peaks(margin=2)
    for hour, value in ((20, 1.0), (21, 3.0), (22, 2.0)):
        w.observe(hour * HOUR, value)
    assert w.week_before(WEEK + 20 * HOUR) == 3.0
    assert w.week_before(WEEK + 23 * HOUR) == 3.0
    assert w.week_before(WEEK + 24 * HOUR) == 2.0


def test_nan_samples_are_ignored() -> None:
    w = peaks()
    w.observe(0.0, math.nan)
    assert math.isnan(w.week_before(WEEK))


def test_old_hours_are_dropped_so_state_stays_about_a_week() -> None:
    w = peaks(margin=3)
    for h in range(24 * 30):  # a month of hourly samples
        w.observe(h * HOUR, float(h))
    assert len(w.state()) <= 7 * 24 + 2 * 3 + 2  # a week and the margins, no more
    now = 24 * 30 * HOUR
    assert w.week_before(now) == float(24 * 30 - 7 * 24 + 3)  # the margin's latest hour


def test_state_round_trips() -> None:
    w = peaks()
    w.observe(5 * HOUR, 4.0)
    w.observe(6 * HOUR, 7.0)
    copy = peaks()
    copy.load(w.state())
    assert copy.state() == w.state()
    assert copy.week_before(WEEK + 6 * HOUR) == 7.0


@pytest.mark.parametrize(
    "kwargs",
    [{"week_s": 0.0, "bucket_s": HOUR, "margin_buckets": 1},
     {"week_s": WEEK, "bucket_s": -1.0, "margin_buckets": 1},
     {"week_s": WEEK, "bucket_s": HOUR, "margin_buckets": -1}],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="WeeklyPeaks"):
        WeeklyPeaks(**kwargs)  # type: ignore[arg-type]
