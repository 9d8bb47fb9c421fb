"""The urgent trigger with fixed clocks: forecasts reaching limits, OOM kills, throttling."""

from __future__ import annotations

import pytest

from agent.urgent import (
    FORECAST_CPU,
    FORECAST_MEMORY,
    OOM_KILL,
    SLO_THROTTLING,
    Assessment,
    UrgencyWatcher,
    UrgentSettings,
    reasons_for,
)
from presize.model import PodRef, UsageWindow

POD = PodRef(namespace="shop", name="web-0", uid="u0")
MIB = float(1 << 20)


def win(
    *, cpu: float = 0.1, mem: float = 100 * MIB, cpu_limit: float | None = 1.0,
    mem_limit: float | None = 512 * MIB, oom: int = 0, throttled: float = 0.0,
) -> UsageWindow:  # fmt: skip
    return UsageWindow(
        pod=POD, container="app", start=0.0, seconds=10.0, samples=10, cpu_mean=cpu,
        cpu_max=cpu, cpu_p50=cpu, cpu_p90=cpu, cpu_p99=cpu, cpu_throttled_fraction=throttled,
        mem_mean=mem, mem_max=mem, oom_kills=oom, cpu_limit=cpu_limit, mem_limit=mem_limit,
    )  # fmt: skip


S = UrgentSettings()


@pytest.mark.parametrize(
    ("assessment", "codes"),
    [
        (Assessment(win(), 0.5, 200 * MIB), ()),
        (Assessment(win(), 1.0, 200 * MIB), (FORECAST_CPU,)),
        (Assessment(win(), 0.5, 512 * MIB), (FORECAST_MEMORY,)),
        (Assessment(win(cpu_limit=None, mem_limit=None), 9.0, 1e12), ()),  # unlimited
        (Assessment(win(), float("nan"), float("nan")), ()),  # no forecast yet
        (Assessment(win(oom=1), 0.1, 0.0), (OOM_KILL,)),
        (Assessment(win(throttled=0.25), 0.1, 0.0), (SLO_THROTTLING,)),
        (Assessment(win(throttled=0.2), 0.1, 0.0), ()),  # at the SLO is within it
    ],
)
def test_reasons_for_each_condition(assessment: Assessment, codes: tuple[str, ...]) -> None:
    assert tuple(code for code, _ in reasons_for(assessment, S)) == codes


def test_a_steady_container_far_from_its_limits_never_triggers() -> None:
    watcher = UrgencyWatcher()
    fired = [watcher.step(t * 10.0, [win(cpu=0.2, mem=100 * MIB)]) for t in range(60)]
    assert not any(fired)


def test_memory_climbing_toward_its_limit_triggers_before_it_is_reached() -> None:
    watcher = UrgencyWatcher()
    first = None
    for t in range(60):
        mem = (200 + 5 * t) * MIB  # +5 MiB per 10 s toward a 512 MiB limit
        if watcher.step(t * 10.0, [win(mem=mem)]) and first is None:
            first = (t, mem)
    assert first is not None
    t, mem = first
    assert mem < 512 * MIB  # sent while there is still room to act
    # ... and not at the first sample: in its first minutes the forecaster's upper edge is
    # the prior ratio (1.5x the trailing peak), so it fires once the peak is 2/3 of the limit
    assert mem >= 512 * MIB / S.forecaster.prior_upper
    assert t > 0


def test_an_oom_kill_triggers_at_once_with_a_readable_reason() -> None:
    watcher = UrgencyWatcher()
    (trigger,) = watcher.step(0.0, [win(oom=1)])
    assert trigger.reasons == ("oom-kill: shop/web-0/app: 1 OOM kill(s)",)


def test_a_reason_is_held_back_for_the_cooldown_then_sent_again() -> None:
    watcher = UrgencyWatcher(UrgentSettings(cooldown_s=60.0))
    sent = [bool(watcher.step(t * 10.0, [win(throttled=0.5)])) for t in range(8)]
    assert sent == [True, False, False, False, False, False, True, False]


def test_containers_that_stop_reporting_are_forgotten() -> None:
    watcher = UrgencyWatcher()
    watcher.step(0.0, [win()])
    assert len(watcher) == 1
    watcher.step(100.0, [])
    assert len(watcher) == 0
