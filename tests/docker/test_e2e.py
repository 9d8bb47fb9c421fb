"""End to end on a real Docker Engine: the agent's pieces read this machine's cgroups of the
engine's containers and report over HTTP to the controller's loop, which acts through
:class:`~controller.docker.DockerOrchestrator` (issue 7, "what it must show").

One :func:`running_stack` per test, all in this process and on loopback only:

* the controller: :class:`~controller.loop.Controller` over the test engine's socket with a
  :class:`~controller.docker.store.FileProfileStore` in ``tmp_path``, its timers
  (:class:`~controller.runtime.Runtime`), and its HTTP edge (:func:`controller.server.make_app`
  on 127.0.0.1, a shared bearer token checked by ``StaticTokenAuthenticator``), wired as
  ``presize controller --orchestrator docker`` wires them;
* the agent: :class:`agent.__main__.Agent` in ``--directory docker`` mode (a ``Collector``
  with ``discover_docker`` and a ``DockerDirectory``, the spool and the publisher), with its
  :class:`~agent.urgent.UrgencyWatcher` stepping every 2 s instead of 10 s.

Time is compressed (5 s profile steps, 1 s urgent cycles, seconds of hysteresis), never faked:
each container burns what its bind-mounted :class:`~tests.docker.helpers.LoadFile` says, and
every claim is checked on the engine (inspect) and in the kernel's cgroup files.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from agent.__main__ import Agent, _parser
from agent.urgent import Trigger, UrgencyWatcher, UrgentSettings
from controller.__main__ import StaticTokenAuthenticator
from controller.docker.engine import EngineClient
from controller.docker.orchestrator import DockerOrchestrator, DockerSettings
from controller.docker.store import FileProfileStore
from controller.loop import Controller
from controller.runtime import AlwaysLeader, Runtime
from controller.server import Edge, SnapshotCache, make_app
from controller.settings import ControllerSettings
from presize.model import Action, Mode, OwnerKind, Reason, UsageWindow, WorkloadKey
from presize.predictor import PredictorSettings
from presize.settings import PolicySettings
from tests.docker.conftest import Swarm
from tests.docker.helpers import LoadFile, cgroup_limits, cpu_stat, create_service, run_container

pytestmark = [pytest.mark.docker, pytest.mark.slow]

T = TypeVar("T")
TOKEN = "e2e-shared-agent-token"
SERVICE_LABEL = "com.docker.swarm.service.name"
OPT_IN = ("--label=presize.io/enabled=true", "--label=presize.io/mode=auto")
NANO = 1_000_000_000
POLL_S = 0.25

# Compressed, not faked: 5 s profile steps, urgent pods decided every second, all pods every
# few seconds; a shrink waits 10 s of steady forecast (the product waits 10 minutes).
QUICK_SHRINK = PolicySettings(down_stable_s=10.0, down_cooldown_s=300.0)


def settings(*, rollback_window_s: float = 30.0, shrink: bool = False) -> ControllerSettings:
    return ControllerSettings(
        step_s=5.0,
        urgent_period_s=1.0,
        profile_period_s=3.0,
        rollback_window_s=rollback_window_s,
        checkpoint_period_s=5.0,
        anomaly_period_s=5.0,
        predictor=PredictorSettings(policy=QUICK_SHRINK) if shrink else PredictorSettings(),
    )


# ---------------------------------------------------------------------------------- harness


class ErrorLog(logging.Handler):
    """Every ERROR record (a failed timer pass is logged with its traceback at ERROR)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in self.records)


@contextlib.contextmanager
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root, ctl = logging.getLogger(), logging.getLogger("controller")
    level = ctl.level
    root.addHandler(handler)
    ctl.setLevel(logging.INFO)  # decisions show in pytest's captured log on failure
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        ctl.setLevel(level)


class RecordingWatcher(UrgencyWatcher):
    """The agent's urgency watcher, remembering each reason it raised with the wall time."""

    def __init__(self, settings: UrgentSettings) -> None:
        super().__init__(settings)
        self.raised: list[tuple[float, str]] = []
        self.peaks: list[tuple[float, str, float]] = []  # (wall time, pod, CPU peak of step)

    def step(self, now: float, windows: Iterable[UsageWindow]) -> list[Trigger]:
        windows = list(windows)
        triggers = super().step(now, windows)
        at = time.time()
        self.peaks.extend((at, w.pod.name, w.cpu_max) for w in windows)
        self.raised.extend((at, reason) for t in triggers for reason in t.reasons)
        return triggers


