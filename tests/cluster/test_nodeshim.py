"""The node shim against a real kube-apiserver and this machine's real cgroups.

Each test creates pods bound to a shim node and checks what the kubelet would have done, in
the cgroup files themselves (limits, throttling, usage, OOM kills) and in the pod status the
API server holds. Cgroup paths are computed here from the pod's UID, QoS class and container
ID, independently of the shim's own code. Skipped only when the cluster binaries are missing
(the ``local_cluster`` fixture); the cgroups must be there (root, v1 controllers).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import wait_for

from agent.discovery import QosClass, scan
from hack.cluster.localcluster import LocalCluster
from hack.nodeshim.node import NodeSpec
from hack.nodeshim.shim import NodeShim, ShimConfig

pytestmark = pytest.mark.cluster

ROOT = Path("/sys/fs/cgroup")
MIB = 1024 * 1024
NODE_CPU = "4"
SMP = "application/strategic-merge-patch+json"


@pytest.fixture(scope="module")
def shim(local_cluster: LocalCluster) -> Iterator[tuple[NodeShim, str]]:
    node = f"shim-{uuid.uuid4().hex[:6]}"
    config = ShimConfig(node=NodeSpec(cpu=NODE_CPU, memory="8Gi"), resize_delay_s=1.0)
    with NodeShim(local_cluster.kubeconfig, [node], config) as running:
        yield running, node


# ---- helpers


def pod_manifest(
    name: str,
    node: str,
    resources: dict[str, Any],
    load: dict[str, Any] | None = None,
    *,
    restart_policy: str = "Always",
) -> dict[str, Any]:
    annotations = {"presize.io/load": json.dumps(load)} if load is not None else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "nodeName": node,
            "restartPolicy": restart_policy,
            "containers": [{"name": "app", "image": "busybox:1.36", "resources": resources}],
        },
    }


def res(cpu_req: str, mem_req: str, cpu_lim: str, mem_lim: str) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu_req, "memory": mem_req},
        "limits": {"cpu": cpu_lim, "memory": mem_lim},
    }


def create(cluster: LocalCluster, ns: str, manifest: dict[str, Any]) -> None:
    status, body = cluster.request("POST", f"/api/v1/namespaces/{ns}/pods", manifest)
    assert status == 201, body


def get(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any]:
    status, body = cluster.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert status == 200, body
    pod: dict[str, Any] = body
    return pod


def running(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any]:
    """Wait until the pod's first container runs with a container ID; return the pod."""

    def probe() -> dict[str, Any] | None:
        pod = get(cluster, ns, name)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        ok = statuses and "running" in statuses[0]["state"] and statuses[0].get("containerID")
        return pod if ok else None

    return wait_for(f"pod {ns}/{name} running", probe, timeout=30)


def cgroup(controller: str, node: str, pod: dict[str, Any], container: int = 0) -> Path:
    """The kubelet's cgroupfs path for a container, from the pod as the API server has it."""
    qos = {"Guaranteed": "", "Burstable": "burstable", "BestEffort": "besteffort"}[
        pod["status"]["qosClass"]
    ]
    cid = pod["status"]["containerStatuses"][container]["containerID"]
    assert cid.startswith("containerd://")
    parts = ["presize-shim", node, "kubepods", qos, f"pod{pod['metadata']['uid']}", cid[13:]]
    return ROOT / controller / "/".join(p for p in parts if p)


def read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def cpu_stat(folder: Path) -> dict[str, int]:
    return {
        k: int(v)
        for k, v in (line.split() for line in (folder / "cpu.stat").read_text().splitlines())
    }


def resize(cluster: LocalCluster, ns: str, name: str, resources: dict[str, Any]) -> int:
    body = {"spec": {"containers": [{"name": "app", "resources": resources}]}}
    status, out = cluster.request(
        "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/resize", body, content_type=SMP
    )
    assert status == 200, out
    return int(out["metadata"]["generation"])


def resize_conditions(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c["type"]: c
        for c in pod["status"].get("conditions", [])
        if c["type"].startswith("PodResize")
    }


def usage_rate(cpuacct: Path, seconds: float) -> float:
    """Cores used over ``seconds``, from ``cpuacct.usage`` (nanoseconds)."""
    before, t0 = read_int(cpuacct / "cpuacct.usage"), time.monotonic()
    time.sleep(seconds)
    after, t1 = read_int(cpuacct / "cpuacct.usage"), time.monotonic()
    return (after - before) / 1e9 / (t1 - t0)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    )


