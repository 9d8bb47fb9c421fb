"""Per-container sizing arithmetic and the QoS rules it must not break (pure).

One container, one resource at a time: a recommendation, the user's current request and
limit, and the bounds that apply go in; the new request and limit come out. The order of the
steps matters and is fixed here, so that the strongest rule is applied last:

1. start from the recommendation's target; for memory, never below the observed peak
   (× ``mem_peak_factor``): a request under the peak invites an OOM kill on a busy node;
2. clamp into the policy bounds (``PresizePolicy`` / webhook settings), then into the
   namespace's LimitRange (the API server rejects pods outside it, so it wins over the peak);
3. derive the limit by the limit policy (keep the user's limit/request ratio, take the
   recommendation's upper bound, or leave the limit alone), never below the request;
4. respect LimitRange ``maxLimitRequestRatio`` by raising the request if needed;
5. round onto a grid (CPU millicores, memory MiB): up, or down when up would cross a maximum.

QoS (``guaranteed`` / ``burstable`` / ``besteffort``) follows the API server's rule: a pod is
BestEffort when no container asks for CPU or memory at all, Guaranteed when every container
has CPU and memory limits equal to its requests, Burstable otherwise. Guaranteed pods are
sized with requests = limits; BestEffort pods are never sized (any request would make them
Burstable); Burstable pods are checked after sizing and left alone if they would have become
Guaranteed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from presize.model import Bounds, ResourceRecommendation
from presize.units import MIB, Rounding, round_cpu, round_memory


class LimitPolicy(StrEnum):
    """How limits follow a new request (only where the user set a limit at all)."""

    KEEP_RATIO = "keep-ratio"
    FROM_UPPER = "from-upper"
    LEAVE = "leave"


class QoS(StrEnum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


@dataclass(frozen=True, slots=True)
class Amounts:
    """A container's CPU (cores) and memory (bytes) requests and limits; ``None`` = unset."""

    cpu_request: float | None = None
    cpu_limit: float | None = None
    memory_request: float | None = None
    memory_limit: float | None = None


@dataclass(frozen=True, slots=True)
class Grid:
    """The rounding grid for new values."""

    cpu_step_millicores: int = 5
    memory_step_bytes: int = MIB


@dataclass(frozen=True, slots=True)
class Sized:
    """New request and limit for one resource (limit ``None``: the container keeps none)."""

    request: float
    limit: float | None


def qos_class(containers: list[Amounts]) -> QoS:
    """The pod's QoS class from all of its containers (init containers included).

    Zero counts as unset, as in the API server.
    """
    any_set = False
    guaranteed = True
    for c in containers:
        cpu_req, cpu_lim = c.cpu_request or None, c.cpu_limit or None
        mem_req, mem_lim = c.memory_request or None, c.memory_limit or None
        if any(v is not None for v in (cpu_req, cpu_lim, mem_req, mem_lim)):
            any_set = True
        limits_set = cpu_lim is not None and mem_lim is not None
        cpu_equal = cpu_req is None or cpu_req == cpu_lim
        memory_equal = mem_req is None or mem_req == mem_lim
        guaranteed = guaranteed and limits_set and cpu_equal and memory_equal
    if not any_set:
        return QoS.BEST_EFFORT
    return QoS.GUARANTEED if guaranteed else QoS.BURSTABLE


def _round(value: float, *, cpu: bool, grid: Grid, bounds: Bounds) -> float:
    """Round up onto the grid, or down if rounding up crosses ``bounds.maximum``."""

    def on_grid(direction: Rounding) -> float:
        if cpu:
            return round_cpu(value, step_millicores=grid.cpu_step_millicores, direction=direction)
        return round_memory(value, step_bytes=grid.memory_step_bytes, direction=direction)

    up = on_grid(Rounding.UP)
    if up <= bounds.maximum:
        return up
    down = on_grid(Rounding.DOWN)
    # A maximum finer than the grid: use it exactly rather than violate it.
    return down if down >= bounds.minimum and down > 0 else value


def size_resource(
    rec: ResourceRecommendation,
    *,
    cpu: bool,
    current_request: float | None,
    current_limit: float | None,
    guaranteed: bool,
    floor: float,
    bounds: Bounds,
    max_ratio: float,
    policy: LimitPolicy,
    grid: Grid,
) -> Sized:
    """New request and limit for one resource of one container (see the module docstring).

    ``floor`` is the minimum request before bounds (the memory peak; 0 for CPU).
    ``bounds`` is already the intersection of policy and LimitRange bounds.
    Raises ``ValueError`` when the recommendation is not a finite number.
    """
    if not math.isfinite(rec.target) or rec.target < 0:
        raise ValueError(f"recommendation target {rec.target!r} is not usable")
    request = bounds.clamp(max(rec.target, floor))
    if guaranteed:
        value = _round(request, cpu=cpu, grid=grid, bounds=bounds)
        return Sized(request=value, limit=value)
    limit: float | None = None
    if current_limit is not None:
        if policy is LimitPolicy.KEEP_RATIO:
            ratio = current_limit / current_request if current_request else 1.0
            limit = request * max(ratio, 1.0)
        elif policy is LimitPolicy.FROM_UPPER:
            upper = max(rec.upper, floor)
            limit = max(upper, request) if math.isfinite(upper) else max(current_limit, request)
        else:  # LEAVE: the limit is the user's; the request must fit under it
            limit = current_limit
            request = min(request, current_limit)
        if policy is not LimitPolicy.LEAVE:
            limit = min(bounds.clamp(limit), max(bounds.maximum, request))
            request = min(request, limit)
    request = _round(request, cpu=cpu, grid=grid, bounds=bounds)
    if limit is not None:
        if policy is not LimitPolicy.LEAVE:
            limit = max(_round(limit, cpu=cpu, grid=grid, bounds=bounds), request)
        request = min(request, limit)
        if math.isfinite(max_ratio) and limit > request * max_ratio:
            request = min(limit, _round(limit / max_ratio, cpu=cpu, grid=grid, bounds=bounds))
    return Sized(request=request, limit=limit)
