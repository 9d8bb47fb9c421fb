"""What one read of one container's cgroup yields, the same for cgroup v1 and v2.

Counters stay cumulative here (CPU time, throttled periods, OOM kills, I/O, PSI stall time):
turning them into rates needs two reads and the time between them, which is the sampler's job,
not the reader's. Units are fixed so that v1 and v2 cannot be mixed up: nanoseconds for CPU
time, microseconds for PSI stall totals (as the kernel counts them), bytes for memory and I/O.

Limits live apart, in :class:`Limits`, because they change only when someone resizes the
container; the sampling loop rereads them every few seconds instead of every second. So does
the lifetime memory peak (``memory.peak``, ``memory.max_usage_in_bytes``): it is a high-water
mark, so reading it every ten seconds loses nothing, and it saved a file per container per tick.

The per-tick records are ``NamedTuple``s rather than frozen dataclasses for the reason given in
:mod:`agent.cgroups.parse`: they are built a hundred times a second and must be cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from agent.cgroups.parse import IoStat, Throttling


class MemorySample(NamedTuple):
    """Memory gauges in bytes; ``working_set`` is usage minus inactive page cache."""

    usage: int
    working_set: int
    anon: int
    file: int


class PsiTotals(NamedTuple):
    """Cumulative "some" stall time in microseconds per resource; ``None`` where absent."""

    cpu_us: int | None = None
    memory_us: int | None = None
    io_us: int | None = None


class CgroupSample(NamedTuple):
    """One container's cgroup at one instant.

    ``memory``, ``oom_kills`` and ``io`` are ``None`` where the hierarchy does not offer them
    (a v2 cgroup without the memory or io controller, a v1 kernel older than 4.13).
    """

    cpu_usage_ns: int
    throttling: Throttling
    memory: MemorySample | None = None
    oom_kills: int | None = None
    io: IoStat | None = None
    psi: PsiTotals = PsiTotals()


@dataclass(frozen=True, slots=True)
class Limits:
    """The container's CPU limit in cores and memory limit in bytes (``None``: unlimited)."""

    cpu_cores: float | None = None
    memory_bytes: int | None = None
