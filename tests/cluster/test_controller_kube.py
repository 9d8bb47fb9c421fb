"""controller.kube against a real kube-apiserver (tests/cluster/conftest.py) with kwok nodes.

The orchestrator's watched caches (pods of a Deployment with their workload, node free
capacity, namespace modes, PresizePolicies, PDB budgets, the HPA flag, updates by watch);
in-place resize through ``pods/resize`` (kwok's resize stage plays the kubelet), evictions
through the Eviction API with and without a PodDisruptionBudget; Events on pods and
Deployments; the WorkloadProfile store (round trip, conflicts, a restart); TokenReview with a
real ServiceAccount token; Lease leader election with two candidates and a stale lease; and
an API-server outage in a cluster of the test's own (stopped and started by pid).

The first two tests need no cluster: the cache's incremental bookkeeping and its speed at
5,000 pods and 500 nodes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client

from controller.errors import StoreError
from controller.kube import (
    KubeHttp,
    KubeOrchestrator,
    KubeProfileStore,
    LeaseElector,
    TokenReviewAuthenticator,
    profile_name,
)
from controller.kube.cache import ClusterCache
from controller.orchestrator import ClusterState, ContainerResize, EventType, Outcome, PodView
from hack.cluster.localcluster import LocalCluster, NodeSpec
from presize.model import Mode, OwnerKind, PodRef, WorkloadKey

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "presize"
MI = 1024.0**2
T = TypeVar("T")


async def eventually(what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = 30) -> T:
    """Poll the async ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# ============================================================================================
# the cache, without a cluster


def _pod(
    uid: str,
    ns: str,
    name: str,
    node: str,
    cpu: str,
    *,
    owner: tuple[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "namespace": ns, "name": name, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    return {
        "metadata": meta,
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "app", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}
            ],
        },
        "status": {"phase": "Running"},
    }


def _node(name: str, cpu: str = "8") -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu, "memory": "32Gi"}}}


def test_cache_attributes_by_owner_and_accounts_nodes_incrementally() -> None:
    cache = ClusterCache(Mode.INITIAL, clock=lambda: 42.0)
    cache.handlers["nodes"].replace([_node("n1"), _node("n2")])
    # The pod arrives before its ReplicaSet, whose Deployment is not named like it.
    pods = cache.handlers["pods"]
    pods.replace(
        [
            _pod(
                "u1",
                "ns",
                "web-5d8f7-x",
                "n1",
                "500m",
                owner=("ReplicaSet", "web-5d8f7"),
                labels={"pod-template-hash": "5d8f7"},
            )
        ]
    )
    guess = cache.state().pods[0].workload
    assert guess == WorkloadKey("ns", OwnerKind.DEPLOYMENT, "web")
    rs = {
        "metadata": {
            "namespace": "ns",
            "name": "web-5d8f7",
            "ownerReferences": [{"kind": "Deployment", "name": "frontend", "controller": True}],
        }
    }
    cache.handlers["replicasets"].apply("ADDED", rs)
    state = cache.state()
    assert state.pods[0].workload == WorkloadKey("ns", OwnerKind.DEPLOYMENT, "frontend")
    assert not any(w.key.kind is OwnerKind.REPLICASET for w in state.workloads)
    # Node sums move with binds, updates and deletes.
    pods.apply("ADDED", _pod("u2", "ns", "b", "n2", "250m"))
    pods.apply(
        "MODIFIED", _pod("u1", "ns", "web-5d8f7-x", "n1", "1", owner=("ReplicaSet", "web-5d8f7"))
    )
    nodes = {n.name: n for n in cache.state().nodes}
    assert nodes["n1"].cpu_requested == pytest.approx(1.0)
    assert nodes["n2"].cpu_requested == pytest.approx(0.25)
    assert nodes["n1"].cpu_free == pytest.approx(7.0)
    done = _pod("u2", "ns", "b", "n2", "250m")
    done["status"]["phase"] = "Succeeded"
    pods.apply("MODIFIED", done)
    assert {n.name: n.cpu_requested for n in cache.state().nodes}["n2"] == pytest.approx(0.0)
    # A re-list (after 410) drops what vanished meanwhile, requests included.
    pods.replace([])
    state = cache.state()
    assert state.pods == ()
    assert [n.cpu_requested for n in state.nodes] == pytest.approx([0.0, 0.0])
    assert state.taken_at == 42.0


