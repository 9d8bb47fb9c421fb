"""What the webhook knows about a namespace, and how LimitRanges become bounds (pure).

The admission path must not do I/O, yet two facts about a pod's namespace matter: its mode
(``off`` / ``initial`` / ``auto``) and its LimitRanges, which the API server enforces *after*
mutating webhooks ran (the LimitRanger plugin validates the final pod). A patch that breaks a
LimitRange would make pod creation fail, so the webhook must know the bounds up front.

Where the facts come from (see ``webhook.kube`` and ``webhook.snapshot``):

* the **mode** comes from the controller's snapshot (``namespace_modes``): the controller
  already merges the namespace annotation with any ``PresizePolicy``, and one source of truth
  avoids the webhook and the controller disagreeing. When the snapshot does not name the
  namespace, the namespace's own ``presize.io/mode`` annotation (seen by the namespace cache)
  applies, then the configured default.
* **labels and LimitRanges** come from a background-refreshed namespace cache (a list of
  namespaces and LimitRanges every few seconds). The snapshot format has no room for them, and
  LimitRanges change independently of any recommendation. When the cache has not seen a
  namespace (just created, or no API access configured), ``enabled`` is ``None`` and the
  API server's ``namespaceSelector`` is trusted alone.

Several LimitRanges in one namespace all apply, so they are merged by taking the tightest
bound of each kind. Quantities that do not parse are ignored (the API server validated them,
so this happens only for resources presize does not size).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from presize.errors import QuantityError
from presize.model import Bounds, Mode
from presize.units import parse_bytes, parse_cpu

ENABLED_LABEL = "presize.io/enabled"
MODE_ANNOTATION = "presize.io/mode"

_UNBOUNDED = Bounds()


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """Bounds for CPU (cores) and memory (bytes), with LimitRange's max limit/request ratio."""

    cpu: Bounds = _UNBOUNDED
    memory: Bounds = _UNBOUNDED
    cpu_max_ratio: float = math.inf
    memory_max_ratio: float = math.inf

    def tighten(self, other: ResourceLimits) -> ResourceLimits:
        """The intersection of two sets of bounds (both must hold)."""
        return ResourceLimits(
            cpu=_intersect(self.cpu, other.cpu),
            memory=_intersect(self.memory, other.memory),
            cpu_max_ratio=min(self.cpu_max_ratio, other.cpu_max_ratio),
            memory_max_ratio=min(self.memory_max_ratio, other.memory_max_ratio),
        )


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    """Everything about one namespace that ``mutate`` needs, gathered without I/O.

    ``enabled``: the ``presize.io/enabled`` label as last seen, ``None`` if not seen.
    ``mode``: resolved mode, ``None`` to use the webhook's default.
    ``container``: per-container LimitRange bounds (type ``Container``).
    ``pod``: LimitRange bounds on the pod's sums (type ``Pod``; ratio unused).
    ``policy``: per-container policy bounds (``PresizePolicy`` min/max) for this namespace.
    """

    name: str
    enabled: bool | None = None
    mode: Mode | None = None
    container: ResourceLimits = field(default_factory=ResourceLimits)
    pod: ResourceLimits = field(default_factory=ResourceLimits)
    policy: ResourceLimits = field(default_factory=ResourceLimits)


def _intersect(a: Bounds, b: Bounds) -> Bounds:
    return Bounds(minimum=max(a.minimum, b.minimum), maximum=min(a.maximum, b.maximum))


def _quantity(values: object, resource: str) -> float | None:
    if not isinstance(values, Mapping):
        return None
    raw = values.get(resource)
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        return None
    try:
        return parse_cpu(raw) if resource == "cpu" else parse_bytes(raw)
    except QuantityError:
        return None


