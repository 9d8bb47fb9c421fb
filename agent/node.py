"""Node totals (CPU count, memory, load) through psutil: the only module that imports it.

Why psutil here and nowhere else: the agent reads containers from cgroup files it parses
itself (cheap, exact, testable on fixture trees), but node-wide figures differ per OS in ways
psutil already knows; one module keeps that dependency swappable. Read on scrape or per batch,
never per tick. The processes of a container, for diagnostics snapshots, are read here too
(:func:`read_processes`), on demand only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import psutil


@dataclass(frozen=True, slots=True)
class NodeTotals:
    """The node's capacity and load: ``cpus`` logical CPUs, memory in bytes, load averages
    (run-queue length over 1, 5 and 15 minutes, as ``uptime`` shows)."""

    cpus: int
    memory_bytes: int
    memory_available_bytes: int
    load1: float
    load5: float
    load15: float


def read_node() -> NodeTotals:
    """The node's totals now."""
    memory = psutil.virtual_memory()
    load1, load5, load15 = psutil.getloadavg()
    return NodeTotals(
        cpus=psutil.cpu_count(logical=True) or 1,
        memory_bytes=int(memory.total),
        memory_available_bytes=int(memory.available),
        load1=load1,
        load5=load5,
        load15=load15,
    )


def set_proc_root(path: str) -> None:
    """Make psutil read another ``/proc`` (a DaemonSet that mounts the host's at /host/proc)."""
    psutil.PROCFS_PATH = path


class ProcessReading(NamedTuple):
    """One process at one instant: cumulative CPU seconds (user + system) and RSS bytes."""

    pid: int
    name: str
    cpu_s: float
    rss_bytes: int


def read_processes(pids: Iterable[int]) -> list[ProcessReading]:
    """The processes among ``pids`` that still exist (one that exits meanwhile is skipped:
    diagnostics are taken of containers in trouble, whose processes come and go)."""
    out: list[ProcessReading] = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                times = proc.cpu_times()
                out.append(
                    ProcessReading(
                        pid, proc.name(), times.user + times.system, proc.memory_info().rss
                    )
                )
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return out
