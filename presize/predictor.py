"""presize's per-container prediction: the forecasters the replay measures and the controller runs.

One :class:`UsagePredictor` per container profile, fed one step at a time (the replay's
5-minute trace steps, the controller's aggregated window buckets) with the step's CPU demand
and memory peak. :meth:`UsagePredictor.predict` returns what ``presize.policy.decide`` needs:

* CPU: :class:`ShortHorizonForecaster` over the last hour's demand (window means: the CPU
  allocation is a request, bursts inside a window run on spare capacity up to the limit),
  raced against a decaying percentile in an ensemble that picks by pinball loss; the chosen
  tail is the predicted usage, never past the highest demand of the last day.
* Memory: the larger of three estimates of the coming peak, each a reason on its own:
  the :class:`PeakLadderForecaster` (the tightest trailing window that has earned trust), the
  short-horizon tail over the last 15 minutes (a container whose memory jumps learns large
  ratios and keeps headroom, up to ``jump_cap``), and the weekly guard
  (:class:`~presize.forecast.weekly.WeeklyPeaks`): the peak seen within a few hours of the
  same time last week. A peak the weekly guard foresaw is no surprise to the ladder, so a
  container whose spikes keep a weekly clock is not held at its spike for days after each.

  What the weekly guard replaced, measured on the replay: a CPU-burst guard (memory raised
  for a step when CPU broke its 24 h high) cost 0.015 memory slack on Google 2011 and 2019
  for one or two OOM steps; the weekly guard saves more OOMs for less, which pays for letting
  go of peaks sooner (``LadderSettings.trust_s``, the memory shrink step).

Windows are counted in steps; :meth:`PredictorSettings.for_step` rescales them for another
step length so that the durations (an hour, a day) stay what the replay measured.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

from presize.classify import Classification, classify, features
from presize.forecast.ensemble import EnsembleForecaster
from presize.forecast.ladder import PeakLadderForecaster
from presize.forecast.percentile import PercentileForecaster
from presize.forecast.seasonal import SeasonalForecaster
from presize.forecast.short_horizon import ShortHorizonForecaster
from presize.forecast.weekly import WeeklyPeaks
from presize.forecast.windows import TrailingMax
from presize.histogram import HistogramOptions
from presize.model import Forecast, WorkloadClass
from presize.policy import Allocation
from presize.settings import (
    LadderSettings,
    PolicySettings,
    SeasonalSettings,
    ShortHorizonSettings,
)

REFERENCE_STEP_S = 300.0
_HOUR_STEPS = 12
_DAY_STEPS = 288


@dataclass(frozen=True)
class PredictorSettings:
    """Everything presize's prediction can be tuned with; the defaults are the product's,
    expressed for 5-minute steps (``step_s``)."""

    policy: PolicySettings = field(default_factory=PolicySettings)
    cpu: ShortHorizonSettings = field(
        default_factory=lambda: ShortHorizonSettings(window_steps=_HOUR_STEPS, upper_q=0.92)
    )
    memory: ShortHorizonSettings = field(
        default_factory=lambda: ShortHorizonSettings(window_steps=3, upper_q=0.99)
    )
    ladder: LadderSettings = field(default_factory=LadderSettings)
    jump_cap: float = 1.2  # the most the learned 15-minute jump ratio multiplies a peak by
    cpu_percentile_half_life_s: float = 86400.0
    cpu_ensemble: bool = True
    classify_every_s: float = 86400.0
    # Off by default: on the three trace families the seasonal member changed CPU slack by
    # < 0.002 at a 5-minute cadence and cost calibration (see BENCHMARKS.md); the controller
    # uses it for the long-horizon profile instead.
    seasonal_for_periodic: bool = False
    cpu_high_window_steps: int = _DAY_STEPS
    step_s: float = REFERENCE_STEP_S
    horizon_s: float = REFERENCE_STEP_S
    # A day and an hour, as settings so that a time-compressed run (a demo) compresses them
    # with everything else.
    day_s: float = 86400.0
    hour_s: float = 3600.0
    # The weekly guard: hours either side of the same time last week (None: off), and the
    # headroom over last week's peak.
    weekly_margin_hours: int | None = 3
    weekly_factor: float = 1.05

    def for_step(self, step_s: float) -> PredictorSettings:
        """The same durations counted in steps of ``step_s`` seconds (e.g. 60 s buckets)."""
        k = self.step_s / step_s

        def steps(n: int) -> int:
            return max(1, round(n * k))

        return replace(
            self,
            cpu=replace(self.cpu, window_steps=steps(self.cpu.window_steps)),
            memory=replace(self.memory, window_steps=steps(self.memory.window_steps)),
            ladder=replace(
                self.ladder, windows_steps=tuple(steps(w) for w in self.ladder.windows_steps)
            ),
            cpu_high_window_steps=steps(self.cpu_high_window_steps),
            step_s=step_s,
            horizon_s=step_s,
        )


@dataclass(frozen=True, slots=True)
class Prediction:
    """The usage to size for over the next step, and the forecasts behind it."""

    usage: Allocation
    cpu: Forecast | None
    memory: Forecast | None


class UsagePredictor:
    """presize's forecasters for one container (module docstring)."""

    def __init__(
        self,
        settings: PredictorSettings,
        *,
        cpu_floor: float,
        mem_floor: float,
        cpu_bucket: float,
        start: float,
    ) -> None:
        self.s = settings
        self.cpu_fc = ShortHorizonForecaster(replace(settings.cpu, floor=cpu_floor))
        self.cpu_pct = PercentileForecaster(
            HistogramOptions(
                first_bucket_size=cpu_bucket,
                max_value=cpu_bucket * 1e5,
                half_life_s=settings.cpu_percentile_half_life_s,
            ),
            upper_q=settings.cpu.upper_q,
        )
        self.cpu_ens = EnsembleForecaster([self.cpu_fc, self.cpu_pct], q=settings.cpu.upper_q)
        day_steps = max(1, round(settings.day_s / settings.step_s))
        self.history: deque[tuple[float, float]] = deque(maxlen=7 * day_steps)
        self.classified_at = start
        self.classification: Classification | None = None
        self.classes: dict[str, int] = {}
        self.mem_fc = ShortHorizonForecaster(replace(settings.memory, floor=mem_floor))
        self.ladder = PeakLadderForecaster(settings.ladder)
        self.cpu_high = TrailingMax(settings.cpu_high_window_steps)
        self.mem_recent = TrailingMax(max(1, round(settings.hour_s / settings.step_s)))
        self.observed = 0
        self.weekly = (
            WeeklyPeaks(week_s=7 * settings.day_s, bucket_s=settings.hour_s,
                        margin_buckets=settings.weekly_margin_hours)
            if settings.weekly_margin_hours is not None else None
        )

    def observe(self, time: float, cpu: float, mem_peak: float) -> None:
        """One step's CPU demand (cores) and memory peak (bytes)."""
        if time - self.classified_at >= self.s.classify_every_s:
            self._classify(time)
        self.cpu_ens.observe(time, cpu)
        self.history.append((time, cpu))
        self.mem_fc.observe(time, mem_peak)
        self.ladder.observe(time, mem_peak, expected=self._last_week(time))
        self.cpu_high.push(cpu)
        self.mem_recent.push(mem_peak)
        if self.weekly is not None:
            self.weekly.observe(time, mem_peak)
        self.observed += 1

    def memory_peak(self) -> float:
        """The highest memory of the last hour (0 before any observation)."""
        peak = self.mem_recent.value()
        return 0.0 if math.isnan(peak) else peak

    def weekly_state(self) -> list[tuple[int, float]]:
        """The weekly memory guard's hourly peaks (empty when the guard is off)."""
        return self.weekly.state() if self.weekly is not None else []

    def load_weekly_state(self, state: list[tuple[int, float]]) -> None:
        if self.weekly is not None:
            self.weekly.load(state)

    def _classify(self, time: float) -> None:
        """Daily: classify the CPU history; with ``seasonal_for_periodic`` a periodic workload
        gets the seasonal model in its CPU ensemble."""
        self.classified_at = time
        day_steps = self.s.day_s / self.s.step_s
        if len(self.history) < day_steps:
            return
        times, values = zip(*self.history, strict=True)
        # The classifier's rules are in real days: a compressed history is stretched back.
        k = 86400.0 / self.s.day_s
        c = classify(features([t * k for t in times], values, step_s=self.s.step_s * k))
        self.classification = c
        self.classes[c.workload_class.value] = self.classes.get(c.workload_class.value, 0) + 1
        periodic = c.workload_class is WorkloadClass.PERIODIC
        has_seasonal = any(isinstance(m, SeasonalForecaster) for m in self.cpu_ens.members)
        if periodic and self.s.seasonal_for_periodic and not has_seasonal:
            seasonal = SeasonalForecaster(SeasonalSettings())
            for t, v in self.history:
                seasonal.observe(t, v)
            self.cpu_ens.add_member(seasonal)

    def predict(self, time: float) -> Prediction:
        """What to size for over the next ``horizon_s``; NaN where nothing is known yet."""
        chosen = self.cpu_ens.forecast(time, self.s.horizon_s)
        if not self.s.cpu_ensemble or chosen is None or chosen.model == self.cpu_fc.name:
            cpu = self.cpu_fc.tail(time)
        else:
            cpu = chosen.upper
        high = self.cpu_high.value()
        if not math.isnan(cpu) and not math.isnan(high):
            # The ratio extrapolates; never past the highest demand of the last day.
            cpu = min(cpu, max(high, self.cpu_fc.s.floor))
        mem_band = self.mem_fc.forecast(time, self.s.horizon_s)
        return Prediction(Allocation(cpu, self._predicted_memory(time)), chosen, mem_band)

    def _last_week(self, time: float) -> float:
        """The weekly guard's level for ``time`` (NaN when off or nothing is known)."""
        if self.weekly is None:
            return math.nan
        return self.weekly.week_before(time) * self.s.weekly_factor

    def _predicted_memory(self, time: float) -> float:
        """The largest of the ladder, the learned-jump headroom and the weekly guard."""
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
        last_week = self._last_week(time + self.s.horizon_s)
        if not math.isnan(mem) and not math.isnan(last_week):
            mem = max(mem, last_week)
        return mem
