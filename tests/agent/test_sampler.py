"""Counters to rates: measured elapsed time, priming, resets, PSI shares."""

from __future__ import annotations

import pytest

from agent.cgroups.parse import IoStat, Throttling
from agent.cgroups.sample import CgroupSample, MemorySample, PsiTotals
from agent.sampler import CounterTracker, rates_between


def sample(
    cpu_s: float,
    *,
    periods: int = 0,
    throttled: int = 0,
    oom: int | None = 0,
    io: tuple[int, int] | None = (0, 0),
    psi_us: int | None = None,
    ws: int = 100,
) -> CgroupSample:
    return CgroupSample(
        cpu_usage_ns=round(cpu_s * 1e9),
        throttling=Throttling(nr_periods=periods, nr_throttled=throttled, throttled_ns=0),
        memory=MemorySample(usage=ws + 10, working_set=ws, anon=ws, file=10),
        oom_kills=oom,
        io=None if io is None else IoStat(read_bytes=io[0], write_bytes=io[1]),
        psi=PsiTotals(cpu_us=psi_us, memory_us=psi_us, io_us=None),
    )


def test_first_sample_only_primes() -> None:
    tracker = CounterTracker()
    assert tracker.update(sample(1.0), now=100.0) is None
    assert tracker.resets == 0


def test_rate_uses_the_measured_elapsed_time_not_the_nominal_tick() -> None:
    tracker = CounterTracker()
    tracker.update(sample(10.0), now=100.0)
    # 0.7 core-seconds over a late tick of 1.4 s is 0.5 cores, not 0.7.
    rates = tracker.update(sample(10.7), now=101.4)
    assert rates is not None
    assert rates.elapsed == pytest.approx(1.4)
    assert rates.cpu_cores == pytest.approx(0.5)
    assert rates.time == 101.4


def test_deltas_of_throttling_oom_io_and_psi() -> None:
    prev = sample(0.0, periods=10, throttled=2, oom=1, io=(100, 200), psi_us=1_000_000)
    cur = sample(0.5, periods=20, throttled=7, oom=3, io=(1100, 200), psi_us=1_250_000, ws=300)
    rates = rates_between(prev, cur, elapsed=1.0, time=5.0)
    assert rates is not None
    assert (rates.periods, rates.throttled_periods) == (10, 5)
    assert rates.oom_kills == 2
    assert (rates.io_read_bytes, rates.io_write_bytes) == (1000.0, 0.0)
    assert rates.psi_cpu == pytest.approx(0.25)
    assert rates.psi_io is None
    assert rates.mem_working_set == 300.0


@pytest.mark.parametrize(
    "cur",
    [
        sample(0.5),  # CPU time went backwards: a new cgroup under the same path
        sample(9.0, oom=0),  # OOM kill counter went backwards
        sample(9.0, io=(0, 0)),  # I/O counters went backwards
    ],
)
def test_counter_reset_reprimes_and_is_counted(cur: CgroupSample) -> None:
    tracker = CounterTracker()
    tracker.update(sample(5.0, oom=2, io=(10, 10)), now=1.0)
    assert tracker.update(cur, now=2.0) is None
    assert tracker.resets == 1
    # The reset sample is the new baseline.
    after = tracker.update(
        CgroupSample(
            cpu_usage_ns=cur.cpu_usage_ns + 250_000_000,
            throttling=cur.throttling,
            memory=cur.memory,
            oom_kills=cur.oom_kills,
            io=cur.io,
        ),
        now=3.0,
    )
    assert after is not None
    assert after.cpu_cores == pytest.approx(0.25)


def test_a_clock_that_did_not_move_keeps_the_older_baseline() -> None:
    tracker = CounterTracker()
    tracker.update(sample(1.0), now=10.0)
    assert tracker.update(sample(1.5), now=10.0) is None
    rates = tracker.update(sample(2.0), now=11.0)
    assert rates is not None
    assert rates.cpu_cores == pytest.approx(1.0)
    assert tracker.resets == 0


def test_missing_counters_give_unknown_or_zero_not_errors() -> None:
    prev = sample(0.0, oom=None, io=None, psi_us=None)
    cur = sample(1.0, oom=None, io=None, psi_us=None)
    rates = rates_between(prev, cur, elapsed=1.0, time=1.0)
    assert rates is not None
    assert rates.oom_kills == 0
    assert rates.io_read_bytes == 0.0
    assert rates.psi_cpu is None


def test_psi_share_is_capped_at_the_whole_interval() -> None:
    rates = rates_between(sample(0, psi_us=0), sample(0, psi_us=3_000_000), elapsed=1.0, time=1)
    assert rates is not None
    assert rates.psi_cpu == 1.0


def slow_skipped(cpu_s: float) -> CgroupSample:
    """A read that skipped the slow counters (PSI and the OOM count)."""
    return sample(cpu_s, oom=None, psi_us=None)


def test_oom_kills_of_skipped_ticks_land_on_the_tick_that_reads_the_counter() -> None:
    tracker = CounterTracker()
    tracker.update(sample(0.0, oom=1), now=0.0)
    skipped = tracker.update(slow_skipped(1.0), now=1.0)
    assert skipped is not None
    assert skipped.oom_kills == 0
    read = tracker.update(sample(2.0, oom=3), now=2.0)
    assert read is not None
    assert read.oom_kills == 2  # both kills, counted once
    assert read.cpu_cores == pytest.approx(1.0)  # the fast counters kept their own baseline
    assert tracker.resets == 0


def test_an_oom_count_that_went_back_across_skipped_ticks_is_a_reset() -> None:
    tracker = CounterTracker()
    tracker.update(sample(0.0, oom=5), now=0.0)
    tracker.update(slow_skipped(1.0), now=1.0)
    assert tracker.update(sample(2.0, oom=0), now=2.0) is None
    assert tracker.resets == 1


def test_psi_share_is_taken_over_the_time_since_the_previous_psi_read() -> None:
    tracker = CounterTracker()
    tracker.update(sample(0.0, psi_us=0), now=0.0)
    for t in (1.0, 2.0, 3.0, 4.0):
        between = tracker.update(slow_skipped(t), now=t)
        assert between is not None
        assert between.psi_cpu is None
    # 1 s of stall in the 5 s since the last PSI read: 20 %, not 100 % of the last second.
    read = tracker.update(sample(5.0, psi_us=1_000_000), now=5.0)
    assert read is not None
    assert read.psi_cpu == pytest.approx(0.2)
    assert read.psi_elapsed == pytest.approx(5.0)
    assert read.elapsed == pytest.approx(1.0)


def test_a_first_read_without_psi_gives_no_share_until_two_psi_reads() -> None:
    tracker = CounterTracker()
    tracker.update(slow_skipped(0.0), now=0.0)
    first = tracker.update(sample(1.0, psi_us=500_000), now=1.0)
    assert first is not None
    assert first.psi_cpu is None
    second = tracker.update(sample(2.0, psi_us=750_000), now=2.0)
    assert second is not None
    assert second.psi_cpu == pytest.approx(0.25)
