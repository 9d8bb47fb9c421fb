"""The loop after a resize the node did not carry out (controller.followup), on a fake node.

The node's answers come from :class:`controller_fakes.FakeKubelet`, which answers by the
kubelet's rules (Infeasible, Deferred, a refused memory decrease); the clock is the test's:
a cycle every 5 s from a fixed start, with the agent's urgent forecast before each when the
test wants a growth. What is checked is what a real node test observes: the PATCHes sent, the
Events, the WorkloadProfile's last decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest
from controller_fakes import (
    FakeKubelet,
    FakeOrchestrator,
    MemoryStore,
    MiB,
    deployment,
    node,
    pod,
    window,
)

from controller.loop import Controller
from controller.orchestrator import (
    ActionResult,
    ContainerResize,
    NodeView,
    Outcome,
    PodView,
    ResizeStatus,
    WorkloadView,
)
from controller.plan import ContainerOutcome, PodPlan
from controller.settings import ControllerSettings
from presize.model import Action, Decision, Mode, PodRef, Reason
from presize.policy import DecisionState
from presize.wire import Report

NS = "shop"
WEB = deployment(NS, "web")
T0 = 1_700_000_000.0
BIG = NodeView("node-1", 16.0, 64 * 1024 * MiB)


@dataclass
class Node:
    """A fake cluster, its controller and the test's clock."""

    kubelet: FakeKubelet | None
    replicas: int = 1
    spare: bool = False
    nodes: tuple[NodeView, ...] = (node(),)
    settings: dict[str, float] = field(default_factory=dict)
    orch: FakeOrchestrator = field(init=False)
    store: MemoryStore = field(default_factory=MemoryStore)
    ctl: Controller = field(init=False)
    now: float = T0
    seq: int = 0

    def __post_init__(self) -> None:
        self.orch = FakeOrchestrator(modes={NS: Mode.AUTO}, kubelet=self.kubelet)
        for n in self.nodes:
            self.orch.nodes[n.name] = n
        for i in range(self.replicas):
            p = pod(NS, f"web-{i}", WEB, cpu=0.5, mem=256 * MiB)
            self.orch.pods[p.ref.uid] = replace(
                p, applied=p.containers, generation=1, observed_generation=1
            )
        self.orch.workloads[WEB] = WorkloadView(
            WEB, self.replicas, self.replicas, disruptions_allowed=1 if self.spare else 0
        )
        options = {"step_s": 10.0, "profile_period_s": 30.0, **self.settings}
        self.ctl = Controller(self.orch, self.store, settings=ControllerSettings(**options),
                              default_mode=Mode.AUTO)  # fmt: skip
        self.cycle(urge=False)

    @property
    def pod(self) -> PodView:
        return self.orch.pods["uid-web-0"]

    def cycle(self, *, urge: bool = True, seconds: float = 5.0, oom: bool = False) -> None:
        """One full cycle ``seconds`` later; before it, with ``urge``, the agent's forecast
        that web-0 needs 1.5 cores within minutes (a growth the controller acts on at once);
        with ``oom``, an OOM kill in web-0 (a memory growth, at once)."""
        self.now += seconds
        reasons = (f"forecast-cpu-limit: {NS}/web-0/app: cpu upper 1.500 >= limit 0.500 "
                   "cores within 300s",) if urge else ()  # fmt: skip
        windows = tuple(window(p, self.now - seconds, cpu=0.45, mem=200 * MiB, seconds=seconds,
                               oom=int(oom and p.ref.name == "web-0"))
                        for p in self.orch.pods.values())  # fmt: skip
        self.seq += 1
        self.ctl.on_report(Report(node="node-0", agent_id="a", sent_at=self.now,
                                  sequence=self.seq, windows=windows, urgent=urge or oom,
                                  urgent_reasons=reasons), self.now)  # fmt: skip
        asyncio.run(self.ctl.cycle(self.now))

    def run(self, seconds: float, *, urge: bool = True) -> None:
        end = self.now + seconds
        while self.now < end:
            self.cycle(urge=urge)

    def events(self, reason: str) -> list[str]:
        return [e.message for e in self.orch.events if e.reason == reason]

    def last_decision(self) -> dict[str, str]:
        asyncio.run(self.ctl.checkpoint(self.now, all_=True))
        last = self.store.saved[WEB]["lastDecision"]
        assert isinstance(last, dict)
        return last

    def ask(self, resize: ContainerResize) -> None:
        """A resize the controller sends, through the path its decisions take."""
        p = self.pod
        outcome = ContainerOutcome("app", Decision(Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN,
                                                   "shrink"), DecisionState(), resize)  # fmt: skip
        plan = PodPlan(Action.RESIZE_IN_PLACE, Reason.SCALE_DOWN, "shrink", (outcome,))
        done = asyncio.run(self.ctl.actuator.carry_out(p, plan, self.now, None, self.ctl.book))
        assert done


