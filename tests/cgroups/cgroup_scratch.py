"""Scratch cgroups for real-cgroup tests: created per test, emptied and removed afterwards.

Each scratch cgroup has the same relative path in every v1 controller the agent reads and in
the hybrid v2 mount, as a container runtime would lay it out. Processes are started inside it
(they join before ``exec``, so nothing they do is charged elsewhere), are killed by pid, and
the folders are removed even when the test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio")
UNIFIED = ROOT / "unified"


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "real-cgroup tests need root (they create cgroups under /sys/fs/cgroup)"
    missing = [c for c in V1_CONTROLLERS if not (ROOT / c / "cgroup.procs").exists()]
    if missing:
        return f"no cgroup v1 hierarchy for {', '.join(missing)} under {ROOT}"
    return None


class Scratch:
    """One scratch cgroup, ``path`` relative to each hierarchy root (``/presize-test-…/x``)."""

    def __init__(self, name: str) -> None:
        self.path = f"/presize-test-{os.getpid()}/{name}"
        self.dirs = [ROOT / c / self.path.lstrip("/") for c in V1_CONTROLLERS]
        if (UNIFIED / "cgroup.procs").exists():
            self.dirs.append(UNIFIED / self.path.lstrip("/"))
        self.procs: list[subprocess.Popen[bytes]] = []
        for d in self.dirs:
            d.mkdir(parents=True, exist_ok=True)

    def write(self, controller: str, name: str, value: str) -> None:
        (ROOT / controller / self.path.lstrip("/") / name).write_text(value)

    def start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside every hierarchy of this cgroup (it joins before ``exec``)."""
        # A shell joins the cgroups, then execs the load in place: no preexec_fn in a
        # possibly threaded test process, and nothing runs outside the cgroup.
        join = 'for f in $PRESIZE_PROCS; do echo $$ > "$f"; done; exec "$@"'
        env = {**os.environ, "PRESIZE_PROCS": " ".join(str(d / "cgroup.procs") for d in self.dirs)}
        proc = subprocess.Popen(["sh", "-c", join, "sh", *argv], env=env, stdout=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        for d in self.dirs:
            rmdir_retry(d)


def rmdir_retry(folder: Path) -> None:
    for _ in range(50):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the kernel finishes tearing tasks down
            time.sleep(0.05)
