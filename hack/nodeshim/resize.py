"""In-place resize on a shim node: accept or hold a resize (pure), then apply it to cgroups.

:func:`next_allocation` is steps 1 and 2 of :mod:`hack.nodeshim.kubelet`'s description (pure);
:func:`actuate` is steps 3 and 4, writing the cgroups in the order cgroup v1 accepts. In v1 a
child's CFS quota may not exceed its parent's (``EINVAL``), so when the pod's total limit grows
the pod cgroup is written first and the containers after, and when it shrinks the other way
round; the kubelet orders its updates the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hack.nodeshim import kubelet
from hack.nodeshim.cgroupfs import CgroupError, CgroupFs
from hack.nodeshim.node import now_rfc3339
from hack.nodeshim.pods import PodRuntime
from hack.nodeshim.resources import (
    CgroupValues,
    Requests,
    Resources,
    container_values,
    pod_requests,
    pod_values,
)


@dataclass(frozen=True)
class Step:
    """The outcome of looking at a pod's desired resources: whether the allocation moves to
    them, and the two resize conditions afterwards (None = absent)."""

    accepted: bool
    pending: dict[str, Any] | None
    in_progress: dict[str, Any] | None


def parsed(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Resources]:
    return {name: Resources.from_spec(r) for name, r in specs.items()}


def next_allocation(
    allocated: Mapping[str, Mapping[str, Any]],
    desired: Mapping[str, Mapping[str, Any]],
    *,
    pending: dict[str, Any] | None,
    in_progress: dict[str, Any] | None,
    others: Sequence[Requests],
    allocatable: Requests,
    generation: int,
    now: str,
) -> Step:
    """Steps 1-2: accept ``desired`` (PodResizeInProgress), or hold it (PodResizePending with
    Infeasible or Deferred). With nothing new desired, a stale PodResizePending goes."""
    want = parsed(desired)
    if want == parsed(allocated):
        return Step(False, None, in_progress)
    verdict = kubelet.check_resize(pod_requests(want.values()), others, allocatable)
    if verdict.fits:
        started = kubelet.condition(kubelet.IN_PROGRESS, "True", now, generation=generation)
        return Step(True, None, started)
    held = kubelet.condition(
        kubelet.PENDING,
        "True",
        now,
        reason=verdict.reason,
        message=verdict.message,
        generation=generation,
        old=pending,
    )
    return Step(False, held, in_progress)


def _grows(old: int | None, new: int | None) -> bool:
    """Whether a limit grows or stays (``None`` and negative values are unlimited)."""

    def inf(v: int | None) -> float:
        return math.inf if v is None or v < 0 else float(v)

    return inf(new) >= inf(old)


def apply_ordered(
    fs: CgroupFs,
    pod_cgroup: str,
    old: CgroupValues,
    new: CgroupValues,
    containers: Iterable[tuple[str, CgroupValues]],
) -> None:
    """Write pod and container values, growing limits parent-first, shrinking child-first."""
    cpu_up = _grows(old.cpu_quota_us, new.cpu_quota_us)
    mem_up = _grows(old.memory_limit, new.memory_limit)
    if cpu_up:
        fs.apply_cpu(pod_cgroup, new)
    if mem_up:
        fs.apply_memory(pod_cgroup, new)
    for cgroup, values in containers:
        fs.apply_cpu(cgroup, values)
        fs.apply_memory(cgroup, values)
    if not cpu_up:
        fs.apply_cpu(pod_cgroup, new)
    if not mem_up:
        fs.apply_memory(pod_cgroup, new)


def _error(rt: PodRuntime, message: str) -> dict[str, Any]:
    generation = (rt.in_progress or {}).get("observedGeneration")
    return kubelet.condition(
        kubelet.IN_PROGRESS,
        "True",
        now_rfc3339(),
        reason=kubelet.ERROR,
        message=message,
        generation=generation,
        old=rt.in_progress,
    )


def actuate(fs: CgroupFs, rt: PodRuntime, specs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Steps 3-4: bring the running containers' cgroups to the allocation. Updates
    ``rt.in_progress`` and each container's ``applied``; returns the containers whose
    ``resizePolicy`` needs a restart (the caller restarts them with the new values)."""
    allocated = parsed(rt.allocated)
    running = {n: c for n, c in rt.containers.items() if c.running}
    todo = {n: c for n, c in running.items() if Resources.from_spec(c.applied) != allocated[n]}
    if not todo:
        rt.in_progress = None
        return []
    restart = [
        n
        for n, c in todo.items()
        if kubelet.restart_needed(specs.get(n, {}), Resources.from_spec(c.applied), allocated[n])
    ]
    in_place = {n: c for n, c in todo.items() if n not in restart}
    try:
        usage = {n: fs.memory_usage(c.cgroup) for n, c in in_place.items()}
    except OSError as err:
        rt.in_progress = _error(rt, f"cannot read memory usage: {err}")
        return []
    limits = {
        n: (Resources.from_spec(c.applied).memory_limit, allocated[n].memory_limit)
        for n in in_place
        for c in [in_place[n]]
    }
    if message := kubelet.memory_decrease_error(limits, usage):
        rt.in_progress = _error(rt, message)
        return []
    current = [
        Resources.from_spec(c.applied) if c.running else allocated[n]
        for n, c in rt.containers.items()
    ]
    try:
        apply_ordered(
            fs,
            rt.cgroup,
            pod_values(current),
            pod_values(allocated.values()),
            [(c.cgroup, container_values(allocated[n])) for n, c in in_place.items()],
        )
    except CgroupError as err:
        rt.in_progress = _error(rt, str(err))
        return []
    for n, c in in_place.items():
        c.applied = dict(rt.allocated[n])
    rt.in_progress = None
    return restart
