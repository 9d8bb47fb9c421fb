"""When a container cannot wait for the next batch: the urgent trigger.

The batch goes out every minute; a container that will hit its memory limit in two minutes
needs the controller *now*, which is what makes presize act before the bottleneck rather than
after. Every ``step_s`` (10 s) the agent feeds each container's peak CPU and peak working set
over the step into a :class:`~presize.forecast.short_horizon.ShortHorizonForecaster` per
resource, and raises an urgent report when:

==========================  =================================================================
reason code                 condition
==========================  =================================================================
``forecast-cpu-limit``      the CPU forecast's upper edge over ``horizon_s`` reaches the limit
``forecast-memory-limit``   the working-set forecast's upper edge reaches the memory limit
``oom-kill``                an OOM kill happened in the step
``slo-throttling``          the step's throttled fraction is over ``throttling_slo``
==========================  =================================================================

Why steps and not every second: the forecaster learns how far the next *peak* rises above the
trailing peak, and a 10 s peak is what a resize can act on; feeding it 1 s samples would cost
ten times as much and teach it noise. A reason already sent for a container is held back for
``cooldown_s`` so a container that stays near its limit does not flood the controller.

:func:`reasons_for` is pure; :class:`UrgencyWatcher` keeps the per-container forecasters and
cooldowns, and takes the time as an argument.

Cold start: until a container has ``min_samples`` steps (six minutes), the forecaster's upper
edge is its prior, 1.5x the trailing peak, so a new container is flagged once its peak passes
two thirds of a limit: early rather than late, while nothing is known about it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from presize.errors import SettingsError
from presize.forecast.short_horizon import ShortHorizonForecaster
from presize.model import PodRef, UsageWindow
from presize.settings import ShortHorizonSettings

FORECAST_CPU = "forecast-cpu-limit"
FORECAST_MEMORY = "forecast-memory-limit"
OOM_KILL = "oom-kill"
SLO_THROTTLING = "slo-throttling"


@dataclass(frozen=True, slots=True)
class UrgentSettings:
    """``step_s``: how often peaks are fed and checked; ``horizon_s``: how far ahead a limit
    counts; ``throttling_slo``: highest acceptable throttled fraction of CFS periods;
    ``cooldown_s``: quiet time per container and reason after an urgent report."""

    step_s: float = 10.0
    horizon_s: float = 300.0
    throttling_slo: float = 0.2
    cooldown_s: float = 60.0
    forecaster: ShortHorizonSettings = field(default_factory=ShortHorizonSettings)

    def __post_init__(self) -> None:
        if min(self.step_s, self.horizon_s, self.cooldown_s) <= 0:
            raise SettingsError("UrgentSettings: step_s, horizon_s, cooldown_s must be > 0")
        if not 0.0 < self.throttling_slo <= 1.0:
            raise SettingsError("UrgentSettings.throttling_slo: expected (0, 1]")


@dataclass(frozen=True, slots=True)
class Assessment:
    """One container's step, as the trigger sees it; ``*_upper`` are the forecasts' upper
    edges (NaN before the forecaster has data)."""

    window: UsageWindow
    cpu_upper: float
    mem_upper: float


def reasons_for(a: Assessment, s: UrgentSettings) -> tuple[tuple[str, str], ...]:
    """``(code, detail)`` for every urgent condition ``a`` meets (see the module table)."""
    w = a.window
    out: list[tuple[str, str]] = []
    within = f"within {s.horizon_s:.0f}s"
    if w.cpu_limit is not None and not math.isnan(a.cpu_upper) and a.cpu_upper >= w.cpu_limit:
        detail = f"cpu upper {a.cpu_upper:.3f} >= limit {w.cpu_limit:.3f} cores {within}"
        out.append((FORECAST_CPU, detail))
    if w.mem_limit is not None and not math.isnan(a.mem_upper) and a.mem_upper >= w.mem_limit:
        detail = f"memory upper {a.mem_upper:.0f} >= limit {w.mem_limit:.0f} bytes {within}"
        out.append((FORECAST_MEMORY, detail))
    if w.oom_kills > 0:
        out.append((OOM_KILL, f"{w.oom_kills} OOM kill(s)"))
    if w.cpu_throttled_fraction > s.throttling_slo:
        detail = f"throttled {w.cpu_throttled_fraction:.0%} of periods > SLO"
        out.append((SLO_THROTTLING, f"{detail} {s.throttling_slo:.0%}"))
    return tuple(out)


def describe(pod: PodRef, container: str, code: str, detail: str) -> str:
    """The text of one urgent reason, as it goes into ``Report.urgent_reasons``."""
    who = f"{pod.namespace}/{pod.name}" if pod.name else f"uid:{pod.uid}"
    return f"{code}: {who}/{container}: {detail}"


@dataclass(frozen=True, slots=True)
class Trigger:
    """A container that needs an urgent report, with the window that showed it."""

    window: UsageWindow
    reasons: tuple[str, ...]


@dataclass(slots=True)
class _Track:
    cpu: ShortHorizonForecaster
    mem: ShortHorizonForecaster
    seen_at: float
    sent: dict[str, float] = field(default_factory=dict)
    cpu_upper: float = math.nan
    mem_upper: float = math.nan


Key = tuple[PodRef, str]


class UrgencyWatcher:
    """Per-container forecasters and cooldowns; :meth:`step` once per ``step_s``."""

    def __init__(self, settings: UrgentSettings | None = None) -> None:
        self.s = settings or UrgentSettings()
        self._tracks: dict[Key, _Track] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def uppers(self) -> dict[Key, tuple[float, float]]:
        """The latest (CPU, memory) forecast upper edges per container, for metrics."""
        return {k: (t.cpu_upper, t.mem_upper) for k, t in self._tracks.items()}

    def step(self, now: float, windows: Iterable[UsageWindow]) -> list[Trigger]:
        """Feed one step's windows (one per container) and return what needs sending now."""
        out: list[Trigger] = []
        for w in windows:
            key = (w.pod, w.container)
            track = self._tracks.get(key)
            if track is None:
                fs = self.s.forecaster
                track = self._tracks[key] = _Track(
                    ShortHorizonForecaster(fs), ShortHorizonForecaster(fs), now
                )
            track.seen_at = now
            track.cpu.observe(now, w.cpu_max)
            track.mem.observe(now, w.mem_max)
            cpu = track.cpu.forecast(now, self.s.horizon_s)
            mem = track.mem.forecast(now, self.s.horizon_s)
            track.cpu_upper = math.nan if cpu is None else cpu.upper
            track.mem_upper = math.nan if mem is None else mem.upper
            found = reasons_for(Assessment(w, track.cpu_upper, track.mem_upper), self.s)
            quiet = self.s.cooldown_s
            fresh = [(c, d) for c, d in found if now - track.sent.get(c, -math.inf) >= quiet]
            if fresh:
                for code, _ in fresh:
                    track.sent[code] = now
                texts = tuple(describe(w.pod, w.container, c, d) for c, d in fresh)
                out.append(Trigger(w, texts))
        self._forget_stale(now)
        return out

    def _forget_stale(self, now: float) -> None:
        """Drop containers not seen for three steps (gone, or renamed by the directory)."""
        limit = 3 * self.s.step_s
        for key in [k for k, t in self._tracks.items() if now - t.seen_at > limit]:
            del self._tracks[key]