@dataclass
class Stack:
    """The running controller and agent of one test, and what the test reads from them."""

    controller: Controller
    runtime: Runtime | None
    orch: DockerOrchestrator
    agent: Agent
    store: FileProfileStore
    base_url: str
    errors: ErrorLog
    engine: EngineClient
    urgent: RecordingWatcher

    def record(self, key: WorkloadKey) -> str:
        """The controller's decisions and rollbacks for ``key``, for failure messages."""
        rec = self.controller.workloads.get(key)
        if rec is None:
            return f"{key}: no record"
        lines = [f"{d.at:.1f} {d.pod} {d.action} {d.reason}: {d.message}" for d in rec.decisions]
        lines += [f"{r.at:.1f} rollback {r.container}: {r.reason}" for r in rec.rollbacks]
        return f"{key}:\n  " + "\n  ".join(lines or ["(no decisions)"]) + self.pipeline()

    def pipeline(self) -> str:
        """How far data got: the agent's containers and deliveries, the controller's reports,
        windows, profiles and decisions."""
        c, a = self.controller, self.agent
        registry = c.metrics.registry
        counts = {
            m.name: {
                tuple(s.labels.values()): s.value for s in m.samples if s.name.endswith("_total")
            }
            for m in registry.collect()
            if m.name in ("presize_controller_reports", "presize_controller_windows",
                          "presize_controller_decisions", "presize_controller_actions")
        }  # fmt: skip
        publisher = None if a.publisher is None else a.publisher.stats
        profiles = {str(k): p.steps for k, p in c.profiles.items()}
        return (
            f"\nagent: {len(a.collector.containers)} containers, {a.collector.stats}, "
            f"urgent sent {a.urgent_sent}, publisher {publisher}, directory "
            f"{None if a.docker is None else (a.docker.refreshes, a.docker.last_error)}"
            f"\ncontroller: pods {sorted(p.ref.name for p in c.cluster.pods)}, "
            f"profiles {profiles}, {counts}"
        )

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The controller's ``/metrics``, read over its HTTP edge."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.base_url}/metrics") as resp,
        ):
            assert resp.status == 200
            text = await resp.text()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


