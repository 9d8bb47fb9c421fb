"""One workload container's behavioural profile: history, forecasters, accuracy, anomalies.

The profile is fed closed steps (:mod:`controller.steps`) and keeps:

* a :class:`~presize.predictor.UsagePredictor`: the short-horizon composition the replay
  measured, which sizes the next step;
* two :class:`~presize.forecast.seasonal.SeasonalForecaster` (CPU, memory): the long horizon,
  daily and weekly seasonality and trend, refitted every ``seasonal_refit_s`` *off the
  request path* (:meth:`refit_seasonal` is called from a worker thread by the loop; it only
  reads the hourly peaks it was given and swaps the fit in);
* a ring of the last ``history_s`` of steps (time, CPU, memory and the forecast upper edges
  made for each step), for the anomaly detectors and the accuracy figures;
* accuracy so far: the share of steps whose usage fell inside the forecast interval made
  before the step, and the mean absolute scaled error of the point forecast.

Checkpoints (:meth:`checkpoint`, :meth:`restore`) hold the step history (float32, zlib,
base64) and counters; a restored profile replays the history into fresh forecasters, so a
controller restart or a failover resumes from what was learned, not from nothing.
"""

from __future__ import annotations

import base64
import math
import threading
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.steps import StepValues
from presize.anomaly import Anomaly, detect_leak, detect_runaway
from presize.classify import Classification
from presize.forecast.seasonal import SeasonalForecaster, fit_seasonal, predict_bucket
from presize.forecast.windows import TrailingMax
from presize.model import (
    ContainerKey,
    Forecast,
    Recommendation,
    ResourceRecommendation,
    WorkloadClass,
)
from presize.predictor import Prediction, PredictorSettings, UsagePredictor
from presize.settings import AnomalySettings, SeasonalSettings

