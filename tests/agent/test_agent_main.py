"""The agent's loop with a fake clock, and ``main`` on a fixture tree: batches, publishing to
a stand-in controller on 127.0.0.1, ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import aiohttp
import pytest
from ingest_standin import TOKEN, IngestStandIn

from agent.__main__ import Agent, _parser, main, run
from agent.cgroups.reader import V2Reader
from agent.collector import Collector
from presize.wire import decode_report

TREES = Path(__file__).parent / "fixtures" / "trees"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
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


async def run_fake(cost: float, seconds: float, period: float) -> tuple[Collector, list[float]]:
    t = FakeTime()
    collector = CostlyCollector(t, cost)
    calls: list[float] = []
    await run(collector, hz=1.0, seconds=seconds, stop=asyncio.Event(),
              every=[(period, calls.append)], clock=t.clock, sleep=t.sleep)  # fmt: skip
    return collector, calls


@pytest.mark.parametrize(("cost", "ticks"), [(0.0, 6), (0.25, 6), (1.5, 3)])
async def test_loop_keeps_deadlines_and_skips_the_ones_it_missed(cost: float, ticks: int) -> None:
    collector, batches = await run_fake(cost, 5.5, 2.0)
    assert collector.stats.ticks == ticks
    assert all(b >= 2.0 for b in batches)
    assert len(batches) == len({int(b // 2) for b in batches})  # at most one per batch


async def test_loop_calls_periodic_work_once_per_period() -> None:
    _, batches = await run_fake(0.0, 6.5, 2.0)
    assert batches == [2.0, 4.0, 6.0]


def test_main_runs_on_a_tree_and_reports_its_counters(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--root", str(TREES / "v2-systemd"), "--seconds", "0.01", "--log-level", "ERROR"])
    assert code == 0
    stats = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert stats["containers"] == 4
    assert stats["read_errors"] == 0


def test_flags_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESIZE_CONTROLLER_URL", "https://controller:8443/v1/reports")
    monkeypatch.setenv("PRESIZE_SPOOL_MAX_BYTES", "1000")
    monkeypatch.setenv("PRESIZE_METRICS_PORT", "9464")
    args = _parser().parse_args(["--metrics-port", "9000"])
    assert args.controller_url == "https://controller:8443/v1/reports"
    assert args.spool_max_bytes == 1000
    assert args.metrics_port == 9000  # a flag beats the environment


@pytest.mark.usefixtures("no_leaked_tasks")
async def test_the_wired_agent_publishes_batches_and_serves_metrics(
    tmp_path: Path, ingest: IngestStandIn, unused_tcp_port: int
) -> None:
    (tmp_path / "token").write_text(TOKEN)
    args = _parser().parse_args([
        "--root", str(TREES / "v2-systemd"), "--hz", "20", "--batch", "0.2",
        "--controller-url", ingest.url, "--token-path", str(tmp_path / "token"),
        "--spool-dir", str(tmp_path / "spool"), "--node", "n1",
        "--metrics-host", "127.0.0.1", "--metrics-port", str(unused_tcp_port),
    ])  # fmt: skip
    agent = Agent(args)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.serve(stop))
    try:
        async with asyncio.timeout(10):
            while len(ingest.reports) < 2:
                await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{unused_tcp_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with session.get(f"{base}/metrics") as resp:
                text = await resp.text()
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert ingest.sequences[:2] == [0, 1]
    assert {r.node for r in ingest.reports} == {"n1"}
    assert all(len(r.windows) == 4 for r in ingest.reports)
    for name in ("presize_agent_container_cpu_cores{", "presize_agent_tick_seconds_bucket",
                 "presize_agent_read_errors_total 0.0", "presize_agent_spool_bytes",
                 "presize_agent_spool_downsampled_total 0.0", "presize_node_cpus",
                 "presize_agent_reports_delivered_total"):  # fmt: skip
        assert name in text


def test_an_oom_kill_between_ticks_goes_out_as_an_urgent_report(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(TREES / "v2-systemd", root)
    (events,) = [p for p in root.rglob("crio-c*.scope/memory.events") if "conmon" not in str(p)]
    args = _parser().parse_args([
        "--root", str(root), "--controller-url", "http://127.0.0.1:9/v1/reports",
        "--spool-dir", str(tmp_path / "spool"), "--log-level", "ERROR",
    ])  # fmt: skip
    agent = Agent(args)
    agent.collector.tick()
    events.write_text(events.read_text().replace("oom_kill 1", "oom_kill 2"))
    # The OOM count is a slow counter, read every ``oom_s`` (2 ticks at 1 Hz): seen by then.
    for _ in range(round(agent.collector.s.oom_s * agent.collector.s.hz)):
        time.sleep(0.01)
        agent.collector.tick()
    agent.on_step(time.monotonic())
    assert agent.spool is not None
    pending = agent.spool.head()
    assert pending is not None
    report = decode_report(pending.payload, max_bytes=1 << 20)
    assert report.urgent
    assert len(report.urgent_reasons) == 1
    assert report.urgent_reasons[0].startswith("oom-kill: ")
    assert [w.oom_kills for w in report.windows] == [1]


def test_a_report_the_spool_cannot_take_costs_the_batch_not_the_loop(tmp_path: Path) -> None:
    args = _parser().parse_args([
        "--root", str(TREES / "v2-systemd"), "--controller-url", "http://127.0.0.1:9/v1/reports",
        "--spool-dir", str(tmp_path / "spool"), "--spool-max-bytes", "100", "--batch", "10",
        "--log-level", "ERROR",
    ])  # fmt: skip
    agent = Agent(args)
    agent.collector.tick()
    time.sleep(0.01)
    agent.collector.tick()
    agent.on_batch(time.monotonic())  # four windows: far over a 100-byte spool
    assert agent.spool_failures == 1
    assert agent.spool is not None
    assert len(agent.spool) == 0