async def until(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    timeout: float,
    detail: Callable[[], str] = lambda: "",
    every: float = POLL_S,
) -> T:
    """The first truthy answer of ``probe`` within ``timeout`` s, else a failure naming
    ``what`` was awaited and ``detail()`` (what the controller did meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s\n{detail()}")
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def running_stack(
    swarm: Swarm, tmp_path: Path, controller_settings: ControllerSettings, *, timers: bool = True
) -> AsyncIterator[Stack]:
    """Controller (with its timers unless ``timers=False``: then the test drives the passes)
    and agent, wired as their composition roots wire them, on 127.0.0.1; stopped on exit."""
    with error_log() as errors:
        orch = DockerOrchestrator(EngineClient(swarm.socket), DockerSettings(max_age_s=2.0))
        await orch.start()
        store = FileProfileStore(tmp_path / "profiles")
        controller = Controller(
            orch, store, settings=controller_settings, default_mode=Mode.INITIAL, act=True
        )
        snapshots = SnapshotCache()
        runtime = Runtime(controller, snapshots, AlwaysLeader()) if timers else None
        edge = Edge(
            authenticator=StaticTokenAuthenticator(TOKEN),
            on_report=controller.on_report,
            is_leader=(lambda: runtime.led) if runtime is not None else (lambda: True),
            metrics=controller.metrics,
            max_report_bytes=controller.s.max_report_bytes,
            snapshots=snapshots,
        )
        runner = web.AppRunner(make_app(edge), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        base_url = f"http://{host}:{port}"
        node = str((await orch.engine.info())["Name"])

        (tmp_path / "agent-token").write_text(TOKEN)
        agent = Agent(
            _parser().parse_args(agent_args(swarm, tmp_path, f"{base_url}/v1/reports", node))
        )
        watcher = agent.watcher = RecordingWatcher(UrgentSettings(step_s=2.0, cooldown_s=6.0))
        assert agent.collector.directory is agent.docker
        stop_agent, stop_controller = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(agent.serve(stop_agent), name="agent")]
        if runtime is not None:
            tasks.append(asyncio.create_task(runtime.run(stop_controller), name="controller"))
        else:
            await controller.restore()
        monitor = EngineClient(swarm.socket)
        try:
            yield Stack(controller, runtime, orch, agent, store, base_url, errors, monitor, watcher)
        finally:
            stop_agent.set()
            stop_controller.set()
            done = await asyncio.gather(
                *(asyncio.wait_for(t, 30) for t in tasks), return_exceptions=True
            )
            await runner.cleanup()
            await orch.close()
            await monitor.close()
            for task, result in zip(tasks, done, strict=True):
                if isinstance(result, BaseException):
                    raise AssertionError(f"the {task.get_name()} ended with {result!r}")


async def host_config(engine: EngineClient, ref: str) -> dict[str, Any]:
    hc = (await engine.container(ref))["HostConfig"]
    assert isinstance(hc, dict)
    return hc


async def nano_cpus(engine: EngineClient, ref: str) -> int:
    return int((await host_config(engine, ref))["NanoCpus"])


def engine_time(text: str) -> float:
    """An Engine API timestamp (RFC 3339, nanoseconds) as Unix seconds."""
    head, _, rest = text.rstrip("Z").partition(".")
    fraction = (rest[:6] or "0").ljust(6, "0")
    stamp = dt.datetime.fromisoformat(f"{head}.{fraction}").replace(tzinfo=dt.UTC)
    return stamp.timestamp()


@pytest.fixture
def docker_cleanup(docker_swarm: Swarm) -> Iterator[list[str]]:
    """Containers (``c:name``) and services (``s:name``) to remove after the test."""
    names: list[str] = []
    yield names
    if docker_swarm.daemon.popen is None:  # a test that stopped the engine and then failed
        docker_swarm.restart()
    for item in names:
        kind, _, name = item.partition(":")
        cmd = ("rm", "-f", name) if kind == "c" else ("service", "rm", name)
        docker_swarm.engine.run(*cmd, check=False)


# ------------------------------------------------------- 0. the wiring itself


def agent_args(swarm: Swarm, tmp_path: Path, controller_url: str, node: str) -> list[str]:
    """``presize agent --directory docker`` flags for this engine and a local controller."""
    return [
        "--root=/sys/fs/cgroup", "--hz=2", "--batch=5", "--directory=docker",
        f"--docker-socket={swarm.socket}", f"--node={node}", "--log-patterns=",
        f"--controller-url={controller_url}", f"--token-path={tmp_path / 'agent-token'}",
        f"--spool-dir={tmp_path / 'spool'}", "--metrics-port=0",
    ]  # fmt: skip


async def test_agent_collector_uses_the_docker_directory(
    docker_swarm: Swarm, tmp_path: Path
) -> None:
    """``presize agent --directory docker`` names containers through its DockerDirectory:
    the collector must hold that directory even though it is empty until its first refresh
    (otherwise every window carries the short container id as the container name, and the
    controller's profiles never match the containers it sizes)."""
    agent = Agent(_parser().parse_args(agent_args(docker_swarm, tmp_path, "", "node")))
    assert agent.docker is not None
    assert agent.collector.directory is agent.docker


# ------------------------------------------------------- 1. raised before it throttles


@dataclass
class ServiceWatch:
    """Follows a service at ``POLL_S``: each change of its CPU limit (with the engine's own
    ``UpdatedAt``) and, per task container, the first time ``nr_throttled`` grew past what it
    was when the container was first seen."""

    engine: EngineClient
    service: str
    limits: list[tuple[float, int, float]] = field(default_factory=list)  # seen, nano, updated
    baseline: dict[str, int] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)
    throttled: dict[str, tuple[float, int]] = field(default_factory=dict)  # id -> (seen, grew)

    async def sample(self) -> None:
        svc = await self.engine.service(self.service)
        resources = svc["Spec"]["TaskTemplate"].get("Resources") or {}
        nano = int((resources.get("Limits") or {}).get("NanoCPUs", 0))
        if not self.limits or self.limits[-1][1] != nano:
            self.limits.append((time.time(), nano, engine_time(svc["UpdatedAt"])))
        label = f"{SERVICE_LABEL}={self.service}"
        for c in await self.engine.containers(filters={"label": [label]}):
            cid = str(c["Id"])
            stat = cpu_stat(cid)
            if stat is None:
                continue
            now = time.time()
            if cid not in self.baseline:
                self.baseline[cid], self.first_seen[cid] = stat["nr_throttled"], now
            elif cid not in self.throttled and stat["nr_throttled"] > self.baseline[cid]:
                self.throttled[cid] = (now, stat["nr_throttled"] - self.baseline[cid])

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)


