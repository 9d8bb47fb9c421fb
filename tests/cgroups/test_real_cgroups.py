"""The agent against real cgroups on this machine, with real load inside them.

Tolerances, and why:

* CPU under a 0.25-core CFS quota: no 1 s rate may exceed the quota by more than 0.05 cores
  (one 100 ms period of slack at the edges of the interval), and the mean is at least 0.15
  cores, because the burner shares two cores with other work on this machine.
* The agent's CPU seconds agree with the kernel's per-process account (``/proc/<pid>/stat``)
  within 5 % + 0.05 s, the tick granularity of ``/proc``.
* Memory: a 64 MiB allocator that touched every page has a working set of 64–112 MiB
  (the interpreter itself is some 10–30 MiB).
"""

from __future__ import annotations

import os
import sys
import time

import pytest
from cgroup_scratch import UNIFIED, Scratch

from agent.cgroups.reader import V1Reader, V2Reader, open_reader
from agent.collector import Collector, CollectorSettings
from agent.discovery import ContainerCgroup, Driver

pytestmark = pytest.mark.cgroups

BURNER = ["sh", "-c", "while :; do :; done"]
MIB = 1 << 20


def allocator(mib: int, *, delay: float = 0.0) -> list[str]:
    code = (
        "import sys, time\n"
        f"time.sleep({delay})\n"
        f"b = bytearray({mib * MIB})\n"
        f"b[::4096] = b'\\x01' * ({mib * MIB} // 4096)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    return [sys.executable, "-c", code]


def collector_for(path: str) -> Collector:
    reader = open_reader("/sys/fs/cgroup")
    assert isinstance(reader, V1Reader)
    cgroup = ContainerCgroup(path=path, container_id=path, runtime="test", driver=Driver.CGROUPFS)
    return Collector(
        reader,
        scan_root="/sys/fs/cgroup/cpuacct",
        clock=time.monotonic,
        settings=CollectorSettings(rescan_s=3600.0),
        discover=lambda root, base: [cgroup],
    )


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cpu_burner_under_quota_is_measured_and_throttled(scratch: type[Scratch]) -> None:
    box = scratch("burner")
    box.write("cpu", "cpu.cfs_period_us", "100000")
    box.write("cpu", "cpu.cfs_quota_us", "25000")
    collector = collector_for(box.path)
    proc = box.start(BURNER)
    time.sleep(0.3)
    v2 = V2Reader(str(UNIFIED)) if (UNIFIED / "cgroup.procs").exists() else None
    v2_before = v2.read(box.path) if v2 else None
    collector.tick()
    cpu_before = proc_cpu_seconds(proc.pid)
    t0 = time.monotonic()
    for _ in range(4):
        time.sleep(1.0)
        collector.tick()
    span = time.monotonic() - t0
    cpu_used = proc_cpu_seconds(proc.pid) - cpu_before
    v2_after = v2.read(box.path) if v2 else None

    (window,) = collector.windows(60, now=time.monotonic(), epoch_offset=0.0)
    assert window.samples == 4
    assert window.cpu_limit == pytest.approx(0.25)
    assert window.cpu_max <= 0.25 + 0.05
    assert 0.15 <= window.cpu_mean <= 0.30
    assert window.cpu_mean * window.seconds == pytest.approx(cpu_used, rel=0.05, abs=0.05)
    assert window.cpu_throttled_fraction >= 0.5  # always runnable: most periods hit the quota
    if v2_before is not None and v2_after is not None:
        # The hybrid v2 mount counts the same CPU time; PSI there is a share of the interval.
        v2_cores = (v2_after.cpu_usage_ns - v2_before.cpu_usage_ns) / 1e9 / span
        assert v2_cores == pytest.approx(window.cpu_mean, rel=0.15, abs=0.03)
        assert v2_after.psi.cpu_us is not None
        assert v2_before.psi.cpu_us is not None
        assert v2_after.psi.cpu_us >= v2_before.psi.cpu_us


def test_memory_allocator_shows_in_working_set(scratch: type[Scratch]) -> None:
    box = scratch("alloc")
    collector = collector_for(box.path)
    proc = box.start(allocator(64))
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    collector.tick()
    time.sleep(0.5)
    collector.tick()
    (window,) = collector.windows(60, now=time.monotonic(), epoch_offset=0.0)
    assert 64 * MIB <= window.mem_max <= 112 * MIB
    sample = collector.reader.read(box.path)
    assert sample is not None
    assert sample.memory is not None
    assert sample.memory.anon >= 64 * MIB
    peak = collector.reader.read_peak(box.path)
    assert peak is not None
    assert peak >= sample.memory.usage >= sample.memory.working_set
    assert window.mem_limit is None  # no limit set: unlimited, not a huge number


def test_oom_kill_in_a_memory_limited_cgroup_is_seen(scratch: type[Scratch]) -> None:
    box = scratch("oom")
    box.write("memory", "memory.limit_in_bytes", str(48 * MIB))
    collector = collector_for(box.path)
    proc = box.start(allocator(128, delay=0.8))
    time.sleep(0.3)
    collector.tick()  # primes while the allocator still sleeps
    assert proc.wait(timeout=20) == -9  # SIGKILL from the OOM killer
    collector.tick()
    (window,) = collector.windows(60, now=time.monotonic(), epoch_offset=0.0)
    assert window.oom_kills == 1
    assert window.mem_limit == 48 * MIB


def test_a_removed_cgroup_is_gone_not_an_error(scratch: type[Scratch]) -> None:
    box = scratch("short-lived")
    collector = collector_for(box.path)
    collector.tick()
    for d in box.dirs:
        d.rmdir()
    collector.tick()
    assert collector.stats.gone == 1
    assert collector.stats.read_errors == 0
    assert collector.containers == []
