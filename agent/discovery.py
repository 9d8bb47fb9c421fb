"""Find container cgroups on this node and name them: cgroup path → pod UID, container ID, QoS.

Two halves, kept apart on purpose:

* :func:`classify` is a pure function of one cgroup path. It knows the kubelet's two cgroup
  drivers and the runtimes' naming schemes, so it can be tested on every layout without a node:

  =========  ==========================================================================
  driver     container cgroup path (QoS level absent for Guaranteed pods)
  =========  ==========================================================================
  systemd    ``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/
             cri-containerd-<id>.scope`` (CRI-O: ``crio-<id>.scope``, cri-dockerd:
             ``docker-<id>.scope``; the pod UID has ``_`` for ``-``)
  cgroupfs   ``/kubepods/burstable/pod<uid>/<id>`` (CRI-O: ``crio-<id>``)
  docker     ``/docker/<id>`` or ``/system.slice/docker-<id>.scope`` (plain Docker, no pod)
  =========  ==========================================================================

  CRI-O's ``crio-conmon-<id>`` monitor cgroups are not containers and are skipped.

* :func:`scan` walks a hierarchy from its root, descending only into folders that can lead to
  a container (``kubepods*``, QoS and pod folders), so a node's thousands of system cgroups cost
  nothing. A folder removed mid-walk is skipped: containers come and go between two scans.

Pod names, namespaces and container names come from the API server, behind the
:class:`PodDirectory` protocol; the sampling loop works from UIDs and IDs alone until a
directory knows them (a pod seen in cgroups before the watch delivers it is normal).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from presize.model import PodRef, WorkloadKey


class QosClass(StrEnum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


class Driver(StrEnum):
    SYSTEMD = "systemd"
    CGROUPFS = "cgroupfs"


@dataclass(frozen=True, slots=True)
class ContainerCgroup:
    """A container's cgroup: ``path`` is relative to the hierarchy root, with a leading ``/``.

    ``pod_uid`` and ``qos`` are ``None`` for plain Docker containers that belong to no pod.
    """

    path: str
    container_id: str
    runtime: str
    driver: Driver
    pod_uid: str | None = None
    qos: QosClass | None = None


_ID = r"[0-9a-f]{64}"
_SYSTEMD_POD = re.compile(r"(?:^|-)kubepods(?:-(burstable|besteffort))?-pod([0-9a-f_]+)\.slice$")
_SYSTEMD_CONTAINER = re.compile(rf"^(cri-containerd|crio|docker)-({_ID})\.scope$")
_CGROUPFS_POD = re.compile(r"^pod([0-9a-f-]+)$")
_CGROUPFS_CONTAINER = re.compile(rf"^(?:(crio|docker)-)?({_ID})$")
_QOS = {"burstable": QosClass.BURSTABLE, "besteffort": QosClass.BEST_EFFORT}
_RUNTIME = {"cri-containerd": "containerd", "crio": "cri-o", "docker": "docker"}


def classify(path: str) -> ContainerCgroup | None:
    """The container whose cgroup is ``path``, or ``None`` if it is not a container's."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2:
        return None
    parent, leaf = parts[-2], parts[-1]
    norm = "/" + "/".join(parts)
    if m := _SYSTEMD_CONTAINER.match(leaf):
        runtime, cid = _RUNTIME[m.group(1)], m.group(2)
        if pod := _SYSTEMD_POD.search(parent):
            return ContainerCgroup(
                path=norm,
                container_id=cid,
                runtime=runtime,
                driver=Driver.SYSTEMD,
                pod_uid=pod.group(2).replace("_", "-"),
                qos=_QOS.get(pod.group(1) or "", QosClass.GUARANTEED),
            )
        if runtime == "docker" and parent == "system.slice":
            return ContainerCgroup(norm, cid, "docker", Driver.SYSTEMD)
        return None
    if m := _CGROUPFS_CONTAINER.match(leaf):
        runtime = _RUNTIME.get(m.group(1) or "", "containerd")
        if pod := _CGROUPFS_POD.match(parent):
            return ContainerCgroup(
                path=norm,
                container_id=m.group(2),
                runtime=runtime,
                driver=Driver.CGROUPFS,
                pod_uid=pod.group(1),
                qos=_QOS.get(parts[-3] if len(parts) >= 3 else "", QosClass.GUARANTEED),
            )
        if parent == "docker" and m.group(1) is None:
            return ContainerCgroup(norm, m.group(2), "docker", Driver.CGROUPFS)
    return None


