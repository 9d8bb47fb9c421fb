"""Baseline policies the replay compares presize against.

* ``static``: the trace's provisioned capacity (what the user asked for).
* ``vpa`` / ``vpa-inplace``: the Vertical Pod Autoscaler's recommender and updater with their
  documented defaults (decaying histograms, 24 h half-life, target p90 + 15 %, bounds p50/p95
  with the confidence multipliers, memory from one peak per 24 h interval, the OOM bump, the
  per-pod minimum, and the updater's rule for applying a new target). ``vpa`` starts the 12 h
  clock at each change (Recreate mode); ``vpa-inplace`` uses the pod's age, which an in-place
  resize keeps.
* ``autopilot``: Autopilot's moving-window recommenders: load-adjusted p95 of CPU with a 12 h
  half-life and a 10 % margin; memory S_max, the largest peak of the last 24 h, plus 10 %.
* ``reactive``: what a short script would do: CPU at 1.1 × the largest use of the last hour,
  memory at 1.1 × the largest of the last 24 h, every step.
* ``oracle-1h`` / ``oracle-24h``: the exact maximum of the coming hour (day), set once per hour
  (day); the physical limit of any predictor resizing at that cadence.

The VPA baseline is tested against hand-computed cases (tests/unit/test_replay_baselines.py) so
that a win against it is a win against VPA, not against a straw man.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from presize.histogram import DecayingHistogram, HistogramOptions
from presize.replay.series import (
    STEP_SECONDS,
    STEPS_PER_DAY,
    STEPS_PER_HOUR,
    FloatArray,
    Series,
    TraceUnits,
)
from presize.replay.simulator import Observation, SeriesPolicy

DAY = 86400.0
HOUR = 3600.0


# --------------------------------------------------------------------------------------- static
class StaticPolicy:
    """The provisioned capacity at each step (held across gaps)."""

    def __init__(self, series: Series, units: TraceUnits) -> None:
        if series.cpu_capacity is None or series.mem_capacity is None:
            raise ValueError("static needs a trace with provisioned capacity")
        self._cpu = series.cpu_capacity
        self._mem = series.mem_capacity
        self._last = (series.initial_cpu, series.initial_mem)

    def observe(self, obs: Observation) -> None:
        pass

    def allocate(self, t: int, time: float) -> tuple[float, float]:
        c, m = float(self._cpu[t]), float(self._mem[t])
        if not (math.isnan(c) or math.isnan(m)):
            self._last = (c, m)
        return self._last


# ------------------------------------------------------------------------------------------ VPA
@dataclass(frozen=True)
class VpaSettings:
    """VPA recommender and updater defaults (kubernetes/autoscaler, VPA 1.7)."""

    half_life_s: float = 24 * HOUR
    cpu_sample_weight: float = 0.1
    target_q: float = 0.90
    lower_q: float = 0.50
    upper_q: float = 0.95
    margin: float = 0.15
    memory_interval_s: float = 24 * HOUR
    oom_bump_ratio: float = 1.2
    update_threshold: float = 0.10
    in_bounds_lifetime_s: float = 12 * HOUR
    quick_oom_s: float = 10 * 60.0
    samples_per_step: int = 5
    in_place_clock: bool = False


@dataclass(frozen=True)
class Bounded:
    target: float
    lower: float
    upper: float


def confidence_scale(base: float, multiplier: float, exponent: float, confidence: float) -> float:
    """VPA's confidence multiplier: base × (1 + multiplier/confidence)^exponent."""
    if confidence <= 0:
        return math.inf if exponent > 0 else 0.0
    return float(base * (1.0 + multiplier / confidence) ** exponent)