def _limits_of(item: Mapping[str, Any]) -> ResourceLimits:
    bounds: dict[str, Bounds] = {}
    ratios: dict[str, float] = {}
    for resource in ("cpu", "memory"):
        low = _quantity(item.get("min"), resource)
        high = _quantity(item.get("max"), resource)
        bounds[resource] = Bounds(
            minimum=0.0 if low is None else low, maximum=math.inf if high is None else high
        )
        ratio = _quantity(item.get("maxLimitRequestRatio"), resource)  # a plain number
        ratios[resource] = math.inf if ratio is None or ratio < 1.0 else ratio
    return ResourceLimits(
        cpu=bounds["cpu"],
        memory=bounds["memory"],
        cpu_max_ratio=ratios["cpu"],
        memory_max_ratio=ratios["memory"],
    )


def limit_range_bounds(
    limit_ranges: Iterable[Mapping[str, Any]],
) -> tuple[ResourceLimits, ResourceLimits]:
    """(container bounds, pod bounds) from the raw LimitRange objects of one namespace.

    >>> lr = {"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}}]}}
    >>> limit_range_bounds([lr])[0].cpu.maximum
    2.0
    """
    container = ResourceLimits()
    pod = ResourceLimits()
    for lr in limit_ranges:
        spec = lr.get("spec") if isinstance(lr, Mapping) else None
        items = spec.get("limits") if isinstance(spec, Mapping) else None
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, Mapping):
                continue
            if item.get("type") == "Container":
                container = container.tighten(_limits_of(item))
            elif item.get("type") == "Pod":
                pod = pod.tighten(_limits_of(item))
    return container, pod


def mode_from_annotation(annotations: object) -> Mode | None:
    """The namespace's ``presize.io/mode`` annotation, ``None`` if absent or unknown."""
    if not isinstance(annotations, Mapping):
        return None
    value = annotations.get(MODE_ANNOTATION)
    try:
        return Mode(value) if isinstance(value, str) else None
    except ValueError:
        return None


def enabled_from_labels(labels: object) -> bool:
    """Whether the namespace carries ``presize.io/enabled=true``."""
    return isinstance(labels, Mapping) and labels.get(ENABLED_LABEL) == "true"


def build_namespace_infos(
    namespaces: Iterable[Mapping[str, Any]], limit_ranges: Iterable[Mapping[str, Any]]
) -> dict[str, NamespaceInfo]:
    """``NamespaceInfo`` per namespace from raw Namespace and LimitRange objects (a list call)."""
    by_namespace: dict[str, list[Mapping[str, Any]]] = {}
    for lr in limit_ranges:
        meta = lr.get("metadata") if isinstance(lr, Mapping) else None
        ns = meta.get("namespace") if isinstance(meta, Mapping) else None
        if isinstance(ns, str):
            by_namespace.setdefault(ns, []).append(lr)
    infos: dict[str, NamespaceInfo] = {}
    for obj in namespaces:
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if not isinstance(meta, Mapping) or not isinstance(name, str):
            continue
        container, pod = limit_range_bounds(by_namespace.get(name, ()))
        infos[name] = NamespaceInfo(
            name=name,
            enabled=enabled_from_labels(meta.get("labels")),
            mode=mode_from_annotation(meta.get("annotations")),
            container=container,
            pod=pod,
        )
    return infos


class NamespaceSource(Protocol):
    """What the server asks on every admission; must answer from memory."""

    def info(self, name: str) -> NamespaceInfo: ...


class StaticNamespaces:
    """Namespace facts held in a dict; an unknown namespace gets neutral defaults.

    Used as is when the webhook has no API access (the ``namespaceSelector`` alone decides,
    no LimitRange is known), and as the swap target of the background refresher.
    """

    def __init__(self, infos: Mapping[str, NamespaceInfo] | None = None) -> None:
        self.infos: Mapping[str, NamespaceInfo] = dict(infos or {})

    def info(self, name: str) -> NamespaceInfo:
        found = self.infos.get(name)
        return found if found is not None else NamespaceInfo(name=name)