# ---------------------------------------------------------------------------- Infeasible


@pytest.mark.parametrize(
    ("replicas", "spare", "nodes", "evicted", "patches", "action", "why"),
    [
        # one node, nothing to spare: wait, with presize's resize put back (ask + put back)
        (1, False, (node(),), False, 2, "DEFER", "no other node has room"),
        # another node has room and the budget spares a replica: rescheduled, no put back
        (2, True, (node(), BIG), True, 1, "RESCHEDULE", "rescheduling"),
        # room elsewhere but nothing to spare: wait
        (1, False, (node(), BIG), False, 2, "DEFER", "no replica to spare"),
        # a replica to spare but no node with room: evicting would not help
        (2, True, (node(),), False, 2, "DEFER", "no other node has room"),
    ],
)
def test_an_infeasible_growth_is_not_asked_again_and_falls_back(
    *,
    replicas: int,
    spare: bool,
    nodes: tuple[NodeView, ...],
    evicted: bool,
    patches: int,
    action: str,
    why: str,
) -> None:
    # The controller's view says the node has 8 cores; its kubelet says it has 1.
    n = Node(FakeKubelet(cpu_capacity=1.0), replicas=replicas, spare=spare, nodes=nodes)
    n.run(120)  # 24 cycles, each with the urgent forecast asking for the growth again
    assert len(n.orch.resizes) == patches
    assert (n.orch.evictions == ["uid-web-0"]) is evicted
    assert bool(n.events("Rescheduled")) is evicted
    (told,) = n.events("ResizeInfeasibleOnNode")
    assert "Node didn't have enough capacity: cpu" in told
    assert why in told
    last = n.last_decision()
    assert (last["action"], last["reason"], last["pod"]) == (action, "resize-infeasible", "web-0")
    # one decision for the wait, not one per cycle (the history keeps the last ten)
    kept = [d for d in n.ctl.workloads[WEB].decisions if d.reason == "resize-infeasible"]
    assert len(kept) == 1
    if not evicted:
        # what runs is what the spec says again: 0.5 cores
        assert n.pod.containers == n.pod.applied
        assert n.pod.containers[0].cpu_request == 0.5


def test_an_infeasible_resize_is_asked_again_once_the_node_changes() -> None:
    n = Node(FakeKubelet(cpu_capacity=1.0))
    n.run(60)
    assert len(n.orch.resizes) == 2
    # The node's allocatable changed: the refusal no longer holds, so presize asks once more;
    # the kubelet still says no, which is a new answer, told again and remembered again.
    n.orch.nodes["node-0"] = node(cpu=12.0)
    n.run(60)
    assert len(n.orch.resizes) == 4
    assert len(n.events("ResizeInfeasibleOnNode")) == 2
    n.orch.nodes["node-0"] = node(cpu=16.0)  # the node grew, and this time the kubelet agrees
    n.kubelet.cpu_capacity = 16.0  # type: ignore[union-attr]
    n.run(10)
    assert len(n.orch.resizes) == 5
    cpu = n.pod.containers[0].cpu_request
    assert cpu is not None
    assert cpu > 1.0
    assert n.pod.applied == n.pod.containers


def test_a_restarted_controller_still_knows_the_refused_resize_was_its_own() -> None:
    """The resize's rollback watch is checkpointed: a controller that restarts before the
    answer still puts its own resize back (it never touches another's)."""
    n = Node(FakeKubelet(cpu_capacity=1.0))
    n.run(30, urge=False)  # a profile, so that there is a checkpoint
    n.cycle()
    assert len(n.orch.resizes) == 1
    assert n.pod.resize is ResizeStatus.INFEASIBLE
    asyncio.run(n.ctl.checkpoint(n.now, all_=True))
    n.ctl = Controller(n.orch, n.store, settings=n.ctl.s, default_mode=Mode.AUTO)
    asyncio.run(n.ctl.restore())
    n.run(30, urge=False)
    assert len(n.orch.resizes) == 2
    assert n.pod.containers == n.pod.applied
    (told,) = n.events("ResizeInfeasibleOnNode")
    assert "put back" in told


