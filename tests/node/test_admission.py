"""The webhook pod, called by the apiserver, sizes new pods of an opted-in namespace, and the
real kubelet writes what it injected into the container's cgroup files."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client

from presize.units import parse_bytes, parse_cpu
from tests.node.conftest import (
    Presize,
    container_cgroup,
    kubelet_cpu_files,
    pod_resources,
    read_int,
    running_pods,
    wait_for,
    wait_profile,
)

pytestmark = [pytest.mark.node, pytest.mark.slow]


def test_new_pods_get_predicted_requests_and_the_kubelet_writes_them_to_cgroups(
    presize: Presize,
) -> None:
    ns = presize.fleet["initial"]  # mode initial: the webhook only, no in-place resizes
    apps = client.AppsV1Api(presize.api)
    wait_profile(presize.api, ns, "web")

    def injected() -> Any:
        for pod in running_pods(presize.api, ns, "web"):
            if "presize.io/applied" in (pod.metadata.annotations or {}):
                return pod
        return None

    def sized_within(timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (found := injected()) is not None:
                return found
            time.sleep(0.5)
        return None

    # The webhook fails open: a review it does not answer within its 2 s timeout (a loaded
    # machine), or a snapshot not yet holding the workload, admits the pod unchanged. Then
    # the replica is taken away and another one made, up to four times, and the count printed.
    pod, tries = None, 0
    while pod is None and tries < 4:
        tries += 1
        apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 2}})
        pod = sized_within(45)
        if pod is None:
            apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 1}})
            wait_for("web at one pod", lambda: len(running_pods(presize.api, ns, "web")) == 1, 60)
    assert pod is not None, "no new web pod was sized by the webhook in four tries"
    print(f"a new web pod was sized by the webhook on try {tries}")
    applied = json.loads(pod.metadata.annotations["presize.io/applied"])
    requests, limits = pod_resources(pod)
    print(f"webhook applied {applied}")
    was = applied["containers"]["app"]
    assert was["requests"]["cpu"][0] == "400m"  # the template's value, recorded as original
    assert requests["cpu"] == was["requests"]["cpu"][1] != "400m"
    assert parse_cpu(limits["cpu"]) == pytest.approx(parse_cpu(requests["cpu"]))  # QoS kept

    shares, quota = kubelet_cpu_files(parse_cpu(requests["cpu"]), parse_cpu(limits["cpu"]))
    assert read_int(container_cgroup(pod, "cpu") / "cpu.shares") == shares
    assert read_int(container_cgroup(pod, "cpu") / "cpu.cfs_quota_us") == quota
    memory_limit = read_int(container_cgroup(pod, "memory") / "memory.limit_in_bytes")
    assert memory_limit == int(parse_bytes(limits["memory"])) // 4096 * 4096
    # one replica again: the node's CPU is shared with the tests after this one
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 1}})
