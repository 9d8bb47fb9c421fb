"""The node shim's pure parts: the load schema, cgroup values, and the kubelet's resize rules."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from hack.nodeshim import kubelet
from hack.nodeshim.patterns import LoadSpec, LoadSpecError, load_for_container, parse_load
from hack.nodeshim.pods import Container, PodRuntime, image_id, pod_status
from hack.nodeshim.resize import next_allocation
from hack.nodeshim.resources import (
    CgroupValues,
    Requests,
    Resources,
    container_values,
    pod_values,
    qos_class,
)

NOW = "2026-01-01T00:00:00Z"

# ---- patterns


def test_brief_example_parses_and_memory_keys_are_canonicalised() -> None:
    spec = parse_load(
        '{"cpu": {"pattern": "cycle", "low": 0.1, "high": 0.8, "period_s": 120},'
        ' "memory": {"pattern": "leak", "start_mb": 50, "mb_per_min": 20}}'
    )
    assert spec.cpu is not None
    assert spec.memory is not None
    assert spec.memory.at(60) == pytest.approx(70.0)
    assert LoadSpec.from_canonical(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("pattern", "t", "value"),
    [
        ({"pattern": "constant", "value": 0.3}, 99, 0.3),
        ({"pattern": "cycle", "low": 0.1, "high": 0.9, "period_s": 100}, 0, 0.1),
        ({"pattern": "cycle", "low": 0.1, "high": 0.9, "period_s": 100}, 50, 0.9),
        ({"pattern": "cycle", "low": 0.1, "high": 0.9, "period_s": 100}, 25, 0.5),
        ({"pattern": "step", "before": 0.1, "after": 0.6, "at_s": 30}, 29.9, 0.1),
        ({"pattern": "step", "before": 0.1, "after": 0.6, "at_s": 30}, 30, 0.6),
        ({"pattern": "ramp", "start": 0, "end": 1, "at_s": 10, "duration_s": 20}, 5, 0.0),
        ({"pattern": "ramp", "start": 0, "end": 1, "at_s": 10, "duration_s": 20}, 20, 0.5),
        ({"pattern": "ramp", "start": 0, "end": 1, "at_s": 10, "duration_s": 20}, 40, 1.0),
        (
            {"pattern": "burst", "base": 0.1, "peak": 0.9, "every_s": 60, "duration_s": 5},
            62,
            0.9,
        ),
        (
            {"pattern": "burst", "base": 0.1, "peak": 0.9, "every_s": 60, "duration_s": 5},
            66,
            0.1,
        ),
        ({"pattern": "leak", "start": 0.1, "per_min": 0.6, "max": 0.4}, 30, 0.4),
    ],
)
def test_pattern_values(pattern: dict[str, Any], t: float, value: float) -> None:
    spec = parse_load(json.dumps({"cpu": pattern}))
    assert spec.cpu is not None
    assert spec.cpu.at(t) == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"gpu": {}}',
        '{"cpu": {"pattern": "wobble"}}',
        '{"cpu": {"pattern": "constant"}}',
        '{"cpu": {"pattern": "constant", "value": -1}}',
        '{"cpu": {"pattern": "constant", "value": true}}',
        '{"cpu": {"pattern": "constant", "value": 1, "extra": 2}}',
        '{"cpu": {"pattern": "cycle", "low": 0, "high": 1, "period_s": 0}}',
        '{"cpu": {"pattern": "burst", "base": 0, "peak": 1, "every_s": 5, "duration_s": 6}}',
        '{"cpu": {"pattern": "leak", "start": 0, "per_min": 1}}',  # uncapped CPU leak
        '{"cpu": {"pattern": "constant", "value": 64}}',
        '{"memory": {"pattern": "constant", "value": 10}}',  # memory needs value_mb
    ],
)
def test_invalid_annotations_are_rejected(text: str) -> None:
    with pytest.raises(LoadSpecError):
        parse_load(text)


def test_container_annotation_wins_over_the_pod_one() -> None:
    annotations = {
        "presize.io/load": '{"cpu": {"pattern": "constant", "value": 0.1}}',
        "presize.io/load.db": '{"cpu": {"pattern": "constant", "value": 0.5}}',
    }
    db, web = load_for_container(annotations, "db"), load_for_container(annotations, "web")
    assert db.cpu is not None
    assert web.cpu is not None
    assert (db.cpu.at(0), web.cpu.at(0)) == (0.5, 0.1)
    assert load_for_container({}, "x") == LoadSpec()


def test_uncapped_memory_leak_peaks_at_infinity() -> None:
    spec = parse_load('{"memory": {"pattern": "leak", "start_mb": 1, "mb_per_min": 5}}')
    assert spec.memory is not None
    assert math.isinf(spec.memory.peak())


# ---- resources


@pytest.mark.parametrize(
    ("spec", "values"),
    [
        (
            {
                "requests": {"cpu": "100m", "memory": "48Mi"},
                "limits": {"cpu": "200m", "memory": "64Mi"},
            },
            CgroupValues(102, 20_000, memory_limit=64 * 2**20),
        ),
        ({"requests": {"cpu": "1.5"}}, CgroupValues(1536, -1)),
        ({}, CgroupValues(2, -1)),
        ({"requests": {"cpu": "1m"}, "limits": {"cpu": "1m"}}, CgroupValues(2, 1000)),
        ({"requests": {"cpu": "500"}}, CgroupValues(262144, -1)),
    ],
)
def test_container_values(spec: dict[str, Any], values: CgroupValues) -> None:
    assert container_values(Resources.from_spec(spec)) == values


def test_pod_values_need_every_container_limited() -> None:
    a = Resources(cpu_request=100, cpu_limit=200, memory_request=1, memory_limit=100)
    b = Resources(cpu_request=300, cpu_limit=300, memory_request=1, memory_limit=50)
    c = Resources(cpu_request=100)
    assert pod_values([a, b]) == CgroupValues(409, 50_000, memory_limit=150)
    assert pod_values([a, c]) == CgroupValues(204, -1, memory_limit=None)


def test_qos_class() -> None:
    g = Resources(cpu_request=100, cpu_limit=100, memory_request=5, memory_limit=5)
    b = Resources(cpu_request=100, cpu_limit=200, memory_request=5, memory_limit=5)
    assert qos_class([g]) == "Guaranteed"
    assert qos_class([g, b]) == "Burstable"
    assert qos_class([Resources()]) == "BestEffort"


# ---- kubelet rules

NODE = Requests(cpu=4000, memory=8 * 2**30)


def test_resize_above_the_node_is_infeasible_whatever_the_others() -> None:
    verdict = kubelet.check_resize(Requests(6000, 1), [], NODE)
    assert (verdict.fits, verdict.reason) == (False, "Infeasible")
    assert (
        verdict.message == "Node didn't have enough capacity: cpu, requested: 6000, capacity: 4000"
    )


def test_resize_that_fits_the_node_but_not_now_is_deferred() -> None:
    verdict = kubelet.check_resize(Requests(2000, 1), [Requests(2500, 1)], NODE)
    assert (verdict.fits, verdict.reason) == (False, "Deferred")
    assert "cpu, requested: 2000, used: 2500, capacity: 4000" in verdict.message
    assert kubelet.check_resize(Requests(1500, 1), [Requests(2500, 1)], NODE).fits


def test_memory_decrease_below_usage_is_an_error() -> None:
    message = kubelet.memory_decrease_error(
        {"app": (100, 50), "b": (None, 500)}, {"app": 60, "b": 10}
    )
    assert message is not None
    assert message.startswith("cannot decrease memory limits:")
    assert '"app" memory limit (50) below current usage (60)' in message
    assert kubelet.memory_decrease_error({"app": (100, 200)}, {"app": 150}) is None


def test_restart_needed_follows_resize_policy() -> None:
    container = {"resizePolicy": [{"resourceName": "memory", "restartPolicy": "RestartContainer"}]}
    old = Resources(cpu_limit=100, memory_limit=10)
    assert not kubelet.restart_needed(container, old, Resources(cpu_limit=200, memory_limit=10))
    assert kubelet.restart_needed(container, old, Resources(cpu_limit=100, memory_limit=20))


def test_condition_keeps_transition_time_while_reason_is_unchanged() -> None:
    old = kubelet.condition("PodResizePending", "True", "t1", reason="Deferred")
    same = kubelet.condition("PodResizePending", "True", "t2", reason="Deferred", old=old)
    moved = kubelet.condition("PodResizePending", "True", "t3", reason="Infeasible", old=same)
    assert same["lastTransitionTime"] == "t1"
    assert moved["lastTransitionTime"] == "t3"


def test_merge_conditions_keeps_others_and_removes_ours() -> None:
    existing = [{"type": "PodScheduled", "status": "True"}, {"type": "PodResizePending"}]
    merged = kubelet.merge_conditions(
        existing, {"PodResizePending": None, "Ready": {"type": "Ready"}}
    )
    assert [c["type"] for c in merged] == ["PodScheduled", "Ready"]


def test_backoff_and_phase() -> None:
    assert [kubelet.backoff_s(n, 1.0, 5.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert kubelet.pod_phase([("terminated", 1)], "Never") == "Failed"
    assert kubelet.pod_phase([("terminated", 0)], "OnFailure") == "Succeeded"
    assert kubelet.pod_phase([("terminated", 137)], "Always") == "Running"
    assert kubelet.restart_after("OnFailure", 137)
    assert not kubelet.restart_after("Never", 137)


# ---- resize steps and status

OLD = {"app": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}}
NEW = {"app": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}


def _step(desired: dict[str, Any], others: list[Requests]) -> Any:
    return next_allocation(
        OLD,
        desired,
        pending=None,
        in_progress=None,
        others=others,
        allocatable=NODE,
        generation=2,
        now=NOW,
    )


def test_next_allocation_accepts_defers_and_clears() -> None:
    accepted = _step(NEW, [])
    assert accepted.accepted
    assert accepted.pending is None
    assert accepted.in_progress is not None
    assert accepted.in_progress["observedGeneration"] == 2
    deferred = _step(NEW, [Requests(3500, 0)])
    assert not deferred.accepted
    assert deferred.pending is not None
    assert deferred.pending["reason"] == "Deferred"
    # same resources written differently are no resize at all
    unchanged = _step({"app": {"requests": {"cpu": "0.1"}, "limits": {"cpu": "0.2"}}}, [])
    assert (unchanged.accepted, unchanged.pending) == (False, None)


def test_pod_status_reports_container_ids_and_applied_resources() -> None:
    rt = PodRuntime("u1", "ns", "p", "Burstable", "/x", "Always", "10.245.0.1", NOW, allocated=NEW)
    c = Container("app", "busybox:1.36", "a" * 64, "/x/" + "a" * 64, NOW, 0.0, applied=OLD["app"])
    c.proc = object()  # type: ignore[assignment]  # only its presence matters here
    rt.containers["app"] = c
    pod = {"metadata": {"generation": 2}, "spec": {"containers": [{"name": "app"}]}, "status": {}}
    status = pod_status(rt, pod, NOW)
    cs = status["containerStatuses"][0]
    assert cs["containerID"] == "containerd://" + "a" * 64
    assert cs["resources"] == OLD["app"]  # applied, not yet the new allocation
    assert cs["allocatedResources"] == {"cpu": "1"}
    assert status["phase"] == "Running"
    assert status["observedGeneration"] == 2
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "ContainersReady"}


def test_image_id_drops_the_tag_but_not_a_registry_port() -> None:
    assert image_id("busybox:1.36").startswith("busybox@sha256:")
    assert image_id("reg:5000/app:v1").startswith("reg:5000/app@sha256:")
