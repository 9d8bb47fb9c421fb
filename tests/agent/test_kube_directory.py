"""The API-server pod directory (``agent.kube.KubePods``) against a real kube-apiserver.

The local control plane of ``tests/cluster`` (etcd, kube-apiserver, controller-manager,
scheduler, kwok fake nodes): pods are created for real (a Deployment, so the owner chain is
real), kwok marks them running, and the directory must follow: a pod created after the watch
started is found, one on another node never is, a deleted one is forgotten, and an API server
restart (which drops the watch and usually answers the old resourceVersion with 410) is ridden
out without losing what is known.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from agent.kube import KubePods
from hack.cluster.localcluster import LocalCluster, stop_popen
from presize.model import OwnerKind, WorkloadKey

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NODE = "kwok-node-0"
OTHER = "kwok-node-1"


def eventually(what: str, probe: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        time.sleep(0.1)


def bare_pod(name: str, node: str) -> Any:  # the client takes plain dicts too
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "image": "example.invalid/app:1"}],
            "tolerations": [{"operator": "Exists"}],
        },
    }


@pytest.fixture
def directory(kube: client.ApiClient) -> Iterator[KubePods]:
    pods = KubePods(kube, NODE, watch_timeout_s=20, backoff_max_s=1.0)
    pods.start()
    try:
        assert pods.synced.wait(30), "the first list never completed"
        yield pods
    finally:
        pods.stop()
    assert not pods._thread or not pods._thread.is_alive(), "the watch thread did not stop"


def uids_by_name(pods: KubePods, namespace: str) -> dict[str, str]:
    return {p.ref.name: p.ref.uid for p in pods.pods() if p.ref.namespace == namespace}


def test_later_pods_are_found_with_their_owner_and_deleted_ones_forgotten(
    kube: client.ApiClient, namespace: str, directory: KubePods
) -> None:
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    labels = {"app": "web"}
    deployment: Any = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "app", "image": "example.invalid/web:1"}],
                },
            },
        },
    }  # fmt: skip
    apps.create_namespaced_deployment(namespace, deployment)
    core.create_namespaced_pod(namespace, bare_pod("elsewhere", OTHER))
    eventually(
        "the Deployment's pod in the directory",
        lambda: len(uids_by_name(directory, namespace)) == 1,
    )
    ((name, uid),) = uids_by_name(directory, namespace).items()
    info = directory.lookup(uid)
    assert info is not None
    assert info.ref.name == name
    assert info.ref.namespace == namespace
    assert info.ref.node == NODE
    assert info.owner == WorkloadKey(namespace, OwnerKind.DEPLOYMENT, "web")

    # kwok reports the container running; a runtime's containerID names it by its cgroup ID
    def running() -> bool:
        status = core.read_namespaced_pod(name, namespace).status
        return status is not None and status.phase == "Running"

    eventually("kwok marks the pod running", running)
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    pod = core.read_namespaced_pod(name, namespace)
    assert pod.status is not None
    statuses = kube.sanitize_for_serialization(pod.status.container_statuses)  # type: ignore[no-untyped-call]
    statuses[0]["containerID"] = f"containerd://{cid}"
    core.patch_namespaced_pod_status(name, namespace, {"status": {"containerStatuses": statuses}})

    def named() -> bool:
        info = directory.lookup(uid)
        return info is not None and info.container_names.get(cid) == "app"

    eventually("the container named by its ID", named)

    assert "elsewhere" not in uids_by_name(directory, namespace), "a pod of another node leaked in"

    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    eventually("the deleted pod forgotten", lambda: directory.lookup(uid) is None)


def test_an_api_server_restart_does_not_break_the_watch(
    kube: client.ApiClient, local_cluster: LocalCluster, namespace: str, directory: KubePods
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, bare_pod("before", NODE))
    eventually("the first pod", lambda: "before" in uids_by_name(directory, namespace))
    before = directory.stats.lists + directory.stats.failures

    proc = local_cluster._procs["kube-apiserver"]
    assert proc.popen is not None
    stop_popen(proc.popen, 15.0)
    try:
        eventually("the watch notices the API server is down",
                   lambda: directory.stats.failures > 0, timeout=60)  # fmt: skip
        # down: what was known stays known, lookups answer at once
        t0 = time.monotonic()
        assert "before" in uids_by_name(directory, namespace)
        assert time.monotonic() - t0 < 0.1
    finally:
        local_cluster._start_apiserver(time.monotonic() + 120)

    core.create_namespaced_pod(namespace, bare_pod("after", NODE))
    eventually(
        "a pod created after the restart",
        lambda: "after" in uids_by_name(directory, namespace),
        timeout=60,
    )
    core.delete_namespaced_pod("before", namespace, grace_period_seconds=0)
    eventually("a pod deleted after the restart is forgotten",
               lambda: "before" not in uids_by_name(directory, namespace), timeout=60)  # fmt: skip
    assert directory.stats.lists + directory.stats.failures > before
