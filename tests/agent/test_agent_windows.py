"""Short windows: bounded buffers, time-weighted means, quantiles, throttled fraction, totals."""

from __future__ import annotations

import math

import pytest

from agent.cgroups.sample import Limits
from agent.sampler import Rates
from agent.windows import RateWindow, capacity_for, quantile, summarize
from presize.model import PodRef

POD = PodRef(namespace="ns", name="web-0", uid="uid-1", node="n1")


def rate(t: float, cpu: float, **kw: float | int | None) -> Rates:
    elapsed = kw.pop("elapsed", 1.0)
    assert isinstance(elapsed, float)
    return Rates(time=t, elapsed=elapsed, cpu_cores=cpu, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0], 0.99, 1.0),
        ([0.0, 10.0], 0.5, 5.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.9, 4.6),
        ([1.0, 2.0, 3.0], 0.0, 1.0),
        ([1.0, 2.0, 3.0], 1.0, 3.0),
    ],
)
def test_quantile_interpolates_linearly(values: list[float], q: float, expected: float) -> None:
    assert quantile(values, q) == pytest.approx(expected)


def test_quantile_of_nothing_is_nan() -> None:
    assert math.isnan(quantile([], 0.5))


def test_summary_weights_cpu_mean_by_elapsed_time() -> None:
    # 1 core for 1 s, then 0 cores for 3 s: 0.25 cores on average, max 1.
    rates = [rate(1.0, 1.0), rate(4.0, 0.0, elapsed=3.0)]
    w = summarize(rates, pod=POD, container="app")
    assert w is not None
    assert w.cpu_mean == pytest.approx(0.25)
    assert w.cpu_max == 1.0
    assert w.start == 0.0
    assert w.seconds == 4.0
    assert w.samples == 2


def test_summary_throttled_fraction_is_a_ratio_of_sums() -> None:
    rates = [
        rate(1.0, 0.5, periods=10, throttled_periods=10),
        rate(2.0, 0.0, periods=0, throttled_periods=0),  # idle: no periods, weighs nothing
        rate(3.0, 0.5, periods=10, throttled_periods=0),
    ]
    w = summarize(rates, pod=POD, container="app")
    assert w is not None
    assert w.cpu_throttled_fraction == pytest.approx(0.5)


def test_summary_totals_oom_io_and_pressure_and_carries_limits() -> None:
    rates = [
        rate(1.0, 0.1, oom_kills=1, io_read_bytes=100.0, psi_memory=0.5, mem_working_set=10.0),
        rate(2.0, 0.1, oom_kills=0, io_write_bytes=50.0, psi_memory=0.0, mem_working_set=30.0),
        rate(3.0, 0.1, oom_kills=2, psi_memory=None, mem_working_set=None),
    ]
    w = summarize(
        rates,
        pod=POD,
        container="app",
        limits=Limits(cpu_cores=0.5, memory_bytes=1024),
        epoch_offset=1000.0,
    )
    assert w is not None
    assert w.oom_kills == 3
    assert (w.io_read_bytes, w.io_write_bytes) == (100.0, 50.0)
    assert w.pressure.memory == pytest.approx(0.25)  # unknown seconds are left out
    assert w.pressure.cpu == 0.0
    assert (w.mem_mean, w.mem_max) == (20.0, 30.0)
    assert (w.cpu_limit, w.mem_limit) == (0.5, 1024.0)
    assert w.start == 1000.0


def test_summary_of_no_rates_is_none() -> None:
    assert summarize([], pod=POD, container="app") is None


def test_window_cuts_the_last_seconds_from_one_buffer() -> None:
    window = RateWindow(capacity_for(60, 1.0))
    for t in range(1, 101):
        window.push(rate(float(t), float(t)))
    assert len(window) == 62  # bounded: the oldest 38 are gone
    short = window.summary(10, now=100.0, pod=POD, container="app")
    long = window.summary(60, now=100.0, pod=POD, container="app")
    assert short is not None
    assert long is not None
    assert (short.samples, short.cpu_max) == (10, 100.0)
    assert short.cpu_mean == pytest.approx(95.5)
    assert (long.samples, long.start) == (60, 40.0)


def test_window_ignores_rates_stamped_after_now() -> None:
    window = RateWindow(5)
    for t in (1.0, 2.0, 3.0):
        window.push(rate(t, t))
    assert [r.time for r in window.last(10, now=2.0)] == [1.0, 2.0]


def test_window_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RateWindow(0)


def test_summary_weighs_a_psi_reading_by_the_time_it_covers() -> None:
    rates = [
        rate(1.0, 0.1, psi_cpu=None, psi_elapsed=0.0),
        rate(2.0, 0.1, psi_cpu=0.5, psi_elapsed=4.0),  # 2 s of stall over 4 s
        rate(3.0, 0.1, psi_cpu=0.0),  # 0 s over its own 1 s
    ]
    w = summarize(rates, pod=POD, container="app")
    assert w is not None
    assert w.pressure.cpu == pytest.approx(2.0 / 5.0)
