"""Everything the demo runs, brought up in order and torn down in reverse, whatever happens.

    local cluster (etcd, apiserver, controller-manager, scheduler, kwok; no kwok nodes)
    -> the chart's CRDs -> namespace ``demo`` + PresizePolicies
    -> node shim (real cgroups and load for the fake nodes ``<prefix>0``, ``<prefix>1``)
    -> presize controller -> one agent per shim node -> MutatingWebhookConfiguration + webhook

Why this shape:

* **No kwok nodes.** Every demo pod must have real cgroups so the agent has something to read,
  so pods may only land on the shim's nodes (they carry the shim's label and tolerate its
  taint). kwok still runs (the cluster needs it for nothing else here, and it is cheap).
* **presize as local processes**, exactly the commands a user would run (``python -m
  controller|agent|webhook``), talking over loopback: the controller listens on 127.0.0.1 with
  ``--insecure-no-auth`` (no ServiceAccount tokens exist outside pods), the agents name pods
  through the API server (``--directory kube``) and read the shim's cgroups under
  ``/presize-shim/<node>``, and the webhook is registered by URL with its own CA.
* **Time compression.** The controller is told ``--time-scale K`` and divides every duration
  of *behaviour* by K (hysteresis, cooldowns, the rollback watch, anomaly spans), so those are
  passed as real seconds times K (:class:`hack.demo.workloads.Timing`); the step and the
  periods it works at (``--step``, ``--profile-period``, ``--urgent-period``) are real
  seconds already.
* **Teardown by pid** (:class:`hack.demo.procs.Supervisor`), in reverse order of start-up, each
  step attempted even when an earlier one failed: webhook, agents, controller, then the shim
  (kills its load processes by the pids in their cgroups, removes the cgroups and its nodes),
  then the cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hack.cluster.crds import crd_manifests
from hack.cluster.localcluster import Binaries, LocalCluster
from hack.demo.cgroups import CgroupLocator, shim_pod_cgroups
from hack.demo.procs import REPO, Supervisor, child_env, free_port, http_get, http_ok, wait_until
from hack.demo.workloads import (
    NAMESPACE,
    Timing,
    Workload,
    deployment,
    namespace_manifest,
    policies,
    workloads,
)
from hack.demo.workloads import webhook_configuration as mwc_manifest
from hack.nodeshim.node import NodeSpec
from hack.nodeshim.shim import NodeShim, ShimConfig

WEBHOOK_CONFIG: Final = "presize-demo"
CRD_PATH: Final = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@dataclass(frozen=True)
class StackConfig:
    """What to start; times in real seconds."""

    workdir: Path
    timing: Timing
    nodes: tuple[str, ...]
    step_s: float = 5.0  # one profile step = one agent batch
    profile_period_s: float = 2.0  # every managed pod decided this often
    urgent_period_s: float = 2.0  # pods with urgent agent reports (not compressed)
    rollback_s: float = 15.0  # the default policy's watch after a change
    bursty_rollback_s: float = 60.0  # the bursty workload's: long enough to see a burst
    node_cpu: str = "4"
    node_memory: str = "8Gi"
    settle_s: float = 5.0  # after the snapshot holds a profile, before scaling out (webhook: 2 s)


def time_flags(c: StackConfig) -> list[str]:
    """The controller flags that compress time, as both modes pass them (the node shim's local
    process gets them on its command line, the chart's pod through ``controller.extraArgs``):
    the scale, the periods it works at (real seconds) and the default rollback watch (given in
    virtual seconds, because the controller divides it by the scale)."""
    return [
        "--time-scale", f"{c.timing.scale:g}",
        "--step", f"{c.step_s:g}",
        "--profile-period", f"{c.profile_period_s:g}",
        "--urgent-period", f"{c.urgent_period_s:g}",
        "--rollback-window", f"{c.timing.virtual(c.rollback_s):g}",
    ]  # fmt: skip


def opt_in_namespace(api: Callable[..., Any], c: StackConfig) -> None:
    """Namespace ``demo`` (labelled ``presize.io/enabled=true``, mode ``auto``) and its three
    PresizePolicies; needs the CRDs. ``api`` is :meth:`Stack.api` or its real-node twin."""
    api("POST", "/api/v1/namespaces", namespace_manifest())
    wait_until(
        "the demo namespace's default ServiceAccount",
        lambda: bool(api("GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default")),
        60,
        None,
    )
    for policy in policies(c.timing, c.rollback_s, c.bursty_rollback_s):
        api("POST", f"/apis/presize.io/v1alpha1/namespaces/{NAMESPACE}/presizepolicies", policy)


class Stack:
    """Start with :meth:`start`, stop with :meth:`stop` (idempotent, never raises)."""

    def __init__(self, config: StackConfig, say: Callable[[str], None]) -> None:
        self.c = config
        self.say = say
        self.sup = Supervisor(config.workdir)
        self.cluster: LocalCluster | None = None
        self.shim: NodeShim | None = None
        self.controller_port = 0
        self.webhook_port = 0
        self._stops: list[tuple[str, Callable[[], None]]] = []

    @property
    def controller_url(self) -> str:
        return f"http://127.0.0.1:{self.controller_port}"

    # What the script (hack.demo.run) asks of either mode; the real node's is RealStack.

    @property
    def kubeconfig(self) -> Path:
        assert self.cluster is not None
        return self.cluster.kubeconfig

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.c.nodes

    @property
    def platform(self) -> str:
        """Where the demo ran, for the summary and the report's headline."""
        return (
            f"on the node shim ({len(self.c.nodes)} simulated node(s) whose pods get real "
            "cgroups and real load from hack/nodeshim), presize's agent, controller and webhook "
            "as local processes"
        )

    @property
    def settle_s(self) -> float:
        return self.c.settle_s

    def workloads(self, timing: Timing) -> list[Workload]:
        return workloads(timing)

    def manifest(self, w: Workload) -> dict[str, Any]:
        """Pods for the shim's nodes only; the shim plays their ``presize.io/load``."""
        return deployment(w)

    def snapshot(self) -> bytes:
        """The controller's ``GET /v1/snapshot`` (what the webhook serves from)."""
        return http_get(f"{self.controller_url}/v1/snapshot")

    def cgroups(self) -> CgroupLocator:
        assert self.shim is not None
        return shim_pod_cgroups(self.shim.config.cgroup_root, self.shim.config.prefix)

    def api(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        """An admin API call that must succeed (200/201), else ``RuntimeError``."""
        assert self.cluster is not None
        status, out = self.cluster.request(method, path, body, **kw)
        if status not in (200, 201):
            raise RuntimeError(f"{method} {path}: HTTP {status}: {out}")
        return out

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        self.c.workdir.mkdir(parents=True, exist_ok=True)
        self.sup.save()
        self._binaries()
        self._cluster()
        self._crds_and_namespace()
        self._shim()
        self._controller()
        self._agents()
        self._webhook()

    def _binaries(self) -> None:
        if not Binaries.from_cache().missing():
            return
        self.say("cluster binaries missing: building them (hack/cluster/build.sh, ~10 min)")
        subprocess.run(["bash", str(REPO / "hack" / "cluster" / "build.sh")], check=True)

    def _cluster(self) -> None:
        t0 = time.monotonic()
        cluster = LocalCluster(self.c.workdir / "cluster", nodes=0, simulate_resize=False)
        self._stops.append(("cluster", cluster.stop))
        self.cluster = cluster
        try:
            cluster.start()
        finally:  # its pids, for --down and the test, even if start-up failed half-way
            if cluster.state_file.exists():
                state = json.loads(cluster.state_file.read_text(encoding="utf-8"))
                self.sup.record("cluster", {"processes": state.get("processes", {})})
        self.sup.record("kubeconfig", str(cluster.kubeconfig))
        self.say(f"local cluster up in {time.monotonic() - t0:.1f}s ({cluster.api_url})")

    def _crds_and_namespace(self) -> None:
        names = []
        for crd in crd_manifests():
            self.api("POST", CRD_PATH, crd)
            names.append(crd["metadata"]["name"])

        def established() -> bool:
            for name in names:
                conditions = self.api("GET", f"{CRD_PATH}/{name}").get("status", {})
                if not any(
                    c.get("type") == "Established" and c.get("status") == "True"
                    for c in conditions.get("conditions") or []
                ):
                    return False
            return True

        wait_until("the CRDs to be established", established, 30, None)
        opt_in_namespace(self.api, self.c)
        self.say(f"CRDs installed; namespace {NAMESPACE} opted in (mode auto), 3 PresizePolicies")

    def _shim(self) -> None:
        assert self.cluster is not None
        config = ShimConfig(
            node=NodeSpec(cpu=self.c.node_cpu, memory=self.c.node_memory),
            load_stderr=self.c.workdir / "logs" / "loads.log",
        )
        (self.c.workdir / "logs").mkdir(parents=True, exist_ok=True)
        shim = NodeShim(self.cluster.kubeconfig, list(self.c.nodes), config)
        self.sup.record(
            "shim",
            {"nodes": list(self.c.nodes), "cgroup_root": str(config.cgroup_root),
             "prefix": config.prefix},
        )  # fmt: skip
        self._stops.append(("node shim", shim.stop))
        shim.start()
        self.shim = shim
        self.say(
            f"node shim: {', '.join(self.c.nodes)} Ready "
            f"({self.c.node_cpu} CPU / {self.c.node_memory} each; cgroups under "
            f"/sys/fs/cgroup/*/{config.prefix}/<node>)"
        )

    def _controller(self) -> None:
        assert self.cluster is not None
        t = self.c.timing
        self.controller_port = free_port()
        argv = [
            sys.executable, "-m", "controller",
            "--kubeconfig", str(self.cluster.kubeconfig),
            "--host", "127.0.0.1", "--port", str(self.controller_port),
            "--insecure-no-auth", "--no-leader-elect", "--default-mode", "initial",
            *time_flags(self.c),
            "--log-level", "INFO",
        ]  # fmt: skip
        child = self.sup.spawn("controller", argv)
        self._stops.append(("presize processes", self.sup.stop_all))
        wait_until(
            "the controller's /healthz",
            lambda: http_ok(f"{self.controller_url}/healthz"),
            60,
            child,
        )
        self.say(
            f"controller pid {child.pid} on {self.controller_url} (time scale {t.scale:g}: "
            f"a virtual day lasts {t.day_s / 60:.1f} min; profile step {self.c.step_s:g}s)"
        )

    def _agents(self) -> None:
        assert self.cluster is not None
        assert self.shim is not None
        for node in self.c.nodes:
            spool = self.c.workdir / "spool" / node
            spool.mkdir(parents=True, exist_ok=True)
            argv = [
                sys.executable, "-m", "agent",
                "--root", str(self.shim.config.cgroup_root),
                "--base", self.shim.cgroup_base(node), "--node", node,
                "--directory", "kube", "--kubeconfig", str(self.cluster.kubeconfig),
                "--controller-url", f"{self.controller_url}/v1/reports", "--token-path", "",
                "--hz", "1", "--batch", f"{self.c.step_s:g}", "--spool-dir", str(spool),
                "--log-patterns", "", "--log-level", "INFO",
            ]  # fmt: skip
            child = self.sup.spawn(f"agent-{node}", argv)
            self.say(f"agent pid {child.pid} for {node} (cgroups {self.shim.cgroup_base(node)})")

    def _webhook(self) -> None:
        assert self.cluster is not None
        self.webhook_port = free_port()
        self.api(
            "POST",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            mwc_manifest(WEBHOOK_CONFIG, self.webhook_port),
        )
        port_file = self.c.workdir / "webhook.port"
        argv = [
            sys.executable, "-m", "webhook",
            "--host", "127.0.0.1", "--port", str(self.webhook_port),
            "--port-file", str(port_file),
            "--generate-certs", str(self.c.workdir / "webhook-certs"), "--cert-hosts", "127.0.0.1",
            "--webhook-config", WEBHOOK_CONFIG, "--kubeconfig", str(self.cluster.kubeconfig),
            "--snapshot-url", f"{self.controller_url}/v1/snapshot", "--snapshot-refresh-s", "2",
            "--namespace-refresh-s", "2", "--default-mode", "initial", "--log-level", "INFO",
        ]  # fmt: skip
        child = self.sup.spawn("webhook", argv, child_env())

        def registered() -> bool:
            path = (
                "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                + WEBHOOK_CONFIG
            )
            hooks = self.api("GET", path).get("webhooks") or []
            return port_file.exists() and all(h["clientConfig"].get("caBundle") for h in hooks)

        wait_until("the webhook to listen and register its CA", registered, 60, child)
        self.say(f"webhook pid {child.pid} on https://127.0.0.1:{self.webhook_port}/mutate")

    # ------------------------------------------------------------------ stop

    def stop(self) -> list[str]:
        """Stop everything started, newest first; returns the errors (never raises)."""
        errors: list[str] = []
        while self._stops:
            what, fn = self._stops.pop()
            try:
                fn()
            except Exception as exc:  # keep going: the next step must still run
                errors.append(f"stopping {what}: {exc}")
        self.sup.save()
        return errors

    def dead_children(self) -> list[str]:
        return self.sup.check_alive()


def check_root() -> str | None:
    """Why the demo cannot run here, or ``None``."""
    if os.geteuid() != 0:
        return "the node shim creates cgroups: run the demo as root"
    if not Path("/sys/fs/cgroup/cpu/cgroup.procs").exists():
        return "the node shim needs the cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu"
    return None
