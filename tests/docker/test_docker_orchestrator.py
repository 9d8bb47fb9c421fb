"""DockerOrchestrator against a real Docker Engine that is a one-node Swarm on 127.0.0.1.

In place (standalone), rolling (Swarm), gone, refused, rolled back, and an engine restarted
under the adapter's feet. Each test names its containers and services ``pz-<test>-…`` and
removes them, so the tests share one engine (``docker_swarm``) in any order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from controller.docker import bodies
from controller.docker.engine import EngineClient, EngineConflictError
from controller.docker.orchestrator import DockerOrchestrator, DockerSettings
from controller.orchestrator import ContainerResize, Outcome, PodView
from controller.policies import PolicyBook
from presize.model import Mode, OwnerKind, PodRef
from tests.docker.conftest import Swarm
from tests.docker.helpers import (
    MI,
    cgroup_limits,
    create_service,
    eventually,
    inspect,
    run_container,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
async def orch(docker_swarm: Swarm) -> AsyncIterator[DockerOrchestrator]:
    o = DockerOrchestrator(EngineClient(docker_swarm.socket), DockerSettings(max_age_s=2.0))
    await o.start()
    try:
        yield o
    finally:
        await o.close()


@pytest.fixture
def cleanup(docker_swarm: Swarm) -> Iterator[list[str]]:
    """Names of containers (``c:``) and services (``s:``) to remove after the test."""
    names: list[str] = []
    yield names
    for item in names:
        kind, _, name = item.partition(":")
        cmd = ("rm", "-f", name) if kind == "c" else ("service", "rm", name)
        docker_swarm.engine.run(*cmd, check=False)


async def pod_of(orch: DockerOrchestrator, uid: str) -> PodView | None:
    state = await orch.state()
    return next((p for p in state.pods if p.ref.uid == uid), None)


async def task_of(
    orch: DockerOrchestrator, service: str, *, not_uid: str = "", cpu_limit: float | None = None
) -> PodView | None:
    """A running task of ``service`` (not ``not_uid``; optionally running ``cpu_limit``)."""
    orch.mark_stale()
    state = await orch.state()
    for pod in state.pods:
        if pod.workload.name != service or pod.ref.uid == not_uid:
            continue
        if cpu_limit is None or pod.applied[0].cpu_limit == pytest.approx(cpu_limit):
            return pod
    return None


def host_config(swarm: Swarm, ref: str) -> Mapping[str, Any]:
    hc = inspect(swarm.engine, ref)["HostConfig"]
    assert isinstance(hc, dict)
    return hc


async def test_standalone_container_is_resized_in_place_and_back(
    docker_swarm: Swarm, orch: DockerOrchestrator, cleanup: list[str]
) -> None:
    cleanup.append("c:pz-inplace")
    cid = run_container(
        docker_swarm.engine, docker_swarm.image, "pz-inplace",
        "--memory=64m", "--cpus=0.5", "--label=presize.io/enabled=true",
    )  # fmt: skip
    pod = await eventually(lambda: pod_of(orch, cid))
    assert pod.ref == PodRef("docker", "pz-inplace", cid, pod.ref.node)
    assert pod.workload.kind is OwnerKind.CONTAINER
    assert not pod.excluded
    before = pod.containers[0]
    assert (before.cpu_limit, before.memory_limit) == (0.5, 64 * MI)
    started = inspect(docker_swarm.engine, cid)["State"]["StartedAt"]

    change = ContainerResize(
        "pz-inplace", cpu_request=0.5, cpu_limit=1.0, memory_request=48 * MI, memory_limit=96 * MI
    )
    result = await orch.resize(pod.ref, [change])
    assert result.outcome is Outcome.APPLIED, result.message

    after = inspect(docker_swarm.engine, cid)
    assert after["Id"] == cid
    assert after["State"]["StartedAt"] == started
    assert after["RestartCount"] == 0
    assert after["State"]["Running"]
    hc = after["HostConfig"]
    assert (hc["NanoCpus"], hc["CpuShares"]) == (1_000_000_000, 512)
    assert (hc["Memory"], hc["MemoryReservation"]) == (96 * MI, 48 * MI)
    assert hc["MemorySwap"] == 96 * MI + 64 * MI  # docker run gave 64m of swap; kept
    limits = cgroup_limits(cid)
    assert limits["quota"] == limits["period"]  # one core
    assert (limits["memory"], limits["memory_soft"]) == (96 * MI, 48 * MI)

    seen = await eventually(lambda: pod_of(orch, cid), every=0.2)
    assert seen.containers[0].cpu_limit == 1.0  # the cache followed the update event

    # The controller's rollback: a resize to the previous values. Same container still.
    back = ContainerResize("pz-inplace", cpu_limit=0.5, memory_limit=64 * MI, memory_request=0)
    result = await orch.resize(pod.ref, [back])
    assert result.outcome is Outcome.APPLIED, result.message
    hc = host_config(docker_swarm, cid)
    assert (hc["NanoCpus"], hc["Memory"], hc["MemorySwap"]) == (500_000_000, 64 * MI, 128 * MI)
    assert inspect(docker_swarm.engine, cid)["State"]["StartedAt"] == started
    assert cgroup_limits(cid)["memory"] == 64 * MI


async def test_quota_style_container_keeps_its_quota(
    docker_swarm: Swarm, orch: DockerOrchestrator, cleanup: list[str]
) -> None:
    cleanup.append("c:pz-quota")
    cid = run_container(
        docker_swarm.engine,
        docker_swarm.image,
        "pz-quota",
        "--cpu-period=50000",
        "--cpu-quota=25000",
    )
    pod = await eventually(lambda: pod_of(orch, cid))
    assert pod.containers[0].cpu_limit == 0.5
    assert pod.excluded
    result = await orch.resize(pod.ref, [ContainerResize("pz-quota", cpu_limit=1.5)])
    assert result.outcome is Outcome.APPLIED, result.message
    hc = host_config(docker_swarm, cid)
    assert (hc["CpuQuota"], hc["CpuPeriod"], hc["NanoCpus"]) == (75000, 50000, 0)
    assert cgroup_limits(cid)["quota"] == 75000


async def test_vanished_container_is_gone_and_standalone_eviction_refused(
    docker_swarm: Swarm, orch: DockerOrchestrator, cleanup: list[str]
) -> None:
    cleanup.append("c:pz-vanish")
    cid = run_container(docker_swarm.engine, docker_swarm.image, "pz-vanish", "--memory=64m")
    pod = await eventually(lambda: pod_of(orch, cid))
    evicted = await orch.evict(pod.ref, "node full")
    assert evicted.outcome is Outcome.REFUSED
    assert "standalone" in evicted.message
    docker_swarm.engine.run("rm", "-f", cid)
    change = ContainerResize("pz-vanish", memory_limit=96 * MI)
    assert (await orch.resize(pod.ref, [change])).outcome is Outcome.GONE
    ghost = PodRef("docker", "pz-never", "0" * 64)
    assert (await orch.resize(ghost, [change])).outcome is Outcome.GONE
    assert (await orch.evict(ghost, "x")).outcome is Outcome.GONE


async def test_service_resize_rolls_a_new_task_and_previous_spec_rolls_back(
    docker_swarm: Swarm, orch: DockerOrchestrator, cleanup: list[str]
) -> None:
    cleanup.append("s:pz-roll")
    create_service(
        docker_swarm.engine, docker_swarm.image, "pz-roll",
        "--label=presize.io/enabled=true", "--label=presize.io/mode=auto",
        "--limit-cpu=0.5", "--limit-memory=64m", "--reserve-memory=32m",
        "--update-monitor=1s",
    )  # fmt: skip
    first = await eventually(lambda: task_of(orch, "pz-roll"))
    assert first.workload.kind is OwnerKind.SWARM_SERVICE
    assert first.ref.namespace == "swarm"
    assert first.ref.name.startswith("pz-roll.1.")
    assert first.containers[0] == first.applied[0]
    assert (first.applied[0].cpu_limit, first.applied[0].memory_request) == (0.5, 32 * MI)

    change = ContainerResize("pz-roll", cpu_limit=1.0, memory_limit=96 * MI)
    result = await orch.resize(first.ref, [change])
    assert result.outcome is Outcome.APPLIED, result.message
    second = await eventually(
        lambda: task_of(orch, "pz-roll", not_uid=first.ref.uid, cpu_limit=1.0)
    )
    hc = host_config(docker_swarm, second.ref.uid)
    assert (hc["NanoCpus"], hc["Memory"]) == (1_000_000_000, 96 * MI)
    assert cgroup_limits(second.ref.uid)["memory"] == 96 * MI

    # Swarm's own rollback to PreviousSpec: a third task with the first limits.
    result = await orch.rollback_service("pz-roll")
    assert result.outcome is Outcome.APPLIED, result.message
    third = await eventually(
        lambda: task_of(orch, "pz-roll", not_uid=second.ref.uid, cpu_limit=0.5)
    )
    assert host_config(docker_swarm, third.ref.uid)["Memory"] == 64 * MI


class _RacingEngine(EngineClient):
    """Changes the service (a label) just before presize's first update: a real conflict."""

    raced = False

    async def update_service(
        self, ref: str, version: int, spec: Mapping[str, Any], *, rollback: bool = False
    ) -> list[str]:
        if not self.raced:
            self.raced = True
            current = await self.service(ref)
            other = {**current["Spec"], "Labels": {**current["Spec"]["Labels"], "race": "1"}}
            await super().update_service(ref, current["Version"]["Index"], other)
        return await super().update_service(ref, version, spec, rollback=rollback)


