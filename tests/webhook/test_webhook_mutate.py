"""``mutate``: the sizing decision, table by table, on plain dicts with a fixed clock.

Covered: QoS classes (Guaranteed, Burstable, BestEffort) under every limit policy,
LimitRange container/pod bounds and ratios, policy bounds, the memory-peak floor, rounding,
sidecars versus plain init containers, exclusion, modes, owner chains, missing profiles,
stale or missing snapshots, malformed pods and bandwidth annotations. Every patch is applied
to the pod and the result is checked for an unchanged QoS class.
Not covered here: transport (test_server.py), random inputs (test_fuzz.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from webhook_builders import (
    NOW,
    NS,
    apply_patch,
    container,
    index,
    pod,
    qos_of,
    rec,
    resources,
)

from presize.model import Bounds, Mode, OwnerKind, WorkloadKey
from presize.units import MIB, parse_cpu
from presize.wire import PolicyBounds
from webhook.mutate import APPLIED_ANNOTATION, MutateSettings, Outcome, mutate
from webhook.namespaces import NamespaceInfo, ResourceLimits
from webhook.sizing import LimitPolicy

NSINFO = NamespaceInfo(name=NS, enabled=True)


def run(
    p: dict[str, Any],
    *recs: Any,
    ns: NamespaceInfo = NSINFO,
    settings: MutateSettings | None = None,
    **kw: Any,
):  # type: ignore[no-untyped-def]
    result = mutate(p, ns, index(*recs, **kw), settings or MutateSettings(), NOW)
    if result.patch:
        patched = apply_patch(p, list(result.patch))
        assert qos_of(patched) is qos_of(p), "QoS class changed"
        return result, patched
    return result, p


def res_of(p: dict[str, Any], i: int = 0, list_name: str = "containers") -> dict[str, Any]:
    return p["spec"][list_name][i].get("resources", {})


# ---------------------------------------------------------------- QoS and limit policies


@pytest.mark.parametrize(
    ("policy", "before", "expected"),
    [
        # Burstable, requests only: limits are never invented
        (LimitPolicy.KEEP_RATIO, resources("100m", "128Mi"), resources("250m", "300Mi")),
        (LimitPolicy.FROM_UPPER, resources("100m", "128Mi"), resources("250m", "300Mi")),
        (LimitPolicy.LEAVE, resources("100m", "128Mi"), resources("250m", "300Mi")),
        # Burstable with limits: ratio 2 kept
        (
            LimitPolicy.KEEP_RATIO,
            resources("100m", "128Mi", "200m", "256Mi"),
            resources("250m", "300Mi", "500m", "600Mi"),
        ),
        # limits from the upper bound of the interval
        (
            LimitPolicy.FROM_UPPER,
            resources("100m", "128Mi", "200m", "256Mi"),
            resources("250m", "300Mi", "500m", "400Mi"),
        ),
        # the user's limits stay
        (
            LimitPolicy.LEAVE,
            resources("100m", "128Mi", "2", "1Gi"),
            resources("250m", "300Mi", "2", "1Gi"),
        ),
        # Guaranteed stays Guaranteed under every policy: requests == limits
        (
            LimitPolicy.KEEP_RATIO,
            resources("1", "1Gi", "1", "1Gi"),
            resources("250m", "300Mi", "250m", "300Mi"),
        ),
        (
            LimitPolicy.FROM_UPPER,
            resources("1", "1Gi", "1", "1Gi"),
            resources("250m", "300Mi", "250m", "300Mi"),
        ),
        (
            LimitPolicy.LEAVE,
            resources("1", "1Gi", "1", "1Gi"),
            resources("250m", "300Mi", "250m", "300Mi"),
        ),
    ],
)
def test_limit_policy_sets_requests_and_limits(
    policy: LimitPolicy, before: dict[str, Any], expected: dict[str, Any]
) -> None:
    p = pod(container("app", before))
    result, patched = run(p, rec(), settings=MutateSettings(limit_policy=policy))
    assert result.outcome is Outcome.PATCHED
    assert res_of(patched) == expected


def test_burstable_that_would_become_guaranteed_is_left_alone() -> None:
    p = pod(container("app", resources("100m", "128Mi", "200m", "256Mi")))
    result, _ = run(p, rec(), settings=MutateSettings(limit_policy=LimitPolicy.LEAVE))
    assert result.outcome is Outcome.QOS_WOULD_CHANGE
    assert result.patch == ()
    assert "QoS" in result.warnings[-1]


def test_best_effort_pod_stays_without_resources() -> None:
    p = pod(container("app"))
    result, _ = run(p, rec())
    assert result.outcome is Outcome.BEST_EFFORT
    assert result.patch == ()


def test_other_resource_keys_are_kept() -> None:
    before = {
        "requests": {"cpu": "100m", "ephemeral-storage": "1Gi"},
        "limits": {"example.com/gpu": "1"},
    }
    p = pod(container("app", before))
    _, patched = run(p, rec())
    assert res_of(patched) == {
        "requests": {"cpu": "250m", "memory": "300Mi", "ephemeral-storage": "1Gi"},
        "limits": {"example.com/gpu": "1"},
    }


# ---------------------------------------------------------------- bounds, floors, rounding

MAX_CPU_200M = ResourceLimits(cpu=Bounds(maximum=0.2))
MIN_MEM_512 = ResourceLimits(memory=Bounds(minimum=512 * MIB))
RATIO_2 = ResourceLimits(cpu_max_ratio=2.0, memory_max_ratio=2.0)


@pytest.mark.parametrize(
    ("limits", "before", "recommendation", "expected"),
    [
        (MAX_CPU_200M, resources("100m", "128Mi"), rec(), resources("200m", "300Mi")),
        (MIN_MEM_512, resources("100m", "128Mi"), rec(), resources("250m", "512Mi")),
        # limit capped at max, request below it
        (
            MAX_CPU_200M,
            resources("100m", "128Mi", "150m", "256Mi"),
            rec(cpu=0.1),
            resources("100m", "300Mi", "150m", "600Mi"),
        ),
        # ratio: limit 4x request in the spec -> LimitRange allows 2x, the request rises
        (
            RATIO_2,
            resources("100m", "128Mi", "400m", "512Mi"),
            rec(),
            resources("500m", "600Mi", "1", "1200Mi"),
        ),
        # memory never below the observed peak ...
        (
            ResourceLimits(),
            resources("100m", "128Mi"),
            rec(mem_peak=700 * MIB),
            resources("250m", "700Mi"),
        ),
        # ... unless the LimitRange says otherwise (it is enforced by the API server)
        (
            ResourceLimits(memory=Bounds(maximum=600 * MIB)),
            resources("100m", "128Mi"),
            rec(mem_peak=700 * MIB),
            resources("250m", "600Mi"),
        ),
    ],
)
def test_limit_ranges_and_peaks_bound_the_result(
    limits: ResourceLimits, before: dict[str, Any], recommendation: Any, expected: dict[str, Any]
) -> None:
    ns = NamespaceInfo(name=NS, enabled=True, container=limits)
    p = pod(container("app", before))
    result, patched = run(p, recommendation, ns=ns)
    assert result.outcome is Outcome.PATCHED
    assert res_of(patched) == expected


def test_policy_bounds_apply_before_limit_ranges() -> None:
    settings = MutateSettings(
        bounds=ResourceLimits(cpu=Bounds(minimum=0.5), memory=Bounds(maximum=256 * MIB))
    )
    _, patched = run(pod(container("app", resources("100m", "128Mi"))), rec(), settings=settings)
    assert res_of(patched) == resources("500m", "256Mi")


def test_namespace_policy_bounds_tighten_settings() -> None:
    ns = NamespaceInfo(name=NS, enabled=True, policy=ResourceLimits(cpu=Bounds(maximum=0.1)))
    _, patched = run(pod(container("app", resources("50m", "128Mi"))), rec(), ns=ns)
    assert res_of(patched)["requests"]["cpu"] == "100m"


def test_pod_limit_range_sum_blocks_the_patch() -> None:
    ns = NamespaceInfo(name=NS, enabled=True, pod=ResourceLimits(memory=Bounds(maximum=500 * MIB)))
    p = pod(
        container("app", resources("100m", "128Mi")), container("side", resources("100m", "128Mi"))
    )
    result, _ = run(p, rec("app"), rec("side"), ns=ns)
    assert result.outcome is Outcome.POD_LIMIT_RANGE


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        (0.2501, 300.5 * MIB, resources("255m", "301Mi")),
        (0.0, 0.0, resources("10m", "16Mi")),  # default policy minimums
        (1.999, 1023.9 * MIB, resources("2", "1Gi")),
    ],
)
def test_values_are_rounded_up_to_the_grid(
    cpu: float, memory: float, expected: dict[str, Any]
) -> None:
    _, patched = run(pod(container("app", resources("100m", "128Mi"))), rec(cpu=cpu, memory=memory))
    assert res_of(patched) == expected


def test_rounding_never_crosses_a_maximum() -> None:
    ns = NamespaceInfo(name=NS, enabled=True, container=ResourceLimits(cpu=Bounds(maximum=0.2521)))
    _, patched = run(pod(container("app", resources("100m", "128Mi"))), rec(cpu=0.2519), ns=ns)
    assert parse_cpu(res_of(patched)["requests"]["cpu"]) <= 0.2521


# ---------------------------------------------------------------- which containers


def test_sidecars_are_sized_and_plain_init_containers_are_not() -> None:
    init = [
        container("migrate", resources("500m", "64Mi")),
        container("proxy", resources("50m", "32Mi"), restartPolicy="Always"),
    ]
    p = pod(container("app", resources("100m", "128Mi")), init=init)
    result, patched = run(p, rec("app"), rec("proxy", cpu=0.03, memory=40 * MIB), rec("migrate"))
    assert result.outcome is Outcome.PATCHED
    assert res_of(patched, 0, "initContainers") == resources("500m", "64Mi")
    assert res_of(patched, 1, "initContainers") == resources("30m", "40Mi")
    assert set(result.annotation["containers"]) == {"app", "proxy"}  # type: ignore[index]


def test_container_without_profile_is_left_alone_with_a_warning() -> None:
    p = pod(container("app", resources("100m", "128Mi")), container("new", resources("1", "1Gi")))
    result, patched = run(p, rec("app"))
    assert result.outcome is Outcome.PATCHED
    assert res_of(patched, 1) == resources("1", "1Gi")
    assert any("container new" in w for w in result.warnings)


# ---------------------------------------------------------------- opting out, modes, profiles


@pytest.mark.parametrize(
    ("p", "ns", "modes", "settings", "outcome", "warns"),
    [
        (
            pod(annotations={"presize.io/exclude": "true"}),
            NSINFO,
            (),
            MutateSettings(),
            Outcome.EXCLUDED,
            False,
        ),
        (
            pod(),
            NamespaceInfo(name=NS, enabled=False),
            (),
            MutateSettings(),
            Outcome.NOT_ENABLED,
            True,
        ),
        (pod(), NSINFO, ((NS, Mode.OFF),), MutateSettings(), Outcome.MODE_OFF, False),
        (
            pod(),
            NamespaceInfo(name=NS, mode=Mode.OFF),
            (),
            MutateSettings(),
            Outcome.MODE_OFF,
            False,
        ),
        (pod(), NSINFO, (), MutateSettings(default_mode=Mode.OFF), Outcome.MODE_OFF, False),
        # the snapshot's mode (the controller's view) wins over the namespace annotation
        (
            pod(),
            NamespaceInfo(name=NS, mode=Mode.OFF),
            ((NS, Mode.AUTO),),
            MutateSettings(),
            Outcome.PATCHED,
            False,
        ),
        (
            pod(owner=("ReplicaSet", "api-5c9f8d7b6")),
            NSINFO,
            (),
            MutateSettings(),
            Outcome.NO_PROFILE,
            True,
        ),
        (
            pod(annotations={"presize.io/exclude": "false"}),
            NSINFO,
            (),
            MutateSettings(),
            Outcome.PATCHED,
            False,
        ),
    ],
)
def test_opt_outs_modes_and_missing_profiles(  # noqa: PLR0917 (a parametrized table)
    p: dict[str, Any],
    ns: NamespaceInfo,
    modes: Any,
    settings: MutateSettings,
    outcome: Outcome,
    warns: bool,
) -> None:
    result, _ = run(p, rec(), ns=ns, settings=settings, modes=modes)
    assert result.outcome is outcome
    assert bool(result.patch) is (outcome is Outcome.PATCHED)
    assert bool(result.warnings) is warns


def test_no_profile_warning_names_the_workload() -> None:
    result, _ = run(pod(owner=("StatefulSet", "db")), rec())
    assert result.warnings == ("presize: no profile yet for shop/StatefulSet/db; unchanged",)


def test_missing_and_stale_snapshots_mean_no_patch() -> None:
    p = pod()
    missing = mutate(p, NSINFO, None, MutateSettings(), NOW)
    assert missing.outcome is Outcome.NO_SNAPSHOT
    assert missing.warnings
    stale = mutate(p, NSINFO, index(generated_at=NOW - 901), MutateSettings(), NOW)
    assert stale.outcome is Outcome.STALE_SNAPSHOT
    assert "901s old" in stale.warnings[0]
    fresh = mutate(p, NSINFO, index(generated_at=NOW - 899), MutateSettings(), NOW)
    assert fresh.outcome is Outcome.PATCHED


# ---------------------------------------------------------------- owner chains


def wl(kind: OwnerKind, name: str) -> WorkloadKey:
    return WorkloadKey(NS, kind, name)


@pytest.mark.parametrize(
    ("p", "workload"),
    [
        (pod(), wl(OwnerKind.DEPLOYMENT, "web")),
        # no pod-template-hash label: the hash-shaped suffix is still stripped
        (pod(labels={}), wl(OwnerKind.DEPLOYMENT, "web")),
        # a ReplicaSet with no Deployment above it
        (pod(owner=("ReplicaSet", "plain"), labels={}), wl(OwnerKind.REPLICASET, "plain")),
        (pod(owner=("StatefulSet", "db")), wl(OwnerKind.STATEFULSET, "db")),
        (pod(owner=("DaemonSet", "logs")), wl(OwnerKind.DAEMONSET, "logs")),
        (pod(owner=("Job", "once")), wl(OwnerKind.JOB, "once")),
        (pod(owner=("Job", "nightly-29474560")), wl(OwnerKind.CRONJOB, "nightly")),
        (pod(owner=None, name="solo", generate_name=""), wl(OwnerKind.POD, "solo")),
        (pod(owner=None, generate_name="batch-"), wl(OwnerKind.POD, "batch")),
    ],
)
def test_owner_chain_finds_the_workload(p: dict[str, Any], workload: WorkloadKey) -> None:
    result, _ = run(p, rec(workload=workload))
    assert result.outcome is Outcome.PATCHED
    assert result.workload == workload


def test_name_inference_falls_back_to_the_direct_owner() -> None:
    # a Job named like a CronJob's child, but the snapshot only knows the Job
    job = wl(OwnerKind.JOB, "backup-20240101")
    result, _ = run(pod(owner=("Job", "backup-20240101")), rec(workload=job))
    assert result.workload == job


def test_custom_controller_has_no_profile() -> None:
    result, _ = run(pod(owner=("Rollout", "web")), rec())
    assert result.outcome is Outcome.NO_PROFILE


# ---------------------------------------------------------------- malformed pods


@pytest.mark.parametrize(
    ("p", "outcome"),
    [
        ("not a pod", Outcome.INVALID_POD),
        ({"metadata": {}}, Outcome.INVALID_POD),
        ({"metadata": [], "spec": {}}, Outcome.INVALID_POD),
        (pod(container("app", resources("lots", "128Mi"))), Outcome.INVALID_POD),
        (pod(container("app", {"requests": ["cpu"]})), Outcome.INVALID_POD),
        ({"metadata": {}, "spec": {"containers": []}}, Outcome.INVALID_POD),
        ({"metadata": {}, "spec": {"containers": [{"image": "x"}]}}, Outcome.INVALID_POD),
        (
            {**pod(), "spec": {**pod()["spec"], "resources": {"requests": {"cpu": "1"}}}},
            Outcome.POD_RESOURCES,
        ),
    ],
)
def test_malformed_pods_are_admitted_unchanged(p: Any, outcome: Outcome) -> None:
    result = mutate(p, NSINFO, index(), MutateSettings(), NOW)
    assert result.outcome is outcome
    assert result.patch == ()
    assert result.warnings


def test_unusable_recommendation_leaves_the_container_alone() -> None:
    result, _patched = run(pod(container("app", resources("100m", "128Mi"))), rec(cpu=float("inf")))
    assert result.outcome is Outcome.UNCHANGED
    assert any("left unchanged" in w for w in result.warnings)


# ---------------------------------------------------------------- the record of what changed


def test_applied_annotation_records_before_and_after() -> None:
    p = pod(container("app", resources("100m", None, None, "1Gi")))
    result, patched = run(p, rec())
    record = json.loads(patched["metadata"]["annotations"][APPLIED_ANNOTATION])
    assert record == {
        "v": 1,
        "workload": "shop/Deployment/web",
        "snapshot": 42,
        "at": int(NOW),
        "containers": {
            "app": {
                "generation": 7,
                "confidence": 0.83,
                "requests": {"cpu": ["100m", "250m"], "memory": [None, "300Mi"]},
                # no request: the API server defaults it to the limit, so the ratio is 1
                "limits": {"memory": ["1Gi", "300Mi"]},
            }
        },
    }
    assert result.annotation == record


def test_existing_annotations_are_kept() -> None:
    p = pod(annotations={"team": "a", APPLIED_ANNOTATION: "old"})
    result, patched = run(p, rec())
    assert result.patch[0]["path"] == "/metadata/annotations/presize.io~1applied"
    assert patched["metadata"]["annotations"]["team"] == "a"


def test_pod_already_at_the_recommendation_is_unchanged() -> None:
    result, _ = run(pod(container("app", resources("250m", "300Mi"))), rec())
    assert result.outcome is Outcome.UNCHANGED
    assert result.patch == ()


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ({}, {"kubernetes.io/egress-bandwidth": "15M", "kubernetes.io/ingress-bandwidth": "3M"}),
        (
            {"kubernetes.io/egress-bandwidth": "1G"},
            {"kubernetes.io/egress-bandwidth": "1G", "kubernetes.io/ingress-bandwidth": "3M"},
        ),
    ],
)
def test_bandwidth_annotations_when_asked(
    existing: dict[str, str], expected: dict[str, str]
) -> None:
    settings = MutateSettings(bandwidth_annotations=True)
    p = pod(annotations=dict(existing))
    _, patched = run(p, rec(egress=10e6, ingress=1.5e6), settings=settings)
    got = {
        k: v
        for k, v in patched["metadata"]["annotations"].items()
        if k.startswith("kubernetes.io/")
    }
    assert got == expected


def test_no_bandwidth_annotations_by_default() -> None:
    _, patched = run(pod(), rec(egress=10e6, ingress=1.5e6))
    assert set(patched["metadata"]["annotations"]) == {APPLIED_ANNOTATION}


# ---------------------------------------------------------------- PresizePolicy bounds (snapshot)


def test_snapshot_policy_bounds_replace_the_flag_bounds_for_their_namespace() -> None:
    settings = MutateSettings(bounds=ResourceLimits(cpu=Bounds(maximum=0.2)))
    bounds = (PolicyBounds(namespace=NS, cpu_max=1.0, memory_min=512 * MIB),)
    _, patched = run(pod(), rec(cpu=0.25), settings=settings, bounds=bounds)
    # the policy's cpu max (1 core) replaces the flag's 200m; its memory min lifts 300Mi
    assert res_of(patched)["requests"] == {"cpu": "250m", "memory": "512Mi"}


def test_flag_bounds_remain_the_fallback_for_values_the_policy_leaves_unset() -> None:
    settings = MutateSettings(bounds=ResourceLimits(cpu=Bounds(maximum=0.2)))
    bounds = (PolicyBounds(namespace=NS, memory_max=256 * MIB),)
    _, patched = run(pod(), rec(cpu=0.25), settings=settings, bounds=bounds)
    assert res_of(patched)["requests"] == {"cpu": "200m", "memory": "256Mi"}


def test_snapshot_policy_bounds_of_another_namespace_do_not_apply() -> None:
    bounds = (PolicyBounds(namespace="other", cpu_max=0.05),)
    _, patched = run(pod(), rec(cpu=0.25), bounds=bounds)
    assert res_of(patched)["requests"]["cpu"] == "250m"


def test_container_policy_bounds_win_over_the_namespace_wide_entry() -> None:
    bounds = (
        PolicyBounds(namespace=NS, cpu_max=0.1),
        PolicyBounds(namespace=NS, container="side", cpu_max=0.4),
    )
    p = pod(
        container("app", resources("100m", "128Mi")), container("side", resources("100m", "128Mi"))
    )
    _, patched = run(p, rec("app", cpu=0.3), rec("side", cpu=0.3), bounds=bounds)
    assert res_of(patched, 0)["requests"]["cpu"] == "100m"
    assert res_of(patched, 1)["requests"]["cpu"] == "300m"


def test_limit_ranges_still_tighten_snapshot_policy_bounds() -> None:
    ns = NamespaceInfo(name=NS, enabled=True, container=ResourceLimits(cpu=Bounds(maximum=0.15)))
    bounds = (PolicyBounds(namespace=NS, cpu_max=1.0),)
    _, patched = run(pod(), rec(cpu=0.25), ns=ns, bounds=bounds)
    assert res_of(patched)["requests"]["cpu"] == "150m"


# ---------------------------------------------------------------- cold-start default

COLD = MutateSettings(cold_start_cpu=0.1, cold_start_memory=128 * MIB)
OTHER = WorkloadKey(NS, OwnerKind.DEPLOYMENT, "someone-else")


def test_cold_start_is_off_by_default() -> None:
    p = pod(container("app", resources(mem_req="64Mi")), container("new"))
    result, _ = run(p, rec(workload=OTHER))
    assert result.outcome is Outcome.NO_PROFILE
    assert not result.patch


def test_cold_start_default_fills_a_container_without_requests() -> None:
    p = pod(container("app", resources(mem_req="64Mi")), container("new"))
    result, patched = run(p, rec(workload=OTHER), settings=COLD)
    assert result.outcome is Outcome.COLD_START
    assert res_of(patched, 0) == resources(mem_req="64Mi")  # it has requests: untouched
    assert res_of(patched, 1) == {"requests": {"cpu": "100m", "memory": "128Mi"}}
    assert qos_of(patched) is qos_of(p)
    applied = json.loads(patched["metadata"]["annotations"][APPLIED_ANNOTATION])
    assert applied["workload"] == "shop/Deployment/web"
    assert applied["containers"] == {
        "new": {
            "generation": 0, "confidence": 0, "cold_start": True,
            "requests": {"cpu": [None, "100m"], "memory": [None, "128Mi"]},
        }
    }  # fmt: skip
    assert any("cold-start default" in w and "new" in w for w in result.warnings)


def test_cold_start_never_touches_a_best_effort_pod() -> None:
    p = pod(container("app"), container("side"))
    result, patched = run(p, rec(workload=OTHER), settings=COLD)
    assert result.outcome is Outcome.BEST_EFFORT
    assert patched == p


def test_cold_start_leaves_containers_with_limits_alone() -> None:
    # limits only: the API server copies them into requests (Guaranteed); a default would break it
    p = pod(container("app", resources(cpu_lim="1", mem_lim="1Gi")))
    result, _ = run(p, rec(workload=OTHER), settings=COLD)
    assert result.outcome is Outcome.NO_PROFILE
    assert not result.patch


def test_cold_start_only_sets_the_configured_resource_and_respects_bounds() -> None:
    settings = MutateSettings(
        cold_start_memory=8 * MIB, bounds=ResourceLimits(memory=Bounds(minimum=32 * MIB))
    )
    p = pod(container("app", resources("100m")), container("new"))
    _, patched = run(p, rec(workload=OTHER), settings=settings)
    assert res_of(patched, 1) == {"requests": {"memory": "32Mi"}}


def test_cold_start_sizes_a_new_container_of_a_profiled_workload() -> None:
    p = pod(container("app", resources("100m", "128Mi")), container("new"))
    result, patched = run(p, rec("app"), settings=COLD)
    assert result.outcome is Outcome.PATCHED
    assert res_of(patched, 0)["requests"] == {"cpu": "250m", "memory": "300Mi"}
    assert res_of(patched, 1) == {"requests": {"cpu": "100m", "memory": "128Mi"}}
    applied = json.loads(patched["metadata"]["annotations"][APPLIED_ANNOTATION])
    assert applied["containers"]["app"]["confidence"] == 0.83
    assert applied["containers"]["new"]["confidence"] == 0
    assert any("cold-start default applied" in w for w in result.warnings)
