"""controller.podview: API-server JSON to the orchestrator's views, table-driven, fixed dicts."""

from __future__ import annotations

from typing import Any

import pytest

from controller.orchestrator import ContainerResources, ResizeStatus
from controller.podview import (
    container_resources,
    controller_owner,
    hpa_target,
    namespace_mode,
    node_allocatable,
    parse_time,
    pdb_budget,
    pod_node_requests,
    pod_view,
    qos_class,
    replica_counts,
    resolve_workload,
    selector_matches,
    template_labels,
)
from presize.model import Mode, OwnerKind, WorkloadKey

MI = 1024.0**2
WL = WorkloadKey("shop", OwnerKind.DEPLOYMENT, "web")


def res(cpu: str | None = None, mem: str | None = None, lcpu: str | None = None,
        lmem: str | None = None) -> dict[str, Any]:  # fmt: skip
    requests = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v is not None}
    limits = {k: v for k, v in (("cpu", lcpu), ("memory", lmem)) if v is not None}
    return {"requests": requests, "limits": limits}


def pod(
    *,
    containers: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    phase: str = "Running",
    node: str | None = "n1",
    annotations: dict[str, str] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-7d9f8b6c5d"),
    labels: dict[str, str] | None = None,
    **spec_extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "web-7d9f8b6c5d-abcde",
        "namespace": "shop",
        "uid": "u-1",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": labels if labels is not None else {"app": "web"},
        "annotations": annotations or {},
    }
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    spec: dict[str, Any] = {
        "containers": containers
        if containers is not None
        else [{"name": "app", "resources": res("100m", "64Mi", "200m", "128Mi")}],
        **spec_extra,
    }
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if statuses is not None:
        status["containerStatuses"] = statuses
    return {"metadata": meta, "spec": spec, "status": status}


# ---- pod_view


def test_pod_view_reads_spec_status_and_metadata() -> None:
    p = pod(
        containers=[
            {"name": "app", "resources": res("250m", "256Mi", "1", "512Mi"),
             "resizePolicy": [{"resourceName": "memory", "restartPolicy": "RestartContainer"},
                              {"resourceName": "cpu", "restartPolicy": "NotRequired"}]},
            {"name": "side", "resources": {}},
        ],
        statuses=[
            {"name": "app", "restartCount": 3, "resources": res("200m", "256Mi", "1", "512Mi")},
            {"name": "side", "restartCount": 0},
        ],
    )  # fmt: skip
    p["status"]["qosClass"] = "Burstable"
    view = pod_view(p, WL)
    assert (view.ref.namespace, view.ref.uid, view.ref.node) == ("shop", "u-1", "n1")
    assert view.workload == WL
    assert view.containers == (
        ContainerResources("app", 0.25, 1.0, 256 * MI, 512 * MI, False, True, 3),
        ContainerResources("side"),
    )
    assert view.applied == (ContainerResources("app", 0.2, 1.0, 256 * MI, 512 * MI, restarts=3),)
    assert view.container("app") is view.containers[0]
    assert view.qos == "Burstable"
    assert view.running
    assert not view.excluded
    assert view.created_at == 1767225600.0
    assert view.labels == {"app": "web"}


def _cond(type_: str, reason: str = "", status: str = "True", message: str = "m") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:01:00Z"}  # fmt: skip


@pytest.mark.parametrize(
    ("conditions", "expected", "since"),
    [
        ([], ResizeStatus.NONE, None),
        ([_cond("Ready")], ResizeStatus.NONE, None),
        ([_cond("PodResizePending", "Deferred")], ResizeStatus.DEFERRED, 1767225660.0),
        ([_cond("PodResizePending", "Infeasible")], ResizeStatus.INFEASIBLE, 1767225660.0),
        ([_cond("PodResizeInProgress")], ResizeStatus.IN_PROGRESS, 1767225660.0),
        ([_cond("PodResizeInProgress", "Error")], ResizeStatus.ERROR, 1767225660.0),
        ([_cond("PodResizePending", "Deferred", status="False")], ResizeStatus.NONE, None),
        # a newer ask that cannot be met matters more than the one being applied
        ([_cond("PodResizeInProgress"), _cond("PodResizePending", "Infeasible")],
         ResizeStatus.INFEASIBLE, 1767225660.0),
    ],
)  # fmt: skip
def test_resize_state_from_conditions(
    conditions: list[dict[str, Any]], expected: ResizeStatus, since: float | None
) -> None:
    view = pod_view(pod(conditions=conditions), WL)
    assert view.resize is expected
    assert view.resize_since == since
    assert view.resize_message == ("m" if expected is not ResizeStatus.NONE else "")


