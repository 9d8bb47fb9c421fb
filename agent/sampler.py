"""Cumulative cgroup counters → per-interval rates, with the elapsed time measured, not assumed.

Why measure: a 1 Hz loop is never exactly 1 Hz. A scheduling hiccup that makes one interval
1.4 s long would, with an assumed 1 s, report 1.4 cores of use from a container limited to
one. So every sample carries the monotonic time at which it was read, and a rate is a counter
delta divided by the time between *those* reads. The time is passed in; nothing here reads a
clock.

Why the first sample only primes: a rate needs two points. Why a backwards counter re-primes:
counters in a cgroup only grow, so one that shrinks means the cgroup was removed and recreated
under the same path (a container restarted in place). Its delta would be meaningless (negative,
or a huge wrap), so the tracker starts over from that sample and counts the reset.
"""

from __future__ import annotations

from typing import NamedTuple

from agent.cgroups.sample import CgroupSample, PsiTotals

NS_PER_S = 1e9
US_PER_S = 1e6


class Rates(NamedTuple):
    """What one container did between two reads ``elapsed`` seconds apart, ending at ``time``.

    ``cpu_cores`` is average use over the interval; ``periods``/``throttled_periods`` are CFS
    periods that elapsed and were throttled in it (their ratio is the throttled fraction);
    ``psi_*`` are the shares of ``psi_elapsed`` seconds (``None``: the same as ``elapsed``)
    ending at ``time`` in which some task stalled (0..1, ``None`` when the hierarchy has no PSI
    or PSI was not read this tick: it is read on a slower cadence, see :class:`CounterTracker`);
    I/O and OOM kills are amounts within the interval; memory is the
    working set at the end of the interval.

    A ``NamedTuple`` (immutable, typed) rather than a frozen dataclass: one is built per
    container per second, and a frozen dataclass's field-by-field ``object.__setattr__`` made
    that the largest single Python cost of a tick.
    """

    time: float
    elapsed: float
    cpu_cores: float
    periods: int = 0
    throttled_periods: int = 0
    throttled_s: float = 0.0
    mem_working_set: float | None = None
    mem_usage: float | None = None
    oom_kills: int = 0
    io_read_bytes: float = 0.0
    io_write_bytes: float = 0.0
    psi_cpu: float | None = None
    psi_memory: float | None = None
    psi_io: float | None = None
    psi_elapsed: float | None = None


def _stall(before: int | None, after: int | None, elapsed: float) -> float | None:
    """The share of ``elapsed`` some task stalled; ``None`` if unknown or reset."""
    if before is None or after is None or after < before:
        return None
    return min(1.0, (after - before) / US_PER_S / elapsed)


def _back(before: int | None, after: int | None) -> bool:
    return before is not None and after is not None and after < before


def is_reset(prev: CgroupSample, cur: CgroupSample) -> bool:
    """True when any cumulative counter went backwards (the cgroup was recreated)."""
    tp, tc = prev.throttling, cur.throttling
    if (
        cur.cpu_usage_ns < prev.cpu_usage_ns
        or tc.nr_periods < tp.nr_periods
        or tc.nr_throttled < tp.nr_throttled
        or _back(prev.oom_kills, cur.oom_kills)
    ):
        return True
    pio, cio = prev.io, cur.io
    return (
        pio is not None
        and cio is not None
        and (cio.read_bytes < pio.read_bytes or cio.write_bytes < pio.write_bytes)
    )


