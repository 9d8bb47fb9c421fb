"""presize itself, as a replay policy: the core's forecasters and ``decide`` per series.

This is the same composition the controller runs per container, fed with 5-minute steps:

* CPU: :class:`ShortHorizonForecaster` over the last hour's demand (window means: the CPU
  allocation is a request, bursts inside a window run on spare capacity up to the limit); its
  ``upper_q`` tail is the predicted usage.
* Memory: the larger of three estimates of the coming peak, each a reason on its own:
  the :class:`PeakLadderForecaster` (the tightest trailing window that has earned trust), the
  short-horizon tail over the last 15 minutes (a container whose memory jumps learns large
  ratios and keeps headroom), and a burst guard: when CPU breaks its 24 h high, memory often
  follows within minutes, so the ladder's estimate is raised for that step by the container's
  own learned jump ratio (at most ``burst_boost``).
* ``presize.policy.decide`` turns predictions, the OOM and throttling signals and the minimums
  into the allocation, with its hysteresis and cooldowns.

The forecasters' 90 % intervals for the next step are recorded so the replay can report how
well calibrated they are.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from presize.classify import Classification, classify, features
from presize.forecast.ensemble import EnsembleForecaster
from presize.forecast.ladder import PeakLadderForecaster
from presize.forecast.percentile import PercentileForecaster
from presize.forecast.seasonal import SeasonalForecaster
from presize.forecast.short_horizon import ShortHorizonForecaster
from presize.forecast.windows import TrailingMax
from presize.histogram import HistogramOptions
from presize.model import Action, Bounds, Forecast, WorkloadClass
from presize.policy import Allocation, DecisionState, Limits, Signals, decide
from presize.replay.series import (
    STEP_SECONDS,
    STEPS_PER_DAY,
    STEPS_PER_HOUR,
    FloatArray,
    Series,
    TraceUnits,
)
from presize.replay.simulator import Observation
from presize.settings import (
    LadderSettings,
    PolicySettings,
    SeasonalSettings,
    ShortHorizonSettings,
)


@dataclass(frozen=True)
class PresizeReplaySettings:
    """Everything presize's replay policy can be tuned with; the defaults are the product's."""

    policy: PolicySettings = field(default_factory=PolicySettings)
    cpu: ShortHorizonSettings = field(
        default_factory=lambda: ShortHorizonSettings(window_steps=STEPS_PER_HOUR, upper_q=0.95)
    )
    memory: ShortHorizonSettings = field(
        default_factory=lambda: ShortHorizonSettings(window_steps=3, upper_q=0.99)
    )
    ladder: LadderSettings = field(default_factory=LadderSettings)
    burst_boost: float = 2.0  # the most the CPU-burst guard multiplies the ladder's peak by
    jump_cap: float = 1.5  # the most the learned 15-minute jump ratio multiplies a peak by
    cpu_percentile_half_life_s: float = 86400.0
    cpu_ensemble: bool = True
    classify_every_s: float = 86400.0
    # Off by default: on the three trace families the seasonal member changed CPU slack by
    # < 0.002 at a 5-minute cadence and cost calibration (see BENCHMARKS.md); the controller
    # uses it for the long-horizon profile instead.
    seasonal_for_periodic: bool = False
    burst_window_steps: int = STEPS_PER_DAY
    horizon_s: float = STEP_SECONDS


class PresizeSeriesPolicy:
    """presize's forecasters and decision rule for one series."""

    def __init__(
        self, series: Series, units: TraceUnits, settings: PresizeReplaySettings | None = None
    ) -> None:
        self.s = settings or PresizeReplaySettings()
        floor_cpu = max(units.cpu_min, units.cpu_bucket)
        floor_mem = max(units.mem_min, units.mem_bucket)
        self.cpu_fc = ShortHorizonForecaster(_with_floor(self.s.cpu, floor_cpu))
        self.cpu_pct = PercentileForecaster(
            HistogramOptions(
                first_bucket_size=units.cpu_bucket,
                max_value=units.cpu_bucket * 1e5,
                half_life_s=self.s.cpu_percentile_half_life_s,
            ),
            upper_q=self.s.cpu.upper_q,
        )
        self.cpu_ens = EnsembleForecaster([self.cpu_fc, self.cpu_pct], q=self.s.cpu.upper_q)
        self.history: deque[tuple[float, float]] = deque(maxlen=7 * STEPS_PER_DAY)
        self.classified_at = series.start_time
        self.classification: Classification | None = None
        self.classes: dict[str, int] = {}
        self.mem_fc = ShortHorizonForecaster(_with_floor(self.s.memory, floor_mem))
        self.ladder = PeakLadderForecaster(self.s.ladder)
        self.cpu_high = TrailingMax(self.s.burst_window_steps)
        self.mem_recent = TrailingMax(STEPS_PER_HOUR)
        self.limits = Limits(
            cpu=Bounds(minimum=units.cpu_min), memory=Bounds(minimum=units.mem_min)
        )
        self.alloc = Allocation(series.initial_cpu, series.initial_mem)
        self.state = DecisionState()
        self.signals = Signals()
        self.burst = False
        n = len(series)
        self.bands = {k: np.full(n, np.nan) for k in ("cpu_lo", "cpu_hi", "mem_lo", "mem_hi")}
        self.actions: dict[str, int] = {}

    def observe(self, obs: Observation) -> None:
        if obs.time - self.classified_at >= self.s.classify_every_s:
            self._classify(obs.time)
        if not obs.valid:
            # A gap (the container was not running) is not evidence of anything: windows are
            # windows of observed samples, so an intermittent job keeps its profile across
            # the gap instead of starting from nothing when it comes back. Nothing happened in
            # a gap either: no OOM, no throttling (stale signals would bump every step).
            self.burst = False
            self.signals = Signals(memory_peak=self.signals.memory_peak)
            return
        high = self.cpu_high.value()
        self.burst = not math.isnan(high) and obs.cpu > high
        # The CPU allocation is a request: it is sized to the demand (the window's mean use),
        # and bursts above it run on the node's spare capacity up to the limit. Memory is a
        # hard limit, so memory is sized to the window's peak.
        self.cpu_ens.observe(obs.time, obs.cpu)
        self.history.append((obs.time, obs.cpu))
        self.mem_fc.observe(obs.time, obs.mem_peak)
        self.ladder.observe(obs.time, obs.mem_peak)
        self.cpu_high.push(obs.cpu)
        self.mem_recent.push(obs.mem_peak)
        peak = self.mem_recent.value()
        self.signals = Signals(
            oom_kill=obs.oom,
            throttled_fraction=1.0 if obs.cpu > self.alloc.cpu else 0.0,
            memory_peak=0.0 if math.isnan(peak) else peak,
        )

    def _classify(self, time: float) -> None:
        """Daily: classify the CPU history; with ``seasonal_for_periodic`` a periodic workload
        gets the seasonal model in its CPU ensemble."""
        self.classified_at = time
        if len(self.history) < STEPS_PER_DAY:
            return
        times, values = zip(*self.history, strict=True)
        c = classify(features(times, values, step_s=STEP_SECONDS))
        self.classification = c
        self.classes[c.workload_class.value] = self.classes.get(c.workload_class.value, 0) + 1
        periodic = c.workload_class is WorkloadClass.PERIODIC
        has_seasonal = any(isinstance(m, SeasonalForecaster) for m in self.cpu_ens.members)
        if periodic and self.s.seasonal_for_periodic and not has_seasonal:
            seasonal = SeasonalForecaster(SeasonalSettings())
            for t, v in self.history:
                seasonal.observe(t, v)
            self.cpu_ens.add_member(seasonal)

    def _record_band(self, t: int, prefix: str, f: Forecast | None) -> None:
        if f is not None:
            self.bands[f"{prefix}_lo"][t] = f.lower
            self.bands[f"{prefix}_hi"][t] = f.upper

    def predicted(self, t: int, time: float) -> Allocation:
        chosen = self.cpu_ens.forecast(time, self.s.horizon_s)
        self._record_band(t, "cpu", chosen)
        self._record_band(t, "mem", self.mem_fc.forecast(time, self.s.horizon_s))
        if not self.s.cpu_ensemble or chosen is None or chosen.model == self.cpu_fc.name:
            cpu = self.cpu_fc.tail(time)
        else:
            cpu = chosen.upper
        high = self.cpu_high.value()
        if not math.isnan(cpu) and not math.isnan(high):
            # The ratio extrapolates; never past the highest demand of the last day.
            cpu = min(cpu, max(high, self.cpu_fc.s.floor))
        return Allocation(cpu, self._predicted_memory(time))

    def _predicted_memory(self, time: float) -> float:
        """The largest of the ladder, the learned-jump headroom and the CPU-burst guard."""
        ladder = self.ladder.forecast(time, self.s.horizon_s)
        ref = self.mem_fc.reference()
        mem = ref * min(self.mem_fc.tail_ratio(time), self.s.jump_cap)
        if ladder is not None:
            # The short tail adds headroom for jumps, but never beyond the longest window's
            # peak: past that the ladder already knows more than the ratio does.
            ceiling = self.ladder.ceiling()
            if not math.isnan(mem) and not math.isnan(ceiling):
                mem = min(mem, ceiling)
            mem = ladder.upper if math.isnan(mem) else max(mem, ladder.upper)
            if self.burst:
                # Boost by how far this container's memory is known to jump (its own tail
                # ratio), so smooth containers pay nothing for the guard.
                jump = min(max(self.mem_fc.tail_ratio(time), 1.0), self.s.burst_boost)
                mem = max(mem, ladder.upper * jump)
        return mem

    def allocate(self, t: int, time: float) -> tuple[float, float]:
        decision, self.state = decide(
            now=time,
            current=self.alloc,
            predicted=self.predicted(t, time),
            signals=self.signals,
            limits=self.limits,
            settings=self.s.policy,
            state=self.state,
        )
        key = f"{decision.action.value}:{decision.reason.value}"
        self.actions[key] = self.actions.get(key, 0) + 1
        if decision.action is not Action.NOOP and decision.action is not Action.DEFER:
            cpu = decision.cpu if decision.cpu is not None else self.alloc.cpu
            mem = decision.memory if decision.memory is not None else self.alloc.memory
            self.alloc = Allocation(cpu, mem)
        return self.alloc.cpu, self.alloc.memory

    def extras(self) -> dict[str, FloatArray]:
        return self.bands


def _with_floor(s: ShortHorizonSettings, floor: float) -> ShortHorizonSettings:
    return replace(s, floor=floor)
