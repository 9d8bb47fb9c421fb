"""controller.resizestate: what a kubelet reports after a resize, read as a phase (pure).

The pods are the JSON a real kubelet v1.35.8 reports (shapes from ``docs/real-node.md`` in
the shared docs), read through :func:`controller.podview.pod_view` as the loop reads them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from controller_fakes import MiB, deployment

from controller.orchestrator import ContainerResize, ContainerResources, NodeView, PodView
from controller.podview import pod_view
from controller.resizestate import (
    Refusal,
    ResizePhase,
    classify_resize,
    put_back,
    refusal_of,
    requests_of,
    room_elsewhere,
)
from controller.rollback import Change, Health, Verdict, change_from_json, change_to_json, judge
from presize.model import PodRef
from presize.policy import Allocation, DecisionState, decide
from presize.settings import PolicySettings

WEB = deployment("shop", "web")
INFEASIBLE = "Node didn't have enough capacity: cpu, requested: 4000, capacity: 2000"
DEFERRED = "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"
REFUSED = ('cannot decrease memory limits: attempting to set container "app" memory limit '
           "(67108864) below current usage (83886080)")  # fmt: skip


def _res(cpu: str, mem: str, lcpu: str, lmem: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": mem}, "limits": {"cpu": lcpu, "memory": lmem}}


def kubelet_pod(
    *,
    spec: dict[str, Any],
    running: dict[str, Any] | None,
    generation: int | None = 2,
    observed: int | None = 2,
    condition: tuple[str, str, str, int] | None = None,
    allocated: dict[str, Any] | None = None,
) -> PodView:
    """A busybox pod as the kubelet reports it: ``condition`` is (type, reason, message,
    observedGeneration)."""
    meta: dict[str, Any] = {"name": "busy", "namespace": "shop", "uid": "u-1"}
    if generation is not None:
        meta["generation"] = generation
    status: dict[str, Any] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "observedGeneration": observed},
    ]}  # fmt: skip
    if observed is not None:
        status["observedGeneration"] = observed
    if condition is not None:
        kind, reason, message, about = condition
        status["conditions"].append({
            "type": kind, "status": "True", "reason": reason, "message": message,
            "observedGeneration": about, "lastTransitionTime": "2026-01-01T00:01:00Z",
        })  # fmt: skip
    if running is not None:
        status["containerStatuses"] = [{
            "name": "app", "restartCount": 0, "resources": running,
            "allocatedResources": allocated or running["requests"],
        }]  # fmt: skip
    body = {
        "metadata": meta,
        "spec": {"nodeName": "real", "containers": [{"name": "app", "resources": spec}]},
        "status": status,
    }
    return pod_view(json.loads(json.dumps(body)), WEB)


OLD = _res("100m", "64Mi", "200m", "128Mi")
NEW_CPU = _res("300m", "64Mi", "400m", "128Mi")
HUGE = _res("4", "64Mi", "4", "128Mi")
LOW_MEM = _res("100m", "48Mi", "200m", "64Mi")


@pytest.mark.parametrize(
    ("pod", "phase", "reason"),
    [
        # done: no condition, the container runs the new spec
        (kubelet_pod(spec=NEW_CPU, running=NEW_CPU, generation=3, observed=3),
         ResizePhase.DONE, "the node runs what the spec asks"),
        # CPU back from shares and quota a millicore off: still the same
        (kubelet_pod(spec=NEW_CPU, running=_res("299m", "64Mi", "400m", "128Mi"), generation=3,
                     observed=3), ResizePhase.DONE, "the node runs what the spec asks"),
        # just patched: the kubelet has not seen generation 3 yet
        (kubelet_pod(spec=NEW_CPU, running=OLD, generation=3, observed=2),
         ResizePhase.UNKNOWN, "the node has not seen generation 3 yet (it reports 2)"),
        (kubelet_pod(spec=NEW_CPU, running=OLD, generation=3, observed=3,
                     condition=("PodResizeInProgress", "", "", 3)),
         ResizePhase.IN_PROGRESS, "the node is applying it"),
        (kubelet_pod(spec=HUGE, running=OLD, generation=3, observed=3,
                     condition=("PodResizePending", "Infeasible", INFEASIBLE, 3)),
         ResizePhase.INFEASIBLE, INFEASIBLE),
        (kubelet_pod(spec=_res("1", "64Mi", "1", "128Mi"), running=OLD, generation=3, observed=3,
                     condition=("PodResizePending", "Deferred", DEFERRED, 3)),
         ResizePhase.DEFERRED, DEFERRED),
        # the memory decrease the kubelet refuses: allocated new, resources old, retried
        (kubelet_pod(spec=LOW_MEM, running=OLD, generation=3, observed=3,
                     condition=("PodResizeInProgress", "Error", REFUSED, 3),
                     allocated=LOW_MEM["requests"]),
         ResizePhase.ERROR, REFUSED),
        # an Infeasible verdict about generation 3 when the pod is at 4: not about the new ask
        (kubelet_pod(spec=OLD, running=OLD, generation=4, observed=4,
                     condition=("PodResizePending", "Infeasible", INFEASIBLE, 3)),
         ResizePhase.UNKNOWN, "the Infeasible condition is about generation 3, the pod is at 4"),
        # no condition but the container runs other values
        (kubelet_pod(spec=NEW_CPU, running=OLD, generation=3, observed=3),
         ResizePhase.UNKNOWN, "the node reports no resize but runs app cpu request 0.1 (spec "
                              "0.3); app cpu limit 0.2 (spec 0.4)"),
        # an orchestrator without generations or container resources: the condition decides
        (kubelet_pod(spec=NEW_CPU, running=None, generation=None, observed=None),
         ResizePhase.DONE, "the node runs what the spec asks"),
        (kubelet_pod(spec=HUGE, running=None, generation=None, observed=None,
                     condition=("PodResizePending", "Infeasible", "", 3)),
         ResizePhase.INFEASIBLE, "the node can never hold it"),
    ],
)  # fmt: skip
def test_the_phase_of_a_resize_from_what_the_kubelet_reports(
    pod: PodView, phase: ResizePhase, reason: str
) -> None:
    state = classify_resize(pod)
    assert (state.phase, state.reason) == (phase, reason)


def test_a_held_resize_says_since_when() -> None:
    pod = kubelet_pod(spec=HUGE, running=OLD, generation=3, observed=3,
                      condition=("PodResizePending", "Infeasible", INFEASIBLE, 3))  # fmt: skip
    assert classify_resize(pod).since == 1767225660.0


# --------------------------------------------------------------------------- putting back


def _view(spec: ContainerResources, applied: tuple[ContainerResources, ...]) -> PodView:
    return PodView(PodRef("shop", "busy", "u-1", "real"), WEB, (spec,), applied=applied)


GUARANTEED_LOW = ContainerResources("app", 0.5, 0.5, 64 * MiB, 64 * MiB)
RUNS_GUARANTEED = ContainerResources("app", 0.499, 0.5, 128 * MiB, 128 * MiB)


@pytest.mark.parametrize(
    ("pod", "before", "expected"),
    [
        # what the container runs, from its status
        (_view(ContainerResources("app", 0.1, 0.2, 48 * MiB, 64 * MiB),
               (ContainerResources("app", 0.1, 0.2, 64 * MiB, 128 * MiB),)), (),
         (ContainerResize("app", 0.1, 0.2, 64 * MiB, 128 * MiB),)),
        # request = limit stays equal, though the runtime reports the request a bit lower
        (_view(GUARANTEED_LOW, (RUNS_GUARANTEED,)), (),
         (ContainerResize("app", 0.5, 0.5, 128 * MiB, 128 * MiB),)),
        # no status: what it had when the resize was asked
        (_view(ContainerResources("app", 4.0, 4.0), ()), (ContainerResources("app", 1.0, 1.0),),
         (ContainerResize("app", 1.0, 1.0),)),
        # nothing known: leave the spec
        (_view(ContainerResources("app", 4.0, 4.0), ()), (), ()),
        # the spec already says what runs
        (_view(ContainerResources("app", 1.0, 1.0), (ContainerResources("app", 1.0, 1.0),)), (),
         ()),
    ],
)  # fmt: skip
def test_put_back_sets_the_spec_to_what_runs(
    pod: PodView, before: tuple[ContainerResources, ...], expected: tuple[ContainerResize, ...]
) -> None:
    assert put_back(pod, ["app"], before) == expected


# --------------------------------------------------------------------------- refusals

NODE = NodeView("real", 2.0, 24 * 1024 * MiB)


def _refusal() -> Refusal:
    pod = _view(ContainerResources("app", 4.0, 4.0, 64 * MiB, 64 * MiB), ())
    return refusal_of(pod, (ContainerResources("app", 1.0, 1.0, 64 * MiB, 64 * MiB),), NODE,
                      INFEASIBLE, 100.0)  # fmt: skip


def test_a_refusal_remembers_the_resources_that_grew() -> None:
    r = _refusal()
    assert (r.node, r.capacity, r.cpu, r.memory) == ("real", (2.0, 24 * 1024 * MiB), 4.0, math.inf)


@pytest.mark.parametrize(
    ("asked", "current", "blocked"),
    [
        (Allocation(4.0, 64 * MiB), Allocation(1.0, 64 * MiB), True),  # the same ask
        (Allocation(5.0, 64 * MiB), Allocation(1.0, 64 * MiB), True),  # more of it
        (Allocation(1.5, 64 * MiB), Allocation(1.0, 64 * MiB), False),  # a smaller growth
        (Allocation(1.0, 128 * MiB), Allocation(1.0, 64 * MiB), False),  # memory: not refused
        (Allocation(4.0, 32 * MiB), Allocation(4.0, 64 * MiB), False),  # no CPU growth
    ],
)
def test_a_refusal_blocks_growing_as_far_again(
    asked: Allocation, current: Allocation, blocked: bool
) -> None:
    assert _refusal().blocks(asked, current) is blocked


@pytest.mark.parametrize(
    ("node", "holds"),
    [
        (NODE, True),
        (None, True),  # not in the view: nothing says it changed
        (NodeView("real", 4.0, 24 * 1024 * MiB), False),  # the node grew
        (NodeView("other", 2.0, 24 * 1024 * MiB), False),  # the pod is elsewhere
    ],
)
def test_a_refusal_holds_until_the_node_changes(node: NodeView | None, holds: bool) -> None:
    assert _refusal().holds(node) is holds


@pytest.mark.parametrize(
    ("nodes", "room"),
    [
        ([NODE], False),  # only its own node
        ([NODE, NodeView("big", 8.0, 32 * 1024 * MiB, 2.0)], True),
        ([NODE, NodeView("busy", 8.0, 32 * 1024 * MiB, 6.0)], False),  # 2 free, 4 needed
        ([NODE, NodeView("small-mem", 8.0, 32 * MiB)], False),
    ],
)
def test_rescheduling_helps_only_with_room_on_another_node(
    nodes: list[NodeView], room: bool
) -> None:
    assert room_elsewhere(nodes, "real", Allocation(4.0, 64 * MiB)) is room


def test_pod_requests_add_up() -> None:
    pod = _view(ContainerResources("app", 0.25, None, 64 * MiB), ())
    pod = PodView(pod.ref, WEB, (*pod.containers, ContainerResources("side", None, 1.0)))
    assert requests_of(pod.containers) == Allocation(0.25, 64 * MiB)


# --------------------------------------------------------------------------- memory hold


@pytest.mark.parametrize(
    ("blocked_until", "memory_shrinks", "cpu_shrinks"),
    [(-math.inf, True, True), (10_000.0, False, True), (5_000.0, True, True)],
)
def test_a_refused_memory_decrease_holds_memory_shrinks_only(
    blocked_until: float, memory_shrinks: bool, cpu_shrinks: bool
) -> None:
    state = DecisionState(
        cpu_down_since=0.0, memory_down_since=0.0, memory_shrink_blocked_until=blocked_until
    )
    d, _ = decide(now=6_000.0, current=Allocation(2.0, 1024 * MiB),
                  predicted=Allocation(0.2, 100 * MiB), settings=PolicySettings(),
                  state=state)  # fmt: skip
    assert (d.memory is not None and d.memory < 1024 * MiB) is memory_shrinks
    assert (d.cpu is not None and d.cpu < 2.0) is cpu_shrinks


# --------------------------------------------------------------------------- the watch


def _change(**kw: Any) -> Change:
    base: dict[str, Any] = {
        "pod_uid": "u-1", "pod_name": "busy", "namespace": "shop", "at": 100.0,
        "before": (ContainerResources("app", 1.0, 1.0),),
        "after": (ContainerResize("app", 0.5, 0.5),), "baseline": Health(throttled=0.0),
        "grew_cpu": False, "grew_memory": False, "shrank_cpu": True, "shrank_memory": False,
        "reason": "r", "window_s": 300.0, "workload": WEB,
    }  # fmt: skip
    base.update(kw)
    return Change(**base)


@pytest.mark.parametrize(
    ("effective_at", "now", "verdict"),
    [
        (None, 450.0, Verdict.KEEP),  # the window counted from the ask
        (100.0, 450.0, Verdict.KEEP),
        (400.0, 450.0, Verdict.WAIT),  # applied late: watched for a window from then
        (400.0, 720.0, Verdict.KEEP),
    ],
)
def test_the_watch_window_starts_when_the_change_took_effect(
    effective_at: float | None, now: float, verdict: Verdict
) -> None:
    change = _change(effective_at=effective_at)
    assert judge(change, Health(throttled=0.0, samples=10), now=now, tolerance=0.1).verdict is (
        verdict
    )


@pytest.mark.parametrize("effective_at", [None, 412.5])
def test_when_a_watched_change_took_effect_survives_a_checkpoint(
    effective_at: float | None,
) -> None:
    raw = json.loads(json.dumps(change_to_json(_change(effective_at=effective_at))))
    assert change_from_json(raw, WEB).effective_at == effective_at


def test_a_checkpoint_from_before_counts_the_window_from_the_ask() -> None:
    raw = json.loads(json.dumps(change_to_json(_change())))
    del raw["effectiveAt"]
    assert change_from_json(raw, WEB).effective_at == 100.0
