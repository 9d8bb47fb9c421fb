"""Agent windows → one value per workload container per step (the profile's grain).

A workload's replicas run on many nodes and each agent sends its own windows, at its own
cadence, possibly late (a spool emptying after an outage) and possibly twice (a report resent
after a lost answer). Per container key and step (``floor(window end / step_s)``):

=====================  ============  =========================================================
value                  aggregate     why
=====================  ============  =========================================================
``cpu``                max of means  the demand one replica must be sized for is the busiest
                                     replica's, not the average: replicas share one spec
``cpu_peak``           max of p99    what the limit must hold
``mem``                max of maxima the memory limit must hold every replica's peak
``throttled``, PSI     max           a signal that one replica suffers is a signal
``net_*_bps``          max           bits per second, the busiest replica's
``oom_kills``          sum           counted once per (pod, window start): a resent window
                                     does not count twice
=====================  ============  =========================================================

Every aggregate but the OOM sum is a maximum, so a repeated window changes nothing; the OOM
count is deduplicated by ``(pod uid, container, window start)``. A step stays open until
``close_after_s`` past its end so late windows still land in it; a window for a step already
closed is dropped and counted (the profile has moved on).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from presize.model import ContainerKey, UsageWindow


@dataclass(slots=True)
class StepValues:
    """The aggregates of one step of one workload container."""

    cpu: float = 0.0
    cpu_peak: float = 0.0
    mem: float = 0.0
    throttled: float = 0.0
    cpu_psi: float = 0.0
    mem_psi: float = 0.0
    oom_kills: int = 0
    io_bytes: float = 0.0
    net_rx_bps: float = 0.0
    net_tx_bps: float = 0.0
    samples: int = 0
    pods: set[str] = field(default_factory=set)
    _oom_seen: set[tuple[str, str, float]] = field(default_factory=set)

    def add(self, w: UsageWindow) -> None:
        self.cpu = max(self.cpu, w.cpu_mean)
        self.cpu_peak = max(self.cpu_peak, w.cpu_p99, w.cpu_mean)
        self.mem = max(self.mem, w.mem_max)
        self.throttled = max(self.throttled, w.cpu_throttled_fraction)
        self.cpu_psi = max(self.cpu_psi, w.pressure.cpu)
        self.mem_psi = max(self.mem_psi, w.pressure.memory)
        seconds = max(w.seconds, 1e-9)
        self.io_bytes = max(self.io_bytes, (w.io_read_bytes + w.io_write_bytes) / seconds)
        # Bits per second, the unit of the kubernetes.io/*-bandwidth annotations.
        self.net_rx_bps = max(self.net_rx_bps, 8.0 * w.net_rx_bytes / seconds)
        self.net_tx_bps = max(self.net_tx_bps, 8.0 * w.net_tx_bytes / seconds)
        self.samples += w.samples
        self.pods.add(w.pod.uid)
        if w.oom_kills > 0:
            key = (w.pod.uid, w.container, w.start)
            if key not in self._oom_seen:
                self._oom_seen.add(key)
                self.oom_kills += w.oom_kills


def valid_window(w: UsageWindow) -> bool:
    """A window worth aggregating: finite, non-negative, not empty (NaN fails every test)."""
    return (
        w.samples > 0
        and 0 < w.seconds < math.inf
        and 0 <= w.start < math.inf
        and 0 <= w.cpu_mean < math.inf
        and 0 <= w.cpu_p99 < math.inf
        and 0 <= w.mem_max < math.inf
    )


class StepAccumulator:
    """Open steps per container key; :meth:`close` hands out the finished ones in order."""

    def __init__(self, step_s: float, *, close_after_s: float | None = None) -> None:
        self.step_s = step_s
        self.close_after_s = step_s if close_after_s is None else close_after_s
        self._open: dict[ContainerKey, dict[int, StepValues]] = {}
        self._closed_upto: dict[ContainerKey, int] = {}
        self.late = 0
        self.invalid = 0

    def step_of(self, time: float) -> int:
        return math.floor(time / self.step_s)

    def add(self, key: ContainerKey, windows: Iterable[UsageWindow]) -> None:
        steps = self._open.setdefault(key, {})
        closed = self._closed_upto.get(key, -(2**62))
        for w in windows:
            if not valid_window(w):
                self.invalid += 1
                continue
            step = self.step_of(w.end - 1e-9)
            if step <= closed:
                self.late += 1
                continue
            steps.setdefault(step, StepValues()).add(w)

    def close(self, now: float) -> list[tuple[ContainerKey, float, StepValues]]:
        """Steps that ended at least ``close_after_s`` before ``now``: (key, step start, values),
        oldest first per key."""
        last_closable = self.step_of(now - self.close_after_s) - 1
        out: list[tuple[ContainerKey, float, StepValues]] = []
        for key, steps in self._open.items():
            ready = sorted(s for s in steps if s <= last_closable)
            for s in ready:
                out.append((key, s * self.step_s, steps.pop(s)))
            if ready:
                self._closed_upto[key] = max(ready[-1], self._closed_upto.get(key, ready[-1]))
        return out

    def forget(self, key: ContainerKey) -> None:
        self._open.pop(key, None)
        self._closed_upto.pop(key, None)

    def resume_after(self, key: ContainerKey, step_start: float) -> None:
        """After a restart: steps up to ``step_start`` are in the restored profile already."""
        self._closed_upto[key] = self.step_of(step_start)
