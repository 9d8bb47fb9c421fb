"""The demo on a real node: presize installed by its Helm chart on a real kubelet, torn down after.

    presize's images (built from the Dockerfiles, or the cached archives reused)
    -> RealCluster: host network, control plane, real node (kubelet, containerd; images imported)
    -> helm install presize charts/presize -n presize-system --create-namespace --wait
    -> namespace ``demo`` + PresizePolicies -> the load program's ConfigMap

Why this shape:

* **Installed the way users install it.** The chart's default values, except the few that
  compress time, passed through values the chart already has: ``controller.extraArgs`` carries
  exactly the flags the node-shim mode gives its local controller process
  (:func:`hack.demo.stack.time_flags`: ``--time-scale``, ``--step``, ``--profile-period``,
  ``--urgent-period``, ``--rollback-window``), and ``agent.batchSeconds`` the agent batch that
  mode passes as ``--batch`` (one profile step). Everything else (leader election, agent
  authentication by TokenReview, the webhook's certificates and its 10 s snapshot refresh) is
  the chart's own. The values are written to ``<workdir>/helm-values.json`` for the curious.
* **The same scenario.** Namespace ``demo`` gets the label, mode and PresizePolicies of the
  shim demo (:func:`hack.demo.stack.opt_in_namespace`); the workloads run the shim's load
  program in real pods (:mod:`hack.demo.realworkloads`).
* **Seen from outside.** The script reads the controller's snapshot through the API server's
  pod proxy (the controller listens on its pod IP only), and the observer reads each
  container's cgroups where the kubelet put them (:mod:`hack.demo.cgroups`).
* **Teardown in reverse, whatever happens**: ``helm uninstall --wait``, then
  :meth:`RealCluster.stop`, which stops the node and the control plane by the pids it recorded
  and restores the host (routes, links, iptables chains, mounts, cgroups, sysctls). The pids are
  also in ``<workdir>/demo-state.json``, so ``python -m hack.demo --down --workdir DIR`` can stop
  the processes of a demo killed with SIGKILL (restoring the host needs the live object).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from hack.cluster.realnode import NODE_NAME, RealCluster
from hack.cluster.realnode import STATE_FILE as NODE_STATE_FILE
from hack.demo.cgroups import CGROUP_ROOT, CgroupLocator, kubelet_container_cgroups
from hack.demo.procs import REPO, Supervisor, wait_until
from hack.demo.realworkloads import demo_image, load_configmap, real_deployment, real_node_workloads
from hack.demo.stack import StackConfig, opt_in_namespace, time_flags
from hack.demo.workloads import NAMESPACE, Timing, Workload, workloads
from hack.docker.images import app_version, build_images

RELEASE: Final = "presize"
RELEASE_NAMESPACE: Final = "presize-system"
CHART: Final = REPO / "charts" / "presize"
COMPONENTS: Final = ("agent", "controller", "webhook")
WEBHOOK_SNAPSHOT_REFRESH_S: Final = 10.0  # the chart's webhook.snapshotRefreshSeconds
NODE_TOOLS: Final = ("containerd", "runc", "ctr", "ip", "iptables")


def chart_values(c: StackConfig) -> dict[str, Any]:
    """The only values the demo sets: time compression, as the node-shim mode sets it."""
    batch = c.step_s
    return {
        "controller": {"extraArgs": time_flags(c)},
        "agent": {"batchSeconds": int(batch) if float(batch).is_integer() else batch},
    }


def platform_text(node_info: Mapping[str, Any]) -> str:
    """Where the demo ran, from the Node's ``status.nodeInfo`` (what the kubelet reported)."""
    kubelet = node_info.get("kubeletVersion") or "?"
    runtime = str(node_info.get("containerRuntimeVersion") or "?").split("://", 1)[0]
    return (
        f"on a real kubelet node (kubelet {kubelet}, {runtime}), "
        "presize installed by its Helm chart"
    )


def check_real_node() -> str | None:
    """Why the real-node demo cannot run here, or ``None``."""
    if os.geteuid() != 0:
        return "the real node (kubelet, containerd, host network) needs root"
    for tool in NODE_TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} missing: run `bash hack/prereqs.sh` as root (Debian packages)"
    if not Path("/usr/lib/cni/bridge").exists():
        return "no CNI plugins: run `bash hack/prereqs.sh` (containernetworking-plugins)"
    if not (CGROUP_ROOT / "cpuacct").is_dir():
        return "the demo's observer reads cgroup v1 (/sys/fs/cgroup/cpuacct)"
    return None


