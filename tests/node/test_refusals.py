"""What the real kubelet refuses, and what presize does about it: it reads the pod's resize
condition, records why (an Event and the WorkloadProfile's last decision), does not retry in a
loop, and waits or falls back.

The resizes here are the test's own (``PATCH pods/resize``, as a person or another tool would
make them): presize's planner checks the node's room before it asks, so on one node it does
not ask for what cannot fit; what it must not do is fight the kubelet's answer."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from presize.units import parse_cpu
from tests.node.conftest import (
    Presize,
    decision,
    events,
    read_pod,
    running_pods,
    wait_for,
    wait_profile,
    workload,
)

pytestmark = [pytest.mark.node, pytest.mark.slow]


def resize(api: client.ApiClient, ns: str, pod: str, requests: dict[str, str],
           limits: dict[str, str]) -> None:  # fmt: skip
    body = {"spec": {"containers": [{"name": "app", "resources": {"requests": requests,
                                                                  "limits": limits}}]}}  # fmt: skip
    client.CoreV1Api(api).patch_namespaced_pod_resize(pod, ns, body)


def condition(pod: Any, kind: str) -> Any:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


@pytest.fixture(scope="module")
def known(presize: Presize) -> str:
    """The fleet's auto-mode namespace, whose workloads presize has profiled for a while, as in
    a cluster it has watched: a refusal is then recorded in an existing WorkloadProfile."""
    ns = presize.fleet["auto"]
    for name in ("big", "holder", "waiter"):
        wait_profile(presize.api, ns, name)
    return ns


def pod_of(presize: Presize, ns: str, name: str) -> Any:
    return wait_for(f"a running {name} pod", lambda: running_pods(presize.api, ns, name), 90)[0]


def free_cpu(presize: Presize) -> int:
    """Millicores of the node's allocatable CPU that no pod requests."""
    core = client.CoreV1Api(presize.api)
    node = core.read_node(presize.real.node.name)
    free = round(parse_cpu(node.status.allocatable["cpu"]) * 1000)
    for pod in core.list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName={node.metadata.name}"
    ).items:
        if pod.status.phase in ("Succeeded", "Failed"):
            continue
        # what the kubelet allocated (a pending resize's spec is not held yet)
        for spec, status in zip(pod.spec.containers, pod.status.container_statuses or [],
                                strict=False):  # fmt: skip
            held = (status.resources.requests if status.resources else None) or {}
            wanted = spec.resources.requests or {}
            free -= round(parse_cpu(held.get("cpu", wanted.get("cpu", "0"))) * 1000)
    return free


def start(presize: Presize, ns: str, name: str, spec: dict[str, Any], **sizes: str) -> Any:
    client.AppsV1Api(presize.api).create_namespaced_deployment(ns, workload(name, spec, **sizes))
    return pod_of(presize, ns, name)


def presize_events(presize: Presize, ns: str, reason: str, pod: str) -> list[Any]:
    return [e for e in events(presize.api, ns, reason) if e.involved_object.name == pod]


def test_an_infeasible_resize_is_recorded_once_and_not_retried(
    presize: Presize, known: str
) -> None:
    ns = known
    pod = pod_of(presize, ns, "big")
    name = pod.metadata.name
    resize(presize.api, ns, name, {"cpu": "4", "memory": "64Mi"}, {"cpu": "4", "memory": "64Mi"})

    def infeasible() -> Any:
        cond = condition(read_pod(presize.api, ns, name), "PodResizePending")
        return cond if cond is not None and cond.reason == "Infeasible" else None

    cond = wait_for("the kubelet's Infeasible answer", infeasible, 60)
    print(f"kubelet: {cond.message}")
    wait_for(
        "presize's ResizeInfeasibleOnNode event",
        lambda: presize_events(presize, ns, "ResizeInfeasibleOnNode", name),
        120,
    )
    wait_for(
        "the WorkloadProfile's last decision naming the refusal",
        lambda: decision(presize.api, ns, "deployment-big").get("reason") == "resize-infeasible",
        120,
    )
    assert "enough capacity" in decision(presize.api, ns, "deployment-big").get("message", "")
    generation = read_pod(presize.api, ns, name).metadata.generation
    time.sleep(45)  # several of the controller's cycles
    assert read_pod(presize.api, ns, name).metadata.generation == generation, "presize re-patched"
    assert len(presize_events(presize, ns, "ResizeInfeasibleOnNode", name)) == 1
    back = {"cpu": "100m", "memory": "64Mi"}  # what it had: the node need not hold 4 CPUs
    resize(presize.api, ns, name, back, back)


def test_a_refused_memory_decrease_is_recorded_and_left_alone(presize: Presize, known: str) -> None:
    ns = known
    pod = pod_of(presize, ns, "holder")
    name = pod.metadata.name
    resize(presize.api, ns, name, {"cpu": "100m", "memory": "64Mi"},
           {"cpu": "100m", "memory": "64Mi"})  # fmt: skip

    def refused() -> Any:
        cond = condition(read_pod(presize.api, ns, name), "PodResizeInProgress")
        return cond if cond is not None and cond.reason == "Error" else None

    cond = wait_for("the kubelet's Error answer", refused, 60)
    print(f"kubelet: {cond.message}")
    wait_for(
        "presize's ResizeRefused event",
        lambda: presize_events(presize, ns, "ResizeRefused", name),
        120,
    )
    wait_for(
        "the WorkloadProfile's last decision naming the refusal",
        lambda: decision(presize.api, ns, "deployment-holder").get("reason") == "resize-refused",
        120,
    )
    live = read_pod(presize.api, ns, name)
    assert live.status.container_statuses[0].restart_count == 0, "no OOM kill, no restart"
    generation = live.metadata.generation
    time.sleep(30)
    assert read_pod(presize.api, ns, name).metadata.generation == generation, "presize re-patched"
    assert len(presize_events(presize, ns, "ResizeRefused", name)) == 1
    back = {"cpu": "100m", "memory": "160Mi"}  # what it had: the kubelet stops retrying
    resize(presize.api, ns, name, back, back)


def test_a_deferred_resize_is_waited_for_and_applied_by_the_kubelet(
    presize: Presize, known: str
) -> None:
    ns = known
    free = free_cpu(presize)
    filler = start(presize, ns, "filler", {}, cpu=f"{free - 50}m", memory="32Mi")
    pod = pod_of(presize, ns, "waiter")
    name = pod.metadata.name
    want = {"cpu": "300m", "memory": "64Mi"}  # 200m more than it has, 150m more than is free
    resize(presize.api, ns, name, want, want)

    def deferred() -> Any:
        cond = condition(read_pod(presize.api, ns, name), "PodResizePending")
        return cond if cond is not None and cond.reason == "Deferred" else None

    wait_for("the kubelet's Deferred answer", deferred, 60)
    wait_for(
        "presize's ResizeWaitingForNode event",
        lambda: presize_events(presize, ns, "ResizeWaitingForNode", name),
        120,
    )
    generation = read_pod(presize.api, ns, name).metadata.generation
    client.AppsV1Api(presize.api).delete_namespaced_deployment("filler", ns)
    del filler

    def applied() -> bool:
        live = read_pod(presize.api, ns, name)
        return live.status.container_statuses[0].resources.limits["cpu"] == "300m"

    wait_for("the kubelet applying the deferred resize", applied, 90)
    assert read_pod(presize.api, ns, name).metadata.generation == generation, "presize re-patched"
