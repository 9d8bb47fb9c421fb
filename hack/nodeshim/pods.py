"""What the shim knows about the pods it runs, and the pod status that follows from it.

The runtime state (:class:`PodRuntime`, :class:`Container`) is the shim's equivalent of the
kubelet's allocation checkpoint plus the container runtime's view: what was *allocated* to
each container (accepted resources), what is *applied* to its cgroup, its process, restarts
and last termination. :func:`pod_status` turns that into the ``status`` a kubelet would post;
it is a function of the state and the pod as the API server has it (for the conditions it
does not own), so recomputing it after a write conflict gives the same answer.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hack.nodeshim import kubelet
from hack.nodeshim.resources import Requests, Resources, pod_requests


@dataclass
class Container:
    """One running (or restarting, or failed) instance of a pod's container."""

    name: str
    image: str
    container_id: str  # 64 hex; "" when it could not be created
    cgroup: str  # relative cgroup path; "" when not created
    started_at: str
    started_unix: float
    restarts: int = 0
    applied: dict[str, Any] = field(default_factory=dict)  # resources written to the cgroup
    proc: subprocess.Popen[bytes] | None = None
    oom_base: int = 0  # the pod cgroup's oom_kill count when this instance started
    last_terminated: dict[str, Any] | None = None
    terminated: dict[str, Any] | None = None  # final: not restarting
    waiting: tuple[str, str] | None = None  # (reason, message)
    restart_at: float | None = None  # monotonic time of the next restart

    @property
    def running(self) -> bool:
        return self.proc is not None and self.terminated is None and self.waiting is None


@dataclass
class PodRuntime:
    """One pod bound to a shim node."""

    uid: str
    namespace: str
    name: str
    qos: str
    cgroup: str
    restart_policy: str
    pod_ip: str
    started_at: str
    allocated: dict[str, dict[str, Any]] = field(default_factory=dict)  # per container
    containers: dict[str, Container] = field(default_factory=dict)
    pending: dict[str, Any] | None = None  # PodResizePending condition
    in_progress: dict[str, Any] | None = None  # PodResizeInProgress condition
    accepted_at: float = 0.0  # monotonic time the current allocation was accepted
    rejected: kubelet.Verdict | None = None
    last_status: dict[str, Any] | None = None

    def requests(self) -> Requests:
        return pod_requests(Resources.from_spec(r) for r in self.allocated.values())

    def active(self) -> bool:
        return self.rejected is None


def pod_ip(uid: str) -> str:
    """A stable fake pod IP in 10.245.0.0/16 (kwok uses 10.244/16); nothing connects to it."""
    digest = hashlib.sha256(uid.encode()).digest()
    return f"10.245.{digest[0]}.{max(digest[1], 1)}"


def image_id(image: str) -> str:
    repo = image.split("@", 1)[0]
    if ":" in repo.rsplit("/", 1)[-1]:  # drop the tag, not a registry's port
        repo = repo.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def container_status(c: Container, allocated: Mapping[str, Any]) -> dict[str, Any]:
    """One ``containerStatuses`` entry, as a 1.35 kubelet reports it."""
    state: dict[str, Any]
    if c.terminated is not None:
        state = {"terminated": c.terminated}
    elif c.waiting is not None:
        reason, message = c.waiting
        state = {"waiting": {"reason": reason, "message": message}}
    else:
        state = {"running": {"startedAt": c.started_at}}
    out: dict[str, Any] = {
        "name": c.name,
        "image": c.image,
        "imageID": image_id(c.image) if c.container_id else "",
        "ready": c.running,
        "started": c.running,
        "restartCount": c.restarts,
        "state": state,
        "lastState": {"terminated": c.last_terminated} if c.last_terminated else {},
        # running: what the cgroup has; otherwise what it will get when it starts
        "resources": kubelet.status_resources(c.applied if c.running else allocated),
        "allocatedResources": kubelet.allocated_requests(allocated),
    }
    if c.container_id:
        out["containerID"] = f"containerd://{c.container_id}"
    return out


def pod_status(rt: PodRuntime, pod: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The full status the shim posts for ``rt`` (conditions it does not own are kept)."""
    existing = pod.get("status", {}).get("conditions") or []
    generation = int(pod.get("metadata", {}).get("generation") or 1)
    if rt.rejected is not None:
        return {
            "phase": "Failed",
            "reason": rt.rejected.reason,
            "message": f"Pod was rejected: {rt.rejected.message}",
            "observedGeneration": generation,
        }
    spec_containers = pod.get("spec", {}).get("containers") or []
    statuses = [
        container_status(rt.containers[c["name"]], rt.allocated.get(c["name"], {}))
        for c in spec_containers
        if c["name"] in rt.containers
    ]
    unready = [s["name"] for s in statuses if not s["ready"]]
    ours: dict[str, Mapping[str, Any] | None] = dict(
        kubelet.ready_conditions(existing, unready, now, generation)
    )
    ours[kubelet.PENDING] = rt.pending
    ours[kubelet.IN_PROGRESS] = rt.in_progress
    states: list[tuple[str, int | None]] = []
    for c in rt.containers.values():
        if c.terminated is not None:
            states.append(("terminated", int(c.terminated.get("exitCode", 0))))
        else:
            states.append(("waiting" if c.waiting else "running", None))
    never_started = all(not c.container_id and c.restarts == 0 for c in rt.containers.values())
    phase = "Pending" if never_started else kubelet.pod_phase(states, rt.restart_policy)
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": kubelet.merge_conditions(existing, ours),
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": rt.pod_ip,
        "podIPs": [{"ip": rt.pod_ip}],
        "startTime": rt.started_at,
        "containerStatuses": statuses,
        "observedGeneration": generation,
    }
    init = pod.get("spec", {}).get("initContainers") or []
    if init:  # not run by the shim: reported as having completed at pod start
        done = {"exitCode": 0, "reason": "Completed", "startedAt": rt.started_at}
        status["initContainerStatuses"] = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": image_id(c.get("image", "")),
                "ready": True,
                "restartCount": 0,
                "state": {"terminated": {**done, "finishedAt": rt.started_at}},
            }
            for c in init
        ]
    return status