def rates_between(
    prev: CgroupSample,
    cur: CgroupSample,
    *,
    elapsed: float,
    time: float,
    psi_elapsed: float | None = None,
) -> Rates | None:
    """The rates between two reads ``elapsed`` seconds apart; ``None`` if they cannot be had.

    ``None`` when no time passed (two reads of one instant) or a counter reset. The PSI totals
    of ``prev`` may be older than its other counters (PSI is read on a slower cadence): then
    ``psi_elapsed`` is the time since they were read; ``psi_elapsed <= 0`` means PSI was not
    read this time and its shares are ``None``.
    """
    if elapsed <= 0 or is_reset(prev, cur):
        return None
    if psi_elapsed is None:
        psi_elapsed = elapsed
    t_prev, t_cur = prev.throttling, cur.throttling
    mem = cur.memory
    io_read = io_write = 0.0
    pio, cio = prev.io, cur.io
    if pio is not None and cio is not None:
        io_read = float(cio.read_bytes - pio.read_bytes)
        io_write = float(cio.write_bytes - pio.write_bytes)
    oom_prev, oom_cur = prev.oom_kills, cur.oom_kills
    p_psi, c_psi = prev.psi, cur.psi
    if psi_elapsed > 0:
        psi_cpu = _stall(p_psi.cpu_us, c_psi.cpu_us, psi_elapsed)
        psi_memory = _stall(p_psi.memory_us, c_psi.memory_us, psi_elapsed)
        psi_io = _stall(p_psi.io_us, c_psi.io_us, psi_elapsed)
    else:
        psi_cpu = psi_memory = psi_io = None
    return Rates(
        time,
        elapsed,
        (cur.cpu_usage_ns - prev.cpu_usage_ns) / NS_PER_S / elapsed,
        t_cur.nr_periods - t_prev.nr_periods,
        t_cur.nr_throttled - t_prev.nr_throttled,
        max(0, t_cur.throttled_ns - t_prev.throttled_ns) / NS_PER_S,
        None if mem is None else float(mem.working_set),
        None if mem is None else float(mem.usage),
        0 if oom_prev is None or oom_cur is None else oom_cur - oom_prev,
        io_read,
        io_write,
        psi_cpu,
        psi_memory,
        psi_io,
        None if psi_elapsed == elapsed else psi_elapsed,
    )


_NO_PSI = PsiTotals()


class CounterTracker:
    """One container's previous read; turns each new read into :class:`Rates`.

    ``resets`` counts how often the counters went backwards, so the loop can export it.

    Slow counters (PSI totals, the OOM-kill count) need not be read every tick: a sample
    without them (``oom_kills is None``, every PSI total ``None``) keeps their last values as
    the baseline, so the OOM kills of the whole gap land on the tick that reads the counter
    again (sums over a window stay exact) and PSI shares are taken over the time since the
    PSI baseline was read (``Rates.psi_elapsed``), ``None`` on the ticks in between.
    """

    __slots__ = ("_prev", "_prev_time", "_psi_time", "resets")

    def __init__(self) -> None:
        self._prev: CgroupSample | None = None
        self._prev_time = 0.0
        self._psi_time = 0.0
        self.resets = 0

    def update(self, sample: CgroupSample, now: float) -> Rates | None:
        """Rates since the previous read at monotonic time ``now``; ``None`` while priming."""
        prev, prev_time = self._prev, self._prev_time
        if prev is not None and now <= prev_time:
            return None  # a clock that did not move: keep the older baseline
        psi_read = sample.psi != _NO_PSI
        if prev is None:
            self._prev, self._prev_time = sample, now
            self._psi_time = now
            return None
        oom_read = sample.oom_kills is not None
        if not (psi_read and oom_read):  # carry the slow baselines forward
            sample = CgroupSample(
                sample.cpu_usage_ns,
                sample.throttling,
                sample.memory,
                sample.oom_kills if oom_read else prev.oom_kills,
                sample.io,
                sample.psi if psi_read else prev.psi,
            )
        psi_elapsed = now - self._psi_time if psi_read else 0.0
        rates = rates_between(
            prev, sample, elapsed=now - prev_time, time=now, psi_elapsed=psi_elapsed
        )
        self._prev, self._prev_time = sample, now
        if psi_read:
            self._psi_time = now
        if rates is None:
            self.resets += 1
            if not (psi_read and oom_read):  # carried values belong to the old cgroup
                self._prev = CgroupSample(
                    sample.cpu_usage_ns,
                    sample.throttling,
                    sample.memory,
                    sample.oom_kills if oom_read else None,
                    sample.io,
                    sample.psi if psi_read else _NO_PSI,
                )
        return rates