@pytest.mark.parametrize(
    ("annotations", "excluded"),
    [({}, False), ({"presize.io/exclude": "true"}, True), ({"presize.io/exclude": "True"}, True),
     ({"presize.io/exclude": "false"}, False), ({"presize.io/exclude": "yes"}, False)],
)  # fmt: skip
def test_exclusion_annotation(annotations: dict[str, str], excluded: bool) -> None:
    assert pod_view(pod(annotations=annotations), WL).excluded is excluded


@pytest.mark.parametrize(
    ("phase", "deleting", "running"),
    [("Running", False, True), ("Pending", False, False), ("Succeeded", False, False),
     ("Running", True, False)],
)  # fmt: skip
def test_running(phase: str, deleting: bool, running: bool) -> None:
    p = pod(phase=phase)
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:09Z"
    assert pod_view(p, WL).running is running


def test_bad_quantities_read_as_unset_and_missing_fields_do_not_raise() -> None:
    c = container_resources("x", {"requests": {"cpu": "lots", "memory": True}})
    assert c == ContainerResources("x")
    view = pod_view({"metadata": {}, "spec": {}, "status": {}}, WL)
    assert (view.containers, view.ref.name, view.qos) == ((), "", "BestEffort")


@pytest.mark.parametrize(
    ("containers", "qos"),
    [
        ([], "BestEffort"),
        ([ContainerResources("a")], "BestEffort"),
        ([ContainerResources("a", 1, 1, 5, 5)], "Guaranteed"),
        ([ContainerResources("a", None, 1, None, 5)], "Guaranteed"),  # requests default to limits
        ([ContainerResources("a", 1, 2, 5, 5)], "Burstable"),
        ([ContainerResources("a", 1, 1, 5, 5), ContainerResources("b")], "Burstable"),
    ],
)
def test_qos_class(containers: list[ContainerResources], qos: str) -> None:
    assert qos_class(containers) == qos
    p = pod()
    assert pod_view(p, WL).qos == "Burstable"  # computed when status has no qosClass


# ---- node accounting


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"node": None}, None),
        ({"phase": "Succeeded"}, None),
        ({"phase": "Failed"}, None),
        ({"phase": "Pending"}, ("n1", 0.1, 64 * MI)),
        ({}, ("n1", 0.1, 64 * MI)),
        ({"containers": [{"name": "a", "resources": res("100m", "64Mi")},
                         {"name": "b", "resources": res("300m", "32Mi")}]},
         ("n1", 0.4, 96 * MI)),
        # a plain init container runs alone: the pod needs the larger of it and the rest
        ({"initContainers": [{"name": "i", "resources": res("2", "16Mi")}]},
         ("n1", 2.0, 64 * MI)),
        # a sidecar runs beside the app containers and beside later init containers
        ({"initContainers": [{"name": "s", "restartPolicy": "Always",
                              "resources": res("50m", "8Mi")},
                             {"name": "i", "resources": res("100m", "100Mi")}]},
         ("n1", 0.15, 108 * MI)),
        ({"overhead": {"cpu": "10m", "memory": "1Mi"}}, ("n1", 0.11, 65 * MI)),
        ({"resources": {"requests": {"cpu": "1"}}}, ("n1", 1.0, 64 * MI)),  # pod-level wins
        # during a shrink the node still holds the larger, applied value
        ({"statuses": [{"name": "app", "resources": res("300m", "32Mi")}]},
         ("n1", 0.3, 64 * MI)),
        # a growth the kubelet found Infeasible is never held: only what was given counts
        # (seen on the real node: a 4-CPU spec on a 2-CPU node made the node look full)
        ({"containers": [{"name": "app", "resources": res("4", "64Mi")}],
          "statuses": [{"name": "app", "resources": res("100m", "64Mi")}],
          "conditions": [{"type": "PodResizePending", "status": "True",
                          "reason": "Infeasible"}]},
         ("n1", 0.1, 64 * MI)),
        # a Deferred one may be applied any moment: the spec counts
        ({"containers": [{"name": "app", "resources": res("1", "64Mi")}],
          "statuses": [{"name": "app", "resources": res("100m", "64Mi")}],
          "conditions": [{"type": "PodResizePending", "status": "True",
                          "reason": "Deferred"}]},
         ("n1", 1.0, 64 * MI)),
    ],
)  # fmt: skip
def test_pod_node_requests(kwargs: dict[str, Any], expected: tuple[str, float, float] | None):
    got = pod_node_requests(pod(**kwargs))
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert got[0] == expected[0]
        assert got[1:] == pytest.approx(expected[1:])