def test_what_the_node_refused_is_remembered_per_resource() -> None:
    """A CPU growth refused, then a memory growth refused: both stay remembered, so neither
    is asked again (keeping only the newest would alternate between the two forever)."""
    n = Node(FakeKubelet(cpu_capacity=1.0, memory_capacity=300 * MiB))
    n.run(30)
    assert len(n.orch.resizes) == 2  # CPU: asked, put back
    n.cycle(urge=False)  # the last forecast still counts in this one
    n.cycle(urge=False, oom=True)
    n.run(30, urge=False)
    assert len(n.orch.resizes) == 4  # memory: asked, put back
    assert len(n.events("ResizeInfeasibleOnNode")) == 2
    n.run(60)
    assert len(n.orch.resizes) == 4  # the CPU growth is still known to fail


def test_an_infeasible_resize_someone_else_asked_is_left_alone() -> None:
    n = Node(FakeKubelet(cpu_capacity=1.0))
    p = n.pod
    big = replace(p.containers[0], cpu_request=4.0, cpu_limit=4.0)
    full = "Node didn't have enough capacity: cpu"
    n.orch.pods[p.ref.uid] = replace(p, containers=(big,), resize=ResizeStatus.INFEASIBLE,
                                     resize_message=full)  # fmt: skip
    n.run(60)
    assert n.orch.resizes == []  # neither put back nor resized on top
    assert len(n.events("ResizeInfeasibleOnNode")) == 1
    assert n.last_decision()["reason"] == "resize-infeasible"


# ---------------------------------------------------------------------------- Deferred


def test_a_deferred_resize_is_waited_for_and_watched_once_applied() -> None:
    n = Node(FakeKubelet(cpu_capacity=4.0, others_cpu=3.4))
    n.run(60)
    assert len(n.orch.resizes) == 1  # asked once, never again while the node defers it
    (told,) = n.events("ResizeWaitingForNode")
    assert "Node didn't have enough resource: cpu" in told
    assert n.last_decision()["reason"] == "resize-deferred"
    watched = n.ctl.actuator.watching["uid-web-0"]
    assert watched.effective_at is None  # not judged: it has not taken effect
    n.kubelet.others_cpu = 0.0  # type: ignore[union-attr]  # the other pod goes
    n.orch.node_sync()
    n.cycle(urge=False)
    assert n.ctl.actuator.watching["uid-web-0"].effective_at == n.now
    assert len(n.orch.resizes) == 1  # applied by the node, not asked again


@pytest.mark.parametrize(("spare", "evicted"), [(True, True), (False, False)])
def test_a_resize_deferred_too_long_becomes_a_reschedule(spare: bool, evicted: bool) -> None:
    n = Node(FakeKubelet(cpu_capacity=4.0, others_cpu=3.4), replicas=2, spare=spare,
             settings={"deferred_timeout_s": 60.0})  # fmt: skip
    n.run(50)
    assert n.orch.evictions == []
    n.run(20)
    assert (n.orch.evictions == ["uid-web-0"]) is evicted
    assert len(n.orch.resizes) == 1
    assert n.events("RescheduleDeferred" if not spare else "Rescheduled")


def test_a_change_is_not_judged_before_it_takes_effect() -> None:
    """A restart while the node defers a growth is not the growth's doing: under the old
    watch it was reverted once the window passed; now it waits for the change to apply."""
    n = Node(FakeKubelet(cpu_capacity=4.0, others_cpu=3.4),
             settings={"rollback_window_s": 30.0})  # fmt: skip
    n.cycle()
    assert len(n.orch.resizes) == 1
    p = n.pod
    n.orch.pods[p.ref.uid] = replace(p, containers=(replace(p.containers[0], restarts=1),))
    n.run(120, urge=False)
    assert not n.events("ResizeRolledBack")
    assert len(n.orch.resizes) == 1
    assert "uid-web-0" in n.ctl.actuator.watching
    n.kubelet.others_cpu = 0.0  # type: ignore[union-attr]
    n.orch.node_sync()  # applied now: watched for a window from here, the restart not blamed
    n.run(120, urge=False)
    assert not n.events("ResizeRolledBack")
    assert "uid-web-0" not in n.ctl.actuator.watching  # kept


