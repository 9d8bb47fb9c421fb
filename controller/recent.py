"""The last minutes of each pod's windows: what decide's signals and rollback's health read.

Profiles are per workload; OOM kills, throttling and pressure are per pod, and a decision
about a pod must react to *its* trouble at once. :class:`RecentWindows` keeps, per pod UID
and container, the windows of the last ``keep_s`` seconds (bounded by count too), and the
urgent forecasts the agent sent for them.

What a decision reads (:meth:`RecentWindows.signals`) is what *arrived* since the pod's last
decision, each window counted once: by arrival, not by the window's end, since a window that
ends just before a decision and arrives just after it (a slow report, a node clock a little
behind) would otherwise never count; one that ended more than a minute before the decision
(a spool's backlog) is history and does not. And only what was measured under the
allocation the container has now: a resize that took effect
(:meth:`RecentWindows.allocation_changed`) makes the windows that started before it stale for
that resource, so the throttling that caused a CPU growth does not cause a second one, while
throttling that goes on *after* it does. A throttled container's usage is censored at its
limit; the throttling itself is the evidence that it needs more, and it must be read against
the limit it was measured under.

Urgent reasons arrive as text (``presize.wire`` version 1 carries them as strings); the
agent writes them as ``"<code>: <ns>/<pod>/<container>: cpu upper <x> >= limit <y> ..."``.
:func:`parse_urgent` reads the forecast codes back into numbers; a text it cannot read is
ignored (the windows still carry the OOM and throttling evidence).
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from controller.rollback import Health
from presize.model import UsageWindow
from presize.policy import Signals

_URGENT = re.compile(
    r"^(?P<code>forecast-cpu-limit|forecast-memory-limit): (?P<ns>[^/]+)/(?P<pod>[^/]+)/"
    r"(?P<container>[^:]+): (?:cpu|memory) upper (?P<upper>[0-9.eE+-]+) >="
)


@dataclass(frozen=True, slots=True)
class UrgentForecast:
    namespace: str
    pod: str
    container: str
    resource: str  # "cpu" or "memory"
    upper: float


def parse_urgent(text: str) -> UrgentForecast | None:
    """The forecast in one urgent reason, or ``None`` for other reasons or unreadable text."""
    m = _URGENT.match(text)
    if m is None:
        return None
    try:
        upper = float(m["upper"])
    except ValueError:
        return None
    if not math.isfinite(upper) or upper < 0:
        return None
    resource = "cpu" if m["code"] == "forecast-cpu-limit" else "memory"
    return UrgentForecast(m["ns"], m["pod"], m["container"], resource, upper)


Key = tuple[str, str]  # (pod uid, container)

# One window, as nine doubles in a flat array per container (72 bytes a window, not ~1 KB of
# objects: 5,000 pods with 15 minutes of 10-second windows fit in ~35 MB). ``_RECEIVED`` is
# when it reached the controller (the controller's clock).
_START, _END, _SAMPLES, _THROTTLED, _CPU_PSI, _MEM_PSI, _OOM, _MEM_MAX, _RECEIVED = range(9)
_WIDTH = 9
# A window that starts this close before a resize took effect still counts as after it (the
# agent's and the controller's clocks are not one clock).
_CLOCK_SLACK_S = 0.5
# A window that ended this long before the last decision no longer counts when it arrives
# (a spool's backlog after an outage is history, not the pod's state now).
_LATE_S = 60.0


def _rows(a: array[float]) -> Iterator[tuple[float, ...]]:
    for i in range(0, len(a), _WIDTH):
        yield tuple(a[i : i + _WIDTH])


class RecentWindows:
    """Recent windows per pod container, and urgent forecasts by pod name."""

    def __init__(self, keep_s: float, max_windows: int = 120) -> None:
        self.keep_s = keep_s
        self.max_windows = max_windows
        self._windows: dict[Key, array[float]] = {}
        self._urgent: dict[tuple[str, str, str], tuple[float, float, float]] = {}
        # When the container's current CPU and memory allocations took effect.
        self._changed: dict[Key, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def add(self, windows: Iterable[UsageWindow], at: float | None = None) -> None:
        """Keep ``windows``, received at ``at`` (``None``: each at its own end)."""
        for w in windows:
            key = (w.pod.uid, w.container)
            a = self._windows.get(key)
            if a is None:
                a = self._windows[key] = array("d")
            elif a[-_WIDTH + _START] == w.start and a[-_WIDTH + _END] == w.end:
                continue  # a resent window
            p = w.pressure
            row = (w.start, w.end, float(w.samples), w.cpu_throttled_fraction, p.cpu, p.memory,
                   float(w.oom_kills), w.mem_max, w.end if at is None else at)  # fmt: skip
            a.extend(row)
            if len(a) > self.max_windows * _WIDTH:
                del a[:_WIDTH]

    def add_urgent(self, forecast: UrgentForecast, at: float) -> None:
        key = (forecast.namespace, forecast.pod, forecast.container)
        cpu, mem, _ = self._urgent.get(key, (math.nan, math.nan, at))
        if forecast.resource == "cpu":
            cpu = forecast.upper
        else:
            mem = forecast.upper
        self._urgent[key] = (cpu, mem, at)

    def urgent_for(
        self, namespace: str, pod: str, container: str, since: float
    ) -> tuple[float, float]:
        """The agent's forecast upper edges (CPU, memory) sent since ``since``; NaN if none."""
        cpu, mem, at = self._urgent.get(
            (namespace, pod, container), (math.nan, math.nan, -math.inf)
        )
        return (cpu, mem) if at >= since else (math.nan, math.nan)

    def allocation_changed(
        self, uid: str, container: str, at: float, *, cpu: bool, memory: bool
    ) -> None:
        """A resize of ``container``'s CPU and/or memory took effect at ``at``: the windows
        that started before it no longer tell how that resource copes (module docstring)."""
        key = (uid, container)
        cpu_at, mem_at = self._changed.get(key, (-math.inf, -math.inf))
        self._changed[key] = (at if cpu else cpu_at, at if memory else mem_at)

    def prune(self, now: float) -> None:
        horizon = now - self.keep_s
        for key in [k for k, a in self._windows.items() if not a or a[-_WIDTH + _END] < horizon]:
            del self._windows[key]
        for key in [k for k, v in self._changed.items() if max(v) < horizon]:
            del self._changed[key]
        for urgent_key in [k for k, v in self._urgent.items() if v[2] < horizon]:
            del self._urgent[urgent_key]

    def changed_at(self, uid: str, container: str) -> tuple[float, float]:
        """When ``container``'s current CPU and memory allocations took effect (``-inf``: not
        by a resize seen here)."""
        return self._changed.get((uid, container), (-math.inf, -math.inf))

    def signals(self, uid: str, container: str, *, since: float, peak_s: float) -> Signals:
        """``decide``'s signals from the windows received after ``since`` (OOM, throttling,
        pressure), each resource's only from windows measured under its current allocation
        (module docstring), and the memory peak over the last ``peak_s``."""
        key = (uid, container)
        a = self._windows.get(key)
        if not a:
            return Signals()
        rows = list(_rows(a))
        last_end = max(r[_END] for r in rows)
        peak = max((r[_MEM_MAX] for r in rows if r[_END] > last_end - peak_s), default=0.0)
        cpu_at, mem_at = self._changed.get(key, (-math.inf, -math.inf))
        fresh = [r for r in rows if r[_RECEIVED] > since and r[_END] > since - _LATE_S]
        cpu = [r for r in fresh if r[_START] >= cpu_at - _CLOCK_SLACK_S]
        mem = [r for r in fresh if r[_START] >= mem_at - _CLOCK_SLACK_S]
        return Signals(
            oom_kill=any(r[_OOM] > 0 for r in mem),
            throttled_fraction=max((r[_THROTTLED] for r in cpu), default=0.0),
            cpu_pressure=max((r[_CPU_PSI] for r in cpu), default=0.0),
            memory_pressure=max((r[_MEM_PSI] for r in mem), default=0.0),
            memory_peak=peak,
        )

    def health(self, uid: str, containers: Iterable[str], start: float, end: float) -> Health:
        """The pod's health over windows that started at or after ``start`` and ended by
        ``end`` (time-weighted mean throttling and PSI, summed OOM kills)."""
        rows = [
            r
            for c in containers
            for r in _rows(self._windows.get((uid, c), array("d")))
            if r[_START] >= start - 1e-9 and r[_END] <= end + 1e-9
        ]
        if not rows:
            return Health()
        weight = sum(r[_END] - r[_START] for r in rows)

        def mean(column: int) -> float:
            total = sum(r[column] * (r[_END] - r[_START]) for r in rows)
            return total / weight if weight > 0 else math.nan

        return Health(
            throttled=mean(_THROTTLED),
            cpu_psi=mean(_CPU_PSI),
            mem_psi=mean(_MEM_PSI),
            oom_kills=int(sum(r[_OOM] for r in rows)),
            samples=int(sum(r[_SAMPLES] for r in rows)),
        )