# ---- tests


def test_pod_gets_cgroups_at_kubelet_paths_with_its_limits(
    local_cluster: LocalCluster, shim: tuple[NodeShim, str], namespace: str
) -> None:
    shim_, node = shim
    create(
        local_cluster, namespace, pod_manifest("burst", node, res("100m", "48Mi", "200m", "64Mi"))
    )
    create(
        local_cluster, namespace, pod_manifest("guar", node, res("300m", "64Mi", "300m", "64Mi"))
    )
    pod = running(local_cluster, namespace, "burst")
    guaranteed = running(local_cluster, namespace, "guar")

    cpu = cgroup("cpu", node, pod)
    assert "/kubepods/burstable/pod" in str(cpu)
    for controller in ("cpu", "cpuacct", "memory", "blkio", "pids", "unified"):
        assert cgroup(controller, node, pod).is_dir(), controller
    assert read_int(cpu / "cpu.cfs_period_us") == 100_000
    assert read_int(cpu / "cpu.cfs_quota_us") == 20_000  # 200m
    assert read_int(cpu / "cpu.shares") == 102  # 100m * 1024 / 1000
    assert read_int(cgroup("memory", node, pod) / "memory.limit_in_bytes") == 64 * MIB
    assert read_int(cpu.parent / "cpu.cfs_quota_us") == 20_000  # the pod cgroup: the sum
    assert read_int(cgroup("memory", node, pod).parent / "memory.limit_in_bytes") == 64 * MIB

    pids = [int(p) for p in (cpu / "cgroup.procs").read_text().split()]
    assert pids, "no load process in the container cgroup"
    assert b"hack.nodeshim.load" in Path(f"/proc/{pids[0]}/cmdline").read_bytes()

    gpath = cgroup("cpu", node, guaranteed)
    assert f"/kubepods/pod{guaranteed['metadata']['uid']}/" in str(gpath)
    assert read_int(gpath / "cpu.cfs_quota_us") == 30_000

    status = pod["status"]["containerStatuses"][0]
    assert status["resources"] == pod["spec"]["containers"][0]["resources"]
    assert status["allocatedResources"] == {"cpu": "100m", "memory": "48Mi"}
    assert pod["status"]["observedGeneration"] == pod["metadata"]["generation"]

    # the agent's own discovery finds both, with the pod UID and container ID of the status
    found = {c.container_id: c for c in scan(str(ROOT / "cpuacct"), base=shim_.cgroup_base(node))}
    cid = status["containerID"][13:]
    assert found[cid].pod_uid == pod["metadata"]["uid"]
    assert found[cid].qos == QosClass.BURSTABLE
    gcid = guaranteed["status"]["containerStatuses"][0]["containerID"][13:]
    assert found[gcid].qos == QosClass.GUARANTEED


def test_cpu_load_over_its_quota_is_throttled(
    local_cluster: LocalCluster, shim: tuple[NodeShim, str], namespace: str
) -> None:
    _, node = shim
    load = {"cpu": {"pattern": "constant", "value": 0.6}}
    create(
        local_cluster,
        namespace,
        pod_manifest("hot", node, res("50m", "48Mi", "100m", "64Mi"), load),
    )
    pod = running(local_cluster, namespace, "hot")
    cpu = cgroup("cpu", node, pod)
    time.sleep(1.0)
    before = cpu_stat(cpu)
    rate = usage_rate(cgroup("cpuacct", node, pod), 3.0)
    after = cpu_stat(cpu)
    assert after["nr_throttled"] - before["nr_throttled"] >= 15  # of ~30 periods
    assert rate <= 0.1 * 1.25  # held to its 100m quota (small slack for period edges)
    assert rate >= 0.05  # and it really burns


def test_step_pattern_is_measured_in_cpuacct_usage(
    local_cluster: LocalCluster, shim: tuple[NodeShim, str], namespace: str
) -> None:
    """A step from 0.05 to 0.35 cores at t=8 s: both levels within ±0.08 cores (stated
    tolerance: the machine has 2 cores shared with other tests)."""
    _, node = shim
    load = {"cpu": {"pattern": "step", "before": 0.05, "after": 0.35, "at_s": 8}}
    t0 = time.monotonic()
    create(
        local_cluster, namespace, pod_manifest("step", node, res("100m", "48Mi", "1", "64Mi"), load)
    )
    pod = running(local_cluster, namespace, "step")
    acct = cgroup("cpuacct", node, pod)
    time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
    low = usage_rate(acct, 4.0)  # t in ~[2, 6]
    time.sleep(max(0.0, t0 + 10.0 - time.monotonic()))
    high = usage_rate(acct, 5.0)  # t in ~[10, 15]
    assert abs(low - 0.05) <= 0.08, low
    assert abs(high - 0.35) <= 0.08, high
    assert high - low >= 0.2