def test_cache_state_is_fast_at_5000_pods_and_500_nodes() -> None:
    cache = ClusterCache(Mode.INITIAL)
    started = time.perf_counter()
    cache.handlers["nodes"].replace([_node(f"n{i}") for i in range(500)])
    cache.handlers["replicasets"].replace(
        [
            {
                "metadata": {
                    "namespace": f"ns{i % 50}",
                    "name": f"app{i}-5d8f7",
                    "uid": f"rs{i}",
                    "ownerReferences": [
                        {"kind": "Deployment", "name": f"app{i}", "controller": True}
                    ],
                }
            }
            for i in range(500)
        ]
    )
    pods = [
        _pod(
            f"u{i}",
            f"ns{i % 500 % 50}",
            f"app{i % 500}-5d8f7-{i}",
            f"n{i % 500}",
            "100m",
            owner=("ReplicaSet", f"app{i % 500}-5d8f7"),
            labels={"app": f"app{i % 500}"},
        )
        for i in range(5000)
    ]
    cache.handlers["pods"].replace(pods)
    first = cache.state()
    initial_s = time.perf_counter() - started
    assert len(first.pods) == 5000
    assert len(first.nodes) == 500
    assert [n.cpu_requested for n in first.nodes] == pytest.approx([1.0] * 500)
    # One event, one snapshot: what a decision cycle pays.
    started = time.perf_counter()
    for i in range(100):
        cache.handlers["pods"].apply("MODIFIED", pods[i])
        state = cache.state()
    per_cycle_s = (time.perf_counter() - started) / 100
    print(f"initial list+state: {initial_s:.3f}s; event+state: {per_cycle_s * 1000:.2f}ms")
    assert len(state.pods) == 5000
    # Speed is the benchmark's to measure (bench/controller.py); here only correctness.


# ============================================================================================
# fixtures for the cluster tests


def _wait_sync(probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.2)


@pytest.fixture
async def orch(crds: None, kube: client.ApiClient) -> AsyncIterator[KubeOrchestrator]:
    o = KubeOrchestrator(kube, default_mode=Mode.INITIAL, backoff_max_s=2.0, instance="test")
    o.start()
    try:
        assert await o.wait_synced(30), {n: r.last_error for n, r in o.reflectors.items()}
        yield o
    finally:
        await o.stop()


@pytest.fixture
async def http(kube: client.ApiClient) -> AsyncIterator[KubeHttp]:
    h = KubeHttp(kube)
    try:
        yield h
    finally:
        await h.close()


def _container(cpu: str = "100m", mem: str = "64Mi", lcpu: str = "500m", lmem: str = "256Mi"):
    return {
        "name": "app",
        "image": "registry.invalid/app:1",
        "resources": {
            "requests": {"cpu": cpu, "memory": mem},
            "limits": {"cpu": lcpu, "memory": lmem},
        },
    }


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [_container()]},
            },
        },
    }


def _bare_pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [_container()]},
    }


def _pods_of(state: ClusterState, ns: str, prefix: str = "") -> list[PodView]:
    return [p for p in state.pods if p.ref.namespace == ns and p.ref.name.startswith(prefix)]


async def _running(orch: KubeOrchestrator, ns: str, name: str) -> PodView:
    async def probe() -> PodView | None:
        view = next((p for p in _pods_of(await orch.state(), ns) if p.ref.name == name), None)
        return view if view and view.running and view.applied else None

    return await eventually(f"pod {ns}/{name} running", probe, 60)


# ============================================================================================
# state()


