"""The agent's loop with a fake clock, and ``main`` on a fixture tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.__main__ import _Stop, main, run
from agent.cgroups.reader import V2Reader
from agent.collector import Collector

TREES = Path(__file__).parent / "fixtures" / "trees"


class FakeTime:
    def __init__(self, tick_cost: float = 0.0) -> None:
        self.now = 0.0
        self.tick_cost = tick_cost
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class CostlyCollector(Collector):
    """A collector whose ticks take ``cost`` seconds of fake time."""

    def __init__(self, t: FakeTime, cost: float) -> None:
        root = str(TREES / "v2-systemd")
        super().__init__(V2Reader(root), scan_root=root, clock=t.clock)
        self._t, self._cost = t, cost

    def tick(self) -> None:
        super().tick()
        self._t.now += self._cost


@pytest.mark.parametrize(("cost", "ticks"), [(0.0, 6), (0.25, 6), (1.5, 3)])
def test_loop_keeps_deadlines_and_skips_the_ones_it_missed(cost: float, ticks: int) -> None:
    t = FakeTime()
    collector = CostlyCollector(t, cost)
    batches: list[float] = []
    run(
        collector,
        hz=1.0,
        batch_s=2.0,
        seconds=5.5,
        stop=_Stop(),
        emit=lambda c, now: batches.append(now),
        clock=t.clock,
        sleep=t.sleep,
    )
    assert collector.stats.ticks == ticks
    assert all(b >= 2.0 for b in batches)
    assert len(batches) == len({int(b // 2) for b in batches})  # at most one per batch


def test_loop_emits_a_batch_every_batch_seconds() -> None:
    t = FakeTime()
    collector = CostlyCollector(t, 0.0)
    batches: list[float] = []
    run(collector, hz=1.0, batch_s=2.0, seconds=6.5, stop=_Stop(),
        emit=lambda c, now: batches.append(now), clock=t.clock, sleep=t.sleep)
    assert batches == [2.0, 4.0, 6.0]


def test_main_runs_on_a_tree_and_reports_its_counters(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--root", str(TREES / "v2-systemd"), "--seconds", "0.01", "--log-level", "ERROR"])
    assert code == 0
    stats = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert stats["containers"] == 4
    assert stats["read_errors"] == 0
