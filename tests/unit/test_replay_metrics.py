"""score(): pooled slack, shortfall, throttling, OOMs and change rate on hand-made runs.

Each series is one day of warm-up (288 steps, never scored) followed by four scored steps.
"""

from __future__ import annotations

import numpy as np
import pytest

from presize.replay.metrics import Score, score, scored_mask
from presize.replay.series import STEPS_PER_DAY, Series
from presize.replay.simulator import SeriesRun

W = STEPS_PER_DAY
NAN = np.nan


def padded(warm: float, tail: list[float]) -> np.ndarray:
    return np.array([warm] * W + tail, dtype=np.float64)


def run(cpu: np.ndarray, mem: np.ndarray) -> SeriesRun:
    return SeriesRun(cpu_alloc=cpu, mem_alloc=mem, extras={})


# Series A (no window peaks). Scored steps 288..291; step 291 is missing (cpu NaN).
#   cpu use   1    2    1    NaN      alloc 1.5  1.5  1.0  2.0   (1.5 before)
#   mem use  10   10   30    10       alloc 20   20   20   20    (20 before)
SERIES_A = Series("a", cpu=padded(1.0, [1, 2, 1, NAN]), mem=padded(10.0, [10, 10, 30, 10]))
RUN_A = run(padded(1.5, [1.5, 1.5, 1.0, 2.0]), padded(20.0, [20, 20, 20, 20]))

# Series B (with window peaks, as Google 2019): throttling and OOMs are judged on the peaks,
# slack and shortfall on the means. The allocation changes at the first scored step.
SERIES_B = Series(
    "b",
    cpu=padded(1.0, [1, 1, 1, 1]),
    mem=padded(1.0, [1, 1, 1, 1]),
    cpu_peak=padded(1.0, [1, 3, 1, 1]),
    mem_peak=padded(1.0, [1, 1, 1, 5]),
)
RUN_B = run(padded(3.0, [2, 2, 2, 2]), padded(2.0, [2, 2, 2, 2]))

# Series C is shorter than the warm-up: nothing of it is scored.
SERIES_C = Series("c", cpu=np.ones(10), mem=np.ones(10))
RUN_C = run(np.zeros(10), np.zeros(10))


def test_scored_mask_skips_the_first_day_and_missing_steps() -> None:
    mask = scored_mask(SERIES_A)
    assert not mask[:W].any()
    assert mask[W:].tolist() == [True, True, True, False]
    assert scored_mask(SERIES_A, warmup=0).sum() == W + 3


def test_score_of_one_series_by_hand() -> None:
    s = score([SERIES_A], [RUN_A])
    assert s.scored_steps == 3
    assert s.cpu_slack == pytest.approx(0.5 / 4.0)
    assert s.cpu_shortfall == pytest.approx(0.5 / 4.0)
    assert s.mem_slack == pytest.approx(20.0 / 60.0)
    assert s.mem_shortfall == pytest.approx(10.0 / 50.0)
    assert s.throttled_steps == pytest.approx(1 / 3)
    assert (s.oom_events, s.oom_series) == (1, 1)
    # One scored change (step 290); the change at the missing step 291 is not scored.
    assert s.changes_per_day == pytest.approx(1 / (3 / W))


def test_score_judges_throttling_and_ooms_on_window_peaks() -> None:
    s = score([SERIES_B], [RUN_B])
    assert s.scored_steps == 4
    assert s.cpu_slack == pytest.approx(4.0 / 8.0)  # slack is on the mean use
    assert s.cpu_shortfall == 0.0
    assert s.throttled_steps == pytest.approx(1 / 4)  # peak 3 > 2 at step 289
    assert (s.oom_events, s.oom_series) == (1, 1)  # peak 5 > 2 at step 291
    assert s.changes_per_day == pytest.approx(1 / (4 / W))  # 3 -> 2 at step 288


def test_score_pools_sums_over_series_rather_than_averaging_ratios() -> None:
    s = score([SERIES_A, SERIES_B, SERIES_C], [RUN_A, RUN_B, RUN_C])
    assert s == Score(
        cpu_slack=pytest.approx((0.5 + 4.0) / (4.0 + 8.0)),
        mem_slack=pytest.approx((20.0 + 4.0) / (60.0 + 8.0)),
        cpu_shortfall=pytest.approx(0.5 / (4.0 + 4.0)),
        mem_shortfall=pytest.approx(10.0 / (50.0 + 4.0)),
        throttled_steps=pytest.approx(2 / 7),
        oom_events=2,
        oom_series=2,
        changes_per_day=pytest.approx(2 / (7 / W)),
        scored_steps=7,
    )


def test_score_of_a_perfect_allocation_is_zero_everywhere() -> None:
    series = Series("p", cpu=padded(1.0, [1, 2, 3]), mem=padded(4.0, [4, 5, 6]))
    s = score([series], [run(series.cpu.copy(), series.mem.copy())])
    assert (s.cpu_slack, s.mem_slack, s.cpu_shortfall, s.mem_shortfall) == (0, 0, 0, 0)
    assert (s.throttled_steps, s.oom_events, s.oom_series) == (0, 0, 0)
    # The allocation followed usage: it changed at each scored step (1 -> 1 is no change).
    assert s.changes_per_day == pytest.approx(2 / (3 / W))


def test_score_of_nothing_scored_is_all_zero() -> None:
    s = score([SERIES_C], [RUN_C])
    assert s.scored_steps == 0
    assert s.as_dict() == {
        "cpu_slack": 0.0, "mem_slack": 0.0, "cpu_shortfall": 0.0, "mem_shortfall": 0.0,
        "throttled_steps": 0.0, "oom_events": 0.0, "oom_series": 0.0,
        "changes_per_day": 0.0, "scored_steps": 0.0,
    }


def test_score_needs_one_run_per_series() -> None:
    with pytest.raises(ValueError, match="zip"):
        score([SERIES_A, SERIES_B], [RUN_A])
