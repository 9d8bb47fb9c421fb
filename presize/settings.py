"""Settings, grouped by concern, each with its documented default.

Settings are frozen dataclasses passed down explicitly (never module globals), so a test or a
replay can run two configurations side by side. Each group validates itself on construction and
raises :class:`~presize.errors.SettingsError` naming the field.

Defaults and why:

=========================  ========  ===================================================
``PolicySettings``
``buffer``                 1.10      headroom over the predicted upper usage (the seed rule)
``scale_down_threshold``   0.80      shrink only when the prediction is below 80 % ...
``scale_down_to``          0.90      ... of the allocation, to where it is 90 % of it
``scale_down_step``        0.50      never shrink CPU by more than half in one change
``memory_scale_down_step`` 0.85      memory shrinks by at most 15 % per change: a job whose
                                     level drops and returns is OOM-killed by a fast shrink
``shrink_regret_s``        21600     an OOM within 6 h of a memory shrink makes that
``cautious_s``             259200    container's memory shrink more cautiously for 3 days,
``cautious_scale_down_step`` 0.95    5 % per change (it does come back to its old level)
``down_stable_s``          600       the shrink signal must hold this long (hysteresis)
``down_cooldown_s``        900       no shrink within 15 min of any change
``oom_bump``               1.20      memory × 1.2 at once after an OOM kill (as VPA)
``throttle_slo``           0.10      throttled fraction of CPU periods that breaks the SLO
``throttle_bump``          1.20      CPU × 1.2 at once on a throttling SLO breach
``pressure_slo``           0.20      PSI some avg10 (share of time stalled) that breaks it
``pressure_near_limit``    0.90      memory PSI counts only with usage at 90 % of the limit
``mem_floor_factor``       1.00      memory never below the observed recent peak × this
=========================  ========  ===================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from presize.errors import SettingsError


def _check_positive(obj: object) -> None:
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or value < 0:
            raise SettingsError(f"{type(obj).__name__}.{f.name}={value!r}: expected >= 0")


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """How ``presize.policy.decide`` turns forecasts into allocation changes."""

    buffer: float = 1.10
    scale_down_threshold: float = 0.80
    scale_down_to: float = 0.90
    scale_down_step: float = 0.50
    memory_scale_down_step: float = 0.85
    shrink_regret_s: float = 6 * 3600.0
    cautious_s: float = 3 * 86400.0
    cautious_scale_down_step: float = 0.95
    down_stable_s: float = 600.0
    down_cooldown_s: float = 900.0
    oom_bump: float = 1.20
    throttle_slo: float = 0.10
    throttle_bump: float = 1.20
    pressure_slo: float = 0.20
    pressure_near_limit: float = 0.90
    mem_floor_factor: float = 1.00
    min_change_fraction: float = 0.02

    def __post_init__(self) -> None:
        _check_positive(self)
        if self.buffer < 1.0:
            raise SettingsError(f"PolicySettings.buffer={self.buffer}: must be >= 1.0")
        if not 0.0 < self.scale_down_threshold <= 1.0:
            raise SettingsError("PolicySettings.scale_down_threshold: expected (0, 1]")
        for name in ("scale_down_step", "memory_scale_down_step", "cautious_scale_down_step"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise SettingsError(f"PolicySettings.{name}: expected (0, 1]")
        if not self.scale_down_threshold <= self.scale_down_to <= 1.0:
            raise SettingsError(
                "PolicySettings.scale_down_to: expected [scale_down_threshold, 1]"
            )
        if self.oom_bump < 1.0 or self.throttle_bump < 1.0:
            raise SettingsError("PolicySettings bumps must be >= 1.0")


@dataclass(frozen=True, slots=True)
class ShortHorizonSettings:
    """The per-container forecaster the agent runs every second (and the replay every step).

    ``window_steps``: the trailing maximum the forecast scales (the reference level).
    ``half_life_s``: how fast the learned ratio distribution forgets (2 days).
    ``refresh_s``: how often the ratio quantiles are recomputed (cheap path in between).
    ``floor``: smallest reference, so ratios of an idle container do not explode.
    ``prior_upper``: the ratio used before ``min_samples`` ratios are known.
    """

    window_steps: int = 12
    half_life_s: float = 2 * 86400.0
    refresh_s: float = 3600.0
    floor: float = 1e-9
    prior_upper: float = 1.5
    min_samples: int = 36
    upper_q: float = 0.95
    interval_level: float = 0.90
    aci_gamma: float = 0.005

    def __post_init__(self) -> None:
        _check_positive(self)
        if self.window_steps < 1:
            raise SettingsError("ShortHorizonSettings.window_steps: expected >= 1")
        for name in ("upper_q", "interval_level"):
            if not 0.5 <= getattr(self, name) < 1.0:
                raise SettingsError(f"ShortHorizonSettings.{name}: expected [0.5, 1)")


@dataclass(frozen=True, slots=True)
class LadderSettings:
    """The peak forecaster for memory: the shortest trailing window that has earned trust.

    A window is trusted when no usage in the last ``trust_s`` went above ``factor`` × its
    trailing maximum; until the series is ``min_age_s`` old only the longest window is. The
    longest window is used only while its peak is within ``insurance_ratio`` of the next one's.
    A value the weekly guard foresaw (``PredictorSettings.weekly_margin_hours``) breaks no
    trust. ``trust_s`` of 2.5 days, with the weekly guard, measured 0.870 memory slack at 624
    OOM steps on Bitbrains (3 days without it: 0.883 at 372; VPA: 0.873 at 744).
    """

    windows_steps: tuple[int, ...] = (12, 72, 288, 864, 2304)
    factor: float = 1.05
    trust_s: float = 2.5 * 86400.0
    min_age_s: float = 86400.0
    insurance_ratio: float = 1.10

    def __post_init__(self) -> None:
        _check_positive(self)
        w = self.windows_steps
        if not w or list(w) != sorted(w) or min(w) < 1:
            raise SettingsError("LadderSettings.windows_steps: expected ascending, >= 1, non-empty")


@dataclass(frozen=True, slots=True)
class SeasonalSettings:
    """The long-horizon statsmodels forecaster the controller refits on a schedule."""

    bucket_s: float = 3600.0
    history_s: float = 15 * 86400.0  # > two weeks, so the weekly period can be fitted
    min_history_s: float = 2 * 86400.0
    refit_s: float = 6 * 3600.0
    daily_period_s: float = 86400.0
    weekly_period_s: float = 7 * 86400.0
    level: float = 0.90

    def __post_init__(self) -> None:
        _check_positive(self)
        if self.bucket_s <= 0 or self.min_history_s < 2 * self.bucket_s:
            raise SettingsError("SeasonalSettings: bucket_s > 0 and min_history_s >= 2 buckets")


@dataclass(frozen=True, slots=True)
class AnomalySettings:
    """Leak and runaway detectors (see ``presize.anomaly``).

    ``leak_min_positive_fraction`` (0.75): share of rising hourly means that counts as
    "roughly monotone" growth when the linear fit alone falls short of ``leak_min_r2``.
    ``runaway_ceiling_fraction`` (0.95): usage at or above this share of a CPU ceiling (the
    limit) counts as pinned there, since throttling keeps it from ever reaching
    ``runaway_factor`` × the forecast upper bound.
    """

    leak_min_span_s: float = 6 * 3600.0
    leak_min_growth: float = 0.20
    leak_min_r2: float = 0.80
    leak_step_fraction: float = 0.5
    runaway_sustain_s: float = 600.0
    runaway_factor: float = 1.5
    leak_min_positive_fraction: float = 0.75
    runaway_ceiling_fraction: float = 0.95

    def __post_init__(self) -> None:
        _check_positive(self)
