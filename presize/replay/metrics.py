"""Scores for replayed allocations, pooled over all series of a trace.

Definitions (the same as the replay reference, so figures can be compared):

=================  =====================================================================
``cpu_slack``      Σ max(a − u, 0) / Σ a over scored steps (``mem_slack`` likewise)
``cpu_shortfall``  Σ max(u − a, 0) / Σ u (a throttling proxy; ``mem_shortfall`` likewise)
``throttled_steps`` fraction of scored steps with u_cpu > a_cpu
``oom_events``     number of scored steps with u_mem > a_mem
``oom_series``     number of series with at least one such step
``changes_per_day`` scored steps whose CPU or memory allocation differs from the step
                   before, per series-day
=================  =====================================================================

Scored steps are the valid steps after each series' first day (policies still learn from it).
Where the trace gives window maxima, throttling and OOMs are judged on them; slack and
shortfall use the mean, which is what the container actually consumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from presize.replay.series import STEPS_PER_DAY, Series
from presize.replay.simulator import SeriesRun


@dataclass(frozen=True)
class Score:
    cpu_slack: float
    mem_slack: float
    cpu_shortfall: float
    mem_shortfall: float
    throttled_steps: float
    oom_events: int
    oom_series: int
    changes_per_day: float
    scored_steps: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def scored_mask(series: Series, *, warmup: int = STEPS_PER_DAY) -> npt.NDArray[np.bool_]:
    mask = series.valid.copy()
    mask[:warmup] = False
    return mask


@dataclass
class _Sums:
    cpu_alloc: float = 0.0
    cpu_over: float = 0.0
    cpu_under: float = 0.0
    cpu_use: float = 0.0
    mem_alloc: float = 0.0
    mem_over: float = 0.0
    mem_under: float = 0.0
    mem_use: float = 0.0
    throttled: int = 0
    ooms: int = 0
    oom_series: int = 0
    changes: int = 0
    steps: int = 0


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def score(series: Sequence[Series], runs: Sequence[SeriesRun]) -> Score:
    """Pool the scores of one policy's runs over all series."""
    acc = _Sums()
    for s, r in zip(series, runs, strict=True):
        m = scored_mask(s)
        if not m.any():
            continue
        ca, ma = r.cpu_alloc, r.mem_alloc
        cu, mu = s.cpu[m], s.mem[m]
        cpk = (s.cpu_peak if s.cpu_peak is not None else s.cpu)[m]
        mpk = (s.mem_peak if s.mem_peak is not None else s.mem)[m]
        acc.cpu_alloc += float(ca[m].sum())
        acc.cpu_over += float(np.maximum(ca[m] - cu, 0).sum())
        acc.cpu_under += float(np.maximum(cu - ca[m], 0).sum())
        acc.cpu_use += float(cu.sum())
        acc.mem_alloc += float(ma[m].sum())
        acc.mem_over += float(np.maximum(ma[m] - mu, 0).sum())
        acc.mem_under += float(np.maximum(mu - ma[m], 0).sum())
        acc.mem_use += float(mu.sum())
        acc.throttled += int((cpk > ca[m]).sum())
        ooms = int((mpk > ma[m]).sum())
        acc.ooms += ooms
        acc.oom_series += int(ooms > 0)
        changed = np.zeros(len(s), dtype=bool)
        changed[1:] = (ca[1:] != ca[:-1]) | (ma[1:] != ma[:-1])
        acc.changes += int(changed[m].sum())
        acc.steps += int(m.sum())
    days = acc.steps / STEPS_PER_DAY
    return Score(
        cpu_slack=_ratio(acc.cpu_over, acc.cpu_alloc),
        mem_slack=_ratio(acc.mem_over, acc.mem_alloc),
        cpu_shortfall=_ratio(acc.cpu_under, acc.cpu_use),
        mem_shortfall=_ratio(acc.mem_under, acc.mem_use),
        throttled_steps=_ratio(acc.throttled, acc.steps),
        oom_events=acc.ooms,
        oom_series=acc.oom_series,
        changes_per_day=_ratio(acc.changes, days),
        scored_steps=acc.steps,
    )