async def test_state_sees_workloads_nodes_modes_policies_budgets_and_autoscalers(
    orch: KubeOrchestrator, kube: client.ApiClient, namespace: str
) -> None:
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    core.patch_namespace(
        namespace,
        {
            "metadata": {
                "labels": {"presize.io/enabled": "true"},
                "annotations": {"presize.io/mode": "auto"},
            }
        },
    )
    other = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": other, "labels": {"presize.io/enabled": "true"}}})
    try:
        apps.create_namespaced_deployment(namespace, _deployment("web", 2))
        client.PolicyV1Api(kube).create_namespaced_pod_disruption_budget(
            namespace,
            {
                "metadata": {"name": "web"},
                "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            },
        )
        client.AutoscalingV2Api(kube).create_namespaced_horizontal_pod_autoscaler(
            namespace,
            {
                "metadata": {"name": "web"},
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                    },
                    "minReplicas": 2,
                    "maxReplicas": 4,
                },
            },
        )
        client.CustomObjectsApi(kube).create_namespaced_custom_object(
            "presize.io",
            "v1alpha1",
            namespace,
            "presizepolicies",
            {
                "apiVersion": "presize.io/v1alpha1",
                "kind": "PresizePolicy",
                "metadata": {"name": "default"},
                "spec": {"buffer": 1.3},
            },
        )
        web = WorkloadKey(namespace, OwnerKind.DEPLOYMENT, "web")

        async def settled() -> ClusterState | None:
            state = await orch.state()
            pods = _pods_of(state, namespace)
            view = next((w for w in state.workloads if w.key == web), None)
            ok = (
                len(pods) == 2
                and all(p.running for p in pods)
                and view is not None
                and view.ready == 2
                and view.disruptions_allowed == 0
                and view.autoscaled
                and state.policies.get(namespace)
            )
            return state if ok else None

        state = await eventually("the Deployment, its PDB, HPA and policy in the view", settled, 90)
        pods = _pods_of(state, namespace)
        assert {p.workload for p in pods} == {web}
        assert all(p.containers[0].cpu_request == 0.1 for p in pods)
        assert all(p.applied[0].memory_limit == 256 * MI for p in pods)
        assert not [
            w
            for w in state.workloads
            if w.key.namespace == namespace and w.key.kind is OwnerKind.REPLICASET
        ]
        assert state.namespace_modes[namespace] is Mode.AUTO
        assert state.namespace_modes[other] is Mode.INITIAL
        assert "default" not in state.namespace_modes
        assert [dict(p) for p in state.policies[namespace]] == [
            {"name": "default", "spec": {"buffer": 1.3, "mode": "initial"}}
        ]
        # Free capacity: allocatable minus what the API server says the bound pods request.
        expected: dict[str, float] = {}
        for p in core.list_pod_for_all_namespaces().items:
            if p.spec.node_name and p.status.phase not in ("Succeeded", "Failed"):
                cpu = sum(
                    float(c.resources.requests["cpu"].rstrip("m")) / 1000
                    for c in p.spec.containers
                    if c.resources and c.resources.requests and "cpu" in c.resources.requests
                )
                expected[p.spec.node_name] = expected.get(p.spec.node_name, 0.0) + cpu
        for node in state.nodes:
            assert node.cpu_allocatable == 8.0
            assert node.memory_allocatable == 32 * 1024 * MI
            assert node.cpu_requested == pytest.approx(expected.get(node.name, 0.0))
        assert sum(n.cpu_requested for n in state.nodes) >= 0.2

        # The watch keeps it current: scale out, and drop the HPA.
        apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})
        client.AutoscalingV2Api(kube).delete_namespaced_horizontal_pod_autoscaler("web", namespace)

        async def scaled() -> bool:
            state = await orch.state()
            view = next((w for w in state.workloads if w.key == web), None)
            return bool(
                len(_pods_of(state, namespace)) == 3
                and view
                and view.replicas == 3
                and not view.autoscaled
            )

        await eventually("the third replica and no HPA", scaled, 60)
    finally:
        core.delete_namespace(other)


# ============================================================================================
# resize(), evict(), record_event()


async def test_resize_in_place_gone_and_refused(
    orch: KubeOrchestrator, kube: client.ApiClient, namespace: str
) -> None:
    client.CoreV1Api(kube).create_namespaced_pod(namespace, _bare_pod("sized"))
    view = await _running(orch, namespace, "sized")
    node_before = next(n for n in (await orch.state()).nodes if n.name == view.ref.node)

    result = await orch.resize(
        view.ref, [ContainerResize("app", cpu_request=0.25, memory_request=96 * MI)]
    )
    assert result.outcome is Outcome.APPLIED, result

    async def applied() -> PodView | None:
        now = next(p for p in _pods_of(await orch.state(), namespace) if p.ref.name == "sized")
        return now if now.applied and now.applied[0].cpu_request == 0.25 else None

    now = await eventually("the node to apply the resize", applied)
    app = now.containers[0]
    assert (app.cpu_request, app.memory_request, app.cpu_limit) == (0.25, 96 * MI, 0.5)
    assert now.applied[0].memory_request == 96 * MI
    node_after = next(n for n in (await orch.state()).nodes if n.name == view.ref.node)
    assert node_after.cpu_requested == pytest.approx(node_before.cpu_requested + 0.15)

    # requests == limits would make the Burstable pod Guaranteed: the API server refuses.
    refused = await orch.resize(
        view.ref, [ContainerResize("app", cpu_request=0.5, memory_request=256 * MI)]
    )
    assert refused.outcome is Outcome.REFUSED, refused
    assert "QOS" in refused.message.upper()
    gone = await orch.resize(PodRef(namespace, "no-such-pod", "x"), [ContainerResize("app", 0.2)])
    assert gone.outcome is Outcome.GONE
    replaced = await orch.resize(
        PodRef(namespace, "sized", str(uuid.uuid4())), [ContainerResize("app", 0.3)]
    )
    assert replaced.outcome is Outcome.GONE, replaced  # same name, another pod


