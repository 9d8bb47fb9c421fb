"""One container profile: learning, the seasonal refit off the loop, hourly forecasts,
checkpoints that restore what was learned."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from controller_fakes import MiB, deployment

from controller.profile import ContainerProfile
from controller.status import build_status, restore_status
from controller.steps import StepValues
from presize.model import ContainerKey
from presize.predictor import PredictorSettings
from presize.settings import SeasonalSettings

KEY = ContainerKey(deployment("shop", "web"), "app")
# A compressed day: 10 buckets of 10 minutes; the seasonal model needs two of them.
SEASONAL = SeasonalSettings(
    bucket_s=600.0,
    history_s=30 * 6000.0,
    min_history_s=12000.0,
    refit_s=1e9,
    daily_period_s=6000.0,
    weekly_period_s=42000.0,
)


def profile() -> ContainerProfile:
    return ContainerProfile(
        KEY,
        start=0.0,
        step_s=60.0,
        history_s=86400.0,
        predictor=PredictorSettings().for_step(60.0),
        seasonal=SEASONAL,
    )


def cpu_at(t: float) -> float:
    return 1.0 + 0.5 * math.sin(2 * math.pi * t / 6000.0)


def fed(minutes: int) -> ContainerProfile:
    p = profile()
    for i in range(minutes):
        t = 60.0 * i
        p.observe_step(t, StepValues(cpu=cpu_at(t), mem=200 * MiB + 1e6 * math.cos(t / 900)))
    return p


def test_the_seasonal_model_is_fitted_off_the_loop_and_gives_the_next_hours() -> None:
    p = fed(400)  # four compressed days
    now = 60.0 * 400
    assert p.hourly(now) == []  # nothing until the worker refits
    p.refit_seasonal(now)
    hours = p.hourly(now, hours=10)
    assert len(hours) == 10
    for t, cpu, mem in hours:
        assert cpu.lower <= cpu.point <= cpu.upper
        assert mem.upper > 0
        # the cycle is learned: the point follows the sine within its interval width
        assert abs(cpu.point - cpu_at(t)) < 0.5
    assert "stl" in p.model_name()


def test_accuracy_is_scored_on_forecasts_made_before_each_step() -> None:
    p = fed(300)
    acc = p.accuracy()
    assert acc.samples > 200
    assert 0.5 < acc.coverage <= 1.0
    assert math.isfinite(acc.mase)


def test_a_checkpoint_restores_the_history_and_the_counters() -> None:
    p = fed(300)
    p.refit_seasonal(60.0 * 300)
    status = build_status(
        now=60.0 * 300,
        profiles=[p],
        recommendations={},
        decisions=[],
        rollbacks=[],
        states={},
        checkpoint_s=86400.0,
    )
    json.dumps(status)  # JSON-safe, as the status subresource needs
    (entry,) = status["containers"]  # type: ignore[misc]
    assert len(entry["hourly"]) == 24
    restored = restore_status(status)
    q = profile()
    n = q.restore(restored.containers["app"])
    assert n == 300
    assert q.steps == p.steps
    assert q.scored == p.scored
    assert q.predict(60.0 * 300).usage.cpu == pytest.approx(p.predict(60.0 * 300).usage.cpu)


def test_a_checkpoint_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        profile().restore({"v": 99, "steps": 0, "history": ""})


def test_a_checkpoint_keeps_the_week_of_memory_peaks_beyond_its_step_history() -> None:
    # A compressed clock (a day of 6000 s, an hour of 600 s): the week is 700 one-minute steps.
    settings = replace(
        PredictorSettings(weekly_margin_hours=1), day_s=6000.0, hour_s=600.0
    ).for_step(60.0)

    def compressed() -> ContainerProfile:
        return ContainerProfile(
            KEY, start=0.0, step_s=60.0, history_s=86400.0, predictor=settings,
            seasonal=SEASONAL,
        )

    p = compressed()
    for i in range(800):
        mem = 2000 * MiB if 100 <= i < 103 else 200 * MiB  # a spike at minutes 100-102
        p.observe_step(60.0 * i, StepValues(cpu=0.5, mem=mem))
    # The checkpoint keeps 100 minutes of steps, long after the spike ...
    data = p.checkpoint(keep_s=6000.0)
    assert int(data["steps"]) <= 101  # type: ignore[call-overload]
    q = compressed()
    q.restore(json.loads(json.dumps(data)))
    # ... but the hourly peaks come back, and with them the spike's recurrence a week on.
    assert q.predictor.weekly_state() == p.predictor.weekly_state()
    week = 7 * 6000.0
    assert q.predict(week + 60.0 * 100).usage.memory >= 2000 * MiB
    assert q.predict(week + 60.0 * 300).usage.memory < 1000 * MiB
