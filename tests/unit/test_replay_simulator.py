"""replay_series(): a policy sees only the past, and learns OOMs and throttling a step late."""

from __future__ import annotations

import math

import numpy as np
import pytest

from presize.replay.series import REAL_UNITS, STEP_SECONDS, Series, TraceUnits
from presize.replay.simulator import Observation, SeriesRun, replay_all, replay_series

NAN = np.nan


class Spy:
    """Records what it has observed each time it is asked for an allocation."""

    def __init__(self, allocations: list[tuple[float, float]]) -> None:
        self.allocations = allocations
        self.observed: list[Observation] = []
        self.asked: list[tuple[int, float, list[int]]] = []

    def observe(self, obs: Observation) -> None:
        self.observed.append(obs)

    def allocate(self, t: int, time: float) -> tuple[float, float]:
        self.asked.append((t, time, [o.t for o in self.observed]))
        return self.allocations[t]

    def extras(self) -> dict[str, np.ndarray]:
        return {"seen": np.array([o.t for o in self.observed], dtype=np.float64)}


def series() -> Series:
    return Series(
        "s",
        cpu=np.array([1.0, 2.0, NAN, 4.0, 5.0]),
        mem=np.array([10.0, 20.0, 30.0, 40.0, 50.0]),
        start_time=1000.0,
    )


ALLOC = [(1.5, 15.0), (1.5, 15.0), (9.0, 99.0), (3.0, 45.0), (6.0, 60.0)]


def spied(s: Series, allocations: list[tuple[float, float]] = ALLOC) -> tuple[Spy, SeriesRun]:
    holder: dict[str, Spy] = {}

    def factory(series: Series, units: TraceUnits) -> Spy:
        assert units is REAL_UNITS
        holder["spy"] = Spy(allocations)
        return holder["spy"]

    result = replay_series(s, REAL_UNITS, factory)
    return holder["spy"], result


def test_a_policy_sees_exactly_the_steps_before_the_one_it_allocates() -> None:
    spy, _ = spied(series())
    assert [(t, seen) for t, _, seen in spy.asked] == [
        (0, []), (1, [0]), (2, [0, 1]), (3, [0, 1, 2]), (4, [0, 1, 2, 3]),
    ]
    assert [o.t for o in spy.observed] == [0, 1, 2, 3, 4]


def test_the_clock_starts_at_the_series_start_and_ticks_by_one_step() -> None:
    spy, _ = spied(series())
    assert [time for _, time, _ in spy.asked] == [1000.0 + t * STEP_SECONDS for t in range(5)]
    assert [o.time for o in spy.observed] == [1000.0 + t * STEP_SECONDS for t in range(5)]


def test_observations_carry_the_usage_of_their_own_step() -> None:
    spy, _ = spied(series())
    obs = spy.observed
    assert [(o.cpu, o.mem) for o in obs if o.valid] == [(1, 10), (2, 20), (4, 40), (5, 50)]
    # Without window peaks the peaks are the means.
    assert [(o.cpu_peak, o.mem_peak) for o in obs if o.valid] == [
        (1, 10), (2, 20), (4, 40), (5, 50)
    ]


def test_a_missing_step_is_shown_as_missing_and_never_as_an_oom() -> None:
    spy, _ = spied(series())
    gap = spy.observed[2]
    assert not gap.valid
    assert all(math.isnan(v) for v in (gap.cpu, gap.mem, gap.cpu_peak, gap.mem_peak))
    assert (gap.oom, gap.throttled) == (False, False)  # although 9 > nan and 99 > 30 ...


def test_oom_and_throttling_are_judged_against_the_allocation_of_that_step() -> None:
    spy, _ = spied(series())
    flags = [(o.throttled, o.oom) for o in spy.observed]
    # cpu 1 vs 1.5, 2 vs 1.5, gap, 4 vs 3, 5 vs 6; mem 10 vs 15, 20 vs 15, gap, 40 vs 45, 50 vs 60
    assert flags == [(False, False), (True, True), (False, False), (True, False), (False, False)]


def test_oom_and_throttling_use_window_peaks_when_the_trace_has_them() -> None:
    s = Series(
        "p",
        cpu=np.array([1.0, 1.0]),
        mem=np.array([10.0, 10.0]),
        cpu_peak=np.array([1.2, 3.0]),
        mem_peak=np.array([10.0, 70.0]),
    )
    spy, _ = spied(s, [(2.0, 50.0), (2.0, 50.0)])
    assert [(o.throttled, o.oom) for o in spy.observed] == [(False, False), (True, True)]
    assert spy.observed[1].cpu == 1.0
    assert spy.observed[1].cpu_peak == 3.0


def test_replay_returns_the_allocations_and_the_policy_extras() -> None:
    _, result = spied(series())
    assert result.cpu_alloc.tolist() == [a for a, _ in ALLOC]
    assert result.mem_alloc.tolist() == [m for _, m in ALLOC]
    assert result.extras["seen"].tolist() == [0, 1, 2, 3, 4]


def test_replay_without_extras_returns_an_empty_mapping() -> None:
    class Fixed:
        def observe(self, obs: Observation) -> None:
            pass

        def allocate(self, t: int, time: float) -> tuple[float, float]:
            return (1.0, 2.0)

    result = replay_series(series(), REAL_UNITS, lambda s, u: Fixed())
    assert result.extras == {}
    assert result.cpu_alloc.tolist() == [1.0] * 5


def test_replay_all_runs_each_series_with_a_fresh_policy() -> None:
    made: list[str] = []

    def factory(s: Series, units: TraceUnits) -> Spy:
        made.append(s.series_id)
        return Spy([(float(len(made)), 1.0)] * len(s))

    short = Series("t", cpu=np.array([1.0]), mem=np.array([1.0]))
    runs = replay_all([series(), short], REAL_UNITS, factory)
    assert made == ["s", "t"]
    assert [r.cpu_alloc.tolist() for r in runs] == [[1.0] * 5, [2.0]]


def test_an_empty_series_replays_to_empty_allocations() -> None:
    empty = Series("e", cpu=np.array([]), mem=np.array([]))
    spy, result = spied(empty, [])
    assert spy.asked == []
    assert result.cpu_alloc.size == 0


@pytest.mark.parametrize("t", range(5))
def test_a_policy_cannot_learn_a_step_before_allocating_it(t: int) -> None:
    """A clairvoyant spy that sizes to the last usage it saw never matches the future."""

    class LastSeen:
        def __init__(self) -> None:
            self.last = 0.0

        def observe(self, obs: Observation) -> None:
            if obs.valid:
                self.last = obs.cpu

        def allocate(self, step: int, time: float) -> tuple[float, float]:
            return (self.last, 1.0)

    s = Series("r", cpu=np.arange(1.0, 6.0), mem=np.ones(5))
    result = replay_series(s, REAL_UNITS, lambda _s, _u: LastSeen())
    assert result.cpu_alloc[t] == float(t)  # usage at t-1 (or nothing), never usage at t