async def test_rising_service_is_raised_before_it_throttles(
    docker_swarm: Swarm, tmp_path: Path, docker_cleanup: list[str]
) -> None:
    """A Swarm service (auto, 0.5 CPU) whose load climbs steadily past its limit gets a
    larger limit from the controller, through an urgent forecast of the agent, *before* any of
    its task containers is throttled: the engine's time of the service update precedes both
    the first growth of ``nr_throttled`` in any task's cgroup and the moment the load crossed
    the old limit. The lead time is printed."""
    name, limit = "pz-e2e-rise", 0.5
    docker_cleanup.append(f"s:{name}")
    load = LoadFile(tmp_path / "load", 0.1)
    create_service(
        docker_swarm.engine, docker_swarm.image, name, *OPT_IN, f"--limit-cpu={limit}",
        "--update-order=start-first", "--update-monitor=1s", load=load,
    )  # fmt: skip
    key = WorkloadKey("swarm", OwnerKind.SWARM_SERVICE, name)
    async with running_stack(docker_swarm, tmp_path, settings()) as stack:
        c = stack.controller

        async def first_task() -> str | None:
            uids = [p.ref.uid for p in c.cluster.pods if p.workload == key]
            seen = (u for u in uids if c.recent.health(u, [name], 0.0, time.time()).samples)
            return next(seen, None)

        # The pipeline is live: the controller knows the task and has its agent's windows.
        original = await until(first_task, "window of the service's task", timeout=60)
        watch = ServiceWatch(stack.engine, name)
        await watch.sample()
        assert watch.limits[0][1] == limit * NANO
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch.run(stop))
        try:
            # The load climbs 0.05 cores every 4 s, from 0.1 to 0.7 (the limit is 0.5).
            for step in range(1, 13):
                await asyncio.sleep(4.0)  # the pace of the load, not a wait for a result
                load.set(round(0.1 + 0.05 * step, 2))
            await asyncio.sleep(6.0)
        finally:
            stop.set()
            await watcher
        urgent = list(stack.urgent.raised)
        t0 = load.history[0][0]
        events = sorted(
            [(at, f"load {cores}") for at, cores in load.history]
            + [(at, f"agent urgent: {r}") for at, r in urgent]
            + [(at, f"step peak {x:.3f}") for at, pod, x in stack.urgent.peaks if name in pod]
            + [(at, f"limit {nano / NANO} (engine UpdatedAt)") for _, nano, at in watch.limits]
            + [(at, f"nr_throttled +{n} in {cid[:12]}") for cid, (at, n) in watch.throttled.items()]
            + [(d.at, f"decision {d.action} {d.message}") for d in c.workloads[key].decisions]
        )
        timeline = "\n".join(f"  {at - t0:7.2f} s  {what}" for at, what in events)
        detail = f"{stack.record(key)}\ntimeline:\n{timeline}"

    crossed_at = next(at for at, cores in load.history if cores > limit)
    raises = [(seen, nano, updated) for seen, nano, updated in watch.limits[1:]]
    assert raises, f"the service's limit was never changed\n{detail}"
    _, first_nano, updated_at = raises[0]
    assert first_nano > limit * NANO, f"the first change was not a raise\n{detail}"
    decisions = c.workloads[key].decisions
    assert decisions
    assert decisions[0].action == Action.RESIZE_IN_PLACE.value
    assert original in watch.baseline, "the original task's cgroup was never read"
    first_throttle = min((seen for seen, _ in watch.throttled.values()), default=math.inf)
    # A throttle seen at a poll happened at most one poll interval before it was seen.
    assert updated_at < first_throttle - POLL_S, (
        f"throttled before the update: {watch.throttled} vs update at {updated_at}\n{detail}"
    )
    assert updated_at < crossed_at, f"the update came after the load crossed {limit}\n{detail}"
    # The agent's urgent forecast saw the limit coming before the load got there.
    forecasts = [at for at, r in urgent if r.startswith(f"forecast-cpu-limit: swarm/{name}.")]
    assert forecasts, f"the agent raised no urgent CPU forecast: {urgent}"
    assert forecasts[0] < crossed_at
    load_at_update = max(cores for at, cores in load.history if at <= updated_at)
    throttling = (
        "none in any task"
        if math.isinf(first_throttle)
        else f"first {first_throttle - updated_at:.1f} s after the update"
    )
    print(
        f"\nE2E lead: service update at load {load_at_update} cores ({first_nano / NANO:.3f} "
        f"cores asked), {crossed_at - updated_at:.1f} s before the load crossed the old limit; "
        f"throttling: {throttling}; first urgent "
        f"CPU forecast {forecasts[0] - updated_at:+.1f} s from the update; limits "
        f"{[n / NANO for _, n, _ in watch.limits]}; first decision: {decisions[0].message}"
    )
    assert not stack.errors.records, stack.errors.text()


