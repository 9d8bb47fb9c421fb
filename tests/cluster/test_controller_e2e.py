"""presize end to end on a real API server: node shim, real agent, real controller processes.

The stack (module fixture :class:`Presize`): the local cluster, the chart's CRDs, a node shim
node (real cgroups and real load for its pods, the kubelet's resize behaviour), the agent as a
process for that node (``--directory kube``, reporting with a real ServiceAccount token) and the
controller as a process (``python -m controller``, TokenReview, time compressed 30x so the
hysteresis and windows take seconds, not minutes). Each test uses its own namespace labelled
``presize.io/enabled=true`` with mode ``auto``.

What is shown (issue 6):

* a load that rises on a known schedule is resized up *before* it reaches the old limit
  (the lead time is printed);
* killing the controller and starting it again loses no profile (the WorkloadProfile
  checkpoint is restored) and repeats no action;
* a CPU shrink that makes throttling worse is rolled back, with a ``ResizeRolledBack`` Event;
* a growth the node cannot hold becomes an eviction when a PodDisruptionBudget allows one, and
  is deferred (``RescheduleDeferred``) when it does not.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import free_port
from kubernetes import client
from kubernetes.client.rest import ApiException

from hack.cluster.localcluster import LocalCluster, stop_pid

pytestmark = [pytest.mark.cluster, pytest.mark.cgroups, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NODE = f"shim-e2e-{os.getpid()}"
PREFIX = f"presize-shim-e2e-{os.getpid()}"
TIME_SCALE = 30.0
SA_NAMESPACE = "presize-e2e"


class Presize:
    """The agent and controller processes, restartable, stopped by pid."""

    def __init__(self, cluster: LocalCluster, kube: client.ApiClient, work: Path) -> None:
        self.cluster = cluster
        self.kube = kube
        self.work = work
        self.port = free_port()
        self.controller: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token_file(self) -> Path:
        core = client.CoreV1Api(self.kube)
        try:
            core.create_namespace({"metadata": {"name": SA_NAMESPACE}})
            core.create_namespaced_service_account(SA_NAMESPACE, {"metadata": {"name": "agent"}})
        except ApiException as err:
            if err.status != 409:
                raise
        wait_for(lambda: _exists(core.read_namespaced_service_account, "agent", SA_NAMESPACE),
                 30, "agent ServiceAccount")  # fmt: skip
        request = {"spec": {"audiences": ["presize-controller"], "expirationSeconds": 3600}}
        token = core.create_namespaced_service_account_token("agent", SA_NAMESPACE, request)
        path = self.work / "agent-token"
        path.write_text(token.status.token)
        return path

    def start_controller(self, time_scale: float = TIME_SCALE, *extra: str) -> None:
        self.starts += 1
        log = open(self.work / f"controller-{self.starts}.log", "wb")  # noqa: SIM115
        self.controller = subprocess.Popen(
            [sys.executable, "-m", "controller", "--kubeconfig", str(self.cluster.kubeconfig),
             "--host", "127.0.0.1", "--port", str(self.port), "--default-mode", "initial",
             "--token-audience", "presize-controller",
             "--agent-identity", f"system:serviceaccount:{SA_NAMESPACE}:agent",
             "--time-scale", str(time_scale), "--step", "10", "--urgent-period", "2",
             "--profile-period", "5", "--rollback-window", "900", "--no-leader-elect",
             "--log-level", "INFO", *extra],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(self._healthy, 60, "the controller's /healthz", self.controller_log)

    def _healthy(self) -> bool:
        import urllib.request

        assert self.controller is not None
        if self.controller.poll() is not None:
            pytest.fail(f"controller exited: {self.controller_log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def controller_log(self) -> str:
        return (self.work / f"controller-{self.starts}.log").read_text(errors="replace")

    def kill_controller(self) -> None:
        """SIGKILL: a crash, no goodbye checkpoint."""
        assert self.controller is not None
        os.kill(self.controller.pid, signal.SIGKILL)
        self.controller.wait(timeout=30)

    def start_agent(self) -> None:
        log = open(self.work / "agent.log", "wb")  # noqa: SIM115
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "--base", f"{PREFIX}/{NODE}", "--directory", "kube",
             "--kubeconfig", str(self.cluster.kubeconfig), "--node", NODE, "--batch", "10",
             "--controller-url", f"{self.url}/v1/reports", "--token-path", str(self.token_file()),
             "--spool-dir", str(self.work / "spool"), "--log-patterns", ""],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        for proc in (self.agent, self.controller):
            if proc is not None and proc.poll() is None:
                stop_pid(proc.pid, None, timeout=20)


def wait_for(
    probe: Callable[[], object], timeout: float, what: str, log: Callable[[], str] | None = None
) -> None:
    """Poll ``probe`` until truthy; on timeout fail naming ``what`` (and the tail of ``log``,
    read then, not when the wait began)."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            tail = f"\n--- log tail ---\n{log()[-5000:]}" if log else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(0.5)


