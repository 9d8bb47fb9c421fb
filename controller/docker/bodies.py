"""New resources → Engine API request bodies. Pure, and never mutates its inputs.

Standalone containers (``POST /containers/{id}/update``, applied in place by runc: same
container, no restart):

* memory limit → ``Memory``, with ``MemorySwap`` sent alongside so the two stay consistent
  (the engine refuses a ``Memory`` above the current ``MemorySwap``): unlimited swap (-1) stays
  unlimited; a container that had ``swap = MemorySwap - Memory`` keeps that much swap; one that
  had no memory limit gets no swap (``MemorySwap = Memory``, as the kubelet does);
* memory request → ``MemoryReservation`` (the soft limit);
* CPU limit → in the style the container already uses: ``CpuQuota`` (over its ``CpuPeriod``)
  when it was created with ``--cpu-quota``, else ``NanoCpus`` (the engine refuses to mix them);
* CPU request → ``CpuShares = cores × 1024`` (at least 2, the kernel's minimum);
* block I/O weight, when asked → ``BlkioWeight`` (10–1000).

Swarm services (``POST /services/{id}/update?version=N``): the whole current spec with
``TaskTemplate.Resources`` changed; Swarm then replaces the tasks by its ``UpdateConfig``.
A reschedule adds the placement constraint ``node.hostname!=<node>`` and names that node in
the service label ``presize.io/avoided-node``. A later reschedule *replaces* the constraint the
label names instead of adding another: presize keeps at most one node excluded per service, so
its constraints never pile up until no node is left, and constraints the user wrote are never
touched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from controller.orchestrator import ContainerResize

NANO = 1_000_000_000
SHARES_PER_CORE = 1024
MIN_SHARES = 2
DEFAULT_CFS_PERIOD = 100_000
MIN_CFS_QUOTA = 1_000
BLKIO_WEIGHT_RANGE = (10, 1000)


class BodyError(ValueError):
    """A requested value Docker cannot express (e.g. a block I/O weight out of range)."""


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def memory_swap_for(host_config: Mapping[str, Any], new_memory: int) -> int:
    """``MemorySwap`` to send with ``Memory = new_memory`` (see the module doc)."""
    old_memory, old_swap = _int(host_config.get("Memory")), _int(host_config.get("MemorySwap"))
    if old_swap == -1:
        return -1
    if old_memory > 0 and old_swap >= old_memory:
        return new_memory + (old_swap - old_memory)
    return new_memory


def container_update_body(
    host_config: Mapping[str, Any], change: ContainerResize, *, blkio_weight: int | None = None
) -> dict[str, int]:
    """The ``/containers/{id}/update`` body for ``change`` on a container whose current
    ``HostConfig`` is ``host_config``; only the fields asked for (``None`` keeps a value)."""
    body: dict[str, int] = {}
    if change.memory_limit is not None:
        memory = round(change.memory_limit)
        body["Memory"] = memory
        body["MemorySwap"] = memory_swap_for(host_config, memory)
    if change.memory_request is not None:
        body["MemoryReservation"] = round(change.memory_request)
    if change.cpu_limit is not None:
        uses_quota = (
            _int(host_config.get("NanoCpus")) == 0 and _int(host_config.get("CpuQuota")) > 0
        )
        if uses_quota:
            period = _int(host_config.get("CpuPeriod")) or DEFAULT_CFS_PERIOD
            body["CpuQuota"] = max(MIN_CFS_QUOTA, round(change.cpu_limit * period))
        else:
            body["NanoCpus"] = round(change.cpu_limit * NANO)
    if change.cpu_request is not None:
        body["CpuShares"] = max(MIN_SHARES, round(change.cpu_request * SHARES_PER_CORE))
    if blkio_weight is not None:
        low, high = BLKIO_WEIGHT_RANGE
        if not low <= blkio_weight <= high:
            raise BodyError(f"block I/O weight {blkio_weight} is outside {low}..{high}")
        body["BlkioWeight"] = blkio_weight
    return body


def service_spec_with_resources(spec: Mapping[str, Any], change: ContainerResize) -> dict[str, Any]:
    """A copy of a service ``spec`` with ``change`` in ``TaskTemplate.Resources``; other
    fields (``Pids``, ``GenericResources``, everything else in the spec) are kept."""
    new = copy.deepcopy(dict(spec))
    template = new.setdefault("TaskTemplate", {})
    resources = template.get("Resources") or {}
    limits = dict(resources.get("Limits") or {})
    reservations = dict(resources.get("Reservations") or {})
    if change.cpu_limit is not None:
        limits["NanoCPUs"] = round(change.cpu_limit * NANO)
    if change.memory_limit is not None:
        limits["MemoryBytes"] = round(change.memory_limit)
    if change.cpu_request is not None:
        reservations["NanoCPUs"] = round(change.cpu_request * NANO)
    if change.memory_request is not None:
        reservations["MemoryBytes"] = round(change.memory_request)
    template["Resources"] = {**resources, "Limits": limits, "Reservations": reservations}
    return new


AVOIDED_NODE_LABEL = "presize.io/avoided-node"


def avoid_constraint(hostname: str) -> str:
    return f"node.hostname!={hostname}"


def service_spec_avoiding(spec: Mapping[str, Any], hostname: str) -> dict[str, Any] | None:
    """A copy of ``spec`` whose tasks may not run on ``hostname``, in place of the node an
    earlier reschedule excluded (module docstring); ``None`` when the spec already says so."""
    constraint = avoid_constraint(hostname)
    new = copy.deepcopy(dict(spec))
    placement = new.setdefault("TaskTemplate", {}).setdefault("Placement", {})
    constraints = list(placement.get("Constraints") or [])
    if constraint in constraints:
        return None
    labels = new.setdefault("Labels", {})
    previous = labels.get(AVOIDED_NODE_LABEL)
    if isinstance(previous, str):
        ours = avoid_constraint(previous)
        constraints = [c for c in constraints if c != ours]
    placement["Constraints"] = [*constraints, constraint]
    labels[AVOIDED_NODE_LABEL] = hostname
    return new


def changed_fields(spec: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a service update would change anything (an identical spec is not sent)."""
    return dict(spec) != dict(new)
