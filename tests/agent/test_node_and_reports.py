"""Node totals through psutil, and windows cut into reports under the size cap."""

from __future__ import annotations

import itertools

import pytest

from agent.node import read_node
from agent.reports import build_reports
from presize.model import PodRef, UsageWindow


def test_node_totals_are_this_machines() -> None:
    node = read_node()
    assert node.cpus >= 1
    assert 0 < node.memory_available_bytes <= node.memory_bytes
    assert node.load1 >= 0.0


def windows(n: int) -> list[UsageWindow]:
    return [
        UsageWindow(
            pod=PodRef("ns", f"p{i}", f"u{i}"),
            container="c",
            start=0.0,
            seconds=60.0,
            samples=60,
            cpu_mean=0.1,
            cpu_max=0.1,
            cpu_p50=0.1,
            cpu_p90=0.1,
            cpu_p99=0.1,
            cpu_throttled_fraction=0.0,
            mem_mean=1.0,
            mem_max=1.0,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(("n", "sizes"), [(0, []), (2, [2]), (5, [2, 2, 1])])
def test_reports_are_cut_at_max_windows_with_one_sequence_each(n: int, sizes: list[int]) -> None:
    seq = itertools.count(7)
    reports = build_reports(windows(n), node="n1", agent_id="a", sent_at=1.0,
                            sequence=lambda: next(seq), max_windows=2,
                            urgent_reasons=("oom-kill: x",))  # fmt: skip
    assert [len(r.windows) for r in reports] == sizes
    assert [r.sequence for r in reports] == list(range(7, 7 + len(sizes)))
    assert all(r.urgent for r in reports)