async def test_service_update_conflict_is_retried(docker_swarm: Swarm, cleanup: list[str]) -> None:
    cleanup.append("s:pz-race")
    sid = create_service(docker_swarm.engine, docker_swarm.image, "pz-race", "--limit-memory=64m")
    engine = _RacingEngine(docker_swarm.socket)
    orch = DockerOrchestrator(engine)
    try:
        service = await engine.service(sid)
        with pytest.raises(EngineConflictError):  # a stale version, told apart
            await EngineClient.update_service(
                engine, sid, service["Version"]["Index"] - 1, service["Spec"]
            )
        task = await eventually(lambda: task_of(orch, "pz-race"))
        result = await orch.resize(task.ref, [ContainerResize("pz-race", memory_limit=80 * MI)])
        assert engine.raced
        assert result.outcome is Outcome.APPLIED, result.message
        spec = (await engine.service(sid))["Spec"]
        assert spec["Labels"]["race"] == "1"  # the other writer's change survived
        assert spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 80 * MI
    finally:
        await orch.close()


async def test_evict_on_a_one_node_swarm_is_refused_and_the_service_keeps_running(
    docker_swarm: Swarm, orch: DockerOrchestrator, cleanup: list[str]
) -> None:
    cleanup.append("s:pz-evict")
    create_service(docker_swarm.engine, docker_swarm.image, "pz-evict")
    task = await eventually(lambda: task_of(orch, "pz-evict"))
    result = await orch.evict(task.ref, "node cannot hold it")
    # The only node: a constraint off it would stop every task of the service.
    assert result.outcome is Outcome.REFUSED, result.message
    assert "no other schedulable node" in result.message
    spec = (await orch.engine.service("pz-evict"))["Spec"]
    assert not (spec["TaskTemplate"].get("Placement") or {}).get("Constraints")
    orch.mark_stale()
    assert await task_of(orch, "pz-evict") is not None

    # The spec a reschedule sends (where another node exists), as the real engine takes it:
    # a second reschedule moves presize's one constraint rather than adding another.
    for host in ("elsewhere-1", "elsewhere-2"):
        # Through the private update: the body, past the node check.
        moved = await orch._update_service(
            "pz-evict", lambda s, h=host: bodies.service_spec_avoiding(s, h), what="test"
        )
        assert moved.outcome is Outcome.APPLIED, moved.message
    spec = (await orch.engine.service("pz-evict"))["Spec"]
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.hostname!=elsewhere-2"]
    assert spec["Labels"][bodies.AVOIDED_NODE_LABEL] == "elsewhere-2"