# ------------------------------------------------------- 2. resized in place


async def test_standalone_container_is_shrunk_in_place(
    docker_swarm: Swarm, tmp_path: Path, docker_cleanup: list[str]
) -> None:
    """A standalone container (auto, 1 CPU) burning a steady 0.1 core is shrunk by the
    controller once the low forecast has held for the (compressed) hysteresis, in place: the
    same container id, start time and main process, no restart, and the kernel enforcing the
    new quota in its cgroup."""
    name = "pz-e2e-shrink"
    docker_cleanup.append(f"c:{name}")
    load = LoadFile(tmp_path / "load", 0.1)
    cid = run_container(
        docker_swarm.engine, docker_swarm.image, name, *OPT_IN, "--cpus=1", load=load
    )
    key = WorkloadKey("docker", OwnerKind.CONTAINER, name)
    async with running_stack(docker_swarm, tmp_path, settings(shrink=True)) as stack:
        before = await stack.engine.container(cid)
        assert before["HostConfig"]["NanoCpus"] == NANO

        async def shrunk() -> int | None:
            nano = await nano_cpus(stack.engine, cid)
            return nano if nano < NANO else None

        new = await until(shrunk, "shrink", timeout=120, detail=lambda: stack.record(key))
        after = await stack.engine.container(cid)
        applied = (("kind", "resize"), ("outcome", "applied"))

        async def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            # The engine shows the new quota as soon as it applies it, a moment before the
            # controller's call returns and counts it: wait for the count, not only the quota.
            m = await stack.metrics()
            return m if ("presize_controller_actions_total", applied) in m else None

        metrics = await until(counted, "the resize counted", timeout=10)
        record = stack.controller.workloads[key]

    assert after["Id"] == cid
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert after["State"]["Pid"] == before["State"]["Pid"]
    assert after["RestartCount"] == 0
    assert after["State"]["Running"]
    limits = cgroup_limits(cid)
    assert limits["quota"] * NANO == new * limits["period"]  # the kernel enforces it
    first = record.decisions[0]
    assert (first.action, first.reason) == (Action.RESIZE_IN_PLACE.value, Reason.SCALE_DOWN.value)
    held = (("action", Action.NOOP.value), ("reason", Reason.HYSTERESIS.value))
    assert metrics.get(("presize_controller_decisions_total", held), 0) > 0, (
        "the shrink did not wait out the hysteresis"
    )
    assert metrics[("presize_controller_actions_total", applied)] == 1
    assert 0.1 < new / NANO < 1.0
    assert not stack.errors.records, stack.errors.text()


# ------------------------------------------------------- 3. rolled back


@dataclass
class Burst:
    """What the rollback scenario left behind, for the tests that judge it."""

    cid: str
    shrunk_to: int  # NanoCpus the controller shrank to
    throttled: int  # nr_throttled growth between the shrink and the rollback
    started: tuple[str, str]  # StartedAt before and after
    ids: tuple[str, str]
    rollbacks: list[Any]
    backoff_until: float
    rolled_back_at: float
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    restored: list[str]  # rollback reasons a restarted controller read back from the store
    settled: int  # NanoCpus three full cycles after the rollback
    record: str
    errors: str