async def test_evict_honours_disruption_budgets(
    orch: KubeOrchestrator, kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _bare_pod("guarded", app="guarded"))
    core.create_namespaced_pod(namespace, _bare_pod("free", app="free"))
    policy = client.PolicyV1Api(kube)
    policy.create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": "guarded"},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "guarded"}}},
        },
    )
    guarded = await _running(orch, namespace, "guarded")
    free = await _running(orch, namespace, "free")

    async def budget_seen() -> bool:
        key = WorkloadKey(namespace, OwnerKind.POD, "guarded")
        return any(
            w.key == key and w.disruptions_allowed == 0 for w in (await orch.state()).workloads
        )

    await eventually("the PDB in the view", budget_seen)
    refused = await orch.evict(guarded.ref, "test")
    assert refused.outcome is Outcome.REFUSED, refused
    assert "disruption budget" in refused.message
    result = await orch.evict(free.ref, "test")
    assert result.outcome is Outcome.APPLIED, result

    async def gone() -> bool:  # deleted, not just terminating (evicting that again is fine)
        return not any(p.ref.name == "free" for p in _pods_of(await orch.state(), namespace))

    await eventually("the evicted pod to be deleted", gone)
    again = await orch.evict(free.ref, "test")
    assert again.outcome is Outcome.GONE, again
    assert core.read_namespaced_pod("guarded", namespace).metadata.deletion_timestamp is None


async def test_events_on_pod_and_deployment(
    orch: KubeOrchestrator, kube: client.ApiClient, namespace: str
) -> None:
    client.AppsV1Api(kube).create_namespaced_deployment(namespace, _deployment("evt", 1))
    key = WorkloadKey(namespace, OwnerKind.DEPLOYMENT, "evt")

    async def pod() -> PodView | None:
        pods = [p for p in _pods_of(await orch.state(), namespace) if p.workload == key]
        return pods[0] if pods and orch.cache.workload_uid(key) else None

    view = await eventually("the Deployment's pod", pod, 60)
    await orch.record_event(
        pod=view.ref,
        workload=key,
        type=EventType.WARNING,
        reason="PresizeTest",
        message="resized ahead of a peak",
    )
    # An event that cannot be written is logged, never raised.
    await orch.record_event(
        pod=PodRef("no-such-namespace", "p", "u"),
        workload=None,
        type=EventType.NORMAL,
        reason="X",
        message="y",
    )
    events = client.CoreV1Api(kube).list_namespaced_event(namespace).items
    mine = {e.involved_object.kind: e for e in events if e.reason == "PresizeTest"}
    assert set(mine) == {"Pod", "Deployment"}
    assert mine["Pod"].involved_object.name == view.ref.name
    assert mine["Pod"].involved_object.uid == view.ref.uid
    deployment = client.AppsV1Api(kube).read_namespaced_deployment("evt", namespace)
    assert mine["Deployment"].involved_object.uid == deployment.metadata.uid
    assert mine["Deployment"].type == "Warning"
    assert mine["Deployment"].message == "resized ahead of a peak"
    assert mine["Deployment"].source.component == "presize-controller"


# ============================================================================================
# KubeProfileStore


STATUS = {
    "class": "periodic",
    "model": "seasonal",
    "profileGeneration": 3,
    "summary": {"cpuTarget": "250m", "memoryTarget": "300Mi", "coverage": "94%"},
    "containers": [{"name": "app", "recommendation": {"cpu": {"target": "250m"}}}],
    "checkpoint": "eyJ2IjogMX0=",
}


