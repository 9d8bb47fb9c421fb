"""In-place resizes carried out by the real kubelet: a CPU ramp raised before it reaches its
limit, a kernel OOM kill answered with more memory."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client

from presize.units import parse_cpu
from tests.node.conftest import (
    Presize,
    container_cgroup,
    events,
    kubelet_cpu_files,
    pod_resources,
    read_int,
    read_pod,
    running_pods,
    status_resources,
    wait_for,
    workload,
)

pytestmark = [pytest.mark.node, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "out" / "node-figures.txt"


def record(line: str) -> None:
    """Figures for BENCHMARKS.md: printed, and appended to out/node-figures.txt."""
    print(line)
    BENCH.parent.mkdir(exist_ok=True)
    with BENCH.open("a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")


def test_a_cpu_ramp_is_raised_in_place_before_it_reaches_its_limit(
    presize: Presize, app_namespace: str
) -> None:
    ns, limit = app_namespace, 0.3
    start, end, at_s, duration_s = 0.05, 0.6, 20.0, 180.0
    ramp = {"cpu": {"start": start, "end": end, "at_s": at_s, "duration_s": duration_s}}
    client.AppsV1Api(presize.api).create_namespaced_deployment(
        ns, workload("ramp", ramp, cpu="300m", memory="128Mi")
    )
    pod = wait_for("a running ramp pod", lambda: running_pods(presize.api, ns, "ramp"), 90)[0]
    started = pod.status.container_statuses[0].state.running.started_at.timestamp()
    crossing = started + at_s + (limit - start) / (end - start) * duration_s
    quota_file = container_cgroup(pod, "cpu") / "cpu.cfs_quota_us"
    old_quota = read_int(quota_file)
    assert old_quota == 30000

    # Watch both ends at once: the pod's spec (an API read every 0.25 s) and the cgroup file
    # the kubelet writes (every 20 ms), to time "presize's resize accepted -> cgroup changed".
    spec_changed = quota_changed = 0.0
    deadline = time.monotonic() + at_s + duration_s + 60
    next_read = 0.0
    while not (spec_changed and quota_changed) and time.monotonic() < deadline:
        now = time.time()
        if not quota_changed and read_int(quota_file) != old_quota:
            quota_changed = now
        if not spec_changed and time.monotonic() >= next_read:
            next_read = time.monotonic() + 0.25
            live = read_pod(presize.api, ns, pod.metadata.name)
            if parse_cpu(pod_resources(live)[1]["cpu"]) > limit + 1e-9:
                spec_changed = now
        time.sleep(0.02)
    assert spec_changed, "the ramp's CPU limit was never raised"
    assert quota_changed, "the kubelet never wrote a new quota"
    applied = quota_changed

    def settled() -> dict[str, str] | None:
        """The limits once the spec, the kubelet's status and the cgroup files agree (the
        controller may grow the ramp again meanwhile: then wait for that one too)."""
        live = read_pod(presize.api, ns, pod.metadata.name)
        requests, limits = pod_resources(live)
        shares, quota = kubelet_cpu_files(parse_cpu(requests["cpu"]), parse_cpu(limits["cpu"]))
        files = (read_int(container_cgroup(live, "cpu") / "cpu.shares"), read_int(quota_file))
        same = status_resources(live) == (requests, limits) and files == (shares, quota)
        return limits if same else None

    limits = wait_for("spec, status.containerStatuses[].resources and cgroup files agreeing",
                      settled, 30)  # fmt: skip
    restarts = read_pod(presize.api, ns, pod.metadata.name).status.container_statuses[0]
    assert restarts.restart_count == 0, "the resize restarted the container"
    lead = crossing - applied
    record(f"node: cpu ramp raised in place {lead:.0f}s before it reached its old limit "
           f"({limit} -> {limits['cpu']}); resize seen in the spec -> cgroup quota written "
           f"{max(0.0, quota_changed - spec_changed):.2f}s")  # fmt: skip
    assert lead > 0, f"raised {-lead:.0f}s after the ramp crossed its old limit"
    assert [e for e in events(presize.api, ns, "Resized") if "ramp" in e.involved_object.name]


def test_a_kernel_oom_kill_is_answered_with_more_memory(
    presize: Presize, app_namespace: str
) -> None:
    ns = app_namespace
    # 40 MiB for 15 s, then 100 MiB held: a 96Mi limit is OOM-killed once the second step comes.
    spec = {"memory_mb": 40, "then_mb": 100, "then_at_s": 15}
    client.AppsV1Api(presize.api).create_namespaced_deployment(
        ns, workload("hungry", spec, cpu="100m", memory="96Mi")
    )
    pod = wait_for("a running hungry pod", lambda: running_pods(presize.api, ns, "hungry"), 90)[0]

    def oom_killed() -> bool:
        live = read_pod(presize.api, ns, pod.metadata.name)
        last = live.status.container_statuses[0].last_state.terminated
        return last is not None and last.reason == "OOMKilled"

    wait_for("the kernel's OOM kill of the container", oom_killed, 90)

    def grown() -> str | None:
        live = read_pod(presize.api, ns, pod.metadata.name)
        memory = pod_resources(live)[1]["memory"]
        return memory if memory != "96Mi" else None

    memory = wait_for("a memory increase", grown, 180)
    resized = [e for e in events(presize.api, ns, "Resized") if "hungry" in e.involved_object.name]
    assert resized, "no Resized event"
    assert "oom-kill" in resized[-1].message, [e.message for e in resized]
    print(f"after an OOM kill: memory 96Mi -> {memory}: {resized[-1].message}")
