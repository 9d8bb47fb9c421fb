"""Run a set of policies over a trace folder and collect their scores.

Series are independent, so the work is spread over processes (``workers``) by series; the
trace is loaded once in the parent and shared with the workers by ``fork``. Each worker returns
only what the parent needs: the score inputs for every series, and full allocation arrays only
for the few series the HTML report plots.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from presize.replay.baselines import BASELINES, make_baseline
from presize.replay.metrics import Score, score, scored_mask
from presize.replay.presize_policy import PresizeReplaySettings, PresizeSeriesPolicy
from presize.replay.series import Series, TraceSet, TraceUnits
from presize.replay.simulator import SeriesPolicy, SeriesRun, replay_series

DEFAULT_POLICIES = ("static", "vpa", "autopilot", "reactive", "presize", "oracle-1h", "oracle-24h")
KNOWN_POLICIES = (*BASELINES, "presize")

Factory = Callable[[Series, TraceUnits], SeriesPolicy]


def policy_factory(name: str, presize: PresizeReplaySettings | None = None) -> Factory:
    """The per-series factory for a policy name (``presize`` takes its settings)."""
    if name == "presize" or name.startswith("presize@"):
        settings = presize or PresizeReplaySettings()
        return lambda s, u: PresizeSeriesPolicy(s, u, settings)
    if name not in BASELINES:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(KNOWN_POLICIES)}")
    return lambda s, u: make_baseline(name, s, u)


@dataclass(frozen=True)
class Coverage:
    """Held-out points inside presize's nominal interval, per resource."""

    hits: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    def ratio(self, resource: str | None = None) -> float:
        keys = [resource] if resource else list(self.total)
        n = sum(self.total.get(k, 0) for k in keys)
        return sum(self.hits.get(k, 0) for k in keys) / n if n else float("nan")


@dataclass(frozen=True)
class PolicyResult:
    name: str
    score: Score
    seconds: float
    coverage: Coverage | None = None
    plotted: dict[int, SeriesRun] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplayResult:
    trace: TraceSet
    policies: dict[str, PolicyResult]
    seconds: float
    plotted_series: tuple[int, ...]


_TRACE: TraceSet | None = None
_FACTORIES: dict[str, Factory] = {}


def _coverage_of(series: Series, run: SeriesRun) -> tuple[dict[str, int], dict[str, int]]:
    hits: dict[str, int] = {}
    total: dict[str, int] = {}
    mask = scored_mask(series)
    for res, actual in (
        ("cpu", series.cpu),  # CPU is forecast as demand (the window mean)
        ("memory", series.mem_peak if series.mem_peak is not None else series.mem),
    ):
        prefix = "cpu" if res == "cpu" else "mem"
        lo = run.extras.get(f"{prefix}_lo")
        hi = run.extras.get(f"{prefix}_hi")
        if lo is None or hi is None:
            continue
        ok = mask & ~np.isnan(lo)
        a = actual[ok]
        hits[res] = int(((lo[ok] <= a) & (a <= hi[ok])).sum())
        total[res] = int(ok.sum())
    return hits, total


def _work(job: tuple[str, int, bool]) -> tuple[str, int, SeriesRun, dict[str, int], dict[str, int]]:
    name, index, keep = job
    assert _TRACE is not None
    series = _TRACE.series[index]
    run = replay_series(series, _TRACE.units, _FACTORIES[name])
    hits, total = _coverage_of(series, run)
    if not keep:
        run = SeriesRun(run.cpu_alloc, run.mem_alloc, {})
    return name, index, run, hits, total


def pick_plotted(trace: TraceSet, count: int = 3) -> tuple[int, ...]:
    """A few series worth looking at: the largest CPU users (they dominate pooled figures)."""
    usage = [float(np.nansum(s.cpu)) for s in trace.series]
    order = np.argsort(usage)[::-1]
    return tuple(int(i) for i in order[:count])


def run_replay(
    trace: TraceSet,
    policies: Sequence[str] = DEFAULT_POLICIES,
    *,
    presize_variants: dict[str, PresizeReplaySettings] | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Replay every policy over every series of ``trace`` and score them."""
    global _TRACE  # noqa: PLW0603  (shared with forked workers, set only here)
    start = time.monotonic()
    factories: dict[str, Factory] = {}
    for name in policies:
        if name == "static" and trace.series and trace.series[0].cpu_capacity is None:
            if progress:
                progress(f"{trace.name}: skipping static (the trace has no provisioned size)")
            continue
        factories[name] = policy_factory(name)
    for label, settings in (presize_variants or {}).items():
        factories[label] = policy_factory("presize", settings)
    plotted = pick_plotted(trace)
    _TRACE = trace
    _FACTORIES.clear()
    _FACTORIES.update(factories)
    jobs = [(n, i, i in plotted) for n in factories for i in range(len(trace.series))]
    runs: dict[str, dict[int, SeriesRun]] = {n: {} for n in factories}
    cov_hits: dict[str, dict[str, int]] = {n: {} for n in factories}
    cov_total: dict[str, dict[str, int]] = {n: {} for n in factories}
    started = {n: time.monotonic() for n in factories}
    done_at: dict[str, float] = {}
    n_workers = workers or max(1, min(os.cpu_count() or 1, 8))
    try:
        if n_workers > 1:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(n_workers) as pool:
                results = pool.imap_unordered(_work, jobs, chunksize=4)
                _collect(results, runs=runs, cov_hits=cov_hits, cov_total=cov_total,
                         n_series=len(trace.series), done_at=done_at, progress=progress)
        else:
            _collect(map(_work, jobs), runs=runs, cov_hits=cov_hits, cov_total=cov_total,
                     n_series=len(trace.series), done_at=done_at, progress=progress)
    finally:
        _TRACE = None
    out: dict[str, PolicyResult] = {}
    for name in factories:
        ordered = [runs[name][i] for i in range(len(trace.series))]
        cov = Coverage(cov_hits[name], cov_total[name]) if cov_total[name] else None
        out[name] = PolicyResult(
            name=name,
            score=score(trace.series, ordered),
            seconds=done_at.get(name, time.monotonic()) - started[name],
            coverage=cov,
            plotted={i: ordered[i] for i in plotted},
        )
    return ReplayResult(trace, out, time.monotonic() - start, plotted)


def _collect(
    results: object,
    *,
    runs: dict[str, dict[int, SeriesRun]],
    cov_hits: dict[str, dict[str, int]],
    cov_total: dict[str, dict[str, int]],
    n_series: int,
    done_at: dict[str, float],
    progress: Callable[[str], None] | None,
) -> None:
    for name, index, run, hits, total in results:  # type: ignore[attr-defined]
        runs[name][index] = run
        for k, v in hits.items():
            cov_hits[name][k] = cov_hits[name].get(k, 0) + v
        for k, v in total.items():
            cov_total[name][k] = cov_total[name].get(k, 0) + v
        if len(runs[name]) == n_series:
            done_at[name] = time.monotonic()
            if progress:
                progress(f"  {name}: done")
