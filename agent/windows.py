"""Per-container short windows of 1 s rates, summarised into :class:`presize.model.UsageWindow`.

Why a ring of raw rates rather than running aggregates: the windows are short (10 s and 60 s
by default) and the quantiles the controller wants (p50/p90/p99 of 1 s CPU) cannot be updated
incrementally and exactly. Sixty small records per container are cheap to keep and to sort
once per summary, and keeping them raw lets every window length be cut from one buffer. The
buffer is a ``deque`` with ``maxlen``, so memory per container is fixed however long the agent
runs.

How each figure is formed (so that windows of any length stay comparable):

* CPU mean is time-weighted (sum of core-seconds over covered seconds), robust to uneven ticks;
  max and quantiles are over the 1 s samples, which is what shows bursts and throttling risk.
* The throttled fraction is throttled CFS periods over elapsed periods within the window (a
  ratio of sums, not a mean of ratios, so idle seconds with no periods weigh nothing).
* PSI is total stall over covered time; OOM kills and I/O bytes are totals over the window.
  PSI is read every few seconds, not every second: a reading covers ``psi_elapsed`` seconds
  (which may begin a little before the window) and weighs by that time.
* Memory is the working set: mean and max of the per-second readings.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from agent.cgroups.sample import Limits
from agent.sampler import Rates
from presize.model import PodRef, Pressure, UsageWindow

QUANTILES = (0.5, 0.9, 0.99)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ascending ``sorted_values`` by linear interpolation (NaN if empty)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    pos = q * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _weighted_share(values: Sequence[tuple[float | None, float]]) -> float:
    """Time-weighted mean of known ``(value, seconds)`` pairs; 0.0 when none is known."""
    total = seconds = 0.0
    for value, elapsed in values:
        if value is not None:
            total += value * elapsed
            seconds += elapsed
    return total / seconds if seconds > 0 else 0.0


def _psi_s(r: Rates) -> float:
    return r.elapsed if r.psi_elapsed is None else r.psi_elapsed


def summarize(
    rates: Sequence[Rates],
    *,
    pod: PodRef,
    container: str,
    limits: Limits | None = None,
    epoch_offset: float = 0.0,
    net: tuple[float, float] = (0.0, 0.0),
    log_matches: tuple[tuple[str, int], ...] = (),
) -> UsageWindow | None:
    """One :class:`UsageWindow` over ``rates`` (oldest first); ``None`` if there are none.

    ``net`` (bytes received, sent) and ``log_matches`` come from slower readers (the pod's
    network namespace, the container's log) and are passed in already summed over the window.

    Rates are stamped with a monotonic clock (elapsed times must not jump with NTP); the window
    start is shipped as Unix time, ``epoch_offset`` (wall minus monotonic) away.
    """
    if not rates:
        return None
    start = rates[0].time - rates[0].elapsed
    covered = sum(r.elapsed for r in rates)
    cpu = sorted(r.cpu_cores for r in rates)
    p50, p90, p99 = (quantile(cpu, q) for q in QUANTILES)
    periods = sum(r.periods for r in rates)
    throttled = sum(r.throttled_periods for r in rates)
    mem = [r.mem_working_set for r in rates if r.mem_working_set is not None]
    return UsageWindow(
        pod=pod,
        container=container,
        start=start + epoch_offset,
        seconds=rates[-1].time - start,
        samples=len(rates),
        cpu_mean=sum(r.cpu_cores * r.elapsed for r in rates) / covered,
        cpu_max=cpu[-1],
        cpu_p50=p50,
        cpu_p90=p90,
        cpu_p99=p99,
        cpu_throttled_fraction=throttled / periods if periods > 0 else 0.0,
        mem_mean=sum(mem) / len(mem) if mem else 0.0,
        mem_max=max(mem) if mem else 0.0,
        oom_kills=sum(r.oom_kills for r in rates),
        pressure=Pressure(
            cpu=_weighted_share([(r.psi_cpu, _psi_s(r)) for r in rates]),
            memory=_weighted_share([(r.psi_memory, _psi_s(r)) for r in rates]),
            io=_weighted_share([(r.psi_io, _psi_s(r)) for r in rates]),
        ),
        io_read_bytes=sum(r.io_read_bytes for r in rates),
        io_write_bytes=sum(r.io_write_bytes for r in rates),
        net_rx_bytes=net[0],
        net_tx_bytes=net[1],
        log_matches=log_matches,
        cpu_limit=None if limits is None else limits.cpu_cores,
        mem_limit=None
        if limits is None or limits.memory_bytes is None
        else float(limits.memory_bytes),
    )


class RateWindow:
    """The last ``capacity`` rates of one container, cut into windows on demand."""

    __slots__ = ("_rates",)

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"window capacity {capacity}: expected >= 1")
        self._rates: deque[Rates] = deque(maxlen=capacity)

    def push(self, rates: Rates) -> None:
        self._rates.append(rates)

    def __len__(self) -> int:
        return len(self._rates)

    def latest(self) -> Rates | None:
        """The most recent rates, ``None`` before the first."""
        return self._rates[-1] if self._rates else None

    def last(self, seconds: float, *, now: float) -> list[Rates]:
        """The rates whose interval ended within ``(now - seconds, now]``, oldest first."""
        since = now - seconds
        out: list[Rates] = []
        for r in reversed(self._rates):
            if r.time <= since:
                break
            if r.time <= now:
                out.append(r)
        out.reverse()
        return out

    def summary(
        self,
        seconds: float,
        *,
        now: float,
        pod: PodRef,
        container: str,
        limits: Limits | None = None,
        epoch_offset: float = 0.0,
        net: tuple[float, float] = (0.0, 0.0),
        log_matches: tuple[tuple[str, int], ...] = (),
    ) -> UsageWindow | None:
        """The :class:`UsageWindow` of the last ``seconds`` before ``now`` (``None`` if empty)."""
        return summarize(
            self.last(seconds, now=now),
            pod=pod,
            container=container,
            limits=limits,
            epoch_offset=epoch_offset,
            net=net,
            log_matches=log_matches,
        )


def capacity_for(longest_s: float, hz: float, *, slack: int = 2) -> int:
    """Ring size that holds ``longest_s`` seconds at ``hz`` samples per second, plus slack."""
    return max(1, math.ceil(longest_s * hz)) + slack


class TimedSums:
    """Amounts that happen now and then (log matches, network bytes between two reads),
    stamped with the time they were seen and summed over any window that ends now.

    Kept apart from :class:`RateWindow` because they are read on slower cadences than the
    cgroup counters (every few seconds) and need sums, not quantiles. Entries older than
    ``retention_s`` are dropped as new ones come, so memory stays bounded.
    """

    __slots__ = ("_entries", "retention_s")

    def __init__(self, retention_s: float) -> None:
        self.retention_s = retention_s
        self._entries: deque[tuple[float, tuple[float, ...]]] = deque()

    def add(self, time: float, amounts: tuple[float, ...]) -> None:
        self._entries.append((time, amounts))
        horizon = time - self.retention_s
        while self._entries and self._entries[0][0] <= horizon:
            self._entries.popleft()

    def total(self, seconds: float, *, now: float, width: int) -> tuple[float, ...]:
        """Sum of the amounts seen in ``(now - seconds, now]``, ``width`` zeros if none."""
        since = now - seconds
        totals = [0.0] * width
        for t, amounts in reversed(self._entries):
            if t <= since:
                break
            if t <= now:
                for i, a in enumerate(amounts):
                    totals[i] += a
        return tuple(totals)
