"""presize installed by its Helm chart with default values, on a real kubelet node.

Each test names what it proves. They share one node and one release (tests/node/conftest.py);
time is real (no compressed clocks): the agent's default 60 s batches and the controller's
default periods are what a user gets.
"""

from __future__ import annotations

import json

import pytest

from tests.node.conftest import (
    Presize,
    container_cgroup,
    metric,
    wait_for,
    wait_profile,
)

pytestmark = [pytest.mark.node, pytest.mark.slow]


def test_every_presize_pod_runs_on_the_real_node_from_its_chart(presize: Presize) -> None:
    node = presize.real.node.name
    for component in ("agent", "controller", "webhook"):
        pods = presize.pods(component)
        assert pods, f"no {component} pod"
        for pod in pods:
            assert pod.spec.node_name == node
            statuses = pod.status.container_statuses or []
            assert statuses, f"{pod.metadata.name} has no container status"
            assert all(s.ready for s in statuses), f"{pod.metadata.name} not ready"
            # the kubelet really started it: containerd's id, and a cgroup the kernel made
            assert statuses[0].container_id.startswith("containerd://")
            assert container_cgroup(pod, "memory").is_dir()
    print(f"install took {presize.install_seconds:.1f}s")


def test_the_controller_accepts_the_agents_reports_with_default_values(presize: Presize) -> None:
    """The chart hands the agent's ServiceAccount identity to the controller: the agent's
    reports are accepted (no 401 loop) without any value set."""

    def delivered() -> float:
        return metric(presize, "agent", "presize_agent_reports_delivered")

    wait_for("the agent's first accepted report", delivered, 150)
    assert metric(presize, "agent", "presize_agent_reports_auth_failures") == 0
    assert metric(presize, "controller", 'presize_controller_reports_total{result="accepted"}') > 0


def test_agent_finds_real_pods_and_the_controller_builds_their_profile(presize: Presize) -> None:
    """The agent pod finds the kubelet's cgroupfs layout (kubepods/<qos>/pod<uid>/<id>), names
    each container from the API, leaves the pod's sandbox out, and the controller pod keeps a
    WorkloadProfile with a forecast and a recommendation for the real workload."""
    ns = presize.fleet["auto"]
    obj = wait_profile(presize.api, ns, "steady")
    status = obj["status"]
    print(json.dumps({k: v for k, v in status.items() if k != "checkpoint"}, indent=1)[:2000])
    assert [c["name"] for c in status["containers"]] == ["app"]  # no sandbox, no hex IDs
    app = status["containers"][0]
    assert app["forecast"]["cpu"]["upper"]
    assert app["recommendation"]["memory"]["target"]
    seen = metric(
        presize,
        "agent",
        "presize_agent_container_memory_working_set_bytes",
        f'namespace="{ns}"',
        'container="app"',
        'pod="steady-',
    )
    assert seen > 40 * 2**20, "the agent does not see the workload's 40 MiB"