def _exists(read: Callable[..., Any], *args: str) -> bool:
    try:
        read(*args)
        return True
    except ApiException as err:
        if err.status == 404:
            return False
        raise


@pytest.fixture(scope="module")
def presize(
    local_cluster: LocalCluster, kube: client.ApiClient, crds: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Presize]:  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("the node shim creates cgroups: needs root")
    from hack.nodeshim.node import NodeSpec as ShimNodeSpec
    from hack.nodeshim.shim import NodeShim, ShimConfig

    work = tmp_path_factory.mktemp("presize-e2e")
    config = ShimConfig(prefix=PREFIX, node=ShimNodeSpec(cpu="4", memory="4Gi"),
                        load_stderr=work / "loads.log")  # fmt: skip
    with NodeShim(local_cluster.kubeconfig, [NODE], config):
        stack = Presize(local_cluster, kube, work)
        try:
            stack.start_controller()
            stack.start_agent()
            yield stack
        finally:
            stack.stop()


@pytest.fixture
def auto_namespace(namespace: str, kube: client.ApiClient) -> str:
    core = client.CoreV1Api(kube)
    meta = {"labels": {"presize.io/enabled": "true"}, "annotations": {"presize.io/mode": "auto"}}
    core.patch_namespace(namespace, {"metadata": meta})
    return namespace


def deployment(
    name: str, *, cpu: str, memory: str = "96Mi", load: dict[str, Any], replicas: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name},
                             "annotations": {"presize.io/load": json.dumps(load)}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [{"key": "presize.io/nodeshim", "operator": "Exists"}],
                    "containers": [{
                        "name": "app", "image": "example.invalid/load:1",
                        "resources": {"requests": {"cpu": cpu, "memory": memory},
                                      "limits": {"cpu": cpu, "memory": memory}},
                    }],
                },
            },
        },
    }  # fmt: skip


def pods_of(kube: client.ApiClient, namespace: str, app: str) -> list[Any]:
    core = client.CoreV1Api(kube)
    return list(core.list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def running_pod(kube: client.ApiClient, namespace: str, app: str, timeout: float = 90) -> Any:
    found: list[Any] = []

    def probe() -> bool:
        found[:] = [p for p in pods_of(kube, namespace, app) if p.status.phase == "Running"
                    and p.metadata.deletion_timestamp is None]  # fmt: skip
        return bool(found)

    wait_for(probe, timeout, f"a running pod of {app}")
    return found[0]


def cpu_limit(pod: Any) -> float:
    from presize.units import parse_cpu

    return parse_cpu(pod.spec.containers[0].resources.limits["cpu"])


def events(kube: client.ApiClient, namespace: str, reason: str) -> list[Any]:
    core = client.CoreV1Api(kube)
    return [e for e in core.list_namespaced_event(namespace).items if e.reason == reason]


def _event_time(e: Any) -> float:
    stamp = e.event_time or e.last_timestamp or e.first_timestamp or e.metadata.creation_timestamp
    return float(stamp.timestamp())


def started_at(pod: Any) -> float:
    state = pod.status.container_statuses[0].state.running
    return float(state.started_at.timestamp())


# ------------------------------------------------------------------------------------ tests


def test_a_rising_load_is_resized_before_it_reaches_the_limit(
    presize: Presize, kube: client.ApiClient, auto_namespace: str
) -> None:
    ns = auto_namespace
    low, high, at_s, duration_s, limit = 0.05, 0.6, 5.0, 240.0, 0.3
    load = {"cpu": {"pattern": "ramp", "start": low, "end": high, "at_s": at_s,
                    "duration_s": duration_s}}  # fmt: skip
    client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("ramp", cpu="300m", load=load)
    )
    pod = running_pod(kube, ns, "ramp")
    t0 = started_at(pod)
    crossing = t0 + at_s + (limit - low) / (high - low) * duration_s
    resized_at: list[float] = []

    def grown() -> bool:
        live = client.CoreV1Api(kube).read_namespaced_pod(pod.metadata.name, ns)
        if cpu_limit(live) > limit + 1e-9:
            resized_at.append(time.time())
            return True
        return False

    wait_for(grown, at_s + duration_s + 60, "the ramp's CPU limit raised", presize.controller_log)
    lead = crossing - resized_at[0]
    print(f"ramp resized {lead:.0f}s before usage reached the old limit")
    assert lead > 0, f"resized {-lead:.0f}s after the load crossed the old limit"
    assert events(kube, ns, "Resized"), "no Resized event"