class VpaPolicy:
    """VPA's recommender (histograms, percentiles, bounds) and updater, per series."""

    def __init__(
        self, series: Series, units: TraceUnits, settings: VpaSettings | None = None
    ) -> None:
        self.s = settings or VpaSettings()
        self.units = units
        self.cpu_hist = DecayingHistogram(
            HistogramOptions(
                first_bucket_size=units.cpu_bucket,
                max_value=units.cpu_bucket * 1e5,
                half_life_s=self.s.half_life_s,
            )
        )
        self.mem_hist = DecayingHistogram(
            HistogramOptions(
                first_bucket_size=units.mem_bucket,
                max_value=units.mem_bucket * 1e5,
                half_life_s=self.s.half_life_s,
            )
        )
        self.alloc = (series.initial_cpu, series.initial_mem)
        self.first_cpu_time: float | None = None
        self.last_cpu_time = 0.0
        self.samples = 0
        self.window_end: float | None = None
        self.memory_peak = 0.0
        self.oom_peak = 0.0
        self.pod_start = series.start_time
        self.clock_start = series.start_time
        self.container_start = series.start_time
        self.quick_oom = False

    # recommender input -------------------------------------------------------------------
    def _add_memory_sample(self, usage: float, ts: float, *, is_oom: bool) -> None:
        if self.window_end is None:
            self.window_end = ts
        add_new_peak = False
        if ts < self.window_end:
            old = max(self.memory_peak, self.oom_peak)
            if usage > old:
                # VPA only replaces a non-zero peak; a real container never reports 0 bytes,
                # but idle trace VMs do, so 0 counts as "no peak yet" (kinder to VPA).
                if old != 0:
                    self.mem_hist.subtract(old, 1.0, self.window_end)
                add_new_peak = True
        else:
            interval = self.s.memory_interval_s
            shift = math.floor((ts - self.window_end) / interval) * interval + interval
            self.window_end += shift
            self.memory_peak = 0.0
            self.oom_peak = 0.0
            add_new_peak = True
        if add_new_peak:
            self.mem_hist.add(usage, 1.0, self.window_end)
            if is_oom:
                self.oom_peak = usage
            else:
                self.memory_peak = usage

    def record_oom(self, ts: float, allocated: float) -> None:
        used = max(allocated, self.memory_peak)
        needed = max(used + self.units.oom_min_bump, used * self.s.oom_bump_ratio)
        self._add_memory_sample(needed, ts, is_oom=True)

    def observe(self, obs: Observation) -> None:
        if not obs.valid:
            return
        self.cpu_hist.add(obs.cpu, self.s.cpu_sample_weight, obs.time)
        if self.first_cpu_time is None:
            self.first_cpu_time = obs.time
        self.last_cpu_time = obs.time
        self.samples += self.s.samples_per_step
        self._add_memory_sample(obs.mem_peak, obs.time, is_oom=False)
        if obs.oom:
            # The OOM is seen at the next step, as the recommender sees it in a cluster.
            self.record_oom(obs.time + STEP_SECONDS, self.alloc[1])
            self.quick_oom = obs.time - self.container_start < self.s.quick_oom_s
            self.container_start = obs.time

    # recommender output ------------------------------------------------------------------
    def confidence(self) -> float:
        if self.first_cpu_time is None:
            return 0.0
        lifespan_days = (self.last_cpu_time - self.first_cpu_time) / DAY
        return min(lifespan_days, self.samples / 1440.0)

    def _bounded(self, hist: DecayingHistogram, minimum: float, conf: float) -> Bounded:
        m = 1.0 + self.s.margin
        target = hist.percentile(self.s.target_q) * m
        lower = confidence_scale(hist.percentile(self.s.lower_q) * m, 0.001, -2.0, conf)
        upper = confidence_scale(hist.percentile(self.s.upper_q) * m, 1.0, 1.0, conf)
        return Bounded(max(target, minimum), max(lower, minimum), max(upper, minimum))

    def recommendation(self) -> tuple[Bounded, Bounded] | None:
        if self.cpu_hist.is_empty() or self.mem_hist.is_empty():
            return None
        conf = self.confidence()
        return (
            self._bounded(self.cpu_hist, self.units.cpu_min, conf),
            self._bounded(self.mem_hist, self.units.mem_min, conf),
        )

    # updater -----------------------------------------------------------------------------
    def allocate(self, t: int, time: float) -> tuple[float, float]:
        rec = self.recommendation()
        quick_oom, self.quick_oom = self.quick_oom, False
        if rec is None:
            return self.alloc
        cpu, mem = rec
        ac, am = self.alloc
        if (cpu.target, mem.target) == (ac, am):
            return self.alloc
        outside = not (cpu.lower <= ac <= cpu.upper) or not (mem.lower <= am <= mem.upper)
        clock = self.pod_start if self.s.in_place_clock else self.clock_start
        diff = abs(cpu.target - ac) / ac + abs(mem.target - am) / am
        aged = time - clock >= self.s.in_bounds_lifetime_s and diff >= self.s.update_threshold
        if outside or quick_oom or aged:
            self.alloc = (cpu.target, mem.target)
            self.clock_start = time
            self.container_start = time
        return self.alloc


# ------------------------------------------------------------------------------------ autopilot
@dataclass(frozen=True)
class AutopilotSettings:
    """Autopilot moving-window recommender (Rzadca et al., EuroSys 2020, §3.2)."""

    cpu_half_life_s: float = 12 * HOUR
    cpu_q: float = 0.95
    cpu_margin: float = 0.10
    mem_window_steps: int = STEPS_PER_DAY
    mem_margin: float = 0.10


