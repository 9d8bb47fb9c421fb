"""Node totals (CPU count, memory, load) through psutil: the only module that imports it.

Why psutil here and nowhere else: the agent reads containers from cgroup files it parses
itself (cheap, exact, testable on fixture trees), but node-wide figures differ per OS in ways
psutil already knows; one module keeps that dependency swappable. Read on scrape or per batch,
never per tick.
"""

from __future__ import annotations

from dataclasses import dataclass

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
