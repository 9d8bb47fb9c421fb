"""The replay's view of a trace: aligned series on a fixed step grid.

A trace folder becomes a :class:`TraceSet`: per series, CPU and memory usage on a 300 s grid
with ``NaN`` where the source has no data (a gap the cleaning did not fill). Where the source
gives the maximum inside each window (Google 2019), ``cpu_peak`` and ``mem_peak`` carry it, and
OOMs and throttling are judged on them rather than on the mean, because a 5-minute mean hides
the 1-second spike that gets a container killed.

``units`` records what one unit of CPU and memory is in this trace, so that minimums, histogram
buckets and OOM bumps can be expressed in each trace's units without guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

STEP_SECONDS = 300.0
STEPS_PER_DAY = 288
STEPS_PER_HOUR = 12


@dataclass(frozen=True)
class TraceUnits:
    """How a trace's numbers map to sizing knobs.

    ``cpu_bucket`` / ``mem_bucket``: the first histogram bucket (VPA uses 0.01 core and 1e7 B).
    ``cpu_min`` / ``mem_min``: the per-pod minimum a learned policy may allocate (VPA: 25 mCPU,
    250 MiB on real units; none on normalised Google units).
    ``oom_min_bump``: the absolute part of VPA's OOM bump (100 MiB on real units).
    """

    cpu_name: str
    mem_name: str
    cpu_bucket: float
    mem_bucket: float
    cpu_min: float
    mem_min: float
    oom_min_bump: float


REAL_UNITS = TraceUnits(
    cpu_name="cores",
    mem_name="bytes",
    cpu_bucket=0.01,
    mem_bucket=1e7,
    cpu_min=0.025,
    mem_min=250.0 * 1024 * 1024,
    oom_min_bump=100.0 * 1024 * 1024,
)


@dataclass(frozen=True)
class Series:
    """One container (VM, job) of a trace, on the common step grid.

    Arrays have equal length; ``NaN`` marks steps that are neither shown to policies nor scored.
    ``cpu_capacity``/``mem_capacity`` are the trace's provisioned size (for the ``static``
    policy), ``None`` where the trace has none.
    """

    series_id: str
    cpu: FloatArray
    mem: FloatArray
    cpu_peak: FloatArray | None = None
    mem_peak: FloatArray | None = None
    cpu_capacity: FloatArray | None = None
    mem_capacity: FloatArray | None = None
    initial_cpu: float = 1.0
    initial_mem: float = 1.0
    start_time: float = 0.0

    def __len__(self) -> int:
        return int(self.cpu.shape[0])

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        return ~np.isnan(self.cpu) & ~np.isnan(self.mem)


@dataclass(frozen=True)
class TraceSet:
    """All series of one trace folder, with the facts the simulator needs about them."""

    name: str
    units: TraceUnits
    series: tuple[Series, ...]
    has_peaks: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def steps(self) -> int:
        return sum(int(s.valid.sum()) for s in self.series)
