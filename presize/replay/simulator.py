"""The replay simulator: each policy, step by step, over each series, seeing only the past.

At step ``t`` a policy first learns what happened at ``t-1`` (usage, the window peaks where the
trace has them, whether the container was OOM-killed or throttled under the allocation it had)
and then sets the CPU and memory allocation for step ``t``. Missing steps (long gaps) are
neither shown nor scored, but time still passes, so decaying statistics keep decaying.

Series are independent, so the simulator runs them one at a time and policies keep scalar
state per series; this keeps each policy's code the same shape as the controller's per-pod loop
and lets the replay spread series over processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from presize.replay.series import STEP_SECONDS, FloatArray, Series, TraceUnits


@dataclass(frozen=True, slots=True)
class Observation:
    """What a policy learns about step ``t`` once it is over."""

    t: int
    time: float
    valid: bool
    cpu: float
    mem: float
    cpu_peak: float
    mem_peak: float
    oom: bool
    throttled: bool


class SeriesPolicy(Protocol):
    """One policy's state for one series."""

    def observe(self, obs: Observation) -> None:
        """Learn what happened at ``obs.t`` (called for every step, valid or not)."""

    def allocate(self, t: int, time: float) -> tuple[float, float]:
        """Return the (cpu, memory) allocation for step ``t``."""


class PolicyFactory(Protocol):
    """Makes the per-series state of one named policy."""

    name: str

    def __call__(self, series: Series, units: TraceUnits) -> SeriesPolicy: ...


@dataclass(frozen=True)
class SeriesRun:
    """Allocations one policy made for one series (arrays aligned with the series)."""

    cpu_alloc: FloatArray
    mem_alloc: FloatArray
    extras: dict[str, FloatArray]


def replay_series(
    series: Series,
    units: TraceUnits,
    factory: Callable[[Series, TraceUnits], SeriesPolicy],
) -> SeriesRun:
    """Run one policy over one series and return its allocations."""
    n = len(series)
    policy = factory(series, units)
    cpu_alloc = np.empty(n)
    mem_alloc = np.empty(n)
    valid = series.valid
    cpu_peak = series.cpu_peak if series.cpu_peak is not None else series.cpu
    mem_peak = series.mem_peak if series.mem_peak is not None else series.mem
    cpu_l = series.cpu.tolist()
    mem_l = series.mem.tolist()
    cpk_l = cpu_peak.tolist()
    mpk_l = mem_peak.tolist()
    val_l = valid.tolist()
    t0 = series.start_time
    for t in range(n):
        now = t0 + t * STEP_SECONDS
        c, m = policy.allocate(t, now)
        cpu_alloc[t] = c
        mem_alloc[t] = m
        ok = val_l[t]
        policy.observe(
            Observation(
                t=t,
                time=now,
                valid=ok,
                cpu=cpu_l[t] if ok else math.nan,
                mem=mem_l[t] if ok else math.nan,
                cpu_peak=cpk_l[t] if ok else math.nan,
                mem_peak=mpk_l[t] if ok else math.nan,
                oom=ok and mpk_l[t] > m,
                throttled=ok and cpk_l[t] > c,
            )
        )
    extras = getattr(policy, "extras", None)
    return SeriesRun(cpu_alloc, mem_alloc, extras() if callable(extras) else {})


def replay_all(
    series: Sequence[Series],
    units: TraceUnits,
    factory: Callable[[Series, TraceUnits], SeriesPolicy],
) -> list[SeriesRun]:
    return [replay_series(s, units, factory) for s in series]