def test_a_restarted_controller_resumes_its_profiles_and_repeats_nothing(
    presize: Presize, kube: client.ApiClient, auto_namespace: str
) -> None:
    ns = auto_namespace
    load = {"cpu": {"pattern": "constant", "value": 0.05}}
    client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("steady", cpu="500m", load=load)
    )
    running_pod(kube, ns, "steady")
    custom = client.CustomObjectsApi(kube)

    def profile() -> dict[str, Any] | None:
        try:
            obj = custom.get_namespaced_custom_object(
                "presize.io", "v1alpha1", ns, "workloadprofiles", "deployment-steady"
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        status = obj.get("status") or {}
        return obj if status.get("checkpoint") else None

    wait_for(lambda: profile() is not None, 120, "a checkpointed WorkloadProfile")
    saved = profile()
    assert saved is not None
    steps = json.loads(saved["status"]["checkpoint"])["containers"]["app"]["steps"]
    assert steps > 0
    wait_for(lambda: bool(events(kube, ns, "Resized")), 120, "a first shrink")

    presize.kill_controller()
    presize.start_controller()
    wait_for(lambda: "restored" in presize.controller_log(), 30, "the restore log line")
    line = next(x for x in presize.controller_log().splitlines() if "restored" in x)
    assert int(line.split("restored ")[1].split()[0]) >= 1, line
    # Shrinks keep their cooldown (900 s / 30 = 30 s) across the restart: the restarted
    # controller neither repeats the last change nor makes the next one early.
    time.sleep(40)
    times = sorted(_event_time(e) for e in events(kube, ns, "Resized"))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 30.0 - 2.0 for g in gaps), f"changes {gaps} s apart: cooldown not kept"
    after = profile()
    assert after is not None
    steps_after = json.loads(after["status"]["checkpoint"])["containers"]["app"]["steps"]
    assert steps_after >= steps, "the restarted controller lost profile history"


def test_a_shrink_that_makes_throttling_worse_is_rolled_back(
    presize: Presize, kube: client.ApiClient, auto_namespace: str
) -> None:
    """Sub-second bursts: 0.9 cores for 0.3 s every 2 s over a 0.02 base. The agent's 1 s
    samples see about 0.3 cores at the peak, so the controller shrinks the 1-core limit;
    inside each burst the container then runs out of quota within every 100 ms period, its
    throttled share of periods rises, and the shrink is reverted."""
    ns = auto_namespace
    load = {"cpu": {"pattern": "burst", "base": 0.02, "peak": 0.9, "every_s": 2,
                    "duration_s": 0.3}}  # fmt: skip
    client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("bursty", cpu="1", load=load)
    )
    running_pod(kube, ns, "bursty")
    wait_for(lambda: bool(events(kube, ns, "ResizeRolledBack")), 300, "a rollback",
             presize.controller_log)  # fmt: skip
    event = events(kube, ns, "ResizeRolledBack")[0]
    assert "throttling" in event.message
    assert event.type == "Warning"
    pod = running_pod(kube, ns, "bursty")
    assert cpu_limit(pod) >= 0.9  # the previous limit is back


