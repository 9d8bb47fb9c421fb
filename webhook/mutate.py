"""``mutate``: a new pod, what we know, and a clock in; a JSON Patch and its reasons out (pure).

This is the whole admission decision. It performs no I/O, reads no clock and raises nothing
for any input (a ``dict`` of any shape): every way of not patching is an :class:`Outcome`
with a human sentence in ``warnings``, so the server can count it, log it and show it to the
user (``kubectl`` prints admission warnings). The server adds only transport concerns.

The patch replaces each sized container's whole ``resources`` object (``add`` on an existing
member replaces it), keeping every key presize does not own (ephemeral storage, extended
resources, ``claims``). One operation per container keeps the patch small and independent of
which sub-maps the user happened to write.

``presize.io/applied`` records the change as JSON::

    {"v": 1, "workload": "shop/Deployment/web", "snapshot": 42, "at": 1767225600,
     "containers": {"app": {"generation": 7, "confidence": 0.83,
                            "requests": {"cpu": ["100m", "250m"], "memory": [null, "320Mi"]},
                            "limits": {"memory": ["1Gi", "1Gi"]}}}}

with each value as ``[before, after]`` (``null`` when unset). A container given the configured
cold-start default (no profile and no requests or limits of its own) is recorded with
``"generation": 0, "confidence": 0, "cold_start": true``.

Policy bounds: the snapshot's ``PresizePolicy`` min/max for the pod's namespace (then for the
container's name, which wins) replace the webhook's flag bounds value by value; the flags are
the cluster-wide fallback for whatever the policy leaves unset. LimitRanges tighten the result.

Bandwidth recommendations are
taken to be in bits per second, the unit of the ``kubernetes.io/*-bandwidth`` annotations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from presize.errors import QuantityError
from presize.model import Bounds, Mode, Recommendation, WorkloadKey
from presize.owners import workload_candidates
from presize.units import MIB, format_bytes, format_cpu, parse_bytes, parse_cpu
from presize.wire import PolicyBounds
from webhook.index import SnapshotIndex
from webhook.namespaces import NamespaceInfo, ResourceLimits
from webhook.review import PatchOp
from webhook.sizing import Amounts, Grid, LimitPolicy, QoS, Sized, qos_class, size_resource

APPLIED_ANNOTATION = "presize.io/applied"
EXCLUDE_ANNOTATION = "presize.io/exclude"
EGRESS_ANNOTATION = "kubernetes.io/egress-bandwidth"
INGRESS_ANNOTATION = "kubernetes.io/ingress-bandwidth"


class Outcome(StrEnum):
    """What ``mutate`` decided; used as a metric label, so the set is closed."""

    PATCHED = "patched"
    UNCHANGED = "unchanged"
    EXCLUDED = "excluded"
    NOT_ENABLED = "namespace-not-enabled"
    MODE_OFF = "mode-off"
    NO_SNAPSHOT = "no-snapshot"
    STALE_SNAPSHOT = "stale-snapshot"
    NO_WORKLOAD = "no-workload"
    NO_PROFILE = "no-profile"
    BEST_EFFORT = "best-effort"
    POD_RESOURCES = "pod-level-resources"
    QOS_WOULD_CHANGE = "qos-would-change"
    POD_LIMIT_RANGE = "pod-limit-range"
    INVALID_POD = "invalid-pod"
    COLD_START = "cold-start"


@dataclass(frozen=True, slots=True, kw_only=True)
class MutateSettings:
    """How pods are sized. ``bounds`` is the cluster-wide policy min/max per container."""

    limit_policy: LimitPolicy = LimitPolicy.KEEP_RATIO
    default_mode: Mode = Mode.INITIAL
    max_snapshot_age_s: float = 900.0
    grid: Grid = field(default_factory=Grid)
    bounds: ResourceLimits = field(
        default_factory=lambda: ResourceLimits(
            cpu=Bounds(minimum=0.01), memory=Bounds(minimum=16 * MIB)
        )
    )
    mem_peak_factor: float = 1.0
    bandwidth_annotations: bool = False
    bandwidth_headroom: float = 1.5
    cold_start_cpu: float | None = None  # cores; None: no cold-start default
    cold_start_memory: float | None = None  # bytes

    @property
    def cold_start(self) -> bool:
        return self.cold_start_cpu is not None or self.cold_start_memory is not None


@dataclass(frozen=True, slots=True)
class MutationResult:
    """The decision: patch operations (empty: admit unchanged), warnings, and why."""

    outcome: Outcome
    patch: tuple[PatchOp, ...] = ()
    warnings: tuple[str, ...] = ()
    annotation: dict[str, Any] | None = None
    workload: WorkloadKey | None = None


@dataclass(frozen=True, slots=True)
class _Slot:
    """One container in the pod spec: which list, which index, and its parsed amounts."""

    list_name: str
    index: int
    name: str
    raw: Mapping[str, Any]
    amounts: Amounts
    sized: bool  # app containers and sidecars are sized; plain init containers are not


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _parse_amounts(container: Mapping[str, Any]) -> Amounts:
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise QuantityError("resources is not an object")
    values: dict[str, float | None] = {}
    for part in ("requests", "limits"):
        section = resources.get(part) or {}
        if not isinstance(section, Mapping):
            raise QuantityError(f"resources.{part} is not an object")
        cpu, memory = section.get("cpu"), section.get("memory")
        values[f"cpu_{part}"] = None if cpu is None else parse_cpu(cpu)
        values[f"memory_{part}"] = None if memory is None else parse_bytes(memory)
    return Amounts(
        cpu_request=values["cpu_requests"],
        cpu_limit=values["cpu_limits"],
        memory_request=values["memory_requests"],
        memory_limit=values["memory_limits"],
    )


def _slots(spec: Mapping[str, Any]) -> list[_Slot]:
    """Every container of the pod; raises ``QuantityError``/``ValueError`` on a bad spec."""
    slots: list[_Slot] = []
    for list_name in ("initContainers", "containers"):
        items = spec.get(list_name) or []
        if not isinstance(items, list):
            raise ValueError(f"spec.{list_name} is not a list")
        for index, container in enumerate(items):
            if not isinstance(container, Mapping) or not isinstance(container.get("name"), str):
                raise ValueError(f"spec.{list_name}[{index}] has no name")
            sidecar = list_name == "initContainers" and container.get("restartPolicy") == "Always"
            slots.append(
                _Slot(
                    list_name=list_name,
                    index=index,
                    name=container["name"],
                    raw=container,
                    amounts=_parse_amounts(container),
                    sized=list_name == "containers" or sidecar,
                )
            )
    if not any(s.list_name == "containers" for s in slots):
        raise ValueError("spec.containers is empty")
    return slots


def _size_slot(
    slot: _Slot, rec: Recommendation, *, guaranteed: bool, bounds: ResourceLimits,
    settings: MutateSettings,
) -> tuple[Sized, Sized]:  # fmt: skip
    a = slot.amounts
    cpu = size_resource(
        rec.cpu, cpu=True, current_request=a.cpu_request, current_limit=a.cpu_limit,
        guaranteed=guaranteed, floor=0.0, bounds=bounds.cpu, max_ratio=bounds.cpu_max_ratio,
        policy=settings.limit_policy, grid=settings.grid,
    )  # fmt: skip
    peak = rec.mem_peak * settings.mem_peak_factor if math.isfinite(rec.mem_peak) else 0.0
    memory = size_resource(
        rec.memory, cpu=False, current_request=a.memory_request, current_limit=a.memory_limit,
        guaranteed=guaranteed, floor=peak, bounds=bounds.memory,
        max_ratio=bounds.memory_max_ratio, policy=settings.limit_policy, grid=settings.grid,
    )  # fmt: skip
    return cpu, memory


def _override(bounds: Bounds, low: float | None, high: float | None) -> Bounds:
    return Bounds(
        minimum=bounds.minimum if low is None else low,
        maximum=bounds.maximum if high is None else high,
    )


def _with_policy(base: ResourceLimits, policies: tuple[PolicyBounds, ...]) -> ResourceLimits:
    """``base`` (the flags) with each value a ``PresizePolicy`` sets replacing it."""
    for p in policies:
        base = ResourceLimits(
            cpu=_override(base.cpu, p.cpu_min, p.cpu_max),
            memory=_override(base.memory, p.memory_min, p.memory_max),
            cpu_max_ratio=base.cpu_max_ratio,
            memory_max_ratio=base.memory_max_ratio,
        )
    return base


def _cold_sizes(
    slot: _Slot, bounds: ResourceLimits, settings: MutateSettings
) -> tuple[Sized | None, Sized | None] | None:
    """The configured cold-start default, in bounds, for a container that asks for nothing.

    A container with any CPU/memory request or limit is left alone: a limit alone means the
    API server copies it into the request, and a smaller default would change the QoS class.
    """
    a = slot.amounts
    if any(v is not None for v in (a.cpu_request, a.cpu_limit, a.memory_request, a.memory_limit)):
        return None
    cpu = settings.cold_start_cpu
    memory = settings.cold_start_memory
    return (
        None if cpu is None else Sized(bounds.cpu.clamp(cpu), None),
        None if memory is None else Sized(bounds.memory.clamp(memory), None),
    )


def _new_resources(slot: _Slot, cpu: Sized | None, memory: Sized | None) -> dict[str, Any]:
    resources = dict(slot.raw.get("resources") or {})
    requests = dict(resources.get("requests") or {})
    if cpu is not None:
        requests["cpu"] = format_cpu(cpu.request)
    if memory is not None:
        requests["memory"] = format_bytes(memory.request)
    resources["requests"] = requests
    limits = dict(resources.get("limits") or {})
    if cpu is not None and cpu.limit is not None:
        limits["cpu"] = format_cpu(cpu.limit)
    if memory is not None and memory.limit is not None:
        limits["memory"] = format_bytes(memory.limit)
    if limits:
        resources["limits"] = limits
    return resources


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = {}
    for part in ("requests", "limits"):
        before, after = old.get(part) or {}, new.get(part) or {}
        pairs = {
            r: [before.get(r), after.get(r)]
            for r in ("cpu", "memory")
            if after.get(r) is not None and before.get(r) != after.get(r)
        }
        if pairs:
            out[part] = pairs
    return out


def _skip(
    outcome: Outcome,
    warning: str | None = None,
    *,
    workload: WorkloadKey | None = None,
    earlier: tuple[str, ...] = (),
) -> MutationResult:
    warnings = (*earlier, warning) if warning else earlier
    return MutationResult(outcome=outcome, warnings=warnings, workload=workload)


def _bandwidth(bits_per_s: float, headroom: float) -> str:
    return f"{max(1, math.ceil(bits_per_s * headroom / 1e6))}M"


def _bandwidth_ops(
    annotations: Mapping[str, Any], recs: list[Recommendation], settings: MutateSettings
) -> tuple[list[PatchOp], dict[str, str]]:
    ops: list[PatchOp] = []
    added: dict[str, str] = {}
    if not settings.bandwidth_annotations or not recs:
        return ops, added
    for key, values in (
        (EGRESS_ANNOTATION, [r.net_egress_bps for r in recs]),
        (INGRESS_ANNOTATION, [r.net_ingress_bps for r in recs]),
    ):
        if key in annotations or any(v is None or not math.isfinite(v) for v in values):
            continue  # the user's own value wins; a partial prediction is no prediction
        total = sum(v for v in values if v is not None)
        added[key] = _bandwidth(total, settings.bandwidth_headroom)
        path = f"/metadata/annotations/{_escape(key)}"
        ops.append({"op": "add", "path": path, "value": added[key]})
    return ops, added


def mutate(
    pod: object,
    namespace: NamespaceInfo,
    snapshot: SnapshotIndex | None,
    settings: MutateSettings,
    now: float,
) -> MutationResult:
    """Decide how to size the new ``pod`` (a raw Pod object) in ``namespace`` at time ``now``."""
    if not isinstance(pod, Mapping) or not isinstance(pod.get("metadata", {}), Mapping):
        return _skip(Outcome.INVALID_POD, "presize: the object is not a pod; left unchanged")
    metadata: Mapping[str, Any] = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        return _skip(Outcome.INVALID_POD, "presize: metadata.annotations is not a map")
    if namespace.enabled is False:
        return _skip(Outcome.NOT_ENABLED, f"presize: namespace {namespace.name} is not opted in")
    if annotations.get(EXCLUDE_ANNOTATION) == "true":
        return _skip(Outcome.EXCLUDED)
    mode = (snapshot.modes.get(namespace.name) if snapshot else None) or namespace.mode
    if (mode or settings.default_mode) is Mode.OFF:
        return _skip(Outcome.MODE_OFF)
    if snapshot is None:
        return _skip(Outcome.NO_SNAPSHOT, "presize: no recommendations loaded yet; unchanged")
    age = now - snapshot.generated_at
    if age > settings.max_snapshot_age_s:
        return _skip(
            Outcome.STALE_SNAPSHOT, f"presize: recommendations are {age:.0f}s old; unchanged"
        )
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return _skip(Outcome.INVALID_POD, "presize: pod has no spec; left unchanged")
    if spec.get("resources"):
        return _skip(Outcome.POD_RESOURCES, "presize: pod-level resources are set; unchanged")
    try:
        slots = _slots(spec)
    except (QuantityError, ValueError) as exc:
        return _skip(Outcome.INVALID_POD, f"presize: cannot read the pod ({exc}); unchanged")
    qos = qos_class([s.amounts for s in slots])
    if qos is QoS.BEST_EFFORT:
        return _skip(Outcome.BEST_EFFORT, "presize: BestEffort pod left without requests")
    candidates = workload_candidates(pod, namespace.name)
    workload = next((w for w in candidates if w in snapshot.workloads), None)
    if workload is None:
        what = str(candidates[0]) if candidates else "this pod's owner"
        if not settings.cold_start:
            return _skip(Outcome.NO_PROFILE, f"presize: no profile yet for {what}; unchanged")
    return _patch(
        pod,
        slots,
        qos=qos,
        workload=workload,
        candidate=candidates[0] if candidates else None,
        namespace=namespace,
        snapshot=snapshot,
        settings=settings,
        now=now,
    )


def _cold_slot(
    slot: _Slot, bounds: ResourceLimits, settings: MutateSettings, what: str
) -> tuple[tuple[Sized | None, Sized | None] | None, str]:
    """The cold-start sizes for a sized container without a profile, and the warning."""
    sizes = _cold_sizes(slot, bounds, settings) if settings.cold_start else None
    if sizes is None:
        return None, f"presize: no profile for container {slot.name}; left unchanged"
    cpu, memory = sizes
    given = ", ".join(
        f"{name} {text}"
        for name, text in (
            ("cpu", None if cpu is None else format_cpu(cpu.request)),
            ("memory", None if memory is None else format_bytes(memory.request)),
        )
        if text is not None
    )
    return sizes, (
        f"presize: no profile yet for {what}, container {slot.name}; "
        f"cold-start default applied ({given})"
    )


def _patch(
    pod: Mapping[str, Any], slots: list[_Slot], *, qos: QoS, workload: WorkloadKey | None,
    candidate: WorkloadKey | None, namespace: NamespaceInfo, snapshot: SnapshotIndex,
    settings: MutateSettings, now: float,
) -> MutationResult:  # fmt: skip
    """Size every container with a profile (or the cold-start default); ``workload`` is
    ``None`` when the pod's workload has no profile at all (cold start only)."""
    named = workload or candidate
    what = str(named) if named else "this pod's owner"
    warnings: list[str] = []
    ops: list[PatchOp] = []
    record: dict[str, Any] = {}
    used: list[Recommendation] = []
    final: list[Amounts] = []
    cold = 0
    for slot in slots:
        bounds = (
            _with_policy(settings.bounds, snapshot.policy_bounds(namespace.name, slot.name))
            .tighten(namespace.policy)
            .tighten(namespace.container)
        )
        rec = snapshot.recommendation(workload, slot.name) if slot.sized and workload else None
        if slot.sized and rec is None:
            sizes, warning = _cold_slot(slot, bounds, settings, what)
            warnings.append(warning)
            if sizes is not None:
                cold_cpu, cold_memory = sizes
                new = _new_resources(slot, cold_cpu, cold_memory)
                final.append(
                    Amounts(
                        None if cold_cpu is None else cold_cpu.request,
                        None,
                        None if cold_memory is None else cold_memory.request,
                        None,
                    )
                )
                path = f"/spec/{slot.list_name}/{slot.index}/resources"
                ops.append({"op": "add", "path": path, "value": new})
                changes = _changes(slot.raw.get("resources") or {}, new)
                record[slot.name] = {
                    "generation": 0, "confidence": 0, "cold_start": True, **changes
                }  # fmt: skip
                cold += 1
                continue
        if rec is None:
            final.append(slot.amounts)
            continue
        try:
            cpu, memory = _size_slot(
                slot, rec, guaranteed=qos is QoS.GUARANTEED, bounds=bounds, settings=settings
            )
        except (ValueError, QuantityError) as exc:
            warnings.append(f"presize: container {slot.name} left unchanged ({exc})")
            final.append(slot.amounts)
            continue
        final.append(Amounts(cpu.request, cpu.limit, memory.request, memory.limit))
        used.append(rec)
        old = slot.raw.get("resources") or {}
        new = _new_resources(slot, cpu, memory)
        changes = _changes(old, new)
        if not changes:
            continue
        path = f"/spec/{slot.list_name}/{slot.index}/resources"
        ops.append({"op": "add", "path": path, "value": new})
        record[slot.name] = {
            "generation": rec.generation,
            "confidence": round(rec.confidence, 3),
            **changes,
        }
    if cold:  # the cold-start sentences were about a change that is now not made
        earlier = tuple(w for w in warnings if "cold-start default applied" not in w)
    else:
        earlier = tuple(warnings)
    if qos_class(final) is not qos:
        message = f"presize: sizing would change the QoS class {qos}; unchanged"
        return _skip(Outcome.QOS_WOULD_CHANGE, message, workload=workload, earlier=earlier)
    if problem := _pod_limit_problem(final, namespace.pod):
        message = f"presize: {problem}; unchanged"
        return _skip(Outcome.POD_LIMIT_RANGE, message, workload=workload, earlier=earlier)
    metadata: Mapping[str, Any] = pod.get("metadata") or {}
    annotations: Mapping[str, Any] = metadata.get("annotations") or {}
    bw_ops, bandwidth = _bandwidth_ops(annotations, used, settings)
    if not ops and not bw_ops:
        if workload is None:  # cold start found nothing it may touch
            message = f"presize: no profile yet for {what}; unchanged"
            return _skip(Outcome.NO_PROFILE, message, earlier=earlier)
        return MutationResult(Outcome.UNCHANGED, (), tuple(warnings), None, workload)
    annotation: dict[str, Any] = {
        "v": 1,
        "workload": what,
        "snapshot": snapshot.generation,
        "at": int(now),
        "containers": record,
    }
    if bandwidth:
        annotation["bandwidth"] = bandwidth
    head: list[PatchOp] = []
    if not metadata.get("annotations"):
        head.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    text = json.dumps(annotation, separators=(",", ":"), sort_keys=True)
    head.append(
        {"op": "add", "path": f"/metadata/annotations/{_escape(APPLIED_ANNOTATION)}", "value": text}
    )
    patch = (*head, *bw_ops, *ops)
    outcome = Outcome.COLD_START if cold and not used else Outcome.PATCHED
    return MutationResult(outcome, patch, tuple(warnings), annotation, workload)


def _pod_limit_problem(containers: list[Amounts], pod: ResourceLimits) -> str | None:
    """A sentence if the pod's sums break a ``Pod`` LimitRange, else ``None``.

    Sums over every container; init containers only run before the others, so this is
    conservative (the API server takes the larger of the two).
    """
    checks = (
        ("cpu requests", [c.cpu_request for c in containers], pod.cpu),
        ("cpu limits", [c.cpu_limit for c in containers], pod.cpu),
        ("memory requests", [c.memory_request for c in containers], pod.memory),
        ("memory limits", [c.memory_limit for c in containers], pod.memory),
    )
    for what, values, bounds in checks:
        total = sum(v for v in values if v is not None)
        if total > bounds.maximum:
            return f"pod {what} would exceed the namespace's Pod LimitRange"
    return None