async def test_state_maps_opt_in_namespaces_and_modes(
    docker_swarm: Swarm, orch: DockerOrchestrator, cleanup: list[str]
) -> None:
    engine, image = docker_swarm.engine, docker_swarm.image
    cleanup.extend(
        ["s:pz-map-auto", "s:pz-map-plain", "c:pz-map-off", "c:pz-map-ex", "c:pz-map-typo"]
    )
    create_service(
        engine, image, "pz-map-auto", "--replicas=2", "--label=presize.io/enabled=true",
        "--label=presize.io/mode=auto", "--container-label=presize.io/namespace=team-a",
        "--reserve-cpu=0.1",
    )  # fmt: skip
    create_service(engine, image, "pz-map-plain", "--container-label=presize.io/namespace=team-a")
    enabled = "--label=presize.io/enabled=true"
    run_container(engine, image, "pz-map-off", enabled, "--label=presize.io/mode=off")
    run_container(engine, image, "pz-map-ex", enabled, "--label=presize.io/exclude=true")
    run_container(engine, image, "pz-map-typo", enabled, "--label=presize.io/mode=sometimes")

    async def settled() -> Any:
        orch.mark_stale()
        state = await orch.state()
        names = [p.workload.name for p in state.pods]
        counts = {n: names.count(n) for n in ("pz-map-auto", "pz-map-plain", "pz-map-typo")}
        return state if counts == {"pz-map-auto": 2, "pz-map-plain": 1, "pz-map-typo": 1} else None

    state = await eventually(settled)
    pods = {p.workload.name: p for p in state.pods if p.workload.name.startswith("pz-map-")}
    assert pods["pz-map-auto"].ref.namespace == "team-a"
    assert not pods["pz-map-auto"].excluded
    assert pods["pz-map-plain"].ref.namespace == "team-a"
    assert pods["pz-map-plain"].excluded
    assert pods["pz-map-ex"].excluded
    assert not pods["pz-map-off"].excluded
    assert state.namespace_modes["team-a"] is Mode.INITIAL
    assert state.namespace_modes["docker"] is Mode.INITIAL
    workloads = {w.key.name: w for w in state.workloads}
    assert (workloads["pz-map-auto"].replicas, workloads["pz-map-auto"].ready) == (2, 2)
    node = next(n for n in state.nodes if n.name == pods["pz-map-auto"].ref.node)
    assert node.cpu_allocatable > 0
    assert node.memory_allocatable > 0
    assert node.cpu_requested >= 0.2  # the two reserved tasks

    # What the controller's policy book makes of it: each workload gets the mode it asked for.
    book = PolicyBook.build(state.policies, state.namespace_modes, Mode.INITIAL)
    assert not book.errors

    def mode(name: str) -> Mode:
        p = pods[name]
        return book.resolve(p.ref.namespace, p.containers[0].name, p.labels).mode

    expected = {"pz-map-auto": Mode.AUTO, "pz-map-off": Mode.OFF, "pz-map-typo": Mode.OFF}
    assert {name: mode(name) for name in expected} == expected


