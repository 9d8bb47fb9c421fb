"""Diagnostics snapshots of containers the controller flagged, attached to the next report.

The controller sees anomalies (a leak, a runaway process) across a workload's history; the
agent sees the container now. When a :class:`~presize.wire.ReportAck` asks for ``diagnose``,
the agent takes a :class:`~presize.wire.Diagnostics` of that container: its processes with CPU
and RSS, its whole ``memory.stat``, and the last log lines that matched a pattern.

Why two steps: CPU use is a rate, so each process is read twice. A request is *primed* on the
next tick (the first reading of every process in the cgroup), and *finished* at least
``interval_s`` later (the second reading; CPU = CPU seconds between the two / elapsed). Nothing
blocks the loop for the interval. A process that appeared in between is reported with its RSS
and a CPU of 0 (it has no first reading); one that exited is left out.

The controller repeats its requests on every ack until it has a snapshot, so a request that
cannot be served now (the container is not tracked yet, or has gone) is dropped after a few
ticks rather than kept forever; a container already snapshotted is not taken again for
``cooldown_s``, however often the request repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from agent.node import ProcessReading
from presize.model import PodRef
from presize.wire import DiagnoseRequest, Diagnostics, ProcessSample

Find = Callable[[str, str], tuple[str, PodRef] | None]  # (uid, name) -> (cgroup path, pod)


@dataclass(slots=True)
class _Pending:
    request: DiagnoseRequest
    tries: int = 0
    path: str = ""
    pod: PodRef | None = None
    primed_at: float = 0.0
    first: dict[int, ProcessReading] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DiagnosticsSources:
    """Where a snapshot's parts come from (the composition root wires the real ones)."""

    find: Find
    pids: Callable[[str], Sequence[int]]
    processes: Callable[[Iterable[int]], list[ProcessReading]]
    memory_stat: Callable[[str], tuple[tuple[str, int], ...] | None]
    log_lines: Callable[[str], tuple[str, ...]]


class Diagnoser:
    """Turns diagnose requests into :class:`Diagnostics`, a tick or more later."""

    def __init__(
        self,
        sources: DiagnosticsSources,
        *,
        interval_s: float = 1.0,
        max_tries: int = 5,
        cooldown_s: float = 300.0,
        max_processes: int = 50,
    ) -> None:
        self.src = sources
        self.interval_s = interval_s
        self.max_tries = max_tries
        self.cooldown_s = cooldown_s
        self.max_processes = max_processes
        self._pending: dict[DiagnoseRequest, _Pending] = {}
        self._ready: list[Diagnostics] = []
        self._taken_at: dict[DiagnoseRequest, float] = {}
        self.unresolved = 0

    def request(self, requests: Iterable[DiagnoseRequest], now: float) -> None:
        """Queue ``requests`` (repeats of queued or recently served ones are ignored)."""
        for req in requests:
            recent = self._taken_at.get(req)
            if req in self._pending or (recent is not None and now - recent < self.cooldown_s):
                continue
            self._pending[req] = _Pending(req)

    def step(self, now: float, epoch_offset: float) -> None:
        """Prime new requests, finish primed ones whose interval has passed."""
        for req, p in list(self._pending.items()):
            if p.pod is None:
                found = self.src.find(req.pod_uid, req.container)
                if found is None:
                    p.tries += 1
                    if p.tries >= self.max_tries:
                        del self._pending[req]
                        self.unresolved += 1
                    continue
                p.path, p.pod = found
                p.primed_at = now
                pids = list(self.src.pids(p.path))[: self.max_processes]
                p.first = {r.pid: r for r in self.src.processes(pids)}
            elif now - p.primed_at >= self.interval_s:
                del self._pending[req]
                self._ready.append(self._finish(p, now, epoch_offset))
                self._taken_at[req] = now
        for req in [r for r, t in self._taken_at.items() if now - t >= self.cooldown_s]:
            del self._taken_at[req]

    def _finish(self, p: _Pending, now: float, epoch_offset: float) -> Diagnostics:
        assert p.pod is not None
        elapsed = max(now - p.primed_at, 1e-9)
        pids = list(self.src.pids(p.path))[: self.max_processes]
        processes = []
        for r in self.src.processes(pids):
            before = p.first.get(r.pid)
            cpu_s = r.cpu_s - before.cpu_s if before is not None else 0.0
            processes.append(ProcessSample(r.pid, r.name, max(0.0, cpu_s) / elapsed, r.rss_bytes))
        processes.sort(key=lambda s: (-s.rss_bytes, s.pid))
        return Diagnostics(
            pod=p.pod,
            container=p.request.container,
            taken_at=now + epoch_offset,
            processes=tuple(processes),
            memory_stat=self.src.memory_stat(p.path) or (),
            log_lines=self.src.log_lines(p.path),
        )

    def take(self) -> tuple[Diagnostics, ...]:
        """The finished snapshots, once each (the caller attaches them to a report)."""
        ready, self._ready = tuple(self._ready), []
        return ready

    def put_back(self, diagnostics: Sequence[Diagnostics]) -> None:
        """Snapshots a report could not carry (spooling failed): keep them for the next one."""
        self._ready[:0] = diagnostics
