"""PresizeSeriesPolicy on small synthetic series, replayed step by step by the real simulator.

Series are 3 days of 5-minute steps in real units (cores, bytes) built from fixed seeds. As in
the replay's scores, the first day is warm-up: assertions about steady behaviour look at days
2 and 3 only.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from presize.forecast.seasonal import SeasonalForecaster
from presize.replay.presize_policy import PresizeReplaySettings, PresizeSeriesPolicy
from presize.replay.series import REAL_UNITS, STEP_SECONDS, STEPS_PER_DAY, Series, TraceUnits
from presize.replay.simulator import SeriesRun, replay_series

GiB = 1024.0**3
N = 3 * STEPS_PER_DAY
SCORED = slice(STEPS_PER_DAY, None)
NOMINAL = 0.90  # the level of the recorded bands


def replay(
    series: Series,
    settings: PresizeReplaySettings | None = None,
    units: TraceUnits = REAL_UNITS,
) -> tuple[SeriesRun, PresizeSeriesPolicy]:
    made: list[PresizeSeriesPolicy] = []

    def factory(s: Series, u: TraceUnits) -> PresizeSeriesPolicy:
        made.append(PresizeSeriesPolicy(s, u, settings))
        return made[0]

    run = replay_series(series, units, factory)
    return run, made[0]


def flat(seed: int, *, cpu: float = 0.5, mem: float = GiB) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return cpu + rng.normal(0, 0.02 * cpu / 0.5, N), mem * (1 + rng.normal(0, 0.005, N))


def changes(run: SeriesRun) -> np.ndarray:
    """Steps (index of the later step) whose CPU or memory allocation differs from the last."""
    moved = np.zeros(N, dtype=bool)
    moved[1:] = (np.diff(run.cpu_alloc) != 0) | (np.diff(run.mem_alloc) != 0)
    return moved


def with_buffer(buffer: float) -> PresizeReplaySettings:
    base = PresizeReplaySettings()
    return replace(base, policy=replace(base.policy, buffer=buffer))


# ----------------------------------------------------------------------------------- flat
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    ("start_cpu", "start_mem"),
    [(0.5, GiB), (2.0, 4 * GiB), (0.1, 0.3 * GiB)],
    ids=["at-usage", "4x-over", "5x-under"],
)
@pytest.mark.parametrize("buffer", [1.0, 1.1, 1.3])
def test_presize_on_a_flat_series_settles_near_usage_times_buffer(
    buffer: float, start_cpu: float, start_mem: float, seed: int
) -> None:
    cpu, mem = flat(seed)
    run, _ = replay(
        Series("flat", cpu=cpu, mem=mem, initial_cpu=start_cpu, initial_mem=start_mem),
        with_buffer(buffer),
    )
    for alloc, usage in ((run.cpu_alloc, cpu), (run.mem_alloc, mem)):
        ratio = alloc[SCORED] / usage.mean()
        # At least buffer x the mean; hysteresis lets it rest up to ~1/0.8 of the target.
        assert ratio.min() >= buffer
        assert ratio.max() <= buffer + 0.45
        assert (usage[SCORED] <= alloc[SCORED]).all()  # no throttling, no OOM
    moved = changes(run)
    assert moved[SCORED].sum() <= 2
    assert moved.sum() <= 16


def test_presize_allocates_more_with_a_larger_buffer() -> None:
    cpu, mem = flat(3)
    series = Series("flat", cpu=cpu, mem=mem, initial_cpu=0.5, initial_mem=GiB)
    means = []
    for buffer in (1.0, 1.3, 1.6):
        run, _ = replay(series, with_buffer(buffer))
        means.append((run.cpu_alloc[SCORED].mean(), run.mem_alloc[SCORED].mean()))
    assert means[0][0] < means[1][0] < means[2][0]
    assert means[0][1] < means[1][1] < means[2][1]


# ------------------------------------------------------------------------------ memory step
@pytest.mark.parametrize("at", [300, 450, 700])
@pytest.mark.parametrize("factor", [1.5, 2.0, 3.0])
def test_presize_memory_step_costs_at_most_one_oom_step(factor: float, at: int) -> None:
    cpu, mem = flat(1)
    mem[at:] *= factor
    run, _ = replay(Series("step", cpu=cpu, mem=mem, initial_cpu=0.5, initial_mem=GiB))
    short = np.nonzero(mem[at:] > run.mem_alloc[at:])[0]
    assert len(short) <= 1
    assert (mem[at + 1 :] <= run.mem_alloc[at + 1 :]).all()
    assert run.mem_alloc[at + 1] >= mem[at]  # grown at once, on the very next step
    # ... and the new level is held without being wildly overshot.
    assert run.mem_alloc[-1] <= 1.6 * mem[at:].max()


# -------------------------------------------------------------------------------- CPU ramps
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_presize_follows_a_cpu_ramp_up(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.2, 2.0, N)
    cpu = ramp * (1 + rng.normal(0, 0.03, N))
    _, mem = flat(seed)
    run, _ = replay(Series("up", cpu=cpu, mem=mem, initial_cpu=0.2, initial_mem=GiB))
    alloc, use = run.cpu_alloc[SCORED], cpu[SCORED]
    assert (use > alloc).mean() <= 0.03
    assert 1.0 <= (alloc / ramp[SCORED]).mean() <= 1.5
    assert (alloc / ramp[SCORED]).max() <= 1.6
    assert run.cpu_alloc[-1] >= 0.95 * ramp[-1]
    assert np.corrcoef(alloc, use)[0, 1] > 0.95


@pytest.mark.parametrize("seed", [0, 1])
def test_presize_follows_a_cpu_and_memory_ramp_down_without_shortfall(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(2.0, 0.5, N)
    cpu = ramp * (1 + rng.normal(0, 0.03, N))
    mem = GiB * np.linspace(2.0, 1.0, N) * (1 + rng.normal(0, 0.005, N))
    run, _ = replay(Series("down", cpu=cpu, mem=mem, initial_cpu=2.0, initial_mem=2 * GiB))
    assert (cpu[SCORED] <= run.cpu_alloc[SCORED]).all()
    assert (mem[SCORED] <= run.mem_alloc[SCORED]).all()
    assert (run.cpu_alloc[SCORED] / ramp[SCORED]).max() <= 1.6  # shrinks as usage does
    assert run.cpu_alloc[-1] <= 0.5 * run.cpu_alloc[STEPS_PER_DAY]
    assert changes(run).sum() <= 48 * 3  # within the product's change budget


# ------------------------------------------------------------------------------------ bands
NOISES = {
    "normal": lambda rng: (0.5 + rng.normal(0, 0.05, N), GiB * (1 + rng.normal(0, 0.02, N))),
    "lognormal": lambda rng: (0.5 * rng.lognormal(0, 0.2, N), GiB * rng.lognormal(0, 0.05, N)),
    "uniform": lambda rng: (rng.uniform(0.3, 0.7, N), GiB * rng.uniform(0.9, 1.1, N)),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("noise", sorted(NOISES))
def test_presize_bands_are_finite_after_warm_up_and_cover_a_stationary_series(
    noise: str, seed: int
) -> None:
    cpu, mem = NOISES[noise](np.random.default_rng(seed))
    run, _ = replay(Series("noisy", cpu=cpu, mem=mem, initial_cpu=0.5, initial_mem=GiB))
    bands = run.extras
    assert set(bands) == {"cpu_lo", "cpu_hi", "mem_lo", "mem_hi"}
    for prefix, usage in (("cpu", cpu), ("mem", mem)):
        lo, hi = bands[f"{prefix}_lo"], bands[f"{prefix}_hi"]
        assert lo.shape == hi.shape == (N,)
        assert np.isfinite(lo[SCORED]).all()
        assert np.isfinite(hi[SCORED]).all()
        assert (lo[SCORED] <= hi[SCORED]).all()
        u = usage[SCORED]
        coverage = float(((lo[SCORED] <= u) & (u <= hi[SCORED])).mean())
        assert NOMINAL - 0.10 <= coverage <= 0.99, (prefix, coverage)


# -------------------------------------------------------------------------------- minimums
BIG_MINIMUMS = replace(REAL_UNITS, cpu_min=0.1, mem_min=512 * 1024.0**2)


@pytest.mark.parametrize(
    ("cpu_level", "mem_level", "initial", "units"),
    [
        pytest.param(0.001, 10e6, (1.0, 1.0), REAL_UNITS, id="tiny-usage-default-initial"),
        pytest.param(0.0, 0.0, (1.0, 1.0), REAL_UNITS, id="idle"),
        pytest.param(0.01, 100e6, (0.001, 1e6), REAL_UNITS, id="initial-below-minimum"),
        pytest.param(0.5, GiB, (0.001, 1e6), REAL_UNITS, id="real-usage-initial-below"),
        pytest.param(0.02, 200e6, (1.0, GiB), BIG_MINIMUMS, id="larger-minimums"),
    ],
)
def test_presize_never_allocates_below_the_units_minimums(
    cpu_level: float, mem_level: float, initial: tuple[float, float], units: TraceUnits
) -> None:
    rng = np.random.default_rng(5)
    cpu = cpu_level * (1 + rng.uniform(0, 0.5, N))
    mem = mem_level * (1 + rng.uniform(0, 0.1, N))
    run, _ = replay(
        Series("small", cpu=cpu, mem=mem, initial_cpu=initial[0], initial_mem=initial[1]),
        units=units,
    )
    assert run.cpu_alloc.min() >= units.cpu_min
    assert run.mem_alloc.min() >= units.mem_min
    assert np.isfinite(run.cpu_alloc).all()
    assert np.isfinite(run.mem_alloc).all()


# ------------------------------------------------------------------------- gaps, bookkeeping
def test_presize_keeps_finite_allocations_across_gaps() -> None:
    cpu, mem = flat(4)
    for lo, hi in ((10, 20), (400, 436)):
        cpu[lo:hi] = np.nan
        mem[lo:hi] = np.nan
    run, policy = replay(Series("gappy", cpu=cpu, mem=mem, initial_cpu=0.5, initial_mem=GiB))
    assert np.isfinite(run.cpu_alloc).all()
    assert np.isfinite(run.mem_alloc).all()
    ok = ~np.isnan(cpu)
    ok[:STEPS_PER_DAY] = False
    assert (cpu[ok] <= run.cpu_alloc[ok]).all()
    assert (mem[ok] <= run.mem_alloc[ok]).all()
    assert sum(policy.actions.values()) == N  # one decision per step, each with its reason


def test_presize_gives_a_daily_periodic_workload_the_seasonal_model() -> None:
    rng = np.random.default_rng(6)
    t = np.arange(4 * STEPS_PER_DAY) * STEP_SECONDS
    cpu = 1.0 + 0.6 * np.sin(2 * np.pi * t / 86400.0) + rng.normal(0, 0.03, t.shape)
    mem = GiB * (1 + rng.normal(0, 0.01, t.shape))
    series = Series("daily", cpu=cpu, mem=mem, initial_cpu=1.0, initial_mem=GiB)
    run, policy = replay(series, PresizeReplaySettings(seasonal_for_periodic=True))
    assert policy.classes.get("periodic", 0) >= 1
    assert any(isinstance(m, SeasonalForecaster) for m in policy.predictor.cpu_ens.members)
    assert (cpu[SCORED] > run.cpu_alloc[SCORED]).mean() <= 0.02
    # By default the class is still recorded, but no seasonal member joins (see the settings).
    _, plain = replay(series)
    assert plain.classes.get("periodic", 0) >= 1
    assert not any(isinstance(m, SeasonalForecaster) for m in plain.predictor.cpu_ens.members)


def test_presize_flat_series_decisions_are_mostly_quiet() -> None:
    cpu, mem = flat(7)
    _, policy = replay(Series("flat", cpu=cpu, mem=mem, initial_cpu=0.5, initial_mem=GiB))
    quiet = sum(n for k, n in policy.actions.items() if k.startswith("NOOP:"))
    assert quiet >= 0.95 * N
    assert all(":" in k and k.split(":", 1)[1] for k in policy.actions)


def test_presize_does_not_grow_across_a_long_gap() -> None:
    """A throttled step right before a 30 h gap must not bump CPU at every step of the gap."""
    n = 3 * 288 + 360
    cpu = np.full(n, 0.5)
    mem = np.full(n, float(GiB))
    cpu[288 * 2 - 1] = 5.0  # a burst right before the gap: the step is throttled
    cpu[288 * 2 : 288 * 2 + 360] = np.nan
    mem[288 * 2 : 288 * 2 + 360] = np.nan
    run, _ = replay(Series("gap", cpu=cpu, mem=mem, initial_cpu=0.5, initial_mem=GiB),
                    PresizeReplaySettings())
    assert np.nanmax(run.cpu_alloc) < 20.0


# ------------------------------------------------------------------------ weekly memory peaks
def weekly_spikes(days: int = 16) -> Series:
    """Flat 1 GiB with a 15-minute spike to 4 GiB at the same time every week (day 1.5, 8.5,
    15.5): a weekly batch job."""
    n = days * STEPS_PER_DAY
    rng = np.random.default_rng(3)
    mem = GiB * (1 + rng.normal(0, 0.005, n))
    week = 7 * STEPS_PER_DAY
    for start in range(STEPS_PER_DAY * 3 // 2, n, week):
        mem[start : start + 3] = 4 * GiB
    cpu = 0.5 + rng.normal(0, 0.02, n)
    return Series("weekly", cpu=cpu, mem=mem, initial_cpu=0.5, initial_mem=GiB)


@pytest.mark.parametrize("guard", [True, False], ids=["weekly-guard", "no-guard"])
def test_a_weekly_memory_spike_is_met_a_week_later_and_not_held_for_days(guard: bool) -> None:
    series = weekly_spikes()
    settings = PresizeReplaySettings() if guard else replace(
        PresizeReplaySettings(), weekly_margin_hours=None
    )
    run, _ = replay(series, settings)
    second = STEPS_PER_DAY * 3 // 2 + 7 * STEPS_PER_DAY
    ooms = np.nonzero(series.mem[second : second + 3] > run.mem_alloc[second : second + 3])[0]
    half_day_later = run.mem_alloc[second + STEPS_PER_DAY // 2]
    if guard:
        # The recurrence was foreseen: no OOM, and the spike is let go within hours.
        assert len(ooms) == 0
        assert half_day_later < 1.5 * GiB
    else:
        # Without the guard the ladder had let go of last week's spike: the recurrence OOMs.
        assert len(ooms) >= 1
