"""How low can CPU slack go on a trace at a given shortfall? Three hindsight bounds, beside VPA.

``python -m bench.replay_bounds --traces ../shared/traces/google-2019-instances``

The replay issue asks presize for CPU slack ≤ 0.8 × VPA's at no more CPU shortfall than
VPA's. On Google 2019 that bar sits below what a predictor can reach, and this benchmark
says by how much, with three bounds that are *kinder* than any real predictor because they are
fitted on the very steps they are scored on:

* **hindsight constant**: each series gets one allocation for all its scored steps, the
  ``q``-quantile of its own scored demand (known only afterwards). This is what a perfect
  stationary estimator would do; a good long-window percentile converges to it.
* **hindsight quantile regression**: one linear ``q``-quantile regression fitted on every
  scored step of every series at once (statsmodels ``QuantReg``), on causal features of each
  step's past (the last value, the means of the last 3 and 12 steps, the maximum of the last
  12, the median and p90 of the whole past, the p95 of the last day, whether the step follows
  a gap, whether the last step was idle: under 5 % of the last 12 steps' maximum). It can use
  the short-term autocorrelation and the on/off regimes a percentile ignores, with
  coefficients that saw the answers.
* **hindsight quantile regression per series**: the same features, one regression per series
  fitted on that series' own scored steps (a series too short for it gets its constant).
  Each container gets its own coefficients, chosen knowing its whole future: far more than
  any online model can learn from a container's past.

Both are scored as the replay scores (``presize.replay.metrics``: pooled over scored steps).
VPA and presize are replayed in the same run for the comparison. For each bound the point
with the lowest slack whose shortfall does not exceed VPA's is picked from a sweep of ``q``.

The last line is ``{"trace", "vpa": {...}, "presize": {...}, "floor_cpu_slack",
"bounds": {NAME: {"q", "cpu_slack", "cpu_shortfall"}}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import statsmodels.api as sm

from presize.replay.loaders import load_traces
from presize.replay.metrics import scored_mask
from presize.replay.runner import run_replay
from presize.replay.series import STEPS_PER_DAY, FloatArray, TraceSet

QUANTILES = (0.90, 0.92, 0.94, 0.945, 0.95, 0.96, 0.97, 0.98, 0.99)
_MIN_PAST = 12
_IDLE_FRACTION = 0.05
# A per-series fit needs several rows per coefficient; shorter series get their constant.
_MIN_ROWS_PER_FEATURE = 5


def pooled(alloc: FloatArray, usage: FloatArray) -> tuple[float, float]:
    """(CPU slack, CPU shortfall) pooled as the replay pools them."""
    slack = float(np.maximum(alloc - usage, 0).sum() / alloc.sum())
    short = float(np.maximum(usage - alloc, 0).sum() / usage.sum())
    return slack, short


def constant_bound(trace: TraceSet, q: float) -> tuple[FloatArray, FloatArray]:
    """Each series' scored demand and its hindsight constant allocation (its own q-quantile)."""
    allocs: list[FloatArray] = []
    uses: list[FloatArray] = []
    for s in trace.series:
        u = s.cpu[scored_mask(s)]
        if u.size:
            uses.append(u)
            allocs.append(np.full(u.size, np.quantile(u, q)))
    return np.concatenate(allocs), np.concatenate(uses)


def causal_features(
    trace: TraceSet,
) -> tuple[npt.NDArray[np.float64], FloatArray, npt.NDArray[np.intp]]:
    """Per scored step, features of its past only (module docstring), the step's demand, and
    the index of its series."""
    rows: list[list[float]] = []
    target: list[float] = []
    groups: list[int] = []
    for i, s in enumerate(trace.series):
        scored = scored_mask(s)
        valid = s.valid
        past: list[float] = []
        after_gap = 1.0
        for t in range(len(s)):
            if scored[t] and len(past) >= _MIN_PAST:
                h = np.asarray(past)
                hour_max = float(h[-12:].max())
                rows.append([
                    h[-1],
                    float(h[-3:].mean()),
                    float(h[-12:].mean()),
                    hour_max,
                    float(np.quantile(h, 0.5)),
                    float(np.quantile(h, 0.9)),
                    float(np.quantile(h[-STEPS_PER_DAY:], 0.95)),
                    after_gap,
                    1.0 if h[-1] < _IDLE_FRACTION * hour_max else 0.0,
                ])
                target.append(float(s.cpu[t]))
                groups.append(i)
            if valid[t]:
                past.append(float(s.cpu[t]))
            after_gap = 0.0 if valid[t] else 1.0
    return np.asarray(rows), np.asarray(target), np.asarray(groups, dtype=np.intp)


