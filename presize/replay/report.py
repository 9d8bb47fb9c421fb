"""Rendering replay results: a text table, the JSON contract, the floor checks, an HTML page.

The JSON object per trace follows the contract in DESIGN.md / the replay issue::

    {"series": N, "steps": N, "policies": {NAME: {"cpu_slack": x, "mem_slack": x,
     "cpu_shortfall": x, "throttled_steps": x, "oom_events": n, "changes_per_day": x}},
     "presize_interval_coverage": x}

with a few extra keys (``trace``, ``seconds``, ``floor``, per-resource coverage) that readers
of the contract can ignore.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from presize.replay.runner import ReplayResult
from presize.replay.series import STEPS_PER_DAY

COLUMNS = (
    ("cpu_slack", "CPU slack", "{:.3f}"),
    ("mem_slack", "mem slack", "{:.3f}"),
    ("cpu_shortfall", "CPU shortfall", "{:.4f}"),
    ("throttled_steps", "throttled", "{:.4f}"),
    ("oom_events", "OOM steps", "{:.0f}"),
    ("changes_per_day", "changes/day", "{:.1f}"),
)


@dataclass(frozen=True)
class Check:
    """One line of the floor the replay issue sets for presize against VPA and reactive."""

    name: str
    passed: bool
    detail: str


def floor_checks(result: ReplayResult) -> list[Check]:
    """presize vs VPA and reactive on the rules the replay must show (default settings)."""
    p = result.policies.get("presize")
    v = result.policies.get("vpa")
    if p is None or v is None:
        return []
    ps, vs = p.score, v.score
    checks = [
        Check("cpu slack <= 0.8 x vpa", ps.cpu_slack <= 0.8 * vs.cpu_slack,
              f"{ps.cpu_slack:.3f} vs {0.8 * vs.cpu_slack:.3f}"),
        Check("cpu shortfall <= vpa", ps.cpu_shortfall <= vs.cpu_shortfall,
              f"{ps.cpu_shortfall:.4f} vs {vs.cpu_shortfall:.4f}"),
        Check("mem slack <= vpa", ps.mem_slack <= vs.mem_slack,
              f"{ps.mem_slack:.3f} vs {vs.mem_slack:.3f}"),
        Check("oom events <= vpa", ps.oom_events <= vs.oom_events,
              f"{ps.oom_events} vs {vs.oom_events}"),
        Check("changes/day <= 48", ps.changes_per_day <= 48, f"{ps.changes_per_day:.1f}"),
    ]
    r = result.policies.get("reactive")
    if r is not None:
        rs = r.score
        dominated = (
            rs.cpu_slack <= ps.cpu_slack
            and rs.cpu_shortfall <= ps.cpu_shortfall
            and rs.mem_slack <= ps.mem_slack
            and rs.oom_events <= ps.oom_events
        )
        checks.append(Check("not dominated by reactive", not dominated,
                            "reactive is at least as good on all four" if dominated else "ok"))
    return checks


def to_json(result: ReplayResult) -> dict[str, Any]:
    trace = result.trace
    policies = {
        name: {
            "cpu_slack": r.score.cpu_slack,
            "mem_slack": r.score.mem_slack,
            "cpu_shortfall": r.score.cpu_shortfall,
            "throttled_steps": r.score.throttled_steps,
            "oom_events": r.score.oom_events,
            "changes_per_day": r.score.changes_per_day,
            "oom_series": r.score.oom_series,
            "mem_shortfall": r.score.mem_shortfall,
            "seconds": round(r.seconds, 2),
        }
        for name, r in result.policies.items()
    }
    presize = result.policies.get("presize")
    cov = presize.coverage if presize is not None else None
    out: dict[str, Any] = {
        "trace": trace.name,
        "series": len(trace.series),
        "steps": trace.steps,
        "scored_days": round(
            next(iter(result.policies.values())).score.scored_steps / STEPS_PER_DAY, 1
        ) if result.policies else 0,
        "policies": policies,
        "presize_interval_coverage": cov.ratio() if cov else None,
        "presize_interval_coverage_by_resource": (
            {k: cov.ratio(k) for k in cov.total} if cov else {}
        ),
        "floor": {c.name: c.passed for c in floor_checks(result)},
        "seconds": round(result.seconds, 1),
    }
    return out


def table(result: ReplayResult) -> str:
    head = f"{'policy':<16}" + "".join(f"{label:>15}" for _, label, _ in COLUMNS)
    lines = [
        f"{result.trace.name}: {len(result.trace.series)} series, {result.trace.steps} steps, "
        f"{result.seconds:.0f} s",
        head,
        "-" * len(head),
    ]
    for name, r in result.policies.items():
        d = r.score.as_dict()
        lines.append(
            f"{name:<16}" + "".join(f"{fmt.format(d[key]):>15}" for key, _, fmt in COLUMNS)
        )
    presize = result.policies.get("presize")
    if presize is not None and presize.coverage is not None:
        cov = presize.coverage
        parts = ", ".join(f"{k} {cov.ratio(k):.3f}" for k in cov.total)
        lines.append(f"presize 90% interval coverage: {cov.ratio():.3f} ({parts})")
    for c in floor_checks(result):
        lines.append(f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ HTML
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


_COLOURS = {
    "presize": "#d62728", "vpa": "#1f77b4", "autopilot": "#2ca02c", "reactive": "#9467bd",
    "static": "#7f7f7f", "oracle-1h": "#17becf", "oracle-24h": "#bcbd22",
}


def _tradeoff_figure(result: ReplayResult) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    curve = [(n, r) for n, r in result.policies.items() if n.startswith("presize@")]
    if curve:
        pts = sorted((r.score.cpu_slack, r.score.cpu_shortfall) for _, r in curve)
        ax1.plot(*zip(*pts, strict=True), "--", color="#d62728", alpha=0.5,
                 label="presize settings")
        mpts = sorted((r.score.mem_slack, r.score.oom_events) for _, r in curve)
        ax2.plot(*zip(*mpts, strict=True), "--", color="#d62728", alpha=0.5)
    for name, r in result.policies.items():
        if name.startswith("presize@"):
            ax1.plot(r.score.cpu_slack, r.score.cpu_shortfall, ".", color="#d62728", alpha=0.6)
            ax2.plot(r.score.mem_slack, r.score.oom_events, ".", color="#d62728", alpha=0.6)
            continue
        c = _COLOURS.get(name, "black")
        ax1.plot(r.score.cpu_slack, r.score.cpu_shortfall, "o", color=c, label=name)
        ax2.plot(r.score.mem_slack, r.score.oom_events, "o", color=c, label=name)
        ax1.annotate(name, (r.score.cpu_slack, r.score.cpu_shortfall), fontsize=8)
        ax2.annotate(name, (r.score.mem_slack, r.score.oom_events), fontsize=8)
    ax1.set_xlabel("CPU slack (share of allocation unused)")
    ax1.set_ylabel("CPU shortfall (share of demand not met)")
    ax1.set_title("CPU: slack vs risk (lower-left is better)")
    ax2.set_xlabel("memory slack")
    ax2.set_ylabel("OOM steps")
    ax2.set_title("Memory: slack vs OOM risk")
    ax1.legend(fontsize=7)
    return _png(fig)


def _series_figure(result: ReplayResult, index: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result.trace.series[index]
    days = np.arange(len(series)) / STEPS_PER_DAY
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
    for ax, res, usage in (
        (axes[0], "cpu", series.cpu),
        (axes[1], "mem", series.mem_peak if series.mem_peak is not None else series.mem),
    ):
        ax.plot(days, usage, color="black", lw=0.6, label="usage")
        presize = result.policies.get("presize")
        if presize is not None and index in presize.plotted:
            ex = presize.plotted[index].extras
            if f"{res}_lo" in ex:
                ax.fill_between(days, ex[f"{res}_lo"], ex[f"{res}_hi"], color="#d62728",
                                alpha=0.15, label="presize 90% band")
        for name, r in result.policies.items():
            if name.startswith("presize@") or index not in r.plotted:
                continue
            run = r.plotted[index]
            alloc = run.cpu_alloc if res == "cpu" else run.mem_alloc
            ax.step(days, alloc, where="post", lw=0.9, color=_COLOURS.get(name, "grey"),
                    label=name)
        units = result.trace.units
        ax.set_ylabel(f"{res} ({units.cpu_name if res == 'cpu' else units.mem_name})")
        top = np.nanpercentile(usage, 99.9) if np.isfinite(usage).any() else 1.0
        ax.set_ylim(0, top * 2.5 if top > 0 else 1.0)
    axes[1].set_xlabel("days")
    axes[0].legend(fontsize=7, ncol=4)
    axes[0].set_title(f"{series.series_id}: usage, presize's band and each policy's allocation")
    return _png(fig)


def html_report(results: Sequence[ReplayResult]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>presize replay</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;"
        "text-align:right}th:first-child,td:first-child{text-align:left}"
        ".ok{color:#2a2}.fail{color:#c22}</style></head><body>",
        "<h1>presize replay</h1>",
        "<p>Each policy sets CPU and memory for every 5-minute step of real traces, seeing only "
        "the past. Slack is allocation left unused; shortfall is demand above the allocation "
        "(throttling); OOM steps are steps with memory above the allocation.</p>",
    ]
    for result in results:
        parts.append(f"<h2>{html.escape(result.trace.name)}</h2>")
        parts.append(f"<p>{len(result.trace.series)} series, {result.trace.steps} steps, "
                     f"replayed in {result.seconds:.0f} s.</p><table><tr><th>policy</th>")
        parts.extend(f"<th>{label}</th>" for _, label, _ in COLUMNS)
        parts.append("</tr>")
        for name, r in result.policies.items():
            d = r.score.as_dict()
            parts.append(f"<tr><td>{html.escape(name)}</td>")
            parts.extend(f"<td>{fmt.format(d[k])}</td>" for k, _, fmt in COLUMNS)
            parts.append("</tr>")
        parts.append("</table><ul>")
        for c in floor_checks(result):
            cls = "ok" if c.passed else "fail"
            parts.append(f"<li class='{cls}'>{'✔' if c.passed else '✘'} "
                         f"{html.escape(c.name)}: {html.escape(c.detail)}</li>")
        presize = result.policies.get("presize")
        if presize is not None and presize.coverage is not None:
            parts.append(f"<li>presize 90 % interval coverage: {presize.coverage.ratio():.3f}</li>")
        parts.append("</ul>")
        parts.append(f"<img src='data:image/png;base64,{_tradeoff_figure(result)}'>")
        for i in result.plotted_series:
            parts.append(f"<img src='data:image/png;base64,{_series_figure(result, i)}'>")
    parts.append("</body></html>")
    return "".join(parts)
