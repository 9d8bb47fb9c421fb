"""The kubelet's decisions and status, as pure functions (Kubernetes 1.35 semantics).

Sources read for this (kubernetes v1.35.8, not copied): ``pkg/kubelet/allocation/
allocation_manager.go`` (``handlePodResourcesResize``, ``canResizePod``), ``pkg/kubelet/status/
status_manager.go`` (resize conditions), ``pkg/kubelet/kuberuntime/kuberuntime_manager.go``
(``computePodResizeAction``, ``validatePodResizeAction``), ``pkg/kubelet/kubelet_pods.go``
(container status ``resources`` / ``allocatedResources``) and KEP-1287.

In-place resize, as the kubelet does it:

1. **Feasibility.** When a pod's desired requests (``spec``) differ from what the node
   allocated, the kubelet checks the *pod's own* new requests against the node's allocatable:
   above it the resize can never fit, condition ``PodResizePending`` reason ``Infeasible``
   ("Node didn't have enough capacity: cpu, requested: N, capacity: M"). Otherwise it runs pod
   admission against the *other* pods' allocated requests; failing that, ``PodResizePending``
   reason ``Deferred`` ("Node didn't have enough resource: cpu, requested: N, used: U,
   capacity: M"), retried whenever something changes. (So "Infeasible" is about this pod alone,
   "Deferred" about the sum; it is not "the total no longer fits".)
2. **Acceptance.** The allocation becomes the desired resources; ``PodResizePending`` goes,
   ``PodResizeInProgress`` (no reason) appears with the pod's generation as observedGeneration.
3. **Actuation.** A memory limit may not be lowered to or below current usage: the resize then
   stays in progress with reason ``Error`` and a message, and is retried. A changed resource
   whose ``resizePolicy`` says ``RestartContainer`` restarts the container.
4. **Done.** When what is applied equals what is allocated, ``PodResizeInProgress`` goes.
   ``containerStatuses[].resources`` reports what is applied, ``allocatedResources`` the
   allocated requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hack.nodeshim.resources import Requests, Resources

PENDING: Final = "PodResizePending"
IN_PROGRESS: Final = "PodResizeInProgress"
INFEASIBLE: Final = "Infeasible"
DEFERRED: Final = "Deferred"
ERROR: Final = "Error"
# Conditions the shim owns on its pods; everything else (PodScheduled, DisruptionTarget...) is
# kept as the API server has it.
POD_CONDITIONS: Final = (
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
    PENDING,
    IN_PROGRESS,
)


@dataclass(frozen=True)
class Verdict:
    """Whether a pod (or a resize) fits: ``reason`` and ``message`` say why not."""

    fits: bool
    reason: str = ""
    message: str = ""


def check_admit(pod: Requests, others: Iterable[Requests], allocatable: Requests) -> Verdict:
    """Node admission: the pod's requests on top of the other pods' allocated requests."""
    used = sum(others, Requests())
    for name, want, have, cap in (
        ("cpu", pod.cpu, used.cpu, allocatable.cpu),
        ("memory", pod.memory, used.memory, allocatable.memory),
    ):
        if want > cap - have:
            return Verdict(
                False,
                f"OutOf{name}",
                f"Node didn't have enough resource: {name}, requested: {want}, "
                f"used: {have}, capacity: {cap}",
            )
    return Verdict(True)


def check_resize(new: Requests, others: Iterable[Requests], allocatable: Requests) -> Verdict:
    """Feasibility of a resize to ``new``: Infeasible, Deferred, or fits (see step 1)."""
    if new.memory > allocatable.memory:
        return Verdict(
            False,
            INFEASIBLE,
            "Node didn't have enough capacity: memory, "
            f"requested: {new.memory}, capacity: {allocatable.memory}",
        )
    if new.cpu > allocatable.cpu:
        return Verdict(
            False,
            INFEASIBLE,
            f"Node didn't have enough capacity: cpu, requested: {new.cpu}, "
            f"capacity: {allocatable.cpu}",
        )
    admit = check_admit(new, others, allocatable)
    return Verdict(True) if admit.fits else Verdict(False, DEFERRED, admit.message)


def memory_decrease_error(
    limits: Mapping[str, tuple[int | None, int | None]], usage: Mapping[str, int]
) -> str | None:
    """The kubelet's pre-check before lowering memory limits.

    ``limits`` maps container name to (applied, new) memory limit; ``usage`` to current usage
    in bytes. A limit that is added or lowered to at or below usage makes the resize fail for
    now (``PodResizeInProgress`` reason ``Error`` with this message)."""
    errors = []
    for name, (old, new) in sorted(limits.items()):
        lowering = new is not None and (old is None or new < old)
        if lowering and new is not None and usage.get(name, 0) >= new:
            errors.append(
                f'attempting to set container "{name}" memory limit ({new}) '
                f"below current usage ({usage.get(name, 0)})"
            )
    return "cannot decrease memory limits: " + ", ".join(errors) if errors else None


def restart_needed(container: Mapping[str, Any], old: Resources, new: Resources) -> bool:
    """Whether resizing ``container`` from ``old`` to ``new`` restarts it (``resizePolicy``)."""
    policies = {
        p.get("resourceName"): p.get("restartPolicy") for p in container.get("resizePolicy") or []
    }
    changed = {
        "cpu": (old.cpu_request, old.cpu_limit) != (new.cpu_request, new.cpu_limit),
        "memory": (old.memory_request, old.memory_limit) != (new.memory_request, new.memory_limit),
    }
    return any(changed[r] and policies.get(r) == "RestartContainer" for r in changed)


def condition(
    kind: str,
    status: str,
    now: str,
    *,
    reason: str = "",
    message: str = "",
    generation: int | None = None,
    old: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod condition; ``lastTransitionTime`` is kept from ``old`` unless status or reason
    changed, so rewriting an unchanged condition does not look like a transition."""
    same = old is not None and old.get("status") == status and old.get("reason", "") == reason
    out: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastTransitionTime": old.get("lastTransitionTime") if same and old else now,
    }
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], ours: Mapping[str, Mapping[str, Any] | None]
) -> list[dict[str, Any]]:
    """The pod's conditions with ours set (``None`` removes one) and the others kept as they
    are, in a stable order: the others first, then ours in :data:`POD_CONDITIONS` order."""
    kept = [dict(c) for c in existing if c.get("type") not in ours]
    mine = [dict(c) for kind in POD_CONDITIONS if (c := ours.get(kind)) is not None]
    return kept + mine