def test_node_allocatable() -> None:
    node = {"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "7500m", "memory": "1Gi"}}}
    assert node_allocatable(node) == (7.5, 1024.0**3)
    assert node_allocatable({}) == (0.0, 0.0)


# ---- owners and workloads

RS = ("ReplicaSet", "shop", "web-7d9f8b6c5d")


@pytest.mark.parametrize(
    ("owner", "labels", "parents", "expected"),
    [
        # the ReplicaSet is cached and names its Deployment: certain
        (("ReplicaSet", "web-7d9f8b6c5d"), {}, {RS: ("Deployment", "web")},
         WorkloadKey("shop", OwnerKind.DEPLOYMENT, "web")),
        # the cache overrides a name that looks like a hash but is not the Deployment's
        (("ReplicaSet", "web-7d9f8b6c5d"), {}, {RS: ("Deployment", "frontend")},
         WorkloadKey("shop", OwnerKind.DEPLOYMENT, "frontend")),
        # a ReplicaSet of its own
        (("ReplicaSet", "web-7d9f8b6c5d"), {}, {RS: None},
         WorkloadKey("shop", OwnerKind.REPLICASET, "web-7d9f8b6c5d")),
        # not cached yet: the name-based guess
        (("ReplicaSet", "web-7d9f8b6c5d"), {"pod-template-hash": "7d9f8b6c5d"}, {},
         WorkloadKey("shop", OwnerKind.DEPLOYMENT, "web")),
        # a ReplicaSet run by a custom controller: not a workload presize sizes
        (("ReplicaSet", "web-7d9f8b6c5d"), {}, {RS: ("Rollout", "web")}, None),
        (("Job", "backup-28000000"), {}, {("Job", "shop", "backup-28000000"): ("CronJob", "bk")},
         WorkloadKey("shop", OwnerKind.CRONJOB, "bk")),
        (("Job", "backup-28000000"), {}, {("Job", "shop", "backup-28000000"): None},
         WorkloadKey("shop", OwnerKind.JOB, "backup-28000000")),
        (("Job", "backup-28000000"), {}, {},
         WorkloadKey("shop", OwnerKind.CRONJOB, "backup")),
        (("StatefulSet", "db"), {}, {}, WorkloadKey("shop", OwnerKind.STATEFULSET, "db")),
        (("DaemonSet", "agent"), {}, {}, WorkloadKey("shop", OwnerKind.DAEMONSET, "agent")),
        (("Rollout", "x"), {}, {}, None),
        (None, {}, {}, WorkloadKey("shop", OwnerKind.POD, "web-7d9f8b6c5d-abcde")),
    ],
)  # fmt: skip
def test_resolve_workload(
    owner: tuple[str, str] | None,
    labels: dict[str, str],
    parents: dict[tuple[str, str, str], tuple[str, str] | None],
    expected: WorkloadKey | None,
) -> None:
    assert resolve_workload(pod(owner=owner, labels=labels), parents) == expected


def test_controller_owner_needs_the_controller_flag() -> None:
    refs = [{"kind": "Deployment", "name": "a"},
            {"kind": "Deployment", "name": "b", "controller": True}]  # fmt: skip
    obj = {"metadata": {"ownerReferences": refs}}
    assert controller_owner(obj) == ("Deployment", "b")
    assert controller_owner({"metadata": {"ownerReferences": [{"kind": "X", "name": "a"}]}}) is None


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [
        ("Deployment", {"spec": {"replicas": 3}, "status": {"readyReplicas": 2}}, (3, 2)),
        ("Deployment", {"spec": {}, "status": {}}, (1, 0)),  # replicas defaults to 1
        ("StatefulSet", {"spec": {"replicas": 0}, "status": {}}, (0, 0)),
        ("DaemonSet", {"status": {"desiredNumberScheduled": 5, "numberReady": 4}}, (5, 4)),
        ("Job", {"spec": {"parallelism": 2}, "status": {"active": 2, "ready": 1}}, (2, 1)),
        ("Job", {"spec": {}, "status": {"active": 1}}, (1, 1)),
    ],
)
def test_replica_counts(kind: str, obj: dict[str, Any], expected: tuple[int, int]) -> None:
    assert replica_counts(kind, obj) == expected