def test_resize_changes_cgroups_and_status(
    local_cluster: LocalCluster, shim: tuple[NodeShim, str], namespace: str
) -> None:
    _, node = shim
    create(
        local_cluster, namespace, pod_manifest("grow", node, res("100m", "48Mi", "200m", "64Mi"))
    )
    pod = running(local_cluster, namespace, "grow")
    cpu, mem = cgroup("cpu", node, pod), cgroup("memory", node, pod)
    new = res("150m", "48Mi", "400m", "96Mi")
    generation = resize(local_cluster, namespace, "grow", new)

    # the shim waits resize_delay_s (1 s) after accepting: the condition is visible meanwhile
    seen = wait_for(
        "PodResizeInProgress",
        lambda: resize_conditions(get(local_cluster, namespace, "grow")).get("PodResizeInProgress"),
        timeout=10,
    )
    assert seen["status"] == "True"
    assert seen["observedGeneration"] == generation

    def done() -> dict[str, Any] | None:
        p = get(local_cluster, namespace, "grow")
        s = p["status"]["containerStatuses"][0]
        return p if s["resources"] == new and not resize_conditions(p) else None

    pod = wait_for("resize applied", done, timeout=15)
    assert read_int(cpu / "cpu.cfs_quota_us") == 40_000
    assert read_int(cpu / "cpu.shares") == 153
    assert read_int(mem / "memory.limit_in_bytes") == 96 * MIB
    assert read_int(cpu.parent / "cpu.cfs_quota_us") == 40_000
    assert pod["status"]["containerStatuses"][0]["allocatedResources"] == new["requests"]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert pod["status"]["observedGeneration"] == generation


def test_resize_beyond_the_node_is_infeasible(
    local_cluster: LocalCluster, shim: tuple[NodeShim, str], namespace: str
) -> None:
    _, node = shim
    old = res("100m", "48Mi", "200m", "64Mi")
    create(local_cluster, namespace, pod_manifest("huge", node, old))
    pod = running(local_cluster, namespace, "huge")
    generation = resize(local_cluster, namespace, "huge", res("6", "48Mi", "8", "64Mi"))

    def pending() -> dict[str, Any] | None:
        return resize_conditions(get(local_cluster, namespace, "huge")).get("PodResizePending")

    cond = wait_for("PodResizePending", pending, timeout=10)
    assert cond["reason"] == "Infeasible"
    assert "cpu, requested: 6000, capacity: 4000" in cond["message"]
    assert cond["observedGeneration"] == generation
    time.sleep(1.5)
    pod = get(local_cluster, namespace, "huge")
    assert pod["status"]["containerStatuses"][0]["resources"] == old
    assert "PodResizeInProgress" not in resize_conditions(pod)
    assert read_int(cgroup("cpu", node, pod) / "cpu.cfs_quota_us") == 20_000


def test_deferred_resize_is_applied_once_there_is_room(
    local_cluster: LocalCluster, shim: tuple[NodeShim, str], namespace: str
) -> None:
    _, node = shim
    create(local_cluster, namespace, pod_manifest("big", node, res("2500m", "48Mi", "3", "64Mi")))
    create(local_cluster, namespace, pod_manifest("small", node, res("500m", "48Mi", "1", "64Mi")))
    running(local_cluster, namespace, "big")
    pod = running(local_cluster, namespace, "small")
    resize(local_cluster, namespace, "small", res("2", "48Mi", "2", "64Mi"))

    def reason() -> str | None:
        c = resize_conditions(get(local_cluster, namespace, "small")).get("PodResizePending")
        return c["reason"] if c else None

    assert wait_for("Deferred", lambda: reason() == "Deferred", timeout=10)
    assert read_int(cgroup("cpu", node, pod) / "cpu.shares") == 512  # unchanged: 500m
    status, _ = local_cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/big")
    assert status == 200
    wait_for(
        "deferred resize applied",
        lambda: (
            read_int(cgroup("cpu", node, pod) / "cpu.shares") == 2048
            and not resize_conditions(get(local_cluster, namespace, "small"))
        ),
        timeout=15,
    )