async def test_engine_restart_mid_way(
    docker_swarm: Swarm, orch: DockerOrchestrator, cleanup: list[str]
) -> None:
    cleanup.append("c:pz-restart")
    cid = run_container(
        docker_swarm.engine, docker_swarm.image, "pz-restart", "--restart=unless-stopped",
        "--memory=64m", "--label=presize.io/enabled=true",
    )  # fmt: skip
    pod = await eventually(lambda: pod_of(orch, cid))
    await eventually(lambda: _true(orch.watching))
    docker_swarm.daemon.stop()
    try:
        orch.mark_stale()
        state = await orch.state()  # the last snapshot, not an exception
        assert any(p.ref.uid == cid for p in state.pods)
        assert orch.last_error
        change = ContainerResize("pz-restart", memory_limit=80 * MI)
        assert (await orch.resize(pod.ref, [change])).outcome is Outcome.FAILED
        assert (await orch.rollback_service("pz-any")).outcome is Outcome.FAILED
    finally:
        docker_swarm.restart()
    await eventually(lambda: _true(orch.watching), timeout=30)  # the watcher reconnected
    back = await eventually(lambda: pod_of(orch, cid))  # restarted by its policy, same id
    assert back.ref == pod.ref
    assert not orch.last_error
    result = await orch.resize(pod.ref, [ContainerResize("pz-restart", memory_limit=80 * MI)])
    assert result.outcome is Outcome.APPLIED, result.message
    assert host_config(docker_swarm, cid)["Memory"] == 80 * MI


async def _true(value: bool) -> bool:
    return value
