"""Coarser windows from finer ones: how a full spool keeps the oldest data at lower detail.

When the controller has been away long enough for the spool to fill, the agent must give up
something. Dropping the oldest reports would leave a hole the controller's profiles cannot see
past; merging two adjacent reports into one keeps every container's history, only coarser: two
60 s windows become one 120 s window, four become one 240 s window, and so on.

How each figure is merged (the finer windows are of one container, adjacent in time):

==========================  ===================================================================
figure                      merged as
==========================  ===================================================================
start, seconds              earliest start to latest end
samples, OOM kills, bytes   sums
CPU and PSI means,          time-weighted means (weights: each window's ``seconds``)
throttled fraction
memory mean                 sample-weighted mean
maxima                      maximum
CPU p50                     sample-weighted mean of the p50s (an estimate)
CPU p90, p99                maximum of the parts: a mixture's quantile never exceeds its parts'
                            largest, so this errs high, the safe side for sizing
limits                      the latest window's (a resize in between is the newer truth)
log matches                 counts summed per pattern
==========================  ===================================================================

Everything here is pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from presize.model import PodRef, Pressure, UsageWindow
from presize.wire import Report

WindowKey = tuple[PodRef, str]


def _weighted(pairs: Iterable[tuple[float, float]]) -> float:
    total = weight = 0.0
    for value, w in pairs:
        total += value * w
        weight += w
    return total / weight if weight > 0 else 0.0


def merge_windows(windows: Sequence[UsageWindow]) -> UsageWindow:
    """One window covering ``windows`` (one container's, any order); see the module table."""
    if not windows:
        raise ValueError("merge_windows: nothing to merge")
    parts = sorted(windows, key=lambda w: w.start)
    if len(parts) == 1:
        return parts[0]
    last = parts[-1]
    start = parts[0].start
    secs = [(w, max(w.seconds, 1e-9)) for w in parts]
    counts = [(w, float(max(w.samples, 1))) for w in parts]
    matches: dict[str, int] = {}
    for w in parts:
        for pattern, count in w.log_matches:
            matches[pattern] = matches.get(pattern, 0) + count
    return UsageWindow(
        pod=last.pod,
        container=last.container,
        start=start,
        seconds=max(w.end for w in parts) - start,
        samples=sum(w.samples for w in parts),
        cpu_mean=_weighted((w.cpu_mean, s) for w, s in secs),
        cpu_max=max(w.cpu_max for w in parts),
        cpu_p50=_weighted((w.cpu_p50, n) for w, n in counts),
        cpu_p90=max(w.cpu_p90 for w in parts),
        cpu_p99=max(w.cpu_p99 for w in parts),
        cpu_throttled_fraction=_weighted((w.cpu_throttled_fraction, s) for w, s in secs),
        mem_mean=_weighted((w.mem_mean, n) for w, n in counts),
        mem_max=max(w.mem_max for w in parts),
        oom_kills=sum(w.oom_kills for w in parts),
        pressure=Pressure(
            cpu=_weighted((w.pressure.cpu, s) for w, s in secs),
            memory=_weighted((w.pressure.memory, s) for w, s in secs),
            io=_weighted((w.pressure.io, s) for w, s in secs),
        ),
        io_read_bytes=sum(w.io_read_bytes for w in parts),
        io_write_bytes=sum(w.io_write_bytes for w in parts),
        net_rx_bytes=sum(w.net_rx_bytes for w in parts),
        net_tx_bytes=sum(w.net_tx_bytes for w in parts),
        cpu_limit=last.cpu_limit,
        mem_limit=last.mem_limit,
        log_matches=tuple(sorted(matches.items())),
    )


def coarsen(windows: Iterable[UsageWindow]) -> tuple[UsageWindow, ...]:
    """One merged window per (pod, container), in order of first appearance."""
    groups: dict[WindowKey, list[UsageWindow]] = {}
    for w in windows:
        groups.setdefault((w.pod, w.container), []).append(w)
    return tuple(merge_windows(group) for group in groups.values())


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def merge_reports(older: Report, newer: Report) -> Report:
    """One report standing for two adjacent ones, under the *newer* one's sequence number.

    Keeping the newer number keeps the spool's order and the sequence increasing; the older
    number becomes a gap the controller can see (and the agent counts as downsampled).
    """
    return Report(
        version=newer.version,
        node=newer.node,
        agent_id=newer.agent_id,
        sent_at=newer.sent_at,
        sequence=newer.sequence,
        windows=coarsen((*older.windows, *newer.windows)),
        urgent=older.urgent or newer.urgent,
        urgent_reasons=_unique((*older.urgent_reasons, *newer.urgent_reasons)),
        diagnostics=(*older.diagnostics, *newer.diagnostics),
    )
