"""Where the demo's observer finds a container's cgroups, for each kind of node (cgroup v1).

The observer compares presize's allocations with the usage the kernel accounted, so it reads
``cpuacct.usage`` and ``memory.*`` itself instead of asking presize. Which directory holds them
depends on who made the cgroups, so it is a small function handed to the observer
(:data:`CgroupLocator`) rather than a path pattern inside it:

* **node shim** (:func:`shim_pod_cgroups`): the shim puts every pod under its own prefix and
  node, ``<root>/<controller>/<prefix>/<node>/kubepods[/<qos>]/pod<uid>``. The pod's cgroup is
  read (the shim runs one load process per container and no pause process), and it survives
  a container restart.
* **real kubelet** (:func:`kubelet_container_cgroups`): the kubelet's cgroupfs driver lays
  out ``<root>/<controller>/kubepods[/<qos>]/pod<uid>/<container ID>`` (as
  ``tests/node/conftest.py`` reads it). The *container's* cgroup is read, because the pod's
  also holds the sandbox's pause process; a restarted container gets a new ID and so a new
  directory, which is why the locator takes the container ID.

A locator returns ``(cpuacct dir, memory dir)`` once the directory exists, else ``None`` (not
created yet, or already gone); the observer retries on its next poll.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
QOS_DIRS: Final = ("", "burstable", "besteffort")  # Guaranteed pods sit in kubepods itself

# (pod uid, node name, container ID without its runtime prefix) -> (cpuacct dir, memory dir)
CgroupLocator = Callable[[str, str, str], tuple[Path, Path] | None]


def container_id(status: str) -> str:
    """``containerd://abc`` -> ``abc`` (what the kubelet names the cgroup after); ``""`` for
    a container that has not started yet."""
    return status.split("://", 1)[1] if "://" in status else status


def _first_existing(candidates: list[tuple[Path, Path]]) -> tuple[Path, Path] | None:
    for cpu, memory in candidates:
        if cpu.is_dir():
            return cpu, memory
    return None


def shim_pod_paths(root: Path, prefix: str, node: str, uid: str) -> list[tuple[Path, Path]]:
    """Where the node shim may have put pod ``uid`` of ``node``, one candidate per QoS class."""
    base = Path(prefix) / node / "kubepods"
    return [
        (root / "cpuacct" / base / qos / f"pod{uid}", root / "memory" / base / qos / f"pod{uid}")
        for qos in QOS_DIRS
    ]


def kubelet_container_paths(root: Path, uid: str, cid: str) -> list[tuple[Path, Path]]:
    """Where a kubelet with the cgroupfs driver puts container ``cid`` of pod ``uid``."""
    rel = [Path("kubepods") / qos / f"pod{uid}" / cid for qos in QOS_DIRS]
    return [(root / "cpuacct" / r, root / "memory" / r) for r in rel]


def shim_pod_cgroups(root: Path, prefix: str) -> CgroupLocator:
    """The locator for pods of the node shim (cgroups under ``<root>/*/<prefix>/<node>``)."""

    def locate(uid: str, node: str, cid: str) -> tuple[Path, Path] | None:
        return _first_existing(shim_pod_paths(root, prefix, node, uid)) if node else None

    return locate


def kubelet_container_cgroups(root: Path = CGROUP_ROOT) -> CgroupLocator:
    """The locator for containers a real kubelet (cgroupfs driver) started on this machine.
    The node name is not part of the path: one kubelet per machine owns ``kubepods``."""

    def locate(uid: str, node: str, cid: str) -> tuple[Path, Path] | None:
        return _first_existing(kubelet_container_paths(root, uid, cid)) if cid else None

    return locate
