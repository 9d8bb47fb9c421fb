"""The Docker adapter's pure parts, table-driven; no Docker Engine needed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.docker_directory import discover_docker, pod_info
from controller.docker import bodies, views
from controller.docker.engine import (
    EngineConflictError,
    EngineError,
    EngineNotFoundError,
    EngineRejectedError,
    EngineUnavailableError,
    SwarmInactiveError,
    choose_api_version,
    error_for,
    parse_api_version,
)
from controller.docker.orchestrator import DockerOrchestrator, DockerSettings, outcome_for
from controller.docker.store import FileProfileStore, file_name
from controller.errors import OrchestratorError, StoreError
from controller.orchestrator import ContainerResize, Outcome, ResizeStatus
from controller.policies import PolicyBook
from presize.model import Mode, OwnerKind, PodRef, WorkloadKey
from tests.docker.loadgen import parse_schedule, share_at

MI = 1 << 20
CID = "a" * 64
CID2 = "b" * 64


# -- engine: errors and versions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (404, "No such container: x", EngineNotFoundError),
        (409, "Conflicting options: CPU Quota cannot be updated", EngineConflictError),
        (500, "rpc error: code = Unknown desc = update out of sequence", EngineConflictError),
        (503, "This node is not a swarm manager.", SwarmInactiveError),
        (400, "Minimum memory limit allowed is 6MB", EngineRejectedError),
        (403, "forbidden", EngineRejectedError),
        (500, "runc: write /sys/fs/cgroup/...: device or resource busy", EngineError),
    ],
)
def test_error_for(status: int, message: str, kind: type[EngineError]) -> None:
    err = error_for(status, message)
    assert type(err) is kind
    assert isinstance(err, OrchestratorError)
    assert err.status == status


@pytest.mark.parametrize(
    ("engine", "spoken"), [("1.41", "1.41"), ("1.45", "1.43"), ("1.30", "1.30")]
)
def test_api_version_negotiation(engine: str, spoken: str) -> None:
    assert choose_api_version(parse_api_version(engine)) == spoken


@pytest.mark.parametrize("bad", ["1.24", "x.y", ""])
def test_api_version_refused(bad: str) -> None:
    with pytest.raises(EngineError):
        choose_api_version(parse_api_version(bad))


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (EngineNotFoundError("x", 404), Outcome.GONE),
        (EngineRejectedError("x", 400), Outcome.REFUSED),
        (EngineConflictError("x", 409), Outcome.REFUSED),
        (EngineConflictError("out of sequence", 500), Outcome.FAILED),
        (EngineUnavailableError("x"), Outcome.FAILED),
        (EngineError("x", 500), Outcome.FAILED),
    ],
)
def test_outcome_for(error: EngineError, outcome: Outcome) -> None:
    assert outcome_for(error).outcome is outcome


# -- views ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05.123456789Z", 1767323045.123456),
        ("2026-01-02T03:04:05Z", 1767323045.0),
        ("2026-01-02T03:04:05.5+01:00", 1767319445.5),
        (1767323045, 1767323045.0),
        ("0001-01-01T00:00:00Z", 0.0),
        ("garbage", 0.0),
        (None, 0.0),
    ],
)
def test_parse_time(value: object, expected: float) -> None:
    assert views.parse_time(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("host_config", "expected"),
    [
        ({}, (None, None, None, None)),
        ({"NanoCpus": 500_000_000, "Memory": 64 * MI}, (None, 0.5, None, 64 * MI)),
        ({"CpuQuota": 25000, "CpuPeriod": 50000}, (None, 0.5, None, None)),
        ({"CpuQuota": 150000}, (None, 1.5, None, None)),
        ({"CpuShares": 512, "MemoryReservation": 32 * MI}, (0.5, None, 32 * MI, None)),
        ({"NanoCpus": 0, "CpuQuota": -1, "Memory": 0}, (None, None, None, None)),
    ],
)
def test_resources_from_host_config(
    host_config: dict[str, int], expected: tuple[float | None, ...]
) -> None:
    r = views.resources_from_host_config("c", host_config)
    assert (r.cpu_request, r.cpu_limit, r.memory_request, r.memory_limit) == expected


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (None, (None, None, None, None)),
        (
            {"Limits": {"NanoCPUs": 10**9, "MemoryBytes": 64 * MI, "Pids": 100},
             "Reservations": {"NanoCPUs": 2.5e8, "MemoryBytes": 32 * MI}},
            (0.25, 1.0, 32 * MI, 64 * MI),
        ),
        ({"Limits": {"MemoryBytes": 64 * MI}}, (None, None, None, 64 * MI)),
    ],
)  # fmt: skip
def test_resources_from_swarm(
    resources: dict[str, Any] | None, expected: tuple[float | None, ...]
) -> None:
    r = views.resources_from_swarm("s", resources)
    assert (r.cpu_request, r.cpu_limit, r.memory_request, r.memory_limit) == expected


@pytest.mark.parametrize(
    ("host_config", "qos"),
    [
        ({}, "BestEffort"),
        ({"NanoCpus": 10**9, "Memory": 64 * MI}, "Guaranteed"),
        ({"NanoCpus": 10**9, "Memory": 64 * MI, "CpuShares": 512}, "Burstable"),
        ({"Memory": 64 * MI}, "Burstable"),
    ],
)
def test_qos(host_config: dict[str, int], qos: str) -> None:
    assert views.qos_of(views.resources_from_host_config("c", host_config)) == qos


def container(
    name: str, labels: Mapping[str, str] | None = None, running: bool = True, cid: str = CID
) -> dict[str, Any]:
    """A ``/containers/{id}/json`` answer (the fields the adapter reads)."""
    return {
        "Id": cid,
        "Name": f"/{name}",
        "Created": "2026-01-02T03:04:05.1Z",
        "State": {"Running": running},
        "Config": {"Labels": dict(labels or {})},
        "HostConfig": {"NanoCpus": 5 * 10**8, "Memory": 64 * MI},
        "RestartCount": 2,
    }


def service(
    name: str, labels: Mapping[str, str], container_labels: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "ID": "svc1",
        "Version": {"Index": 7},
        "Spec": {
            "Name": name,
            "Labels": dict(labels),
            "TaskTemplate": {
                "ContainerSpec": {"Image": "img", "Labels": dict(container_labels)},
                "Resources": {"Limits": {"NanoCPUs": 10**9, "MemoryBytes": 96 * MI}},
            },
            "Mode": {"Replicated": {"Replicas": 3}},
        },
        "UpdateStatus": {"State": "updating", "StartedAt": "2026-01-02T03:04:05Z"},
    }


def task(state: str = "running", cid: str | None = CID2, slot: int = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"State": state}
    if cid:
        status["ContainerStatus"] = {"ContainerID": cid}
    return {
        "ID": "task1",
        "ServiceID": "svc1",
        "NodeID": "node1",
        "Slot": slot,
        "CreatedAt": "2026-01-02T03:04:05Z",
        "Status": status,
        "Spec": {"Resources": {"Limits": {"NanoCPUs": 5 * 10**8, "MemoryBytes": 64 * MI}}},
    }


@pytest.mark.parametrize(
    ("labels", "namespace", "excluded"),
    [
        ({}, "docker", True),
        ({"presize.io/enabled": "true"}, "docker", False),
        ({"presize.io/enabled": "TRUE", "presize.io/namespace": "team-a"}, "team-a", False),
        ({"presize.io/enabled": "true", "presize.io/exclude": "true"}, "docker", True),
        ({"presize.io/enabled": "true", "com.docker.stack.namespace": "shop"}, "shop", False),
    ],
)
def test_container_pod(labels: dict[str, str], namespace: str, excluded: bool) -> None:
    pod = views.container_pod(container("web", labels), "host1")
    assert pod is not None
    assert pod.ref == PodRef(namespace, "web", CID, "host1")
    assert pod.workload == WorkloadKey(namespace, OwnerKind.CONTAINER, "web")
    assert pod.excluded is excluded
    assert pod.containers == pod.applied
    assert pod.containers[0].restarts == 2


def test_container_pod_skips_task_containers_and_stopped_ones() -> None:
    assert views.container_pod(container("t", {views.TASK_ID: "x"}), "h") is None
    assert views.container_pod(container("t", running=False), "h") is None


def test_task_pod() -> None:
    svc = service("web", {"presize.io/enabled": "true"}, {"presize.io/namespace": "team-a"})
    pod = views.task_pod(task(), svc, "host1")
    assert pod is not None
    assert pod.ref == PodRef("team-a", "web.1.task1", CID2, "host1")
    assert pod.workload == WorkloadKey("team-a", OwnerKind.SWARM_SERVICE, "web")
    assert (pod.containers[0].cpu_limit, pod.applied[0].cpu_limit) == (1.0, 0.5)
    assert pod.resize is ResizeStatus.IN_PROGRESS
    assert not pod.excluded
    assert views.task_pod(task("pending", cid=None), svc, "h") is None
    assert views.task_name({"ID": "t", "NodeID": "n"}, "global") == "global.n.t"


@pytest.mark.parametrize(
    ("update", "status"),
    [
        (None, ResizeStatus.NONE),
        ({"State": "completed"}, ResizeStatus.NONE),
        ({"State": "updating"}, ResizeStatus.IN_PROGRESS),
        ({"State": "rollback_started"}, ResizeStatus.IN_PROGRESS),
        ({"State": "paused", "Message": "update paused due to failure"}, ResizeStatus.ERROR),
    ],
)
def test_service_resize_status(update: dict[str, str] | None, status: ResizeStatus) -> None:
    assert views.service_resize_status({"UpdateStatus": update})[0] is status


def test_cluster_state_modes_policies_nodes_and_workloads() -> None:
    svc = service("web", {"presize.io/enabled": "true", "presize.io/mode": "auto"}, {})
    state = views.cluster_state(
        taken_at=10.0,
        info={"Name": "host1", "NCPU": 4, "MemTotal": 8 << 30},
        containers=[
            container("a", {"presize.io/enabled": "true", "presize.io/mode": "off"}),
            container("b", {"presize.io/enabled": "true", "presize.io/mode": "bogus"}, cid=CID2),
            container("c", cid="c" * 64),
        ],
        services=[svc],
        tasks=[task(cid="d" * 64), task("pending", cid=None)],
        nodes=[{"ID": "node1", "Description": {"Hostname": "host1", "Resources": {
            "NanoCPUs": 4 * 10**9, "MemoryBytes": 8 << 30}}}],
        default_mode=Mode.INITIAL,
    )  # fmt: skip
    assert state.namespace_modes == {"docker": Mode.INITIAL, "swarm": Mode.INITIAL}
    book = PolicyBook.build(state.policies, state.namespace_modes, Mode.INITIAL)
    assert not book.errors
    modes = {p.ref.name: book.resolve(p.ref.namespace, "x", p.labels).mode for p in state.pods}
    assert modes == {"a": Mode.OFF, "b": Mode.OFF, "c": Mode.INITIAL, "web.1.task1": Mode.AUTO}
    assert [p.excluded for p in state.pods] == [False, False, True, False]
    workloads = {w.key.name: (w.replicas, w.ready) for w in state.workloads}
    assert workloads == {"web": (3, 1), "a": (1, 1), "b": (1, 1), "c": (1, 1)}
    (node,) = state.nodes
    assert (node.name, node.cpu_allocatable, node.memory_allocatable) == ("host1", 4.0, 8 << 30)


def test_node_from_info_without_swarm() -> None:
    (node,) = views.node_views([], {"Name": "h", "NCPU": 2, "MemTotal": 1 << 30}, [])
    assert (node.name, node.cpu_allocatable, node.memory_allocatable) == ("h", 2.0, 1 << 30)


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"presize.io/namespace": "team-a"},
        {"com.docker.stack.namespace": "shop"},
        {"presize.io/namespace": "x", "com.docker.stack.namespace": "shop"},
    ],
)
def test_agent_names_containers_as_the_controller_does(labels: dict[str, str]) -> None:
    """The agent may not import the controller, so its naming is a copy: kept equal here."""
    own = container("web", labels)
    summary = {"Id": CID, "Names": ["/web"], "Labels": labels}
    info = pod_info(summary, "host1")
    pod = views.container_pod(own, "host1")
    assert pod is not None
    assert info.ref == pod.ref
    assert info.container_names[CID] == pod.containers[0].name

    svc = service("api", {}, labels)
    tpod = views.task_pod(task(), svc, "host1")
    assert tpod is not None
    task_labels = {
        **labels,
        "com.docker.swarm.service.name": "api",
        "com.docker.swarm.task.name": tpod.ref.name,
        views.TASK_ID: "task1",
    }
    tinfo = pod_info({"Id": CID2, "Names": [f"/{tpod.ref.name}"], "Labels": task_labels}, "host1")
    assert tinfo.ref == tpod.ref
    assert tinfo.container_names[CID2] == "api"


# -- bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host_config", "change", "expected"),
    [
        (  # docker run --memory 64m: 64m of swap, kept
            {"Memory": 64 * MI, "MemorySwap": 128 * MI, "NanoCpus": 5 * 10**8},
            ContainerResize("c", memory_limit=96 * MI, cpu_limit=1.0),
            {"Memory": 96 * MI, "MemorySwap": 160 * MI, "NanoCpus": 10**9},
        ),
        (  # unlimited swap stays unlimited
            {"Memory": 64 * MI, "MemorySwap": -1},
            ContainerResize("c", memory_limit=32 * MI),
            {"Memory": 32 * MI, "MemorySwap": -1},
        ),
        (  # no limit before: no swap, as the kubelet
            {},
            ContainerResize("c", memory_limit=32 * MI, memory_request=16 * MI),
            {"Memory": 32 * MI, "MemorySwap": 32 * MI, "MemoryReservation": 16 * MI},
        ),
        (  # quota style kept, over its own period
            {"CpuQuota": 25000, "CpuPeriod": 50000},
            ContainerResize("c", cpu_limit=1.5),
            {"CpuQuota": 75000},
        ),
        (  # shares from the request, never under the kernel's 2
            {},
            ContainerResize("c", cpu_request=0.5),
            {"CpuShares": 512},
        ),
        ({}, ContainerResize("c", cpu_request=0.0001), {"CpuShares": 2}),
        ({"Memory": 64 * MI}, ContainerResize("c"), {}),
    ],
)
def test_container_update_body(
    host_config: dict[str, int], change: ContainerResize, expected: dict[str, int]
) -> None:
    before = dict(host_config)
    assert bodies.container_update_body(host_config, change) == expected
    assert host_config == before


def test_blkio_weight_body_and_range() -> None:
    assert bodies.container_update_body({}, ContainerResize("c"), blkio_weight=300) == {
        "BlkioWeight": 300
    }
    with pytest.raises(bodies.BodyError):
        bodies.container_update_body({}, ContainerResize("c"), blkio_weight=5)


def test_service_spec_with_resources_keeps_the_rest() -> None:
    spec = service("web", {"l": "1"}, {})["Spec"]
    spec["TaskTemplate"]["Resources"]["Limits"]["Pids"] = 50
    original = json.loads(json.dumps(spec))
    new = bodies.service_spec_with_resources(
        spec, ContainerResize("web", cpu_request=0.25, memory_limit=128 * MI)
    )
    assert spec == original  # not mutated
    assert new["TaskTemplate"]["Resources"] == {
        "Limits": {"NanoCPUs": 10**9, "MemoryBytes": 128 * MI, "Pids": 50},
        "Reservations": {"NanoCPUs": 250_000_000},
    }
    assert new["TaskTemplate"]["ContainerSpec"] == spec["TaskTemplate"]["ContainerSpec"]
    assert new["Labels"] == {"l": "1"}


def test_service_spec_avoiding_is_idempotent() -> None:
    spec: dict[str, Any] = {"TaskTemplate": {"Placement": {"Constraints": ["node.role==worker"]}}}
    new = bodies.service_spec_avoiding(spec, "host1")
    assert new is not None
    assert new["TaskTemplate"]["Placement"]["Constraints"] == [
        "node.role==worker",
        "node.hostname!=host1",
    ]
    assert bodies.service_spec_avoiding(new, "host1") is None
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.role==worker"]


def test_a_second_reschedule_moves_presizes_constraint_and_keeps_the_users() -> None:
    spec: dict[str, Any] = {
        "Labels": {"team": "shop"},
        "TaskTemplate": {"Placement": {"Constraints": ["node.role==worker"]}},
    }
    first = bodies.service_spec_avoiding(spec, "host1")
    assert first is not None
    assert first["Labels"] == {"team": "shop", bodies.AVOIDED_NODE_LABEL: "host1"}
    second = bodies.service_spec_avoiding(first, "host2")
    assert second is not None
    # One node excluded at a time: host1 may take tasks again, the user's rule stays.
    assert second["TaskTemplate"]["Placement"]["Constraints"] == [
        "node.role==worker",
        "node.hostname!=host2",
    ]
    assert second["Labels"][bodies.AVOIDED_NODE_LABEL] == "host2"
    assert first["Labels"][bodies.AVOIDED_NODE_LABEL] == "host1"  # not mutated


def test_a_constraint_the_user_wrote_is_never_removed() -> None:
    spec: dict[str, Any] = {
        "TaskTemplate": {"Placement": {"Constraints": ["node.hostname!=host1"]}},
    }
    assert bodies.service_spec_avoiding(spec, "host1") is None  # already avoided, by the user
    new = bodies.service_spec_avoiding(spec, "host2")
    assert new is not None
    again = bodies.service_spec_avoiding(new, "host3")
    assert again is not None
    assert again["TaskTemplate"]["Placement"]["Constraints"] == [
        "node.hostname!=host1",
        "node.hostname!=host3",
    ]


def test_nodes_that_cannot_take_tasks_are_not_capacity() -> None:
    def swarm_node(name: str, state: str, availability: str) -> dict[str, Any]:
        return {
            "ID": name,
            "Description": {"Hostname": name, "Resources": {"NanoCPUs": 2 * 10**9}},
            "Status": {"State": state},
            "Spec": {"Availability": availability},
        }

    nodes = [
        swarm_node("up", "ready", "active"),
        swarm_node("down", "down", "active"),
        swarm_node("drained", "ready", "drain"),
        swarm_node("paused", "ready", "pause"),
        {"ID": "bare", "Description": {"Hostname": "bare"}},  # fields left out: schedulable
    ]
    assert [n.name for n in views.node_views(nodes, {}, [])] == ["up", "bare"]


# -- the orchestrator over a fake engine ---------------------------------------------------


class FakeEngine:
    """Just enough of :class:`EngineClient` for the retry and outage paths."""

    def __init__(self, conflicts: int = 0, down: bool = False, hosts: int = 1) -> None:
        self.conflicts = conflicts
        self.down = down
        self.hosts = ["h", *(f"h{i}" for i in range(2, hosts + 1))]
        self.updates: list[tuple[int, dict[str, Any]]] = []
        self.svc = service("web", {"presize.io/enabled": "true"}, {})

    def _check(self) -> None:
        if self.down:
            raise EngineUnavailableError("socket gone")

    async def info(self) -> dict[str, Any]:
        self._check()
        return {"Name": "h", "Swarm": {"LocalNodeState": "active", "ControlAvailable": True}}

    async def containers(self, **_: Any) -> list[dict[str, Any]]:
        self._check()
        return []

    async def services(self) -> list[dict[str, Any]]:
        return [self.svc]

    async def tasks(self, filters: Any = None) -> list[dict[str, Any]]:
        return [task()]

    async def nodes(self) -> list[dict[str, Any]]:
        return [{"ID": f"node-{h}", "Description": {"Hostname": h}} for h in self.hosts]

    async def service(self, ref: str) -> dict[str, Any]:
        self._check()
        return self.svc

    async def update_service(
        self, ref: str, version: int, spec: Mapping[str, Any], *, rollback: bool = False
    ) -> list[str]:
        self._check()
        if self.conflicts:
            self.conflicts -= 1
            raise error_for(500, "update out of sequence")
        self.updates.append((version, dict(spec)))
        return []

    async def close(self) -> None:
        pass


def fake_orchestrator(engine: FakeEngine, retries: int = 3) -> DockerOrchestrator:
    return DockerOrchestrator(engine, DockerSettings(conflict_retries=retries))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("conflicts", "outcome"), [(0, Outcome.APPLIED), (2, Outcome.APPLIED), (4, Outcome.FAILED)]
)
async def test_service_resize_retries_conflicts(conflicts: int, outcome: Outcome) -> None:
    engine = FakeEngine(conflicts=conflicts)
    orch = fake_orchestrator(engine)
    pod = (await orch.state()).pods[0]
    result = await orch.resize(pod.ref, [ContainerResize("web", memory_limit=128 * MI)])
    assert result.outcome is outcome, result.message
    if outcome is Outcome.APPLIED:
        ((version, spec),) = engine.updates
        assert version == 7
        assert spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 128 * MI


@pytest.mark.parametrize("hosts", [1, 2])
async def test_a_service_is_moved_off_its_node_only_when_another_can_take_it(hosts: int) -> None:
    engine = FakeEngine(hosts=hosts)
    orch = fake_orchestrator(engine)
    pod = (await orch.state()).pods[0]
    assert pod.ref.node == "h"
    result = await orch.evict(pod.ref, "the node cannot hold the growth")
    if hosts == 1:
        assert result.outcome is Outcome.REFUSED
        assert "no other schedulable node" in result.message
        assert engine.updates == []
    else:
        assert result.outcome is Outcome.APPLIED, result.message
        ((_, spec),) = engine.updates
        assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.hostname!=h"]
        assert spec["Labels"][bodies.AVOIDED_NODE_LABEL] == "h"


async def test_outage_serves_the_last_snapshot_and_fails_actions() -> None:
    engine = FakeEngine(down=True)
    orch = fake_orchestrator(engine)
    empty = await orch.state()
    assert empty.pods == ()
    assert orch.last_error
    engine.down = False
    pod = (await orch.state()).pods[0]
    engine.down = True
    orch.mark_stale()
    assert (await orch.state()).pods == (pod,)
    result = await orch.resize(pod.ref, [ContainerResize("web", cpu_limit=2.0)])
    assert result.outcome is Outcome.FAILED
    wrong = await orch.resize(pod.ref, [ContainerResize("other", cpu_limit=2.0)])
    assert wrong.outcome is Outcome.REFUSED


# -- the file store ----------------------------------------------------------------------------


async def test_file_store_round_trip_and_corruption(tmp_path: Path) -> None:
    store = FileProfileStore(tmp_path / "profiles")
    assert await store.load_all() == {}
    a = WorkloadKey("swarm", OwnerKind.SWARM_SERVICE, "web/../x y")
    b = WorkloadKey("docker", OwnerKind.CONTAINER, "db")
    await store.save(a, {"generation": 1, "cpu": [0.5, 1.0]})
    await store.save(b, {"generation": 1})
    await store.save(a, {"generation": 2})
    (tmp_path / "profiles" / "broken.json").write_text("{not json")
    loaded = await store.load_all()
    assert loaded == {a: {"generation": 2}, b: {"generation": 1}}
    names = sorted(p.name for p in (tmp_path / "profiles").iterdir())
    assert names == sorted(["broken.json", file_name(a), file_name(b)])  # no temp files left
    assert "/" not in file_name(a)
    with pytest.raises(StoreError):
        await store.save(a, {"bad": float("nan")})
    assert (await store.load_all())[a] == {"generation": 2}


async def test_file_store_unwritable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError):
        await FileProfileStore(blocker / "sub").save(WorkloadKey("d", OwnerKind.CONTAINER, "x"), {})


# -- the agent's discovery -----------------------------------------------------------------------


def test_discover_docker_cgroups(tmp_path: Path) -> None:
    for rel in (
        f"docker/{CID}",  # cgroupfs driver
        f"system.slice/docker-{CID2}.scope",  # systemd driver
        f"kubepods/burstable/pod1234/{'c' * 64}",  # a Kubernetes pod: not ours in Docker mode
        "system.slice/ssh.service",
    ):
        (tmp_path / rel).mkdir(parents=True)
    found = {c.container_id: c for c in discover_docker(str(tmp_path))}
    assert set(found) == {CID, CID2}
    assert found[CID].path == f"/docker/{CID}"
    assert found[CID].pod_uid == CID  # the directory's key
    assert found[CID2].path == f"/system.slice/docker-{CID2}.scope"


# -- the load program --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "worker", "share"),
    [(0, 0, 0.2), (29, 0, 0.2), (31, 0, 1.0), (31, 1, 0.5), (10_000, 1, 0.5), (31, 2, 0.0)],
)
def test_load_schedule(elapsed: float, worker: int, share: float) -> None:
    steps = parse_schedule("0.2:30,1.5")
    assert share_at(steps, elapsed, worker) == pytest.approx(share)
