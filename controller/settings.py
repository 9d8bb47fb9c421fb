"""The controller's settings, with documented defaults, and time compression for demos.

=============================  =======  ======================================================
setting                        default  why
=============================  =======  ======================================================
``step_s``                     60       profiles are kept in 1-minute steps: fine enough to see
                                        a ramp coming, coarse enough for 5,000 pods
``urgent_period_s``            5        how often pods with an urgent agent report are decided
``profile_period_s``           30       how often every managed pod is decided
``rollback_window_s``          300      how long a change is watched before it is kept
``rollback_tolerance``         0.10     a signal must get worse by this much (absolute share of
                                        periods or stall time) to count as "worse"
``rollback_backoff_s``         1800     no change in a reverted direction for 30 minutes
``deferred_timeout_s``         300      a resize still Deferred after this is rescheduled (VPA)
``resize_settle_s``            60       how long a resize may stay unanswered (the node has
                                        not seen it, or runs other values and reports no
                                        resize) before the pod is decided again anyway; real
                                        time, not compressed (it is the node's latency)
``evictions_per_minute``       2        the eviction rate cap, cluster-wide
``checkpoint_period_s``        60       how often changed profiles are written to the store
``checkpoint_history_s``       86400    how much step history a checkpoint keeps (replayed into
                                        fresh forecasters on restart)
``anomaly_period_s``           300      how often the leak and runaway detectors run
``history_s``                  86400    step history per profile (anomaly detectors, accuracy);
                                        the seasonal models keep 15 days of hourly peaks
``seasonal_refit_s``           21600    how often the long-horizon seasonal model is refitted
``forget_after_s``             7 d      a workload without pods for a week is forgotten (at
                                        once when its namespace is no longer managed)
``max_report_bytes``           4 MiB    size cap of one agent report, checked before decoding
``time_scale``                 1        > 1 compresses every duration of behaviour (demo: 60
                                        makes a day last 24 minutes): hysteresis, cooldowns,
                                        windows, rollback watch, anomaly spans. The step and
                                        the periods the controller works at are not compressed
=============================  =======  ======================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar

from presize.errors import SettingsError
from presize.predictor import PredictorSettings
from presize.settings import AnomalySettings, SeasonalSettings

_T = TypeVar("_T")

# How often the controller works, not how the workloads behave: not compressed (the agents'
# batches come at their own real cadence, and a 0.1 s cycle would only burn CPU).
_OPERATIONAL = frozenset(
    {
        "step_s",
        "urgent_period_s",
        "profile_period_s",
        "checkpoint_period_s",
        "anomaly_period_s",
        "stale_pod_s",
        "resize_settle_s",
    }
)


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    step_s: float = 60.0
    urgent_period_s: float = 5.0
    profile_period_s: float = 30.0
    rollback_window_s: float = 300.0
    rollback_tolerance: float = 0.10
    rollback_backoff_s: float = 1800.0
    deferred_timeout_s: float = 300.0
    resize_settle_s: float = 60.0
    evictions_per_minute: float = 2.0
    checkpoint_period_s: float = 60.0
    checkpoint_history_s: float = 86400.0
    anomaly_period_s: float = 300.0
    seasonal_refit_s: float = 6 * 3600.0
    max_report_bytes: int = 4 << 20
    history_s: float = 86400.0
    stale_pod_s: float = 600.0
    forget_after_s: float = 7 * 86400.0
    max_decisions_kept: int = 10
    max_rollbacks_kept: int = 10
    time_scale: float = 1.0
    predictor: PredictorSettings = field(default_factory=PredictorSettings)
    seasonal: SeasonalSettings = field(default_factory=SeasonalSettings)
    anomaly: AnomalySettings = field(default_factory=AnomalySettings)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and (not math.isfinite(value) or value <= 0):
                raise SettingsError(f"ControllerSettings.{f.name}={value!r}: expected > 0")

    def compressed(self) -> ControllerSettings:
        """These settings with every duration divided by ``time_scale`` (1: unchanged)."""
        if self.time_scale == 1.0:
            return self
        k = self.time_scale
        own = {
            f.name: getattr(self, f.name) / k
            for f in fields(self)
            if f.name.endswith("_s") and f.name not in _OPERATIONAL
        }
        predictor = _scaled(self.predictor, k)
        predictor = replace(
            predictor,
            policy=_scaled(predictor.policy, k),
            cpu=_scaled(predictor.cpu, k),
            memory=_scaled(predictor.memory, k),
            ladder=_scaled(predictor.ladder, k),
        )
        return replace(
            self,
            **own,
            time_scale=1.0,
            predictor=predictor,
            seasonal=_scaled(self.seasonal, k),
            anomaly=_scaled(self.anomaly, k),
        )

    def predictor_for_steps(self) -> PredictorSettings:
        """The predictor's settings counted in this controller's steps."""
        return self.predictor.for_step(self.step_s)


def _scaled(obj: _T, k: float) -> _T:
    """``obj`` (a settings dataclass) with every ``*_s`` field divided by ``k``."""
    changes = {
        f.name: getattr(obj, f.name) / k
        for f in fields(obj)  # type: ignore[arg-type]
        if f.name.endswith("_s") and isinstance(getattr(obj, f.name), int | float)
    }
    return replace(obj, **changes)  # type: ignore[type-var]
