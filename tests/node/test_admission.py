"""The webhook pod, called by the apiserver, sizes new pods of an opted-in namespace, and the
real kubelet writes what it injected into the container's cgroup files."""

from __future__ import annotations

import json
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
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 2}})

    def injected() -> Any:
        for pod in running_pods(presize.api, ns, "web"):
            if "presize.io/applied" in (pod.metadata.annotations or {}):
                return pod
        return None

    pod = wait_for("a new web pod sized by the webhook", injected, 120)
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