async def test_profile_store_round_trip_conflict_and_restart(
    crds: None, kube: client.ApiClient, namespace: str, http: KubeHttp
) -> None:
    custom = client.CustomObjectsApi(kube)
    store = KubeProfileStore(http)
    web = WorkloadKey(namespace, OwnerKind.DEPLOYMENT, "web")
    await store.save(web, STATUS)
    obj = custom.get_namespaced_custom_object(
        "presize.io", "v1alpha1", namespace, "workloadprofiles", "deployment-web"
    )
    assert obj["spec"]["workload"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert obj["status"] == STATUS  # the checkpoint survives the schema's pruning

    # Someone else writes in between: the store's version is stale (409), it reads again and
    # replaces the whole status (the other writer's extra field goes).
    custom.patch_namespaced_custom_object_status(
        "presize.io",
        "v1alpha1",
        namespace,
        "workloadprofiles",
        "deployment-web",
        {"status": {"model": "percentile", "observedGeneration": 9}},
    )
    newer = {**STATUS, "profileGeneration": 4}
    await store.save(web, newer)
    obj = custom.get_namespaced_custom_object(
        "presize.io", "v1alpha1", namespace, "workloadprofiles", "deployment-web"
    )
    assert obj["status"] == newer

    # Deleted behind the store's back: created again.
    custom.delete_namespaced_custom_object(
        "presize.io", "v1alpha1", namespace, "workloadprofiles", "deployment-web"
    )
    await store.save(web, newer)

    long = WorkloadKey(namespace, OwnerKind.STATEFULSET, "x" * 250)
    job = WorkloadKey(namespace, OwnerKind.JOB, "Backup_Nightly")
    await store.save(long, {"class": "steady"})
    await store.save(job, {"class": "batch"})
    assert len(profile_name(long)) <= 253
    assert profile_name(long) != profile_name(
        WorkloadKey(namespace, OwnerKind.STATEFULSET, "x" * 251)
    )

    # A restart: a new store finds everything, by spec.workload (not by object name).
    loaded = await KubeProfileStore(http).load_all()
    mine = {k: v for k, v in loaded.items() if k.namespace == namespace}
    assert mine == {web: newer, long: {"class": "steady"}, job: {"class": "batch"}}

    with pytest.raises(StoreError):
        await store.save(WorkloadKey(namespace, OwnerKind.CONTAINER, "c"), {})
    with pytest.raises(StoreError):  # the schema refuses an unknown decision: not retried
        await store.save(web, {"lastDecision": {"action": "EXPLODE"}})


# ============================================================================================
# TokenReviewAuthenticator


async def test_token_review_authenticates_service_account_tokens(
    kube: client.ApiClient, namespace: str, http: KubeHttp
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "agent"}})

    def token(audiences: list[str] | None) -> str:
        spec: dict[str, Any] = {"expirationSeconds": 600}
        if audiences:
            spec["audiences"] = audiences
        return str(
            core.create_namespaced_service_account_token(
                "agent", namespace, {"spec": spec}
            ).status.token
        )

    agent = f"system:serviceaccount:{namespace}:agent"
    auth = TokenReviewAuthenticator(http, audience="presize-test", allowed=[agent])
    good = token(["presize-test"])
    assert await auth.authenticate(good) == agent
    reviews = auth.reviews
    assert await auth.authenticate(good) == agent
    assert auth.reviews == reviews  # cached
    assert await auth.authenticate("garbage") is None
    assert await auth.authenticate("") is None
    assert await auth.authenticate(token(None)) is None  # minted for the API server's audience
    others = TokenReviewAuthenticator(http, audience="presize-test", allowed=["someone-else"])
    assert await others.authenticate(good) is None
    anyone = TokenReviewAuthenticator(http)
    assert await anyone.authenticate(token(None)) == agent


# ============================================================================================
# LeaseElector