class RealStack:
    """Start with :meth:`start`, stop with :meth:`stop` (idempotent, never raises). Offers what
    :mod:`hack.demo.run` asks of :class:`hack.demo.stack.Stack`."""

    def __init__(self, config: StackConfig, say: Callable[[str], None]) -> None:
        self.c = config
        self.say = say
        self.sup = Supervisor(config.workdir)
        self.real: RealCluster | None = None
        self.node_info: dict[str, Any] = {}
        self.image = ""
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self._restarts: dict[str, int] = {}
        self._next_pod_check = 0.0

    # ------------------------------------------------------------------ what run.py uses

    @property
    def kubeconfig(self) -> Path:
        assert self.real is not None
        return self.real.cluster.kubeconfig

    @property
    def nodes(self) -> tuple[str, ...]:
        return (NODE_NAME,)

    @property
    def platform(self) -> str:
        return platform_text(self.node_info)

    @property
    def settle_s(self) -> float:
        """The chart's webhook refreshes its snapshot every 10 s: wait that long and more."""
        return max(self.c.settle_s, WEBHOOK_SNAPSHOT_REFRESH_S + 5.0)

    def workloads(self, timing: Timing) -> list[Workload]:
        return real_node_workloads(workloads(timing))

    def manifest(self, w: Workload) -> dict[str, Any]:
        return real_deployment(w, self.image)

    def cgroups(self) -> CgroupLocator:
        return kubelet_container_cgroups()

    def api(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        """An admin API call that must succeed (200/201), else ``RuntimeError``."""
        assert self.real is not None
        status, out = self.real.cluster.request(method, path, body, **kw)
        if status not in (200, 201):
            raise RuntimeError(f"{method} {path}: HTTP {status}: {out}")
        return out

    def snapshot(self) -> bytes:
        """The controller's ``GET /v1/snapshot``, through the API server's pod proxy."""
        for pod in self._pods("controller"):
            if pod.get("status", {}).get("phase") != "Running":
                continue
            name = pod["metadata"]["name"]
            port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
            path = f"/api/v1/namespaces/{RELEASE_NAMESPACE}/pods/{name}:{port}/proxy/v1/snapshot"
            return json.dumps(self.api("GET", path)).encode()
        raise RuntimeError("no running controller pod")

    def dead_children(self) -> list[str]:
        """Node or control-plane processes that exited (fatal). presize's pods restarting is
        the kubelet's business and a finding, so it is printed, not fatal."""
        if self.real is None:
            return []
        exited = {**self.real.cluster.exited(), **self.real.node.exited()}
        self._report_presize_restarts()
        return [f"{name} (exit {rc})" for name, rc in exited.items()]

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        self.c.workdir.mkdir(parents=True, exist_ok=True)
        self.sup.save()
        archives = self._images()
        self._node(archives)
        self._install()
        self._namespace()

    def _images(self) -> list[Path]:
        t0 = time.monotonic()
        built = build_images(log=lambda m: self.say(f"  images: {m}"))
        how = "reused" if built["cached"] else "built"
        self.say(f"presize's images {how} in {time.monotonic() - t0:.0f}s")
        self.image = demo_image(app_version())
        return [Path(built["agent"]), Path(built["controller"]), Path(built["webhook"])]

    def _node(self, archives: list[Path]) -> None:
        t0 = time.monotonic()
        real = RealCluster(self.c.workdir / "real", image_archives=archives)
        self._stops.append(("the real node and its control plane", real.stop))
        self.real = real
        try:
            real.start()
        finally:  # the pids, for --down, even if start-up failed half-way
            self._record_pids(real)
        status = self.api("GET", f"/api/v1/nodes/{NODE_NAME}").get("status", {})
        self.node_info = dict(status.get("nodeInfo") or {})
        self.say(
            f"real node {NODE_NAME} Ready in {time.monotonic() - t0:.1f}s: kubelet "
            f"{self.node_info.get('kubeletVersion', '?')}, "
            f"{self.node_info.get('containerRuntimeVersion', '?')}, "
            f"{status.get('allocatable', {}).get('cpu', '?')} CPU allocatable"
        )

    def _record_pids(self, real: RealCluster) -> None:
        for key, path in (
            ("cluster", real.cluster.state_file),
            ("node", real.node.workdir / NODE_STATE_FILE),
        ):
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(path.read_text(encoding="utf-8"))
                self.sup.record(key, {"processes": state.get("processes", {})})

    def _helm(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        assert self.real is not None
        home = self.c.workdir / "helm"
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(
            KUBECONFIG=str(self.real.cluster.kubeconfig),
            HELM_CACHE_HOME=str(home / "cache"),
            HELM_CONFIG_HOME=str(home / "config"),
            HELM_DATA_HOME=str(home / "data"),
        )
        argv = [str(self.real.cluster.binaries.helm), *args]
        log = self.c.workdir / "logs" / "helm.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        with log.open("a", encoding="utf-8") as out:
            out.write(f"==> {' '.join(argv)}\n{proc.stdout}{proc.stderr}(exit {proc.returncode})\n")
        return proc

    def _install(self) -> None:
        values = self.c.workdir / "helm-values.json"
        values.write_text(json.dumps(chart_values(self.c), indent=2) + "\n", encoding="utf-8")
        self._stops.append(("helm uninstall", self._uninstall))
        t0 = time.monotonic()
        proc = self._helm(
            "install", RELEASE, str(CHART), "-n", RELEASE_NAMESPACE, "--create-namespace",
            "--wait", "--timeout", "240s", "-f", str(values),
            timeout=300,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"helm install failed: {(proc.stderr or proc.stdout).strip()}")
        wait_until(
            "every presize pod Ready",
            lambda: all(_all_ready(self._pods(c)) for c in COMPONENTS),
            120,
            None,
        )
        pods = ", ".join(f"{c} x{len(self._pods(c))}" for c in COMPONENTS)
        self.say(
            f"helm install {RELEASE} charts/presize -n {RELEASE_NAMESPACE}: every pod Ready in "
            f"{time.monotonic() - t0:.1f}s ({pods}); values: {values}"
        )

    def _uninstall(self) -> None:
        proc = self._helm(
            "uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", "--timeout", "120s",
            "--ignore-not-found",
            timeout=150,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"helm uninstall: {(proc.stderr or proc.stdout).strip()}")

    def _namespace(self) -> None:
        wait_until(
            "the chart's CRDs to be served",
            lambda: bool(self.api("GET", "/apis/presize.io/v1alpha1")),
            60,
            None,
        )
        opt_in_namespace(self.api, self.c)
        self.api("POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", load_configmap(NAMESPACE))
        self.say(
            f"namespace {NAMESPACE} opted in (mode auto), 3 PresizePolicies; the load program "
            f"in ConfigMap {NAMESPACE}/presize-demo-load, run by {self.image}"
        )

    # ------------------------------------------------------------------ watching presize

    def _pods(self, component: str) -> list[dict[str, Any]]:
        selector = urllib.parse.quote(f"app.kubernetes.io/component={component}")
        path = f"/api/v1/namespaces/{RELEASE_NAMESPACE}/pods?labelSelector={selector}"
        return list(self.api("GET", path).get("items") or [])

    def _report_presize_restarts(self) -> None:
        now = time.monotonic()
        if now < self._next_pod_check:
            return
        self._next_pod_check = now + 10.0
        try:
            pods = [p for c in COMPONENTS for p in self._pods(c)]
        except Exception:  # a slow API server must not end the demo; try again later
            return
        for pod in pods:
            for cs in pod.get("status", {}).get("containerStatuses") or []:
                key = f"{pod['metadata']['name']}/{cs.get('name')}"
                count = int(cs.get("restartCount") or 0)
                if count > self._restarts.setdefault(key, count):
                    last = (cs.get("lastState") or {}).get("terminated") or {}
                    why = last.get("reason", "?")
                    self.say(f"presize pod {key} restarted ({why}); the kubelet restarts it")
                    self._restarts[key] = count

    # ------------------------------------------------------------------ stop

    def stop(self) -> list[str]:
        """helm uninstall, then the node and control plane; returns the errors (never raises)."""
        errors: list[str] = []
        while self._stops:
            what, fn = self._stops.pop()
            try:
                fn()
            except Exception as exc:  # keep going: the next step must still run
                errors.append(f"stopping {what}: {exc}")
        self.sup.save()
        return errors


def _all_ready(pods: list[dict[str, Any]]) -> bool:
    return bool(pods) and all(
        p["metadata"].get("deletionTimestamp") is None
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in p.get("status", {}).get("conditions") or []
        )
        for p in pods
    )
