"""The per-tick work of the agent: discover, read every container, turn counters into windows.

One :meth:`Collector.tick` reads each known container once. The composition root calls it at
1 Hz and asks for :meth:`Collector.windows` when a batch is due; nothing here sleeps, so tests
drive it with a fake clock and benchmarks with a real one.

Error policy, one rule per outcome (the koordlet lesson: never let one container's failure
decide the fate of the others):

* a cgroup that has gone → forget the container, count it under ``gone``;
* a read or parse error → count it under ``read_errors``, log it, keep the container (the
  next tick may succeed) and go on with the next container;
* a counter reset → the tracker re-primes and counts it.

Limits and the lifetime memory peak are reread every ``limits_s`` rather than every tick: limits
change only on a resize and the peak is a high-water mark, and the three or four extra files
per container would be a third of the agent's cost.

The slow counters are read on their own cadences too: PSI every ``psi_s`` (three files per
container) and the OOM-kill count every ``oom_s`` (one file). The tracker keeps their last
values as baselines, so OOM kills and stall totals stay exact over any window (a gap's kills
land on the tick that reads the counter again, within ``oom_s``, well inside the urgent
watcher's 10 s step), and a PSI share is taken over the time since the previous PSI read.
Each container gets its own phase, so the slow reads are spread evenly over the ticks; a
container's first read is always whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.cgroups.reader import CgroupReader
from agent.cgroups.sample import Limits
from agent.discovery import (
    ContainerCgroup,
    PodDirectory,
    StaticPods,
    identify,
    is_pod_sandbox,
    scan,
)
from agent.errors import AgentError
from agent.logs import LogCounter
from agent.netdev import NetCounters, NetMeter
from agent.sampler import CounterTracker, Rates
from agent.windows import RateWindow, TimedSums, capacity_for
from presize.errors import SettingsError
from presize.model import PodRef, UsageWindow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """``hz``: reads per second; ``window_s``: summary lengths kept (the longest sizes the
    buffers); ``rescan_s``: how often the cgroup tree is walked for new containers;
    ``limits_s``: how often limits are reread; ``psi_s``/``oom_s``: how often the PSI totals
    and the OOM-kill count are read (rounded to whole ticks, at least every tick);
    ``logs_s``/``net_s``: how often container logs and pods' network counters are read;
    ``base``: subtree to discover under."""

    hz: float = 1.0
    window_s: tuple[float, ...] = (10.0, 60.0)
    rescan_s: float = 10.0
    limits_s: float = 10.0
    psi_s: float = 5.0
    oom_s: float = 2.0
    logs_s: float = 5.0
    net_s: float = 5.0
    base: str = ""

    def __post_init__(self) -> None:
        periods = (self.rescan_s, self.limits_s, self.psi_s, self.oom_s, self.logs_s, self.net_s)
        if min(self.hz, *periods) <= 0:
            raise SettingsError(
                "CollectorSettings: hz, rescan_s, limits_s, psi_s, oom_s, logs_s and net_s "
                "must be > 0"
            )
        if not self.window_s or min(self.window_s) <= 0:
            raise SettingsError("CollectorSettings.window_s: expected positive lengths")


@dataclass(slots=True)
class _Tracked:
    cgroup: ContainerCgroup
    window: RateWindow
    tracker: CounterTracker = field(default_factory=CounterTracker)
    limits: Limits | None = None
    peak: int | None = None
    limits_at: float = float("-inf")
    phase: int = 0
    primed: bool = False


@dataclass(slots=True)
class CollectorStats:
    """Cumulative counts for metrics and logs."""

    ticks: int = 0
    reads: int = 0
    gone: int = 0
    read_errors: int = 0
    scans: int = 0
    net_reads: int = 0
    net_resets: int = 0


Discover = Callable[[str, str], list[ContainerCgroup]]


def _scan(root: str, base: str) -> list[ContainerCgroup]:
    return scan(root, base=base)


class Collector:
    """Reads every container of the node once per :meth:`tick`."""

    def __init__(
        self,
        reader: CgroupReader,
        *,
        scan_root: str,
        clock: Callable[[], float],
        settings: CollectorSettings | None = None,
        directory: PodDirectory | None = None,
        discover: Discover = _scan,
        logs: LogCounter | None = None,
        net: NetMeter | None = None,
    ) -> None:
        self.reader = reader
        self.scan_root = scan_root
        self.clock = clock
        self.s = settings or CollectorSettings()
        self.directory = directory if directory is not None else StaticPods()
        self._discover = discover
        self._capacity = capacity_for(max(self.s.window_s), self.s.hz)
        self._tracked: dict[str, _Tracked] = {}
        self._scanned_at = float("-inf")
        self._psi_every = max(1, round(self.s.psi_s * self.s.hz))
        self._oom_every = max(1, round(self.s.oom_s * self.s.hz))
        self._added = 0
        self.stats = CollectorStats()
        self.logs = logs
        self.net = net
        self._logs_at = self._net_at = float("-inf")
        self._net_prev: dict[str, tuple[NetCounters, int]] = {}
        self._net_sums: dict[str, TimedSums] = {}
        self._retention_s = max(self.s.window_s) + 2.0 / self.s.hz

    @property
    def containers(self) -> list[ContainerCgroup]:
        return [t.cgroup for t in self._tracked.values()]

    def rescan(self) -> None:
        """Walk the tree now: add new containers, forget those whose cgroup is gone."""
        found = {c.path: c for c in self._discover(self.scan_root, self.s.base)}
        for path in self._tracked.keys() - found.keys():
            self._drop(path)
        for path, cgroup in found.items():
            if path not in self._tracked:
                self._tracked[path] = _Tracked(
                    cgroup=cgroup, window=RateWindow(self._capacity), phase=self._added
                )
                self._added += 1
        self._scanned_at = self.clock()
        self.stats.scans += 1

    def tick(self) -> None:
        """Read every container once (rescanning first when a rescan is due)."""
        if self.clock() - self._scanned_at >= self.s.rescan_s:
            self.rescan()
        self.stats.ticks += 1
        tick = self.stats.ticks
        for path, tracked in list(self._tracked.items()):
            self._read_one(path, tracked, tick)
        now = self.clock()
        if self.net is not None and now - self._net_at >= self.s.net_s:
            self._net_at = now
            self._read_net(self.net, now)
        if self.logs is not None and now - self._logs_at >= self.s.logs_s:
            self._logs_at = now
            self._poll_logs(self.logs, now)

    # ---- slower readers: network namespaces and logs

    @staticmethod
    def _pod_key(cgroup: ContainerCgroup) -> str:
        """Containers of one pod share its network namespace; plain Docker ones have their own."""
        return cgroup.pod_uid or cgroup.path

    def _read_net(self, meter: NetMeter, now: float) -> None:
        pods: dict[str, list[str]] = {}
        for path, tracked in self._tracked.items():
            pods.setdefault(self._pod_key(tracked.cgroup), []).append(path)
        for key in [k for k in self._net_prev if k not in pods]:
            del self._net_prev[key]
            self._net_sums.pop(key, None)
        for key in [k for k in meter.pods() if k not in pods]:
            meter.forget(key)
        for key, paths in pods.items():
            try:
                got = meter.read(key, paths)
            except (AgentError, OSError) as exc:
                self.stats.read_errors += 1
                log.warning("network read failed", extra={"pod": key, "error": str(exc)})
                continue
            if got is None:
                continue
            self.stats.net_reads += 1
            prev = self._net_prev.get(key)
            self._net_prev[key] = got
            if prev is None:
                continue  # the first read only primes
            (counters, netns), (before, netns_before) = got, prev
            if (
                netns != netns_before
                or counters.rx_bytes < before.rx_bytes
                or (counters.tx_bytes < before.tx_bytes)
            ):
                self.stats.net_resets += 1  # a new sandbox: start over from here
                continue
            sums = self._net_sums.get(key)
            if sums is None:
                sums = self._net_sums[key] = TimedSums(self._retention_s)
            sums.add(
                now, (counters.rx_bytes - before.rx_bytes, counters.tx_bytes - before.tx_bytes)
            )

    def _poll_logs(self, logs: LogCounter, now: float) -> None:
        named = []
        for path, tracked in self._tracked.items():
            pod, name = identify(tracked.cgroup, self.directory)
            if pod.name and name != tracked.cgroup.container_id[:12]:
                named.append((path, pod, name))
        logs.poll(now, named)

    def find(self, pod_uid: str, container: str) -> tuple[str, PodRef] | None:
        """The cgroup path and pod of the container named ``container`` in pod ``pod_uid``
        (``None`` if not tracked or not named yet)."""
        for path, tracked in self._tracked.items():
            if tracked.cgroup.pod_uid == pod_uid:
                pod, name = identify(tracked.cgroup, self.directory)
                if name == container:
                    return path, pod
        return None

    def _read_one(self, path: str, tracked: _Tracked, tick: int) -> None:
        try:
            if tracked.primed:
                at = tick + tracked.phase
                sample = self.reader.read(
                    path, psi=at % self._psi_every == 0, oom=at % self._oom_every == 0
                )
            else:
                sample = self.reader.read(path)
            now = self.clock()
            if sample is not None and now - tracked.limits_at >= self.s.limits_s:
                tracked.limits = self.reader.read_limits(path) or tracked.limits
                tracked.peak = self.reader.read_peak(path)
                tracked.limits_at = now
        except AgentError as exc:
            self.stats.read_errors += 1
            log.warning("cgroup read failed", extra={"cgroup": path, "error": str(exc)})
            return
        if sample is None:
            self.stats.gone += 1
            self._drop(path)
            return
        self.stats.reads += 1
        tracked.primed = True
        rates = tracked.tracker.update(sample, now)
        if rates is not None:
            tracked.window.push(rates)

    def _drop(self, path: str) -> None:
        del self._tracked[path]
        self.reader.forget(path)

    def windows(self, seconds: float, *, now: float, epoch_offset: float) -> list[UsageWindow]:
        """One summary per container over the last ``seconds`` (containers with data only)."""
        out: list[UsageWindow] = []
        for tracked in self._tracked.values():
            if is_pod_sandbox(tracked.cgroup, self.directory):
                continue
            pod, name = identify(tracked.cgroup, self.directory)
            sums = self._net_sums.get(self._pod_key(tracked.cgroup))
            rx, tx = (0.0, 0.0) if sums is None else sums.total(seconds, now=now, width=2)
            window = tracked.window.summary(
                seconds,
                now=now,
                pod=pod,
                container=name,
                limits=tracked.limits,
                epoch_offset=epoch_offset,
                net=(rx, tx),
                log_matches=()
                if self.logs is None
                else self.logs.matches(tracked.cgroup.path, seconds, now=now),
            )
            if window is not None:
                out.append(window)
        return out

    def latest(self) -> list[tuple[PodRef, str, Rates]]:
        """The most recent rates of every container that has some (for metrics)."""
        out: list[tuple[PodRef, str, Rates]] = []
        for tracked in self._tracked.values():
            rates = tracked.window.latest()
            if rates is not None and not is_pod_sandbox(tracked.cgroup, self.directory):
                pod, name = identify(tracked.cgroup, self.directory)
                out.append((pod, name, rates))
        return out

    def resets(self) -> int:
        """Counter resets seen across the containers currently tracked."""
        return sum(t.tracker.resets for t in self._tracked.values())
