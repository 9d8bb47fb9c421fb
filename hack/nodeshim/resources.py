"""Pod resources to cgroup v1 values, the way the kubelet computes them (pure).

The kubelet's arithmetic (``pkg/kubelet/cm/helpers_linux.go`` and ``ResourceConfigForPod`` in
Kubernetes 1.35), restated rather than copied:

* ``cpu.shares`` = request in millicores × 1024 / 1000 (integer division), at least 2 and at
  most 262144; no request means 2.
* ``cpu.cfs_quota_us`` = limit in millicores × period / 1000 with a 100 ms period, at least
  1000 µs; no limit means -1 (unlimited).
* ``memory.limit_in_bytes`` = the memory limit; none means unlimited.
* The pod cgroup gets the sums over its containers: shares from the summed requests, a quota
  only when *every* container has a CPU limit, a memory limit only when every container has
  one. Init containers are not run by the shim and are left out of the sums.

Quantities are parsed with :func:`presize.units.parse_quantity`, exactly as written; CPU is then
rounded up to whole millicores and memory up to whole bytes, as the API server stores them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from presize.units import parse_quantity

MIN_SHARES: Final = 2
MAX_SHARES: Final = 262144
SHARES_PER_CPU: Final = 1024
QUOTA_PERIOD_US: Final = 100_000
MIN_QUOTA_US: Final = 1000
UNLIMITED: Final = -1


def cpu_millis(quantity: str | int | float) -> int:
    """``"250m"`` -> 250, ``"1.5"`` -> 1500 (rounded up to a whole millicore)."""
    return math.ceil(parse_quantity(quantity) * 1000)


def memory_bytes(quantity: str | int | float) -> int:
    """``"64Mi"`` -> 67108864 (rounded up to a whole byte)."""
    return math.ceil(parse_quantity(quantity))


@dataclass(frozen=True)
class Resources:
    """One container's CPU (millicores) and memory (bytes) requests and limits; None = unset."""

    cpu_request: int | None = None
    cpu_limit: int | None = None
    memory_request: int | None = None
    memory_limit: int | None = None

    @classmethod
    def from_spec(cls, resources: Mapping[str, Any] | None) -> Resources:
        """From a container's ``resources`` object (``{"requests": {...}, "limits": {...}}``)."""
        requests = (resources or {}).get("requests") or {}
        limits = (resources or {}).get("limits") or {}

        def get(source: Mapping[str, Any], name: str, parse: Any) -> int | None:
            value = source.get(name)
            return None if value is None else int(parse(value))

        return cls(
            cpu_request=get(requests, "cpu", cpu_millis),
            cpu_limit=get(limits, "cpu", cpu_millis),
            memory_request=get(requests, "memory", memory_bytes),
            memory_limit=get(limits, "memory", memory_bytes),
        )


@dataclass(frozen=True)
class CgroupValues:
    """What goes into one cgroup: shares, CFS quota/period and memory limit (None = unlimited)."""

    cpu_shares: int
    cpu_quota_us: int
    cpu_period_us: int = QUOTA_PERIOD_US
    memory_limit: int | None = None


def shares_for(request_millis: int | None) -> int:
    if not request_millis:
        return MIN_SHARES
    return max(MIN_SHARES, min(request_millis * SHARES_PER_CPU // 1000, MAX_SHARES))


def quota_for(limit_millis: int | None, period_us: int = QUOTA_PERIOD_US) -> int:
    if not limit_millis:
        return UNLIMITED
    return max(limit_millis * period_us // 1000, MIN_QUOTA_US)


def container_values(r: Resources) -> CgroupValues:
    """The container cgroup's values."""
    return CgroupValues(
        cpu_shares=shares_for(r.cpu_request),
        cpu_quota_us=quota_for(r.cpu_limit),
        memory_limit=r.memory_limit,
    )


def pod_values(containers: Iterable[Resources]) -> CgroupValues:
    """The pod cgroup's values: sums, limits only when every container has one."""
    rs = list(containers)
    cpu_request = sum(r.cpu_request or 0 for r in rs)
    all_cpu = bool(rs) and all(r.cpu_limit for r in rs)
    all_mem = bool(rs) and all(r.memory_limit for r in rs)
    return CgroupValues(
        cpu_shares=shares_for(cpu_request),
        cpu_quota_us=quota_for(sum(r.cpu_limit or 0 for r in rs)) if all_cpu else UNLIMITED,
        memory_limit=sum(r.memory_limit or 0 for r in rs) if all_mem else None,
    )


def qos_class(containers: Iterable[Resources]) -> str:
    """Guaranteed / Burstable / BestEffort from CPU and memory (the API server's rule for the
    two resources the shim handles; the pod's ``status.qosClass`` wins when present)."""
    rs = list(containers)
    if all(r == Resources() for r in rs):
        return "BestEffort"
    guaranteed = all(
        r.cpu_limit is not None
        and r.memory_limit is not None
        and r.cpu_request in (None, r.cpu_limit)
        and r.memory_request in (None, r.memory_limit)
        for r in rs
    )
    return "Guaranteed" if guaranteed else "Burstable"


@dataclass(frozen=True)
class Requests:
    """A pod's summed requests (what node admission and resize feasibility count)."""

    cpu: int = 0  # millicores
    memory: int = 0  # bytes

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu + other.cpu, self.memory + other.memory)


def pod_requests(containers: Iterable[Resources]) -> Requests:
    rs = list(containers)
    return Requests(
        cpu=sum(r.cpu_request or 0 for r in rs), memory=sum(r.memory_request or 0 for r in rs)
    )


def format_millis(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