def test_memory_leak_over_its_limit_is_oom_killed_and_restarted(
    local_cluster: LocalCluster, shim: tuple[NodeShim, str], namespace: str
) -> None:
    _, node = shim
    load = {"memory": {"pattern": "leak", "start_mb": 20, "mb_per_min": 1200}}
    create(
        local_cluster,
        namespace,
        pod_manifest("leak", node, res("50m", "64Mi", "100m", "64Mi"), load),
    )
    first = running(local_cluster, namespace, "leak")
    first_dir = cgroup("memory", node, first)

    def oom_reported() -> dict[str, Any] | None:
        s = get(local_cluster, namespace, "leak")["status"]["containerStatuses"][0]
        return s if s["restartCount"] >= 1 and s.get("lastState", {}).get("terminated") else None

    status = wait_for("OOM kill in the status", oom_reported, timeout=30)
    terminated = status["lastState"]["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert terminated["exitCode"] == 137
    assert terminated["containerID"] == first["status"]["containerStatuses"][0]["containerID"]
    assert not first_dir.exists()  # the killed instance's cgroup is gone
    again = running(local_cluster, namespace, "leak")  # restarted after the back-off
    s = again["status"]["containerStatuses"][0]
    assert s["containerID"] != terminated["containerID"]
    assert cgroup("memory", node, again).is_dir()


def test_deleting_the_pod_removes_cgroups_and_processes(
    local_cluster: LocalCluster, shim: tuple[NodeShim, str], namespace: str
) -> None:
    _, node = shim
    load = {"cpu": {"pattern": "constant", "value": 0.05}}
    create(
        local_cluster,
        namespace,
        pod_manifest("gone", node, res("50m", "48Mi", "100m", "64Mi"), load),
    )
    pod = running(local_cluster, namespace, "gone")
    dirs = [cgroup(c, node, pod) for c in ("cpu", "memory", "unified")]
    pids = [int(p) for p in (dirs[0] / "cgroup.procs").read_text().split()]
    assert pids
    status, _ = local_cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/gone")
    assert status == 200
    wait_for(
        "pod object removed",
        lambda: local_cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods/gone")[0] == 404,
        timeout=20,
    )
    assert not any(d.exists() for d in dirs)
    assert not any(d.parent.exists() for d in dirs)  # the pod cgroup too
    assert not any(pid_alive(p) for p in pids)


def test_invalid_load_annotation_is_a_config_error(
    local_cluster: LocalCluster, shim: tuple[NodeShim, str], namespace: str
) -> None:
    _, node = shim
    manifest = pod_manifest("bad", node, res("50m", "48Mi", "100m", "64Mi"))
    manifest["metadata"]["annotations"] = {"presize.io/load": '{"cpu": {"pattern": "wobble"}}'}
    create(local_cluster, namespace, manifest)

    def waiting() -> dict[str, Any] | None:
        statuses = get(local_cluster, namespace, "bad").get("status", {}).get("containerStatuses")
        return statuses[0]["state"].get("waiting") if statuses else None

    state = wait_for("config error", waiting, timeout=15)
    assert state["reason"] == "CreateContainerConfigError"
    assert "wobble" in state["message"]
    assert get(local_cluster, namespace, "bad")["status"]["phase"] == "Pending"


def test_stop_kills_loads_removes_cgroups_and_the_node(
    local_cluster: LocalCluster, namespace: str
) -> None:
    node = f"shim-{uuid.uuid4().hex[:6]}"
    shim = NodeShim(local_cluster.kubeconfig, [node])
    with shim:
        create(
            local_cluster, namespace, pod_manifest("p", node, res("50m", "48Mi", "100m", "64Mi"))
        )
        pod = running(local_cluster, namespace, "p")
        cpu = cgroup("cpu", node, pod)
        pids = [int(p) for p in (cpu / "cgroup.procs").read_text().split()]
        assert local_cluster.request("GET", f"/api/v1/nodes/{node}")[0] == 200
        lease = local_cluster.request(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
        )
        assert lease[0] == 200
        assert lease[1]["spec"]["holderIdentity"] == node
    assert pids
    assert not any(pid_alive(p) for p in pids)
    assert not (ROOT / "cpu" / "presize-shim" / node).exists()
    assert not (ROOT / "memory" / "presize-shim" / node).exists()
    assert local_cluster.request("GET", f"/api/v1/nodes/{node}")[0] == 404
