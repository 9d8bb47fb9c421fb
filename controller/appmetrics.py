"""Application metrics as an SLO signal: a latency histogram scraped in Prometheus format.

A ``PresizePolicy`` may name a histogram (``slo.latency.metric``, e.g.
``http_request_duration_seconds``), a quantile and a maximum. The controller scrapes it every
cycle from ``slo.latency.url`` (an aggregating endpoint: a Service, a Prometheus federation
URL) and computes the quantile over the *increase* of the buckets since the previous scrape,
the way ``histogram_quantile(q, rate(..._bucket[...]))`` would: the latency of the last
interval, not since the process started. The result feeds two places:

* ``decide``'s ``Signals.latency_over_slo``: over the SLO, CPU grows at once (reason
  ``slo-latency``);
* the rollback watch: a change after which the latency got worse and is over the SLO is
  reverted.

Parsing is prometheus_client's; the quantile is :func:`histogram_quantile` (pure). A scrape
that fails (refused, timeout, not the metric) gives ``None``: no signal, never a decision.
Scraping per pod (``slo.latency.port``) would dial pod IPs; this build scrapes ``url`` only
and reports a policy with only a port as unsupported in the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from controller.policies import LatencySlo

log = logging.getLogger(__name__)

Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending


def histogram_buckets(text: str, metric: str) -> Buckets | None:
    """The cumulative buckets of ``metric`` in an exposition, summed over its label sets."""
    sums: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for sample in family.samples:
            if sample.name != f"{metric}_bucket" or "le" not in sample.labels:
                continue
            le = math.inf if sample.labels["le"] == "+Inf" else float(sample.labels["le"])
            sums[le] = sums.get(le, 0.0) + float(sample.value)
    if not sums:
        return None
    return tuple(sorted(sums.items()))


def increase(now: Buckets, before: Buckets | None) -> Buckets:
    """Bucket counts gained since ``before`` (a counter reset counts from zero)."""
    if before is None or dict(before).keys() != dict(now).keys():
        return now
    old = dict(before)
    if any(count < old[le] for le, count in now):
        return now  # the process restarted: its counters began again
    return tuple((le, count - old[le]) for le, count in now)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``buckets``, interpolated linearly inside a bucket
    (Prometheus' rule); ``None`` without observations. A quantile in the +Inf bucket is the
    largest finite bound."""
    b = sorted(buckets)
    if not b or b[-1][1] <= 0:
        return None
    rank = q * b[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for le, count in b:
        if count >= rank:
            if math.isinf(le):
                return lower_bound
            width = count - lower_count
            if width <= 0:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / width
        lower_bound, lower_count = le, count
    return b[-1][0]


@dataclass
class LatencyScraper:
    """The last interval's latency per policy URL; one GET per URL per call of :meth:`scrape`."""

    timeout_s: float = 3.0
    _previous: dict[tuple[str, str], Buckets] = field(default_factory=dict)
    latest: dict[tuple[str, str, float], float | None] = field(default_factory=dict)

    async def scrape(
        self, slos: Iterable[LatencySlo]
    ) -> Mapping[tuple[str, str, float], float | None]:
        wanted = {(s.url, s.metric, s.quantile) for s in slos if s.url}
        if not wanted:
            return {}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            results = await asyncio.gather(*(self._one(session, *w) for w in wanted))
        self.latest = dict(zip(wanted, results, strict=True))
        return self.latest

    async def _one(
        self, session: aiohttp.ClientSession, url: str, metric: str, q: float
    ) -> float | None:
        try:
            async with session.get(url) as resp:
                if resp.status != 200:
                    log.info("latency scrape %s: HTTP %d", url, resp.status)
                    return None
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("latency scrape %s failed: %s", url, exc)
            return None
        try:
            buckets = histogram_buckets(text, metric)
        except ValueError as exc:
            log.info("latency scrape %s: not Prometheus text: %s", url, exc)
            return None
        if buckets is None:
            return None
        previous = self._previous.get((url, metric))
        self._previous[(url, metric)] = buckets
        return histogram_quantile(q, increase(buckets, previous))

    def value(self, slo: LatencySlo | None) -> float | None:
        if slo is None or not slo.url:
            return None
        return self.latest.get((slo.url, slo.metric, slo.quantile))