FloatArray = npt.NDArray[np.float64]
CPU_FLOOR = 0.001  # 1 millicore: the smallest CPU the profile reasons about
MEM_FLOOR = 1 << 20  # 1 MiB
CHECKPOINT_VERSION = 2
_CHECKPOINT_ROWS = {1: 3, 2: 4}  # v1: time, cpu, memory; v2 adds the CPU peak
_COLUMNS = (
    "time", "cpu", "mem", "cpu_upper", "mem_upper", "cpu_lower", "mem_lower", "cpu_peak",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Accuracy:
    coverage: float
    mase: float
    samples: int


def _positive(x: float) -> float | None:
    return x if math.isfinite(x) and x > 0 else None


class ContainerProfile:
    """Everything learned about one container name of one workload."""

    def __init__(
        self,
        key: ContainerKey,
        *,
        start: float,
        step_s: float,
        history_s: float,
        predictor: PredictorSettings,
        seasonal: SeasonalSettings,
    ) -> None:
        self.key = key
        self.step_s = step_s
        self._predictor_settings = predictor
        self._seasonal_settings = seasonal
        self.predictor = UsagePredictor(
            predictor, cpu_floor=CPU_FLOOR, mem_floor=MEM_FLOOR, cpu_bucket=CPU_FLOOR, start=start
        )
        self.seasonal_cpu = SeasonalForecaster(seasonal)
        self.seasonal_mem = SeasonalForecaster(seasonal)
        self._lock = threading.Lock()  # the seasonal refit runs in a worker thread
        n = max(2, math.ceil(history_s / step_s))
        # Times in float64 (epoch seconds need it), the rest in float32: 7 decimal digits are
        # plenty for usage, and it halves the largest part of a profile's memory.
        self._times = np.full(n, np.nan)
        self._ring = np.full((len(_COLUMNS) - 1, n), np.nan, dtype=np.float32)
        self._next = 0
        self._count = 0
        self.last_step: float = -math.inf
        self.generation = 0
        self.covered = 0
        self.scored = 0
        self.abs_error = 0.0
        self.naive_error = 0.0
        self.oom_kills = 0
        # Network: the highest rate of the last day, per direction (bits/s). A bandwidth cap
        # is a hard limit like memory, so it is sized to the peak, not to a quantile.
        day_steps = max(1, round(predictor.day_s / predictor.step_s))
        self.net_rx = TrailingMax(day_steps)
        self.net_tx = TrailingMax(day_steps)
        # CPU peaks (p99 of 1 s samples) of the last hour: the floor of a CPU limit.
        self.cpu_peaks = TrailingMax(max(1, round(predictor.hour_s / predictor.step_s)))
        self.pending: Prediction | None = None
        self.anomalies: list[Anomaly] = []
        self.dirty = True

    # ------------------------------------------------------------------ learning

    def observe_step(self, time: float, v: StepValues) -> None:
        """A closed step: score the forecast made for it, then learn from it."""
        if time <= self.last_step:
            return
        self._score(v)
        previous = self._latest("cpu")
        self.predictor.observe(time, v.cpu, v.mem)
        with self._lock:
            self.seasonal_cpu.observe(time, v.cpu)
            self.seasonal_mem.observe(time, v.mem)
        band = self.pending
        row = (
            time,
            v.cpu,
            v.mem,
            band.cpu.upper if band and band.cpu else math.nan,
            band.memory.upper if band and band.memory else math.nan,
            band.cpu.lower if band and band.cpu else math.nan,
            band.memory.lower if band and band.memory else math.nan,
            max(v.cpu_peak, v.cpu),
        )
        self._times[self._next] = row[0]
        self._ring[:, self._next] = row[1:]
        self._next = (self._next + 1) % self._ring.shape[1]
        self._count = min(self._count + 1, self._ring.shape[1])
        if not math.isnan(previous):
            self.naive_error += abs(v.cpu - previous)
        self.oom_kills += v.oom_kills
        self.cpu_peaks.push(max(v.cpu_peak, v.cpu))
        self.generation += 1
        self.net_rx.push(v.net_rx_bps)
        self.net_tx.push(v.net_tx_bps)
        self.last_step = time
        self.pending = self.predictor.predict(time + self.step_s)
        self.dirty = True

    def _score(self, v: StepValues) -> None:
        band = self.pending
        if band is None or band.cpu is None:
            return
        self.scored += 1
        self.covered += int(band.cpu.lower <= v.cpu <= band.cpu.upper)
        self.abs_error += abs(v.cpu - band.cpu.point)

    def _latest(self, column: str) -> float:
        if self._count == 0:
            return math.nan
        i = (self._next - 1) % self._ring.shape[1]
        if column == "time":
            return float(self._times[i])
        return float(self._ring[_COLUMNS.index(column) - 1, i])

    def series(self) -> dict[str, FloatArray]:
        """The step history in time order, one array per column."""
        idx = (np.arange(self._count) + self._next - self._count) % self._ring.shape[1]
        out = {"time": self._times[idx]}
        for i, name in enumerate(_COLUMNS[1:]):
            out[name] = self._ring[i, idx].astype(np.float64)
        return out

    # ------------------------------------------------------------------ reading

    @property
    def steps(self) -> int:
        return self.predictor.observed

    def cpu_peak(self) -> float:
        """The highest CPU peak of the last hour (NaN before any step)."""
        return self.cpu_peaks.value()

    def accuracy(self) -> Accuracy:
        coverage = self.covered / self.scored if self.scored else math.nan
        mase = self.abs_error / self.naive_error if self.naive_error > 0 else math.nan
        return Accuracy(coverage, mase, self.scored)

    def classification(self) -> Classification | None:
        return self.predictor.classification

    def predict(self, now: float) -> Prediction:
        return self.predictor.predict(now)

    def confidence(self) -> float:
        """0..1: grows with history (a day of steps to reach 1) and interval coverage."""
        day_steps = self._predictor_settings.day_s / self._predictor_settings.step_s
        age = min(1.0, self.steps / day_steps)
        acc = self.accuracy()
        cover = 1.0 if math.isnan(acc.coverage) else min(1.0, acc.coverage / 0.9)
        return round(age * cover, 3)

    def recommendation(self, now: float, buffer: float) -> Recommendation | None:
        """Target/lower/upper per resource, as the webhook and WorkloadProfile show them."""
        p = self.predict(now)
        if math.isnan(p.usage.cpu) or math.isnan(p.usage.memory):
            return None
        cpu_lo = p.cpu.lower if p.cpu else p.usage.cpu
        mem_lo = p.memory.lower if p.memory else p.usage.memory
        long_cpu, long_mem = self.long_horizon_upper(now)
        cls = self.classification()
        return Recommendation(
            key=self.key,
            cpu=ResourceRecommendation(
                target=p.usage.cpu * buffer,
                lower=min(cpu_lo, p.usage.cpu),
                upper=max(p.usage.cpu * buffer, long_cpu * buffer),
            ),
            memory=ResourceRecommendation(
                target=p.usage.memory * buffer,
                lower=min(mem_lo, p.usage.memory),
                upper=max(p.usage.memory * buffer, long_mem * buffer),
            ),
            workload_class=cls.workload_class if cls else WorkloadClass.UNKNOWN,
            confidence=self.confidence(),
            generation=self.generation,
            mem_peak=self.predictor.memory_peak(),
            net_ingress_bps=_positive(self.net_rx.value()),
            net_egress_bps=_positive(self.net_tx.value()),
        )

    def long_horizon_upper(self, now: float) -> tuple[float, float]:
        """The seasonal forecasts' upper edges over the next day (NaN-free: 0 when unfitted)."""
        horizon = self._seasonal_settings.daily_period_s
        cpu = self._seasonal(self.seasonal_cpu, now, horizon)
        mem = self._seasonal(self.seasonal_mem, now, horizon)
        return (cpu.upper if cpu else 0.0), (mem.upper if mem else 0.0)

    def _seasonal(self, model: SeasonalForecaster, now: float, horizon: float) -> Forecast | None:
        """The seasonal forecast while its fit is fresh; never refits on this path (a stale
        fit waits for the worker's refit instead of stalling the decision loop)."""
        with self._lock:
            fit = model.fit
            if fit is None or now - fit.fitted_at >= model.s.refit_s:
                return None
            return model.forecast(now, horizon)

    def forecast_summary(self, now: float) -> dict[str, Forecast | None]:
        """The next day per resource from the seasonal models, else the short-horizon band."""
        horizon = self._seasonal_settings.daily_period_s
        out: dict[str, Forecast | None] = {}
        p = self.predict(now)
        for name, model, short in (
            ("cpu", self.seasonal_cpu, p.cpu),
            ("memory", self.seasonal_mem, p.memory),
        ):
            out[name] = self._seasonal(model, now, horizon) or short
        return out

    def hourly(self, now: float, hours: int = 24) -> list[tuple[float, Forecast, Forecast]]:
        """The next ``hours`` seasonal buckets: (start, CPU forecast, memory forecast), each
        with its calibrated interval; empty until both seasonal models have a fresh fit."""
        out: list[tuple[float, Forecast, Forecast]] = []
        bucket = self._seasonal_settings.bucket_s
        start = math.floor(now / bucket) * bucket
        for h in range(hours):
            t = start + h * bucket
            cpu = self._seasonal(self.seasonal_cpu, t, 0.0)
            mem = self._seasonal(self.seasonal_mem, t, 0.0)
            if cpu is None or mem is None:
                return []
            out.append((t, cpu, mem))
        return out

    def model_name(self) -> str:
        fit = self.seasonal_cpu.fit
        if fit is not None:
            return f"{fit.model}+short-horizon"
        best = self.predictor.cpu_ens.best()
        if best is None:
            return "warming-up"
        return f"ensemble:{self.predictor.cpu_ens.members[best].name}"

    # ------------------------------------------------------------------ background work

    def refit_seasonal(self, now: float) -> None:
        """Refit both seasonal models (slow: statsmodels). Safe to call from a worker thread."""
        for model in (self.seasonal_cpu, self.seasonal_mem):
            with self._lock:
                last, series = model.history()
            if series.shape[0] * model.s.bucket_s < model.s.min_history_s:
                continue
            try:
                fit = fit_seasonal(series, last_bucket=last, settings=model.s, now=now)
                error = None
            except (ValueError, np.linalg.LinAlgError) as exc:
                fit, error = None, f"fit failed: {exc}"
            with self._lock:
                model.install(fit, error)

    def detect_anomalies(
        self, settings: AnomalySettings, *, mem_limit: float | None, cpu_limit: float | None
    ) -> list[Anomaly]:
        """Leak on memory, runaway on CPU, over the step history."""
        s = self.series()
        found: list[Anomaly] = []
        if s["time"].size >= 3:
            # The band that can explain growth is the long-horizon (seasonal) one: the
            # short-horizon band follows a leak step by step and would explain any of it.
            expected = self._seasonal_band(s["time"])
            leak = detect_leak(
                s["time"], s["mem"], settings=settings, expected_upper=expected, limit=mem_limit
            )
            if leak is not None:
                found.append(leak)
            runaway = detect_runaway(
                s["time"],
                s["cpu"],
                s["cpu_lower"],
                s["cpu_upper"],
                settings=settings,
                ceiling=cpu_limit,
            )
            if runaway is not None and runaway.evidence_value("ongoing") != 0.0:
                found.append(runaway)
        self.anomalies = found
        return found

    def _seasonal_band(self, times: FloatArray) -> FloatArray | None:
        """The seasonal memory model's upper edge at ``times`` (``None`` while unfitted)."""
        with self._lock:
            fit = self.seasonal_mem.fit
            if fit is None:
                return None
            out = np.full(times.shape, np.nan)
            for i, t in enumerate(times):
                bucket = math.floor(t / self.seasonal_mem.s.bucket_s)
                out[i] = predict_bucket(fit, bucket)[2]
        return out

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self, keep_s: float) -> dict[str, object]:
        """JSON-safe state to restore this profile from (see the module docstring)."""
        s = self.series()
        keep = s["time"] >= self.last_step - keep_s
        cols = np.vstack(
            [s["time"][keep], s["cpu"][keep], s["mem"][keep], s["cpu_peak"][keep]]
        ).astype(np.float64)
        blob = base64.b64encode(zlib.compress(cols.astype("<f8").tobytes(), 6)).decode("ascii")
        return {
            "v": CHECKPOINT_VERSION,
            "steps": int(cols.shape[1]),
            "history": blob,
            "generation": self.generation,
            "covered": self.covered,
            "scored": self.scored,
            "absError": self.abs_error,
            "naiveError": self.naive_error,
            "oomKills": self.oom_kills,
            # The week of hourly memory peaks outlives the step history a checkpoint keeps.
            "weeklyPeaks": self.predictor.weekly_state(),
        }

    def restore(self, data: dict[str, object]) -> int:
        """Replay a checkpoint's history into this (fresh) profile; returns the steps replayed.
        Raises ``ValueError`` for a checkpoint this build cannot read."""
        version = data.get("v")
        rows = _CHECKPOINT_ROWS.get(version) if isinstance(version, int) else None
        if rows is None:
            raise ValueError(f"checkpoint version {data.get('v')!r}: expected {CHECKPOINT_VERSION}")
        n = int(data["steps"])  # type: ignore[call-overload]
        raw = zlib.decompress(base64.b64decode(str(data["history"])))
        cols = np.frombuffer(raw, dtype="<f8").reshape(rows, n) if n else np.empty((rows, 0))
        for col in cols.T:
            peak = float(col[3]) if rows > 3 else 0.0
            self.observe_step(
                float(col[0]), StepValues(cpu=float(col[1]), mem=float(col[2]), cpu_peak=peak)
            )
        self.generation = int(data.get("generation", 0))  # type: ignore[call-overload]
        self.covered = int(data.get("covered", self.covered))  # type: ignore[call-overload]
        self.scored = int(data.get("scored", self.scored))  # type: ignore[call-overload]
        self.abs_error = float(data.get("absError", self.abs_error))  # type: ignore[arg-type]
        self.naive_error = float(data.get("naiveError", self.naive_error))  # type: ignore[arg-type]
        self.oom_kills = int(data.get("oomKills", self.oom_kills))  # type: ignore[call-overload]
        weekly = data.get("weeklyPeaks")
        if isinstance(weekly, list):  # checkpoints written before the weekly guard lack it
            self.predictor.load_weekly_state([(int(b), float(v)) for b, v in weekly])
        return int(n)