async def burst_scenario(swarm: Swarm, tmp_path: Path) -> Burst:
    """A standalone container (auto, 1 CPU) idles at 0.1 core, so the controller shrinks it;
    right after the shrink its real need comes back (0.6 core) and the kernel throttles it."""
    name = "pz-e2e-burst"
    load = LoadFile(tmp_path / "load", 0.1)
    cid = run_container(swarm.engine, swarm.image, name, *OPT_IN, "--cpus=1", load=load)
    key = WorkloadKey("docker", OwnerKind.CONTAINER, name)
    ctl = settings(shrink=True, rollback_window_s=60.0)
    async with running_stack(swarm, tmp_path, ctl) as stack:
        c, runtime = stack.controller, stack.runtime
        assert runtime is not None
        before = await stack.engine.container(cid)

        async def shrunk() -> int | None:
            nano = await nano_cpus(stack.engine, cid)
            return nano if nano < NANO else None

        new = await until(shrunk, "shrink", timeout=120, detail=lambda: stack.record(key))
        stat = cpu_stat(cid)
        assert stat is not None
        load.set(0.6)  # the need comes back, over the new limit

        async def rolled_back() -> bool:
            rec = c.workloads.get(key)
            return rec is not None and len(rec.rollbacks) > 0

        await until(rolled_back, "rollback", timeout=60, detail=lambda: stack.record(key))
        rolled_back_at = time.time()
        after = cpu_stat(cid)
        assert after is not None
        inspected = await stack.engine.container(cid)
        metrics = await stack.metrics()
        full = runtime.passes.get("full", 0)

        async def three_more() -> bool:
            return runtime.passes.get("full", 0) >= full + 3

        await until(three_more, "three full cycles", timeout=30)
        settled = await nano_cpus(stack.engine, cid)
        record = c.workloads[key]
        await c.checkpoint(time.time(), all_=True)
        fresh = Controller(stack.orch, stack.store, settings=ctl, default_mode=Mode.INITIAL)
        await fresh.restore()
        fresh_record = fresh.workloads.get(key)
        return Burst(
            cid=cid,
            shrunk_to=new,
            throttled=after["nr_throttled"] - stat["nr_throttled"],
            started=(before["State"]["StartedAt"], inspected["State"]["StartedAt"]),
            ids=(before["Id"], inspected["Id"]),
            rollbacks=list(record.rollbacks),
            backoff_until=record.backoff[name].shrink_blocked_until,
            rolled_back_at=rolled_back_at,
            metrics=metrics,
            restored=[] if fresh_record is None else [r.reason for r in fresh_record.rollbacks],
            settled=settled,
            record=stack.record(key),
            errors=stack.errors.text(),
        )


@pytest.fixture(scope="module")
def burst(docker_swarm: Swarm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Burst]:
    """The rollback scenario, run once for the tests below (on its own event loop)."""
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(burst_scenario(docker_swarm, tmp_path_factory.mktemp("b")))
    finally:
        loop.close()
        docker_swarm.engine.run("rm", "-f", "pz-e2e-burst", check=False)


def test_shrink_that_throttles_is_rolled_back(burst: Burst) -> None:
    """The shrink that made the container throttle is reverted by the controller within the
    rollback window, in place (same container, same start): the revert is applied by the
    engine, recorded in ``controller.workloads[key].rollbacks`` with what got worse (the
    throttled share of periods, or the CPU stall time) and the values before and after, kept
    in the checkpoint a restarted controller restores, counted in ``/metrics``, and further
    shrinking is backed off."""
    assert burst.throttled > 0, "the kernel never throttled the shrunk container"
    assert burst.ids[1] == burst.ids[0]
    assert burst.started[1] == burst.started[0]
    assert len(burst.rollbacks) == 1, burst.record
    rb = burst.rollbacks[0]
    assert rb.container == "pz-e2e-burst"
    # Blamed on the CPU shrink: throttling, or CPU stall time (PSI) that rose with it.
    assert rb.reason.startswith(("throttling", "cpu pressure")), rb.reason
    assert rb.before == {"cpuLimit": "1"}
    assert rb.after == {"cpuLimit": f"{burst.shrunk_to // 1_000_000}m"}
    assert burst.metrics[("presize_controller_rollbacks_total", ())] == 1
    reverted = (("kind", "rollback"), ("outcome", "applied"))
    assert burst.metrics[("presize_controller_actions_total", reverted)] == 1
    assert burst.backoff_until > burst.rolled_back_at  # that direction is backed off
    assert burst.restored == [rb.reason]
    assert not burst.errors, burst.errors


def test_rollback_restores_the_previous_resources(burst: Burst) -> None:
    """After the rollback (and three more full cycles) the container has at least the CPU it
    had before the harmful shrink: the revert is not overwritten."""
    assert burst.settled >= NANO, f"{burst.settled / NANO} cores\n{burst.record}"


