"""The controller's timers and leadership transitions, on a real event loop with short periods."""

from __future__ import annotations

import asyncio

from controller_fakes import FakeOrchestrator, MemoryStore, MiB, deployment, node, pod, window

from controller.loop import Controller
from controller.runtime import Runtime
from controller.server import SnapshotCache
from controller.settings import ControllerSettings
from presize.model import Mode
from presize.wire import Report

WEB = deployment("shop", "web")


class Switch:
    """A leadership that the test flips."""

    def __init__(self, leading: bool) -> None:
        self.is_leader = leading

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()


class CountingStore(MemoryStore):
    loads = 0

    async def load_all(self) -> dict:  # type: ignore[type-arg]
        self.loads += 1
        await asyncio.sleep(0.05)  # a slow store: both passes would restore without the lock
        return await super().load_all()


def stack(leading: bool) -> tuple[Controller, Runtime, Switch, CountingStore, FakeOrchestrator]:
    orch = FakeOrchestrator(modes={"shop": Mode.AUTO})
    orch.nodes["node-0"] = node()
    p = pod("shop", "web-0", WEB)
    orch.pods[p.ref.uid] = p
    store = CountingStore()
    settings = ControllerSettings(step_s=1.0, urgent_period_s=0.02, profile_period_s=0.05,
                                  checkpoint_period_s=0.05, anomaly_period_s=0.05)  # fmt: skip
    ctl = Controller(orch, store, settings=settings, default_mode=Mode.AUTO)
    switch = Switch(leading)
    return ctl, Runtime(ctl, SnapshotCache(), switch), switch, store, orch


async def test_a_new_leader_restores_once_then_serves_a_snapshot() -> None:
    _, runtime, _, store, _ = stack(leading=True)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    await asyncio.wait_for(runtime.restored.wait(), 5)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert store.loads == 1
    assert runtime.snapshots.snapshot is not None
    assert runtime.passes.get("full", 0) >= 2
    assert runtime.healthy()


async def test_a_standby_follows_the_store_and_takes_over_where_the_leader_left() -> None:
    leader, _, _, store, orch = stack(leading=True)
    p = orch.pods["uid-web-0"]
    now = 1_700_000_000.0
    for i in range(20):
        leader.on_report(Report(node="node-0", agent_id="a", sent_at=now, sequence=i + 1,
                                windows=(window(p, now + i, cpu=0.2, mem=100 * MiB, seconds=1.0),)),
                         now + i + 1)  # fmt: skip
    await leader.cycle(now + 30)
    assert await leader.checkpoint(now + 30) == 1

    standby, runtime, switch, _, _ = stack(leading=False)
    standby.store = store  # the same WorkloadProfile objects
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    await asyncio.sleep(0.3)
    assert not runtime.led
    assert runtime.snapshots.snapshot is not None  # serves the leader's recommendations
    assert {r.key.workload for r in runtime.snapshots.snapshot.recommendations} == {WEB}
    switch.is_leader = True  # failover
    await asyncio.wait_for(runtime.restored.wait(), 5)
    assert runtime.led
    assert standby.profiles
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_failing_pass_does_not_stop_the_others() -> None:
    _, runtime, _, _, orch = stack(leading=True)

    async def broken() -> None:
        raise RuntimeError("the orchestrator blew up")

    orch.state = broken  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert runtime.passes.get("checkpoint", 0) >= 2  # went on while every cycle failed
    assert runtime.passes.get("full", 0) == 0