# ---------------------------------------------------------------------------- refused


def test_a_refused_memory_decrease_is_put_back_once_and_memory_held() -> None:
    n = Node(FakeKubelet(memory_used={"app": 200 * MiB}))
    n.ask(ContainerResize("app", memory_request=128 * MiB, memory_limit=128 * MiB))
    assert n.pod.resize is ResizeStatus.ERROR
    n.run(60, urge=False)
    assert len(n.orch.resizes) == 2  # the shrink, then the spec put back to what runs
    _, back = n.orch.resizes[1]
    assert (back[0].memory_request, back[0].memory_limit) == (256 * MiB, 256 * MiB)
    assert n.pod.containers == n.pod.applied
    (told,) = n.events("ResizeRefused")
    assert "cannot decrease memory limits" in told
    assert "memory of app not shrunk" in told
    assert "uid-web-0" not in n.ctl.actuator.watching  # never took effect: no verdict
    assert not n.events("ResizeRolledBack")
    state = n.ctl.workloads[WEB].states["uid-web-0"]["app"]
    assert state.memory_shrink_blocked_until == pytest.approx(T0 + 10.0 + 1800.0, abs=10.0)
    last = n.last_decision()
    assert (last["action"], last["reason"]) == ("DEFER", "resize-refused")
    assert "cannot decrease memory limits" in last["message"]


@pytest.mark.parametrize(("outcome", "tries"), [(Outcome.REFUSED, 1), (Outcome.FAILED, 12)])
def test_a_put_back_the_api_refuses_is_not_tried_every_cycle(outcome: Outcome, tries: int) -> None:
    """The API server refusing the put back (422) is an answer: not asked again; an API
    server that cannot be reached is tried again next cycle."""
    n = Node(FakeKubelet(memory_used={"app": 200 * MiB}))
    n.ask(ContainerResize("app", memory_request=128 * MiB, memory_limit=128 * MiB))
    calls: list[int] = []

    async def refuse(pod: PodRef, changes: Sequence[ContainerResize]) -> ActionResult:
        calls.append(1)
        return ActionResult(outcome, "no")

    n.orch.resize = refuse  # type: ignore[method-assign]
    n.run(60, urge=False)
    assert len(calls) == tries
    (told,) = n.events("ResizeRefused")
    assert f"putting the spec back failed ({outcome.value}" in told


def test_a_refused_putting_back_is_not_put_back_in_turn() -> None:
    """A rollback that lowers memory again, refused: presize leaves it (putting back the
    putting back would undo the rollback) and does not shrink memory for a while."""
    n = Node(FakeKubelet(memory_used={"app": 200 * MiB}))
    n.ask(ContainerResize("app", memory_request=128 * MiB, memory_limit=128 * MiB))
    asked = n.ctl.actuator.asked["uid-web-0"]
    n.ctl.actuator.asked["uid-web-0"] = replace(asked, putting_back=True)
    n.run(60, urge=False)
    assert len(n.orch.resizes) == 1
    (told,) = n.events("ResizeRefused")
    assert "it was putting a change back" in told


def test_a_refused_resize_someone_else_asked_is_left_as_it_is() -> None:
    n = Node(FakeKubelet(memory_used={"app": 200 * MiB}))
    p = n.pod
    low = replace(p.containers[0], memory_request=128 * MiB, memory_limit=128 * MiB)
    n.orch.pods[p.ref.uid] = replace(p, containers=(low,), resize=ResizeStatus.ERROR,
                                     resize_message="cannot decrease memory limits")  # fmt: skip
    n.run(60)
    assert n.orch.resizes == []  # not put back, not resized while the kubelet retries
    (told,) = n.events("ResizeRefused")
    assert "left as it is" in told


# ---------------------------------------------------------------------------- unanswered


@pytest.mark.parametrize(("settle_s", "patched_after"), [(30.0, 30.0), (60.0, 60.0)])
def test_a_resize_the_node_has_not_seen_blocks_new_ones_until_it_settles(
    settle_s: float, patched_after: float
) -> None:
    n = Node(None, settings={"resize_settle_s": settle_s})
    p = n.pod
    n.orch.pods[p.ref.uid] = replace(p, generation=2, observed_generation=1)  # just patched
    start = n.now
    while not n.orch.resizes and n.now < start + 200:
        n.cycle()
    assert n.now - start == pytest.approx(patched_after + 5.0, abs=5.0)
