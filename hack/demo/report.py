"""The demo's ending: a summary table on stdout, a results JSON, and a self-contained HTML report.

The report answers one question per workload: what was allocated, and what was used, over
time. Each workload gets one figure with two panels (CPU in cores, memory in MiB); every pod is
one colour, its usage a solid line (read from its cgroups by :mod:`hack.demo.observe`), its
request dashed and its limit dotted (what the node applied). Markers along the top show the
controller's Events for that workload. PNGs are embedded as base64, so the file can be mailed or
attached to a CI run as it is.

The summary compares the first and the last minute of the run: the CPU and memory requested by
all demo pods against what they used, which is the slack presize exists to remove.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hack.demo.observe import MIB, Note, Observer, PodTrack, clock, fmt_cpu, fmt_mem, profile_line

MARKERS = {
    "Resized": ("^", "tab:green"),
    "ResizeRolledBack": ("v", "tab:red"),
    "MemoryLeakSuspected": ("X", "tab:purple"),
    "ScaleOutHint": ("s", "tab:orange"),
    "Rescheduled": ("D", "tab:brown"),
    "POD created+injected": ("*", "tab:blue"),
}


@dataclass
class WorkloadSummary:
    name: str
    pods: int
    injected: int
    profile_class: str
    cpu_limit: tuple[float, float]  # first, last (mean over the pods alive then)
    cpu_request: tuple[float, float]
    cpu_used_mean: float
    cpu_used_p95: float
    mem_limit: tuple[float, float]
    mem_used_max: float
    resizes: int
    events: dict[str, int]


def _workload_of(obs: Observer, subject: str) -> str | None:
    kind, _, name = subject.partition("/")
    if kind == "deployment":
        return name
    for p in obs.pods.values():
        if p.name in (name, subject):
            return p.workload
    return None


def _edge(pods: Sequence[PodTrack], first: bool, index: int) -> float:
    values = [
        getattr(p.samples[0 if first else -1], f)
        for p in pods
        if p.samples and (first or p.gone is None)
        for f in (("cpu_limit", "cpu_request", "mem_limit")[index],)
    ]
    return sum(values) / len(values) if values else math.nan


def summarise(obs: Observer) -> list[WorkloadSummary]:
    names = sorted({p.workload for p in obs.pods.values()})
    out = []
    for name in names:
        pods = [p for p in obs.pods.values() if p.workload == name]
        cpu = sorted(s.cpu_used for p in pods for s in p.samples)
        mem = [s.mem_used for p in pods for s in p.samples]
        events: dict[str, int] = {}
        resizes = 0
        for n in obs.notes:
            if _workload_of(obs, n.subject) != name and not any(n.subject == p.name for p in pods):
                continue
            if n.kind == "APPLIED":
                resizes += 1
            elif n.kind.isalpha() and n.kind[0].isupper() and n.kind not in ("PROFILE", "RESTART"):
                events[n.kind] = events.get(n.kind, 0) + 1
        status = obs.profiles.get(f"deployment-{name}", {})
        out.append(
            WorkloadSummary(
                name=name,
                pods=len(pods),
                injected=sum(1 for p in pods if p.injected),
                profile_class=str(status.get("class", "-")),
                cpu_limit=(_edge(pods, True, 0), _edge(pods, False, 0)),
                cpu_request=(_edge(pods, True, 1), _edge(pods, False, 1)),
                cpu_used_mean=sum(cpu) / len(cpu) if cpu else math.nan,
                cpu_used_p95=cpu[int(0.95 * (len(cpu) - 1))] if cpu else math.nan,
                mem_limit=(_edge(pods, True, 2), _edge(pods, False, 2)),
                mem_used_max=max(mem) if mem else math.nan,
                resizes=resizes,
                events=events,
            )
        )
    return out


def totals(obs: Observer, run_s: float) -> dict[str, float]:
    """Requested vs used, summed over pods, averaged over the first and the last minute."""
    span = min(60.0, run_s / 3)

    def avg(lo: float, hi: float, field: str) -> float:
        by_second: dict[int, float] = {}
        for p in obs.pods.values():
            for s in p.samples:
                if lo <= s.t < hi:
                    by_second[int(s.t)] = by_second.get(int(s.t), 0.0) + getattr(s, field)
        return sum(by_second.values()) / len(by_second) if by_second else math.nan

    end = max((s.t for p in obs.pods.values() for s in p.samples), default=run_s)
    out = {}
    for label, lo, hi in (("first", 0.0, span), ("last", end - span, end + 1)):
        for field in ("cpu_request", "cpu_used", "mem_request", "mem_used"):
            out[f"{label}_{field}"] = avg(lo, hi, field)
    return out


def _pair(values: tuple[float, float], show: Callable[[float], str]) -> str:
    a, b = values
    if math.isnan(a) or a == 0.0:
        return "-"
    return show(a) if math.isnan(b) or abs(a - b) < 1e-9 else f"{show(a)} -> {show(b)}"


HEAD = ("workload", "pods", "class", "cpu request", "cpu limit", "cpu used avg/p95",
        "mem limit", "mem used max", "resizes", "events")  # fmt: skip


def _cells(r: WorkloadSummary) -> tuple[str, ...]:
    def show(x: float, fmt: Callable[[float], str]) -> str:
        return "-" if math.isnan(x) else fmt(x)

    return (
        r.name,
        f"{r.pods} ({r.injected} injected)" if r.injected else str(r.pods),
        r.profile_class,
        _pair(r.cpu_request, fmt_cpu),
        _pair(r.cpu_limit, fmt_cpu),
        f"{show(r.cpu_used_mean, fmt_cpu)}/{show(r.cpu_used_p95, fmt_cpu)}",
        _pair(r.mem_limit, fmt_mem),
        show(r.mem_used_max, fmt_mem),
        str(r.resizes),
        ", ".join(f"{k} {v}" for k, v in sorted(r.events.items())) or "-",
    )


def summary_table(rows: Sequence[WorkloadSummary]) -> str:
    lines = [HEAD, *(_cells(r) for r in rows)]
    widths = [max(len(row[i]) for row in lines) for i in range(len(HEAD))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines
    )


def _figure(obs: Observer, name: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pods = [p for p in obs.pods.values() if p.workload == name and p.samples]
    fig, (ax_cpu, ax_mem) = plt.subplots(1, 2, figsize=(12, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, p in enumerate(pods):
        c = colors[i % len(colors)]
        t = [s.t for s in p.samples]
        short = p.name.rsplit("-", 1)[-1]
        ax_cpu.plot(t, [s.cpu_used for s in p.samples], color=c, lw=1, label=f"{short} used")
        ax_cpu.step(t, [s.cpu_request for s in p.samples], where="post", color=c, ls="--", lw=1.2,
                    label=f"{short} request")  # fmt: skip
        if any(s.cpu_limit for s in p.samples):  # most demo pods have no CPU limit
            ax_cpu.step(t, [s.cpu_limit or math.nan for s in p.samples], where="post", color=c,
                        ls=":", lw=1.2, label=f"{short} limit")  # fmt: skip
        ax_mem.plot(t, [s.mem_used / MIB for s in p.samples], color=c, lw=1)
        ax_mem.step(t, [s.mem_request / MIB for s in p.samples], where="post", color=c, ls="--")
        ax_mem.step(t, [s.mem_limit / MIB for s in p.samples], where="post", color=c, ls=":")
    for n in obs.notes:
        if n.kind in MARKERS and _workload_of(obs, n.subject) == name:
            marker, color = MARKERS[n.kind]
            for ax in (ax_cpu, ax_mem):
                top = ax.get_xaxis_transform()  # x in data, y in axes fractions
                ax.plot([n.t], [1.0], marker=marker, color=color, transform=top, clip_on=False)
    ax_cpu.set_title(f"{name}: CPU (cores)")
    ax_mem.set_title(f"{name}: memory (MiB)")
    for ax in (ax_cpu, ax_mem):
        ax.set_xlabel("seconds since deploy")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    ax_cpu.legend(fontsize=7, ncol=3, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def write_html(
    path: Path, obs: Observer, rows: Sequence[WorkloadSummary], meta: dict[str, Any]
) -> None:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>presize demo</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1200px}td,th{padding:2px 8px;"
        "text-align:left;border-bottom:1px solid #ddd;font-size:13px}pre{font-size:12px}",
        "</style></head><body><h1>presize demo</h1>",
        f"<p>{esc(meta.get('headline', ''))}</p>",
        "<p>Solid: used (from the pods' cgroups); dashed: request; dotted: limit (as applied "
        "by the node). Markers: ▲ Resized, ▼ ResizeRolledBack, ✕ MemoryLeakSuspected, ■ "
        "ScaleOutHint, ◆ Rescheduled, ★ pod created with injected requests.</p>",
        "<h2>Summary</h2><table><tr>",
    ]
    parts.append("".join(f"<th>{h}</th>" for h in HEAD) + "</tr>")
    for r in rows:
        cells = _cells(r)
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    parts.append(f"<pre>{esc(meta.get('totals_text', ''))}</pre>")
    for r in rows:
        parts.append(f"<h2>{esc(r.name)}</h2>")
        status = obs.profiles.get(f"deployment-{r.name}")
        if status:
            parts.append(f"<p>WorkloadProfile: {esc(profile_line(status))}</p>")
        parts.append(
            f"<img alt='{esc(r.name)}' src='data:image/png;base64,{_figure(obs, r.name)}'>"
        )
    parts.append(
        "<h2>Timeline</h2><table><tr><th>time</th><th>what</th><th>subject</th><th>detail</th></tr>"
    )
    for n in obs.notes:
        parts.append(
            f"<tr><td>{esc(clock(n.t, obs.scale))}</td><td>{esc(n.kind)}</td>"
            f"<td>{esc(n.subject)}</td><td>{esc(n.text)}</td></tr>"
        )
    parts.append("</table></body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")


def results_json(
    path: Path, obs: Observer, rows: Sequence[WorkloadSummary], meta: dict[str, Any]
) -> None:
    """What the end-to-end test (and anyone scripting the demo) checks."""
    data = {
        **meta,
        "counts": obs.counts,
        "injected_pods": [p.name for p in obs.pods.values() if p.injected],
        "pods": {
            p.name: {
                "workload": p.workload,
                "node": p.node,
                "samples": len(p.samples),
                "injected": p.injected,
                "restarts": p.restarts,
            }
            for p in obs.pods.values()
        },
        "workloads": [asdict(r) for r in rows],
        "timeline": [asdict(n) for n in obs.notes],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(data, indent=2, default=str, allow_nan=True) + "\n", encoding="utf-8"
    )


def notes_of(obs: Observer, kinds: Sequence[str]) -> list[Note]:
    return [n for n in obs.notes if n.kind in kinds]
