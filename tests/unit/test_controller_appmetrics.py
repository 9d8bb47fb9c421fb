"""Latency from a Prometheus histogram, scraped over real loopback HTTP, as an SLO signal."""

from __future__ import annotations

import math

import pytest
from aiohttp import web
from controller_fakes import FakeOrchestrator, MiB, deployment, node, pod, window

from controller.appmetrics import (
    LatencyScraper,
    histogram_buckets,
    histogram_quantile,
    increase,
)
from controller.loop import Controller
from controller.policies import LatencySlo
from controller.settings import ControllerSettings
from presize.model import Mode
from presize.wire import Report


def exposition(counts: dict[str, float], metric: str = "req_seconds") -> str:
    lines = [f"# TYPE {metric} histogram"]
    for path in ("/a", "/b"):
        for le, c in counts.items():
            lines.append(f'{metric}_bucket{{path="{path}",le="{le}"}} {c / 2}')
        lines.append(f'{metric}_count{{path="{path}"}} {counts["+Inf"] / 2}')
        lines.append(f'{metric}_sum{{path="{path}"}} 1.0')
    return "\n".join(lines) + "\n"


def test_buckets_are_summed_over_label_sets() -> None:
    b = histogram_buckets(exposition({"0.1": 50, "0.5": 90, "+Inf": 100}), "req_seconds")
    assert b == ((0.1, 50.0), (0.5, 90.0), (math.inf, 100.0))
    assert histogram_buckets(exposition({"+Inf": 1}), "other") is None


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 0.1), (0.7, 0.3), (0.9, 0.5), (0.99, 0.5), (0.25, 0.05)],
)
def test_quantiles_interpolate_inside_a_bucket(q: float, expected: float) -> None:
    buckets = ((0.1, 50.0), (0.5, 90.0), (math.inf, 100.0))
    got = histogram_quantile(q, buckets)
    assert got is not None
    assert got == pytest.approx(expected)


def test_the_last_interval_counts_and_a_reset_starts_over() -> None:
    before = ((0.1, 1000.0), (math.inf, 1000.0))
    now = ((0.1, 1000.0), (math.inf, 1100.0))  # the last 100 requests were all slow
    q = histogram_quantile(0.5, increase(now, before))
    assert q == 0.1  # in the +Inf bucket: the largest finite bound
    reset = ((0.1, 5.0), (math.inf, 5.0))
    assert increase(reset, now) == reset
    assert histogram_quantile(0.5, ()) is None


async def test_a_slow_application_grows_cpu_with_the_latency_reason() -> None:
    """A real HTTP endpoint serves the histogram; the policy names it; latency over the SLO
    makes the controller grow CPU at once with reason slo-latency."""
    counts = {"0.05": 0.0, "0.25": 0.0, "1": 0.0, "+Inf": 0.0}

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=exposition(counts))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        wl = deployment("shop", "web")
        orch = FakeOrchestrator(modes={"shop": Mode.AUTO})
        orch.nodes["node-0"] = node()
        p = pod("shop", "web-0", wl, cpu=1.0)
        orch.pods[p.ref.uid] = p
        orch.policies["shop"] = [{"name": "slo", "spec": {"slo": {"latency": {
            "url": f"http://127.0.0.1:{port}/metrics", "metric": "req_seconds",
            "quantile": 0.9, "maxSeconds": 0.2}}}}]  # fmt: skip
        ctl = Controller(orch, None, settings=ControllerSettings(step_s=10.0),
                         default_mode=Mode.AUTO)  # fmt: skip
        now = 1_700_000_000.0
        for i in range(12):  # steady 0.5 cores of 1.0: nothing to do on usage alone
            ctl.on_report(Report(node="node-0", agent_id="a", sent_at=now, sequence=i + 1,
                                 windows=(window(p, now + 10 * i, cpu=0.5, mem=100 * MiB),)),
                          now + 10 * i + 10)  # fmt: skip
        await ctl.cycle(now + 130)
        resized = len(orch.resizes)
        for le in counts:  # fast requests: under the SLO
            counts[le] += 100.0
        await ctl.cycle(now + 160)
        assert len(orch.resizes) == resized
        counts["1"] += 100.0  # the last interval: 100 requests between 0.25 s and 1 s
        counts["+Inf"] += 100.0
        await ctl.cycle(now + 190)
        assert len(orch.resizes) == resized + 1
        assert ctl.metrics.decisions.labels("RESIZE_IN_PLACE", "slo-latency")._value.get() == 1
        slo = LatencySlo("req_seconds", 0.2, 0.9, f"http://127.0.0.1:{port}/metrics")
        assert ctl.latency.value(slo) == pytest.approx(0.925)
    finally:
        await runner.cleanup()


async def test_an_unreachable_endpoint_is_no_signal() -> None:
    scraper = LatencyScraper(timeout_s=1.0)
    slo = LatencySlo("m", 0.2, 0.9, "http://127.0.0.1:9/metrics")
    got = await scraper.scrape([slo])
    assert got == {("http://127.0.0.1:9/metrics", "m", 0.9): None}
    assert scraper.value(slo) is None