# ------------------------------------------------------- 4. engine restart, vanished container


async def passes(stack: Stack, rounds: int = 1) -> dict[str, int]:
    """``rounds`` of every timer's pass, driven here so an exception fails the test:
    the urgent and the full cycle, the anomaly detectors and a checkpoint."""
    counts: dict[str, int] = {}
    c = stack.controller
    for _ in range(rounds):
        for kind, n in (await c.cycle(time.time(), urgent_only=True)).items():
            counts[kind] = counts.get(kind, 0) + n
        for kind, n in (await c.cycle(time.time())).items():
            counts[kind] = counts.get(kind, 0) + n
        await c.detect_anomalies(time.time())
        await c.checkpoint(time.time())
        await asyncio.sleep(1.0)  # the pace of the passes
    return counts


async def test_engine_restart_and_vanished_container(
    docker_swarm: Swarm, tmp_path: Path, docker_cleanup: list[str]
) -> None:
    """Two profiled standalone containers (auto, 0.5 CPU). One is removed: the next cycles,
    anomaly passes and checkpoints run without error and the controller lets it go. Then the
    engine is stopped by its pid: the controller keeps cycling on its last snapshot (no
    exception, no action); the engine is started again,
    the survivor comes back (same id) and, when its load rises towards its limit, the loop
    acts again: its CPU limit is raised."""
    keep, gone = "pz-e2e-keep", "pz-e2e-gone"
    docker_cleanup.extend([f"c:{keep}", f"c:{gone}"])
    keep_load = LoadFile(tmp_path / "keep", 0.1)
    gone_load = LoadFile(tmp_path / "gone", 0.1)
    engine = docker_swarm.engine
    keep_id = run_container(
        engine, docker_swarm.image, keep, *OPT_IN, "--cpus=0.5", "--restart=unless-stopped",
        load=keep_load,
    )  # fmt: skip
    gone_id = run_container(engine, docker_swarm.image, gone, *OPT_IN, "--cpus=0.5", load=gone_load)
    keys = {n: WorkloadKey("docker", OwnerKind.CONTAINER, n) for n in (keep, gone)}
    async with running_stack(docker_swarm, tmp_path, settings(), timers=False) as stack:
        c = stack.controller

        async def both_profiled() -> bool:
            await passes(stack)
            return all(
                any(k.workload == w and p.steps > 0 for k, p in c.profiles.items())
                for w in keys.values()
            )

        await until(both_profiled, "profile of both containers", timeout=60, every=0)

        # A container vanishes while profiled.
        engine.run("rm", "-f", gone_id)

        async def let_go() -> bool:
            await passes(stack)
            return gone_id not in c.pods_by_uid

        await until(let_go, "forgotten pod", timeout=30, every=0)
        await passes(stack, 2)
        assert keep_id in c.pods_by_uid
        assert (tmp_path / "profiles").is_dir()
        assert any((tmp_path / "profiles").iterdir())

        # The engine goes away under the running loop, and comes back.
        docker_swarm.daemon.stop()
        try:
            down = await passes(stack, 4)
            assert stack.orch.last_error, "the orchestrator did not notice the engine was away"
            assert keep_id in c.pods_by_uid  # the last snapshot is still served
            assert Action.RESIZE_IN_PLACE.value not in down
        finally:
            docker_swarm.restart()
        restarted = time.time()

        async def back() -> bool:
            await passes(stack)
            info = await stack.engine.container(keep_id)
            return bool(info["State"]["Running"]) and not stack.orch.last_error

        await until(back, "running survivor after the restart", timeout=60, every=0)
        keep_load.set(0.45)  # towards its 0.5 limit

        async def raised() -> int | None:
            await passes(stack)
            nano = await nano_cpus(stack.engine, keep_id)
            return nano if nano > NANO // 2 else None

        new = await until(
            raised, "raise after the restart", timeout=90, every=0,
            detail=lambda: stack.record(keys[keep]),
        )  # fmt: skip
        acted = [d for d in c.workloads[keys[keep]].decisions if d.at > restarted]

    assert acted, stack.record(keys[keep])
    assert acted[0].action == Action.RESIZE_IN_PLACE.value
    assert new > NANO // 2
    assert not stack.errors.records, stack.errors.text()