def test_template_labels() -> None:
    obj = {"spec": {"template": {"metadata": {"labels": {"app": "web", "tier": 1}}}}}
    assert template_labels(obj) == {"app": "web", "tier": "1"}
    assert template_labels({}) == {}


LABELS = {"app": "web", "tier": "front"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (None, False),  # nil selects nothing
        ({}, True),  # empty selects everything (policy/v1)
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "db"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["back"]}]}, True),
        ({"matchExpressions": [{"key": "nope", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "nope", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}, False),
        ({"matchLabels": {"app": "web"},
          "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}, False),
    ],
)  # fmt: skip
def test_selector_matches(selector: object, matches: bool) -> None:
    assert selector_matches(selector, LABELS) is matches


def test_hpa_and_pdb() -> None:
    hpa = {"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"}}}
    assert hpa_target(hpa) == ("Deployment", "w")
    assert hpa_target({"spec": {}}) is None
    pdb = {"spec": {"selector": {"matchLabels": {"a": "b"}}}, "status": {"disruptionsAllowed": 2}}
    assert pdb_budget(pdb) == ({"matchLabels": {"a": "b"}}, 2)
    assert pdb_budget({"spec": {}})[1] == 0  # not computed yet: allow nothing


def _ns(labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "x", "labels": labels, "annotations": annotations or {}}}


@pytest.mark.parametrize(
    ("ns", "mode"),
    [
        (_ns({}), None),
        (_ns({"presize.io/enabled": "false"}, {"presize.io/mode": "auto"}), None),
        (_ns({"presize.io/enabled": "true"}), Mode.INITIAL),
        (_ns({"presize.io/enabled": "true"}, {"presize.io/mode": "auto"}), Mode.AUTO),
        (_ns({"presize.io/enabled": "true"}, {"presize.io/mode": " Off "}), Mode.OFF),
        (_ns({"presize.io/enabled": "true"}, {"presize.io/mode": "autoo"}), Mode.INITIAL),
    ],
)
def test_namespace_mode(ns: dict[str, Any], mode: Mode | None) -> None:
    assert namespace_mode(ns, Mode.INITIAL) is mode


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-01-01T00:00:00Z", 1767225600.0), ("2026-01-01T00:00:00.5Z", 1767225600.5),
     ("", None), (None, None), ("yesterday", None)],
)  # fmt: skip
def test_parse_time(text: object, expected: float | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("last_state", "expected"),
    [
        ({"terminated": {"reason": "OOMKilled", "finishedAt": "2026-01-01T00:01:40Z"}},
         1767225700.0),
        ({"terminated": {"reason": "Error", "finishedAt": "2026-01-01T00:01:40Z"}}, None),
        ({"terminated": {"reason": "OOMKilled"}}, None),  # no time: cannot tell when
        ({}, None),
    ],
)  # fmt: skip
def test_oom_kills_the_kubelet_reports_are_read(
    last_state: dict[str, Any], expected: float | None
) -> None:
    p = pod(statuses=[{"name": "app", "restartCount": 1, "lastState": last_state}])
    assert pod_view(p, WL).containers[0].oom_killed_at == expected