async def test_leader_election_hands_over_and_takes_stale_leases(
    kube: client.ApiClient, namespace: str, http: KubeHttp
) -> None:
    def elector(identity: str, name: str = "presize") -> LeaseElector:
        return LeaseElector(
            http,
            name=name,
            namespace=namespace,
            identity=identity,
            lease_duration_s=3.0,
            renew_deadline_s=2.0,
            retry_period_s=0.2,
        )

    a, b = elector("a"), elector("b")
    events: list[str] = []
    tasks = {
        e.identity: asyncio.create_task(
            e.run(
                lambda e=e: events.append(f"+{e.identity}"),
                lambda e=e: events.append(f"-{e.identity}"),
            )
        )
        for e in (a, b)
    }
    coord = client.CoordinationV1Api(kube)
    try:
        await asyncio.wait_for(
            asyncio.wait(
                [asyncio.create_task(a.wait_leading()), asyncio.create_task(b.wait_leading())],
                return_when=asyncio.FIRST_COMPLETED,
            ),
            10,
        )
        await asyncio.sleep(1.0)  # several renewals: still exactly one leader
        assert a.is_leader != b.is_leader
        leader, follower = (a, b) if a.is_leader else (b, a)
        lease = coord.read_namespaced_lease("presize", namespace)
        assert lease.spec.holder_identity == leader.identity

        started = time.monotonic()
        await leader.stop()
        await asyncio.wait_for(tasks[leader.identity], 5)
        await asyncio.wait_for(follower.wait_leading(), 5)
        handover_s = time.monotonic() - started
        assert handover_s < 2.0, handover_s  # released, not waited out (3 s)
        assert events == [f"+{leader.identity}", f"-{leader.identity}", f"+{follower.identity}"]
        lease = coord.read_namespaced_lease("presize", namespace)
        assert lease.spec.holder_identity == follower.identity
        assert lease.spec.lease_transitions == 1
    finally:
        for e in (a, b):
            await e.stop()
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    # A lease left by a crashed holder is taken over once it has not been renewed for its
    # duration, as observed by the candidate.
    await http.request(  # raw: the typed client reformats MicroTime into what Go refuses
        "POST",
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
        body={
            "metadata": {"name": "stale"},
            "spec": {
                "holderIdentity": "crashed",
                "leaseDurationSeconds": 1,
                "renewTime": "2020-01-01T00:00:00.000000Z",
            },
        },
    )
    c = elector("c", "stale")
    task = asyncio.create_task(c.run())
    try:
        started = time.monotonic()
        await asyncio.wait_for(c.wait_leading(), 10)
        assert 0.9 <= time.monotonic() - started < 5
        lease = coord.read_namespaced_lease("stale", namespace)
        assert lease.spec.holder_identity == "c"
        assert lease.spec.lease_transitions == 1
    finally:
        await c.stop()
        await asyncio.wait_for(task, 5)
    assert coord.read_namespaced_lease("stale", namespace).spec.holder_identity in (None, "")


# ============================================================================================
# an API-server outage (a cluster of the test's own: the session's must stay up)


async def test_state_survives_an_api_server_outage_and_the_watch_resumes(
    local_cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster = LocalCluster(tmp_path / "outage", nodes=1, node=NodeSpec(cpu="4", memory="8Gi"))
    cluster.start()
    orch: KubeOrchestrator | None = None
    try:
        from controller.kube import api_client

        ns = "outage"
        assert cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
        await asyncio.to_thread(
            _wait_sync,
            lambda: (
                cluster.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200
            ),
            60,
        )
        status, body = cluster.request("POST", f"/api/v1/namespaces/{ns}/pods", _bare_pod("one"))
        assert status == 201, body
        orch = KubeOrchestrator(
            api_client(str(cluster.kubeconfig)),
            resources=("nodes", "pods"),
            backoff_max_s=1.0,
        )
        orch.start()
        assert await orch.wait_synced(30)
        await _running(orch, ns, "one")

        apiserver = cluster._procs["kube-apiserver"].popen  # the test's own cluster, by pid
        assert apiserver is not None
        apiserver.kill()  # a crash; a graceful stop waits out open watches
        await asyncio.to_thread(apiserver.wait, 30)
        await eventually(
            "the watch to notice", lambda: _async(bool(orch and orch.reflectors["pods"].last_error))
        )
        state = await orch.state()  # the last view, still served
        assert [p.ref.name for p in _pods_of(state, ns)] == ["one"]
        assert [n.cpu_allocatable for n in state.nodes] == [4.0]

        await asyncio.to_thread(cluster._start_apiserver, time.monotonic() + 60)
        status, body = cluster.request("POST", f"/api/v1/namespaces/{ns}/pods", _bare_pod("two"))
        assert status == 201, body
        await _running(orch, ns, "two")
        assert orch.reflectors["pods"].last_error == ""
    finally:
        if orch is not None:
            await orch.stop()
        cluster.stop()


async def _async(value: T) -> T:
    return value
