"""Real cgroups for the shim's containers: create, limit, fill with a process, empty, remove.

Layout (kubelet cgroupfs driver with ``--cgroup-root=/presize-shim/<node>``, containerd naming),
the same relative path in every v1 hierarchy and in the hybrid v2 mount::

    /presize-shim/<node>/kubepods/pod<uid>/<64-hex id>              Guaranteed
    /presize-shim/<node>/kubepods/burstable/pod<uid>/<64-hex id>    Burstable
    /presize-shim/<node>/kubepods/besteffort/pod<uid>/<64-hex id>   BestEffort

The per-node prefix keeps several fake nodes on one machine apart, and keeps the shim's
folders away from any real kubelet's ``/kubepods``. ``agent.discovery.scan(root,
base="presize-shim/<node>")`` finds the containers as it would on a node.

Only cgroup v1 controllers (this machine's layout: ``/sys/fs/cgroup/<controller>`` plus v2 at
``/sys/fs/cgroup/unified``, which carries no controllers but gives PSI files) are supported;
a pure v2 host raises :class:`CgroupError`.

Processes are found through the cgroups' own ``cgroup.procs`` and killed by pid: everything in a
container's cgroup belongs to that container, and nothing is ever looked up by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Final

from hack.nodeshim.resources import CgroupValues

V1_CONTROLLERS: Final = ("cpu", "cpuacct", "memory", "blkio", "pids")
REQUIRED: Final = ("cpu", "cpuacct", "memory")
QOS_DIRS: Final = {"Guaranteed": "", "Burstable": "burstable", "BestEffort": "besteffort"}
# A shell joins every hierarchy, then execs the load in place: the load's first page is already
# charged to the container, and no preexec_fn runs in the threaded shim.
_JOIN: Final = 'for f in $PRESIZE_SHIM_PROCS; do echo $$ > "$f"; done; exec "$@"'


class CgroupError(RuntimeError):
    """This machine's cgroups cannot host the shim (or a cgroup file could not be written)."""