@pytest.mark.parametrize("budget_allows", [True, False])
def test_a_growth_the_node_cannot_hold_reschedules_within_the_budget(
    presize: Presize, kube: client.ApiClient, auto_namespace: str, budget_allows: bool
) -> None:
    ns = auto_namespace
    # A filler pod holds most of the node; two replicas of 0.4 cores leave 0.2 free. Their
    # load (0.38 cores) nears the limit, and the growth presize wants does not fit the node.
    load = {"cpu": {"pattern": "constant", "value": 0.38}}
    core = client.CoreV1Api(kube)

    def node_quiet() -> bool:  # earlier tests' pods gone: the arithmetic below holds
        on_node = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={NODE}").items
        return all(p.metadata.namespace == ns for p in on_node)

    wait_for(node_quiet, 120, "the shim node free of earlier tests' pods")
    core.create_namespaced_pod(ns, {
        "metadata": {"name": "filler"},
        "spec": {"nodeName": NODE, "containers": [{
            "name": "idle", "image": "example.invalid/idle:1",
            "resources": {"requests": {"cpu": "2900m", "memory": "64Mi"},
                          "limits": {"cpu": "2900m", "memory": "64Mi"}}}]},
    })  # fmt: skip
    policy = client.PolicyV1Api(kube)
    budget: dict[str, Any] = {"maxUnavailable": 1} if budget_allows else {"maxUnavailable": 0}
    policy.create_namespaced_pod_disruption_budget(ns, {
        "metadata": {"name": "hot"},
        "spec": {"selector": {"matchLabels": {"app": "hot"}}, **budget},
    })  # fmt: skip
    wait_for(lambda: core.read_namespaced_pod("filler", ns).status.phase == "Running", 60,
             "the filler pod running")  # fmt: skip
    client.AppsV1Api(kube).create_namespaced_deployment(
        ns, deployment("hot", cpu="400m", load=load, replicas=2)
    )
    wait_for(lambda: sum(p.status.phase == "Running" for p in pods_of(kube, ns, "hot")) >= 2,
             90, "two running replicas")  # fmt: skip

    def pods_and_log() -> str:
        core = client.CoreV1Api(kube)
        rows = [
            f"{p.metadata.name} node={p.spec.node_name} phase={p.status.phase} "
            f"cpu={p.spec.containers[0].resources.requests} "
            f"conditions={[(c.type, c.reason) for c in p.status.conditions or []]}"
            for p in core.list_namespaced_pod(ns).items
        ]
        return "\n".join(rows) + "\n" + presize.controller_log()

    if budget_allows:
        wait_for(lambda: bool(events(kube, ns, "Rescheduled")), 180, "an eviction",
                 pods_and_log)  # fmt: skip
    else:
        wait_for(lambda: bool(events(kube, ns, "RescheduleDeferred")), 180,
                 "a deferred reschedule", pods_and_log)  # fmt: skip
        assert not events(kube, ns, "Rescheduled")


def test_a_leak_raises_the_alert_and_is_not_fed(
    presize: Presize, kube: client.ApiClient, auto_namespace: str
) -> None:
    """Memory grows 40 MiB a minute. With time compressed 360x (the detector's 6 h minimum
    span is a minute) the controller flags a suspected leak with a Warning Event on the
    workload, and from then on holds the container's memory instead of growing it; the
    policy maximum caps it in any case."""
    ns = auto_namespace
    presize.kill_controller()
    presize.start_controller(360.0, "--anomaly-period", "10")
    try:
        client.CustomObjectsApi(kube).create_namespaced_custom_object(
            "presize.io", "v1alpha1", ns, "presizepolicies",
            {"apiVersion": "presize.io/v1alpha1", "kind": "PresizePolicy",
             "metadata": {"name": "cap"},
             "spec": {"containers": [{"name": "*", "maxAllowed": {"memory": "600Mi"}}]}},
        )  # fmt: skip
        load = {"memory": {"pattern": "leak", "start_mb": 40, "mb_per_min": 40}}
        client.AppsV1Api(kube).create_namespaced_deployment(
            ns, deployment("leaky", cpu="100m", memory="200Mi", load=load)
        )
        running_pod(kube, ns, "leaky")
        wait_for(lambda: bool(events(kube, ns, "MemoryLeakSuspected")), 300,
                 "the leak alert", presize.controller_log)  # fmt: skip
        alerts = events(kube, ns, "MemoryLeakSuspected")
        assert {e.type for e in alerts} == {"Warning"}
        # On the pod and on its workload (kubectl describe shows it on either).
        assert {e.involved_object.kind for e in alerts} == {"Pod", "Deployment"}
        limits: list[float] = []

        def memory_limit() -> float:
            from presize.units import parse_bytes

            pods = [p for p in pods_of(kube, ns, "leaky") if p.status.phase == "Running"]
            return max(parse_bytes(p.spec.containers[0].resources.limits["memory"]) for p in pods)

        at_alert = memory_limit()
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            limits.append(memory_limit())
            time.sleep(3)
        assert max(limits) <= max(at_alert, 600 * 2**20), "memory was grown after the alert"
    finally:
        presize.kill_controller()
        presize.start_controller()