class AutopilotPolicy:
    """CPU: load-adjusted decayed p95 (12 h half-life); memory: S_max, the peak over a window."""

    def __init__(
        self, series: Series, units: TraceUnits, settings: AutopilotSettings | None = None
    ) -> None:
        self.s = settings or AutopilotSettings()
        self.units = units
        self.cpu_hist = DecayingHistogram(
            HistogramOptions(
                first_bucket_size=units.cpu_bucket,
                max_value=units.cpu_bucket * 1e5,
                half_life_s=self.s.cpu_half_life_s,
            )
        )
        self.mem_peaks: deque[float] = deque(maxlen=self.s.mem_window_steps)
        self.alloc = (series.initial_cpu, series.initial_mem)

    def observe(self, obs: Observation) -> None:
        self.mem_peaks.append(obs.mem_peak)
        if not obs.valid:
            return
        # Load-adjusted: each sample weighs as much as the load it represents.
        self.cpu_hist.add(obs.cpu, max(obs.cpu, 1e-12), obs.time)

    def allocate(self, t: int, time: float) -> tuple[float, float]:
        peak = max((v for v in self.mem_peaks if not math.isnan(v)), default=None)
        if self.cpu_hist.is_empty() or peak is None:
            return self.alloc
        self.alloc = (
            max(
                self.cpu_hist.percentile(self.s.cpu_q) * (1 + self.s.cpu_margin),
                self.units.cpu_min,
            ),
            max(peak * (1 + self.s.mem_margin), self.units.mem_min),
        )
        return self.alloc


# ------------------------------------------------------------------------------------- reactive
class ReactivePolicy:
    """CPU 1.1 × max of the last hour, memory 1.1 × max of the last 24 h, every step."""

    def __init__(self, series: Series, units: TraceUnits, factor: float = 1.1) -> None:
        self.units = units
        self.factor = factor
        self.cpu: deque[float] = deque(maxlen=STEPS_PER_HOUR)
        self.mem: deque[float] = deque(maxlen=STEPS_PER_DAY)
        self.alloc = (series.initial_cpu, series.initial_mem)

    def observe(self, obs: Observation) -> None:
        # Steps are appended even when missing (NaN) so the windows are windows of time.
        self.cpu.append(obs.cpu_peak)
        self.mem.append(obs.mem_peak)

    def allocate(self, t: int, time: float) -> tuple[float, float]:
        c = max((v for v in self.cpu if not math.isnan(v)), default=None)
        m = max((v for v in self.mem if not math.isnan(v)), default=None)
        if c is not None and m is not None:
            self.alloc = (
                max(c * self.factor, self.units.cpu_min),
                max(m * self.factor, self.units.mem_min),
            )
        return self.alloc


# --------------------------------------------------------------------------------------- oracle
def block_max(values: FloatArray, block: int) -> FloatArray:
    """The maximum of each block of ``block`` steps, broadcast back (NaN blocks hold)."""
    n = values.shape[0]
    out = np.empty(n)
    last = math.nan
    for start in range(0, n, block):
        chunk = values[start : start + block]
        peak = float(np.nanmax(chunk)) if not np.isnan(chunk).all() else last
        out[start : start + block] = peak
        last = peak
    return out


class OraclePolicy:
    """Clairvoyant: the exact maximum of the coming block, set at the start of each block."""

    def __init__(self, series: Series, units: TraceUnits, block: int) -> None:
        cpu = series.cpu_peak if series.cpu_peak is not None else series.cpu
        mem = series.mem_peak if series.mem_peak is not None else series.mem
        self.cpu = block_max(cpu, block)
        self.mem = block_max(mem, block)
        self.fallback = (series.initial_cpu, series.initial_mem)

    def observe(self, obs: Observation) -> None:
        pass

    def allocate(self, t: int, time: float) -> tuple[float, float]:
        c, m = float(self.cpu[t]), float(self.mem[t])
        if math.isnan(c) or math.isnan(m):
            return self.fallback
        return (c, m)


def make_baseline(name: str, series: Series, units: TraceUnits) -> SeriesPolicy:
    """Build the named baseline for one series."""
    if name == "static":
        return StaticPolicy(series, units)
    if name == "vpa":
        return VpaPolicy(series, units)
    if name == "vpa-inplace":
        return VpaPolicy(series, units, VpaSettings(in_place_clock=True))
    if name == "autopilot":
        return AutopilotPolicy(series, units)
    if name == "reactive":
        return ReactivePolicy(series, units)
    if name == "oracle-1h":
        return OraclePolicy(series, units, STEPS_PER_HOUR)
    if name == "oracle-24h":
        return OraclePolicy(series, units, STEPS_PER_DAY)
    raise ValueError(f"unknown baseline policy {name!r}")


BASELINES = ("static", "vpa", "vpa-inplace", "autopilot", "reactive", "oracle-1h", "oracle-24h")