def ready_conditions(
    existing: Sequence[Mapping[str, Any]], unready: Sequence[str], now: str, generation: int
) -> dict[str, dict[str, Any]]:
    """PodReadyToStartContainers, Initialized, ContainersReady and Ready for a started pod."""
    old = {c.get("type"): c for c in existing}
    status = "False" if unready else "True"
    reason = "ContainersNotReady" if unready else ""
    message = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
    out = {
        kind: condition(kind, "True", now, generation=generation, old=old.get(kind))
        for kind in ("PodReadyToStartContainers", "Initialized")
    }
    for kind in ("ContainersReady", "Ready"):
        out[kind] = condition(
            kind,
            status,
            now,
            reason=reason,
            message=message,
            generation=generation,
            old=old.get(kind),
        )
    return out


def status_resources(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """``containerStatuses[].resources`` for applied resources ``spec``: its requests and
    limits as written (so they compare equal to the spec the API server holds)."""
    out: dict[str, Any] = {}
    for part in ("requests", "limits"):
        values = (spec or {}).get(part)
        if values:
            out[part] = dict(values)
    return out


def allocated_requests(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict((spec or {}).get("requests") or {})


def restart_after(policy: str, exit_code: int) -> bool:
    """Whether a container that exited with ``exit_code`` is restarted under ``policy``."""
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def backoff_s(restarts: int, base_s: float, cap_s: float) -> float:
    """Delay before the next restart: doubling from ``base_s`` per restart, at most ``cap_s``."""
    return float(min(base_s * (2 ** max(restarts - 1, 0)), cap_s))


def pod_phase(states: Sequence[tuple[str, int | None]], policy: str) -> str:
    """Running while any container runs or will restart; else Succeeded/Failed by exit codes.

    ``states`` holds (state, exit code) with state ``running``, ``waiting`` or ``terminated``."""
    if not states or any(s != "terminated" for s, _ in states):
        return "Running"
    failed = any(code != 0 for _, code in states)
    if policy == "Always" or (policy == "OnFailure" and failed):
        return "Running"
    return "Failed" if failed else "Succeeded"
