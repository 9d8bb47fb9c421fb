"""What the node agent costs: CPU (fraction of one core) and peak RSS at N containers and 1 Hz.

``python -m bench.agent --containers 100 --seconds 60`` (root, cgroup v1 or v2):

1. creates N container cgroups laid out as the kubelet's cgroupfs driver does
   (``<bench>/kubepods/burstable/pod<uid>/<64-hex id>``) in every controller the agent reads,
   with a CFS quota and a memory limit each;
2. starts one light, real load per container (a shell that spins briefly, then sleeps 1 s);
3. runs the agent as its own process (``python -m agent --base <bench> --hz 1``, with its
   ``/metrics`` server listening on 127.0.0.1 and its urgent trigger on; no controller, so no
   publisher), lets it warm up, then measures its CPU time from ``/proc/<pid>/stat`` over
   ``--seconds`` and its peak RSS (``VmHWM``);
4. stops everything by pid and removes every cgroup, also on failure.

The last line printed is one JSON object:
``{"containers": n, "hz": x, "cpu_core_fraction": x, "peak_rss_mb": x, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
LOAD = "while :; do i=0; while [ $i -lt 200 ]; do i=$((i+1)); done; sleep 1; done"
JOIN = 'for f in $PRESIZE_PROCS; do echo $$ > "$f"; done; exec "$@"'


def _controllers() -> list[Path]:
    """The hierarchies a container's cgroup lives in on this machine."""
    if (ROOT / "cgroup.controllers").exists():
        return [ROOT]
    dirs = [ROOT / c for c in ("cpu", "cpuacct", "memory", "blkio")]
    if (ROOT / "unified" / "cgroup.procs").exists():
        dirs.append(ROOT / "unified")
    return [d for d in dirs if d.is_dir()]


def _limit(folder: Path, v2: bool) -> None:
    files = (
        {"cpu.max": "5000 100000", "memory.max": str(64 << 20)}
        if v2
        else {"cpu.cfs_quota_us": "5000", "memory.limit_in_bytes": str(64 << 20)}
    )
    for name, value in files.items():
        if (folder / name).exists():
            (folder / name).write_text(value)


def _rmdir(folder: Path) -> None:
    for _ in range(100):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Bench:
    """The cgroups and processes one run creates, so all of them can be removed."""

    def __init__(self, containers: int) -> None:
        self.name = f"presize-bench-{os.getpid()}"
        self.hierarchies = _controllers()
        self.v2 = self.hierarchies == [ROOT]
        self.n = containers
        self.created: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def _mkdir(self, rel: str) -> list[Path]:
        made = []
        for h in self.hierarchies:
            d = h / rel
            d.mkdir()
            self.created.append(d)
            made.append(d)
        return made

    def setup(self) -> None:
        for rel in (self.name, f"{self.name}/kubepods", f"{self.name}/kubepods/burstable"):
            self._mkdir(rel)
        if self.v2:
            (ROOT / self.name / "cgroup.subtree_control").write_text("+cpu +memory +io")
        for _ in range(self.n):
            pod = f"{self.name}/kubepods/burstable/pod{uuid.uuid4()}"
            self._mkdir(pod)
            dirs = self._mkdir(f"{pod}/{uuid.uuid4().hex}{uuid.uuid4().hex}")
            for d in dirs:
                _limit(d, self.v2)
            env = {**os.environ, "PRESIZE_PROCS": " ".join(str(d / "cgroup.procs") for d in dirs)}
            self.procs.append(subprocess.Popen(["sh", "-c", JOIN, "sh", "sh", "-c", LOAD], env=env))

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(timeout=30)
        for d in reversed(self.created):
            _rmdir(d)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(bench: Bench, seconds: float, warmup: float, hz: float) -> dict[str, object]:
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "--base", bench.name, "--hz", str(hz), "--batch", "60",
         "--metrics-host", "127.0.0.1", "--metrics-port", str(_free_port())],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        time.sleep(warmup)
        cpu0, t0 = _proc_cpu_s(agent.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = _proc_cpu_s(agent.pid), time.monotonic()
        peak = _hwm_mb(agent.pid)
    finally:
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
    lines = [line for line in err.splitlines() if line.startswith("{")]
    stats = json.loads(lines[-1]) if lines else {}
    return {
        "containers": stats.get("containers", 0),
        "hz": round(stats.get("ticks", 0) / (t1 - t0 + warmup), 3),
        "cpu_core_fraction": round((cpu1 - cpu0) / (t1 - t0), 5),
        "peak_rss_mb": round(peak, 1),
        "read_errors": stats.get("read_errors", -1),
        "cgroup_version": 2 if bench.v2 else 1,
        "seconds": round(t1 - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.agent", description=__doc__)
    p.add_argument("--containers", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--hz", type=float, default=1.0)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.agent needs root: it creates cgroups", file=sys.stderr)
        return 2
    bench = Bench(args.containers)
    try:
        bench.setup()
        result = measure(bench, args.seconds, args.warmup, args.hz)
    finally:
        bench.cleanup()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