def regression_bound(
    x: npt.NDArray[np.float64], y: FloatArray, q: float
) -> tuple[FloatArray, FloatArray]:
    design = sm.add_constant(x, has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IterationLimitWarning on the far quantiles
        fit = sm.QuantReg(y, design).fit(q=q, max_iter=5000)
    return np.maximum(np.asarray(fit.predict(design)), 0.0), y


def per_series_regression_bound(
    x: npt.NDArray[np.float64], y: FloatArray, groups: npt.NDArray[np.intp], q: float
) -> tuple[FloatArray, FloatArray]:
    """One quantile regression per series on its own rows; a short series gets its constant."""
    alloc = np.empty_like(y)
    for g in np.unique(groups):
        rows = groups == g
        if rows.sum() < _MIN_ROWS_PER_FEATURE * (x.shape[1] + 1):
            alloc[rows] = np.quantile(y[rows], q)
            continue
        try:
            alloc[rows] = regression_bound(x[rows], y[rows], q)[0]
        except (np.linalg.LinAlgError, ValueError):  # a degenerate series: its constant
            alloc[rows] = np.quantile(y[rows], q)
    return alloc, y


def best_at(points: list[tuple[float, float, float]], max_short: float) -> dict[str, float] | None:
    """The lowest-slack (q, slack, shortfall) point whose shortfall is within ``max_short``."""
    ok = [p for p in points if p[2] <= max_short]
    if not ok:
        return None
    q, slack, short = min(ok, key=lambda p: p[1])
    return {"q": q, "cpu_slack": round(slack, 4), "cpu_shortfall": round(short, 5)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traces", required=True, help="one trace folder")
    args = ap.parse_args(argv)
    trace = load_traces(args.traces)
    replay = run_replay(trace, ("vpa", "presize"))
    vpa = replay.policies["vpa"].score
    presize = replay.policies["presize"].score
    x, y, groups = causal_features(trace)
    curves: dict[str, list[tuple[float, float, float]]] = {
        "hindsight-constant": [], "hindsight-regression": [], "hindsight-per-series": []}
    for q in QUANTILES:
        curves["hindsight-constant"].append((q, *pooled(*constant_bound(trace, q))))
        curves["hindsight-regression"].append((q, *pooled(*regression_bound(x, y, q))))
        curves["hindsight-per-series"].append(
            (q, *pooled(*per_series_regression_bound(x, y, groups, q))))
    print(f"{trace.name}: VPA {vpa.cpu_slack:.3f} / {vpa.cpu_shortfall:.4f}, presize "
          f"{presize.cpu_slack:.3f} / {presize.cpu_shortfall:.4f}, "
          f"floor: slack <= {0.8 * vpa.cpu_slack:.3f} at shortfall <= {vpa.cpu_shortfall:.4f}")
    for name, points in curves.items():
        for q, slack, short in points:
            print(f"  {name:21s} q={q:.2f}  slack {slack:.3f}  shortfall {short:.4f}")
    result = {
        "trace": trace.name,
        "vpa": {"cpu_slack": round(vpa.cpu_slack, 4), "cpu_shortfall": round(vpa.cpu_shortfall, 5)},
        "presize": {"cpu_slack": round(presize.cpu_slack, 4),
                    "cpu_shortfall": round(presize.cpu_shortfall, 5)},
        "floor_cpu_slack": round(0.8 * vpa.cpu_slack, 4),
        "bounds": {name: best_at(points, vpa.cpu_shortfall) for name, points in curves.items()},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