def _may_lead_to_container(name: str) -> bool:
    """Whether a folder can hold container cgroups below it (prunes system cgroups)."""
    return (
        "kubepods" in name
        or name in _QOS
        or name in {"docker", "system.slice"}
        or _CGROUPFS_POD.match(name) is not None
    )


def _subdirs(folder: str) -> Iterator[str]:
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    yield entry.name
    except (FileNotFoundError, NotADirectoryError):
        return  # removed while we walked: normal churn


def scan(root: str, *, base: str = "", max_depth: int = 8) -> list[ContainerCgroup]:
    """Every container cgroup under ``root``/``base``, in path order.

    ``base`` restricts the walk to a subtree (e.g. a kubelet ``--cgroup-root``); returned paths
    stay relative to ``root``, which is what the reader takes.
    """
    root = root.rstrip("/")
    found: list[ContainerCgroup] = []
    start = "/" + base.strip("/") if base.strip("/") else ""

    def walk(rel: str, depth: int) -> None:
        for name in sorted(_subdirs(root + rel)):
            child = f"{rel}/{name}"
            container = classify(child)
            if container is not None:
                found.append(container)
            elif depth < max_depth and _may_lead_to_container(name):
                walk(child, depth + 1)

    walk(start, 0)
    return found


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the API server says about one pod: its reference, container names by container
    ID, and the workload at the top of its owner chain (``None``: nothing identifies one)."""

    ref: PodRef
    container_names: Mapping[str, str] = field(default_factory=dict)
    owner: WorkloadKey | None = None


class PodDirectory(Protocol):
    """Pods on this node by UID (the API-server watch implements this; tests use a dict)."""

    def lookup(self, pod_uid: str) -> PodInfo | None: ...


class StaticPods:
    """A :class:`PodDirectory` over a fixed mapping: tests, benchmarks, plain Docker nodes."""

    def __init__(self, pods: Mapping[str, PodInfo] | None = None) -> None:
        self._pods = dict(pods or {})

    def lookup(self, pod_uid: str) -> PodInfo | None:
        return self._pods.get(pod_uid)


def identify(container: ContainerCgroup, directory: PodDirectory) -> tuple[PodRef, str]:
    """The pod and container name to report ``container`` under.

    Until the directory knows the pod (or for plain Docker), the pod is known by UID only and
    the container by its short ID, so its samples are kept rather than dropped.
    """
    short = container.container_id[:12]
    uid = container.pod_uid or ""
    info = directory.lookup(uid) if uid else None
    if info is None:
        return PodRef(namespace="", name="", uid=uid), short
    return info.ref, info.container_names.get(container.container_id, short)


def is_pod_sandbox(container: ContainerCgroup, directory: PodDirectory) -> bool:
    """Whether ``container`` is a cgroup of a known pod that none of its containers owns: the
    pod's sandbox (pause) container under a real kubelet, or a container that is gone.

    The kubelet's cgroup for a pod holds its sandbox next to its containers, and the sandbox is
    in no status list. Sizing it makes no sense (nobody can resize it) and reporting it made a
    WorkloadProfile container named by a hex ID. Its samples are still read: its process is the
    pod's network namespace holder. A pod the directory does not know yet is not judged.
    """
    uid = container.pod_uid or ""
    info = directory.lookup(uid) if uid else None
    return info is not None and container.container_id not in info.container_names