class CgroupFs:
    """The cgroup hierarchies under ``root``, used below the per-node ``base`` folder."""

    def __init__(self, root: Path | str, base: str) -> None:
        self.root = Path(root)
        self.base = "/" + base.strip("/")
        self.controllers: dict[str, Path] = {}
        for name in V1_CONTROLLERS:
            mount = self.root / name
            if (mount / "cgroup.procs").exists():
                self.controllers[name] = mount.resolve()
        missing = [c for c in REQUIRED if c not in self.controllers]
        if missing:
            raise CgroupError(
                f"no cgroup v1 {', '.join(missing)} under {self.root} "
                "(the shim supports the v1 layout only; see `mount | grep cgroup`)"
            )
        unified = self.root / "unified"
        self.unified = unified if (unified / "cgroup.procs").exists() else None

    # ---- paths

    def hierarchies(self) -> list[Path]:
        """Each distinct mount once (``cpu`` and ``cpuacct`` may share one)."""
        mounts = list(dict.fromkeys(self.controllers.values()))
        return [*mounts, self.unified] if self.unified else mounts

    def pod_path(self, qos: str, uid: str) -> str:
        qos_dir = QOS_DIRS.get(qos, "burstable")
        return "/".join(p for p in (self.base, "kubepods", qos_dir, f"pod{uid}") if p)

    def qos_path(self, qos: str) -> str:
        return "/".join(p for p in (self.base, "kubepods", QOS_DIRS.get(qos, "burstable")) if p)

    def dir(self, controller: str, rel: str) -> Path:
        return self.controllers[controller] / rel.lstrip("/")

    def dirs(self, rel: str) -> list[Path]:
        return [h / rel.lstrip("/") for h in self.hierarchies()]

    # ---- files

    def create(self, rel: str) -> None:
        for d in self.dirs(rel):
            d.mkdir(parents=True, exist_ok=True)

    def exists(self, rel: str) -> bool:
        return self.dir("cpuacct", rel).is_dir()

    def write(self, controller: str, rel: str, name: str, value: str | int) -> None:
        path = self.dir(controller, rel) / name
        try:
            path.write_text(str(value), encoding="ascii")
        except OSError as err:
            raise CgroupError(f"write {value} to {path}: {err.strerror}") from err

    def read(self, controller: str, rel: str, name: str) -> str:
        return (self.dir(controller, rel) / name).read_text(encoding="ascii")

    def read_int(self, controller: str, rel: str, name: str) -> int:
        return int(self.read(controller, rel, name).strip())

    def apply_cpu(self, rel: str, values: CgroupValues) -> None:
        self.write("cpu", rel, "cpu.shares", values.cpu_shares)
        self.write("cpu", rel, "cpu.cfs_period_us", values.cpu_period_us)
        self.write("cpu", rel, "cpu.cfs_quota_us", values.cpu_quota_us)

    def apply_memory(self, rel: str, values: CgroupValues) -> None:
        limit = -1 if values.memory_limit is None else values.memory_limit
        self.write("memory", rel, "memory.limit_in_bytes", limit)

    def applied(self, rel: str) -> CgroupValues:
        """The values a cgroup really has (memory: None when unlimited)."""
        memory = self.read_int("memory", rel, "memory.limit_in_bytes")
        return CgroupValues(
            cpu_shares=self.read_int("cpu", rel, "cpu.shares"),
            cpu_quota_us=self.read_int("cpu", rel, "cpu.cfs_quota_us"),
            cpu_period_us=self.read_int("cpu", rel, "cpu.cfs_period_us"),
            memory_limit=None if memory >= 2**62 else memory,
        )

    def oom_kills(self, rel: str) -> int:
        """The ``oom_kill`` counter of ``memory.oom_control`` (0 if the cgroup is gone)."""
        try:
            text = self.read("memory", rel, "memory.oom_control")
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def memory_usage(self, rel: str) -> int:
        return self.read_int("memory", rel, "memory.usage_in_bytes")

    # ---- processes

    def spawn(
        self,
        rel: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        stderr: IO[bytes] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the cgroup ``rel`` (in every hierarchy, before it execs)."""
        procs = " ".join(str(d / "cgroup.procs") for d in self.dirs(rel))
        return subprocess.Popen(
            ["/bin/sh", "-c", _JOIN, "sh", *argv],
            env={**env, "PRESIZE_SHIM_PROCS": procs},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
            close_fds=True,
        )

    def pids(self, rel: str) -> set[int]:
        """Every pid in ``rel`` or below it, in any hierarchy."""
        found: set[int] = set()
        for top in self.dirs(rel):
            for folder, _, _ in os.walk(top):
                with contextlib.suppress(OSError):
                    text = (Path(folder) / "cgroup.procs").read_text(encoding="ascii")
                    found.update(int(p) for p in text.split())
        return found

    def kill_all(self, rel: str, timeout: float = 10.0) -> None:
        """SIGKILL every process in ``rel`` (by the pids its cgroups list) until none is left."""
        deadline = time.monotonic() + timeout
        while pids := self.pids(rel):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {sorted(pids)} in {rel} did not exit")
            time.sleep(0.02)

    def remove(self, rel: str) -> None:
        """Kill what runs in ``rel`` and remove its folders, deepest first, in every hierarchy."""
        self.kill_all(rel)
        for top in self.dirs(rel):
            if not top.is_dir():
                continue
            folders = [Path(f) for f, _, _ in os.walk(top)]
            for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
                _rmdir_retry(folder)

    def remove_empty_parents(self, rel: str, stop: str) -> None:
        """rmdir ``rel``'s ancestors up to and including ``stop`` while they are empty."""
        parts = rel.strip("/").split("/")
        stop_depth = len(stop.strip("/").split("/"))
        while len(parts) >= stop_depth:
            for top in self.dirs("/".join(parts)):
                with contextlib.suppress(OSError):
                    top.rmdir()
            parts.pop()


def _rmdir_retry(folder: Path, attempts: int = 100) -> None:
    for _ in range(attempts):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the kernel finishes tearing the last task down
            time.sleep(0.02)
    raise CgroupError(f"cannot remove {folder}")
