"""presize itself, as a replay policy: :class:`~presize.predictor.UsagePredictor` and ``decide``.

This is the same composition the controller runs per container, fed with 5-minute steps:
the predictor's forecasts (see :mod:`presize.predictor`) and ``presize.policy.decide``, which
turns predictions, the OOM and throttling signals and the minimums into the allocation, with
its hysteresis and cooldowns.

The forecasters' 90 % intervals for the next step are recorded so the replay can report how
well calibrated they are.
"""

from __future__ import annotations

import numpy as np

from presize.classify import Classification
from presize.model import Action, Bounds, Forecast
from presize.policy import Allocation, DecisionState, Limits, Signals, decide
from presize.predictor import PredictorSettings, UsagePredictor
from presize.replay.series import STEP_SECONDS, FloatArray, Series, TraceUnits
from presize.replay.simulator import Observation

# The replay's settings are the predictor's, at the traces' 5-minute step.
PresizeReplaySettings = PredictorSettings

__all__ = ["PresizeReplaySettings", "PresizeSeriesPolicy"]


class PresizeSeriesPolicy:
    """presize's forecasters and decision rule for one series."""

    def __init__(
        self, series: Series, units: TraceUnits, settings: PredictorSettings | None = None
    ) -> None:
        self.s = settings or PredictorSettings(step_s=STEP_SECONDS, horizon_s=STEP_SECONDS)
        self.predictor = UsagePredictor(
            self.s,
            cpu_floor=max(units.cpu_min, units.cpu_bucket),
            mem_floor=max(units.mem_min, units.mem_bucket),
            cpu_bucket=units.cpu_bucket,
            start=series.start_time,
        )
        self.limits = Limits(
            cpu=Bounds(minimum=units.cpu_min), memory=Bounds(minimum=units.mem_min)
        )
        self.alloc = Allocation(series.initial_cpu, series.initial_mem)
        self.state = DecisionState()
        self.signals = Signals()
        n = len(series)
        self.bands = {k: np.full(n, np.nan) for k in ("cpu_lo", "cpu_hi", "mem_lo", "mem_hi")}
        self.actions: dict[str, int] = {}

    @property
    def classes(self) -> dict[str, int]:
        return self.predictor.classes

    @property
    def classification(self) -> Classification | None:
        return self.predictor.classification

    def observe(self, obs: Observation) -> None:
        if not obs.valid:
            # A gap (the container was not running) is not evidence of anything: windows are
            # windows of observed samples, so an intermittent job keeps its profile across
            # the gap instead of starting from nothing when it comes back. Nothing happened in
            # a gap either: no OOM, no throttling (stale signals would bump every step).
            self.signals = Signals(memory_peak=self.signals.memory_peak)
            return
        self.predictor.observe(obs.time, obs.cpu, obs.mem_peak)
        self.signals = Signals(
            oom_kill=obs.oom,
            throttled_fraction=1.0 if obs.cpu > self.alloc.cpu else 0.0,
            memory_peak=self.predictor.memory_peak(),
        )

    def _record_band(self, t: int, prefix: str, f: Forecast | None) -> None:
        if f is not None:
            self.bands[f"{prefix}_lo"][t] = f.lower
            self.bands[f"{prefix}_hi"][t] = f.upper

    def predicted(self, t: int, time: float) -> Allocation:
        prediction = self.predictor.predict(time)
        self._record_band(t, "cpu", prediction.cpu)
        self._record_band(t, "mem", prediction.memory)
        return prediction.usage

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
