"""The last minutes of each pod's windows: what decide's signals and rollback's health read.

Profiles are per workload; OOM kills, throttling and pressure are per pod, and a decision
about a pod must react to *its* trouble at once. :class:`RecentWindows` keeps, per pod UID
and container, the windows of the last ``keep_s`` seconds (bounded by count too), and the
urgent forecasts the agent sent for them.

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

# One window, as eight doubles in a flat array per container (64 bytes a window, not ~1 KB of
# objects: 5,000 pods with 15 minutes of 10-second windows fit in ~30 MB).
_START, _END, _SAMPLES, _THROTTLED, _CPU_PSI, _MEM_PSI, _OOM, _MEM_MAX = range(8)
_WIDTH = 8


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

    def __len__(self) -> int:
        return len(self._windows)

    def add(self, windows: Iterable[UsageWindow]) -> None:
        for w in windows:
            key = (w.pod.uid, w.container)
            a = self._windows.get(key)
            if a is None:
                a = self._windows[key] = array("d")
            elif a[-_WIDTH + _START] == w.start and a[-_WIDTH + _END] == w.end:
                continue  # a resent window
            p = w.pressure
            row = (w.start, w.end, float(w.samples), w.cpu_throttled_fraction, p.cpu, p.memory,
                   float(w.oom_kills), w.mem_max)  # fmt: skip
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

    def prune(self, now: float) -> None:
        horizon = now - self.keep_s
        for key in [k for k, a in self._windows.items() if not a or a[-_WIDTH + _END] < horizon]:
            del self._windows[key]
        for urgent_key in [k for k, v in self._urgent.items() if v[2] < horizon]:
            del self._urgent[urgent_key]

    def signals(self, uid: str, container: str, *, since: float, peak_s: float) -> Signals:
        """``decide``'s signals from the windows ending after ``since`` (OOM, throttling,
        pressure) and the memory peak over the last ``peak_s``."""
        a = self._windows.get((uid, container))
        if not a:
            return Signals()
        rows = list(_rows(a))
        last_end = rows[-1][_END]
        peak = max((r[_MEM_MAX] for r in rows if r[_END] > last_end - peak_s), default=0.0)
        fresh = [r for r in rows if r[_END] > since]
        if not fresh:
            return Signals(memory_peak=peak)
        return Signals(
            oom_kill=any(r[_OOM] > 0 for r in fresh),
            throttled_fraction=max(r[_THROTTLED] for r in fresh),
            cpu_pressure=max(r[_CPU_PSI] for r in fresh),
            memory_pressure=max(r[_MEM_PSI] for r in fresh),
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
