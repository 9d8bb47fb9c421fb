"""The node shim: the kubelet's cgroup work for pods bound to selected fake nodes.

:class:`NodeShim` runs one :class:`ShimNode` per node name. Each has two threads:

* a **watch** thread lists and watches the pods with ``fieldSelector=spec.nodeName=<node>``
  and keeps the newest copy of each (re-listing after a 410 or a dropped connection);
* a **worker** thread reconciles every pod, level-triggered, whenever the watch saw a change
  and at least every ``sync_every_s``: admit and start new pods (real cgroups, limits, a load
  process each), notice exits and OOM kills and restart per ``restartPolicy`` with back-off,
  take resizes through feasibility, acceptance and actuation (:mod:`hack.nodeshim.kubelet`),
  tear down deleted pods and finish their deletion, post each pod's status when it changed,
  and keep the node's Lease and Ready condition fresh.

One worker per node means the runtime state needs no locks; only the watch's pod cache is
shared. Start/stop from a test::

    with NodeShim(cluster.kubeconfig, ["shim-0"]) as shim:
        ...  # pods with spec.nodeName "shim-0" now run for real

``stop()`` kills every load process by pid, removes every cgroup it created (deepest first)
and, unless told otherwise, deletes the Nodes and Leases it registered.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self

from hack.nodeshim import kubelet
from hack.nodeshim.cgroupfs import CgroupError, CgroupFs
from hack.nodeshim.kube import MERGE_PATCH, KubeClient, KubeError
from hack.nodeshim.node import (
    NodeSpec,
    kwok_managed,
    lease_manifest,
    node_manifest,
    node_status,
    now_micro,
    now_rfc3339,
)
from hack.nodeshim.patterns import LoadSpecError, load_for_container
from hack.nodeshim.pods import Container, PodRuntime, pod_ip, pod_status
from hack.nodeshim.resize import actuate, next_allocation
from hack.nodeshim.resources import (
    Requests,
    Resources,
    container_values,
    cpu_millis,
    memory_bytes,
    pod_requests,
    pod_values,
    qos_class,
)

log = logging.getLogger("hack.nodeshim")
REPO_ROOT: Final = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ShimConfig:
    """How the shim behaves; the defaults suit tests on a small machine."""

    node: NodeSpec = field(default_factory=NodeSpec)
    cgroup_root: Path = Path("/sys/fs/cgroup")
    prefix: str = "presize-shim"  # cgroups at <root>/<controller>/<prefix>/<node>/kubepods/...
    register_nodes: bool = True  # create the Node if missing
    delete_nodes_on_stop: bool = True  # delete Nodes (and Leases) this shim created
    sync_every_s: float = 0.5
    restart_backoff_s: float = 1.0  # kubelet: 10 s, doubling to 300 s
    restart_backoff_cap_s: float = 30.0
    resize_delay_s: float = 0.0  # wait this long after accepting a resize before applying it
    lease_duration_s: int = 40
    lease_renew_s: float = 10.0
    node_status_every_s: float = 60.0
    start_timeout_s: float = 30.0
    load_stderr: Path | None = None  # append the load programs' stderr here


class ShimNode:
    """The shim for one node: watch + worker threads, runtime state, cgroups."""

    def __init__(self, client: KubeClient, name: str, config: ShimConfig) -> None:
        self.client = client
        self.name = name
        self.config = config
        self.fs = CgroupFs(config.cgroup_root, f"{config.prefix}/{name}")
        self.pods: dict[str, PodRuntime] = {}  # worker thread only
        self.allocatable = Requests()
        self.registered = False
        self._latest: dict[str, dict[str, Any]] = {}  # uid -> newest pod seen (watch thread)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watch: Any = None
        self._next_lease = 0.0
        self._next_status = 0.0
        self._stderr: IO[bytes] | None = None

    # ---- lifecycle

    def start(self) -> None:
        self._register()
        self.fs.remove(self.fs.base)  # leftovers of a shim that was killed: ours by path
        self.fs.create(self.fs.base)
        if self.config.load_stderr is not None:
            self._stderr = self.config.load_stderr.open("ab")
        for target, what in ((self._watch_loop, "watch"), (self._work_loop, "worker")):
            thread = threading.Thread(target=target, name=f"nodeshim-{self.name}-{what}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        if not self._synced.wait(self.config.start_timeout_s):
            raise KubeError(f"node shim {self.name}: no pod list within the start timeout")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        watch = self._watch
        if watch is not None:
            watch.close()
        for thread in self._threads:
            thread.join(timeout=30)
        for rt in list(self.pods.values()):
            self._teardown(rt)
        self.pods.clear()
        self.fs.remove(self.fs.base)
        self.fs.remove_empty_parents(self.fs.base, self.config.prefix)
        if self._stderr is not None:
            self._stderr.close()
        if self.registered and self.config.delete_nodes_on_stop:
            for path in (
                f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}",
                f"/api/v1/nodes/{self.name}",
            ):
                with contextlib.suppress(KubeError):
                    self.client.request("DELETE", path)

    def _register(self) -> None:
        status, node = self.client.request("GET", f"/api/v1/nodes/{self.name}")
        if status == 404:
            if not self.config.register_nodes:
                raise KubeError(f"node {self.name} does not exist (register_nodes is off)")
            node = self.client.ok(
                "POST", "/api/v1/nodes", node_manifest(self.name, self.config.node)
            )
            self.registered = True
        elif status != 200:
            raise KubeError(f"GET node {self.name}: HTTP {status}", status)
        if kwok_managed(node):
            raise KubeError(f"node {self.name} is managed by kwok (label type=kwok); pick another")
        alloc = node.get("status", {}).get("allocatable") or {}
        self.allocatable = Requests(
            cpu=cpu_millis(alloc.get("cpu", self.config.node.cpu)),
            memory=memory_bytes(alloc.get("memory", self.config.node.memory)),
        )
        self._heartbeat(force=True)

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now >= self._next_status:
            _, node = self.client.request("GET", f"/api/v1/nodes/{self.name}")
            existing = node.get("status", {}) if isinstance(node, dict) else {}
            body = {"status": node_status(self.name, existing, now_rfc3339())}
            self.client.ok(
                "PATCH", f"/api/v1/nodes/{self.name}/status", body, content_type=MERGE_PATCH
            )
            self._next_status = now + self.config.node_status_every_s
        if force or now >= self._next_lease:
            path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
            renew = {"spec": {"renewTime": now_micro(), "holderIdentity": self.name}}
            status, _ = self.client.request("PATCH", path, renew, content_type=MERGE_PATCH)
            if status == 404:
                _, node = self.client.request("GET", f"/api/v1/nodes/{self.name}")
                uid = node.get("metadata", {}).get("uid", "") if isinstance(node, dict) else ""
                lease = lease_manifest(self.name, uid, self.config.lease_duration_s, now_micro())
                self.client.request("POST", path.rsplit("/", 1)[0], lease)
            self._next_lease = now + self.config.lease_renew_s

    # ---- threads

    def _watch_loop(self) -> None:
        selector = f"spec.nodeName={self.name}"
        while not self._stop.is_set():
            try:
                listed = self.client.ok("GET", f"/api/v1/pods?fieldSelector={selector}")
                with self._lock:
                    self._latest = {p["metadata"]["uid"]: p for p in listed.get("items", [])}
                self._synced.set()
                self._wake.set()
                rv = listed["metadata"]["resourceVersion"]
                while not self._stop.is_set() and rv:
                    params = {
                        "fieldSelector": selector,
                        "resourceVersion": rv,
                        "allowWatchBookmarks": "true",
                        "timeoutSeconds": "300",
                    }
                    self._watch = self.client.watch("/api/v1/pods", params, self._stop)
                    rv = self._consume(self._watch, rv)
            except KubeError as err:
                if not self._stop.is_set():
                    log.warning("node shim %s: watch: %s; re-listing", self.name, err)
                    self._stop.wait(1.0)

    def _consume(self, watch: Any, rv: str) -> str:
        """Apply one watch's events; returns the resourceVersion to resume from, or "" to
        re-list (the server said 410 Gone)."""
        for event in watch:
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                return ""
            rv = obj.get("metadata", {}).get("resourceVersion", rv)
            if event.get("type") == "BOOKMARK":
                continue
            uid = obj["metadata"]["uid"]
            with self._lock:
                if event.get("type") == "DELETED":
                    self._latest.pop(uid, None)
                else:
                    self._latest[uid] = obj
            self._wake.set()
        return rv

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.sync_every_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                latest = dict(self._latest)
            for uid in [u for u in self.pods if u not in latest]:
                self._teardown(self.pods.pop(uid))
            for pod in latest.values():
                try:
                    self._sync(pod)
                except Exception:
                    log.exception("node shim %s: pod %s", self.name, pod["metadata"]["name"])
            try:
                self._heartbeat()
            except KubeError as err:
                log.warning("node shim %s: heartbeat: %s", self.name, err)

    # ---- pods

    def _sync(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        rt = self.pods.get(meta["uid"])
        if meta.get("deletionTimestamp"):
            if rt is not None:
                self._teardown(self.pods.pop(meta["uid"]))
            # the kubelet's last word: containers are gone, remove the object for good
            body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            self.client.request("DELETE", path, body)
            return
        if rt is None:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return
            rt = self.pods[meta["uid"]] = self._admit(pod)
        if rt.active():
            self._check_processes(rt, pod)
            self._resize(rt, pod)
        self._post_status(rt, pod)

    def _others(self, rt: PodRuntime) -> list[Requests]:
        return [p.requests() for p in self.pods.values() if p is not rt and p.active()]

    def _admit(self, pod: dict[str, Any]) -> PodRuntime:
        meta, spec = pod["metadata"], pod["spec"]
        specs = {c["name"]: dict(c.get("resources") or {}) for c in spec["containers"]}
        parsed = [Resources.from_spec(r) for r in specs.values()]
        qos = pod.get("status", {}).get("qosClass") or qos_class(parsed)
        rt = PodRuntime(
            uid=meta["uid"],
            namespace=meta["namespace"],
            name=meta["name"],
            qos=qos,
            cgroup=self.fs.pod_path(qos, meta["uid"]),
            restart_policy=spec.get("restartPolicy", "Always"),
            pod_ip=pod_ip(meta["uid"]),
            started_at=now_rfc3339(),
            allocated=specs,
        )
        verdict = kubelet.check_admit(pod_requests(parsed), self._others(rt), self.allocatable)
        if not verdict.fits:
            rt.rejected = verdict
            return rt
        self.fs.create(self.fs.qos_path(qos))
        if qos == "BestEffort":
            self.fs.write("cpu", self.fs.qos_path(qos), "cpu.shares", 2)
        self.fs.create(rt.cgroup)
        values = pod_values(parsed)
        self.fs.apply_cpu(rt.cgroup, values)
        self.fs.apply_memory(rt.cgroup, values)
        for c in spec["containers"]:
            rt.containers[c["name"]] = self._start_container(rt, pod, c, restarts=0, last=None)
        return rt

    def _start_container(
        self,
        rt: PodRuntime,
        pod: Mapping[str, Any],
        spec: Mapping[str, Any],
        *,
        restarts: int,
        last: dict[str, Any] | None,
    ) -> Container:
        name = spec["name"]
        annotations = pod["metadata"].get("annotations") or {}
        now, unix = now_rfc3339(), time.time()
        c = Container(
            name, spec.get("image", ""), "", "", now, unix, restarts, last_terminated=last
        )
        try:
            load = load_for_container(annotations, name)
        except LoadSpecError as err:
            c.waiting = ("CreateContainerConfigError", f"invalid presize.io/load: {err}")
            return c
        c.container_id = secrets.token_hex(32)
        c.cgroup = f"{rt.cgroup}/{c.container_id}"
        c.applied = dict(rt.allocated.get(name, {}))
        values = container_values(Resources.from_spec(c.applied))
        self.fs.create(c.cgroup)
        self.fs.apply_cpu(c.cgroup, values)
        self.fs.apply_memory(c.cgroup, values)
        c.oom_base = self.fs.oom_kills(rt.cgroup)
        argv = [sys.executable, "-S", "-m", "hack.nodeshim.load", load.to_json(), repr(unix)]
        env = {"PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        c.proc = self.fs.spawn(c.cgroup, argv, env=env, cwd=REPO_ROOT, stderr=self._stderr)
        return c

    def _stop_container(self, c: Container) -> None:
        if c.cgroup:
            self.fs.remove(c.cgroup)
        if c.proc is not None:
            with contextlib.suppress(Exception):
                c.proc.wait(timeout=10)
        c.proc = None

    def _check_processes(self, rt: PodRuntime, pod: dict[str, Any]) -> None:
        specs = {c["name"]: c for c in pod["spec"]["containers"]}
        for name, c in list(rt.containers.items()):
            if c.proc is not None and (code := c.proc.poll()) is not None:
                oom = self.fs.oom_kills(c.cgroup) > 0 or self.fs.oom_kills(rt.cgroup) > c.oom_base
                exit_code = 128 - code if code < 0 else code
                reason = "OOMKilled" if oom else ("Completed" if exit_code == 0 else "Error")
                terminated = {
                    "exitCode": exit_code,
                    "reason": reason,
                    "startedAt": c.started_at,
                    "finishedAt": now_rfc3339(),
                    "containerID": f"containerd://{c.container_id}",
                }
                log.info("node shim %s: %s/%s %s", self.name, rt.name, name, reason)
                self._stop_container(c)
                if kubelet.restart_after(rt.restart_policy, exit_code):
                    delay = kubelet.backoff_s(
                        c.restarts + 1,
                        self.config.restart_backoff_s,
                        self.config.restart_backoff_cap_s,
                    )
                    c.last_terminated = terminated
                    c.restart_at = time.monotonic() + delay
                    c.waiting = (
                        "CrashLoopBackOff",
                        f"back-off {delay:g}s restarting failed container={name} "
                        f"pod={rt.name}_{rt.namespace}({rt.uid})",
                    )
                else:
                    c.terminated = terminated
            if c.restart_at is not None and time.monotonic() >= c.restart_at:
                rt.containers[name] = self._start_container(
                    rt, pod, specs[name], restarts=c.restarts + 1, last=c.last_terminated
                )

    def _resize(self, rt: PodRuntime, pod: dict[str, Any]) -> None:
        generation = int(pod["metadata"].get("generation") or 1)
        desired = {c["name"]: dict(c.get("resources") or {}) for c in pod["spec"]["containers"]}
        step = next_allocation(
            rt.allocated,
            desired,
            pending=rt.pending,
            in_progress=rt.in_progress,
            others=self._others(rt),
            allocatable=self.allocatable,
            generation=generation,
            now=now_rfc3339(),
        )
        if step.accepted:
            rt.allocated = desired
            rt.accepted_at = time.monotonic()
        rt.pending, rt.in_progress = step.pending, step.in_progress
        if time.monotonic() - rt.accepted_at < self.config.resize_delay_s:
            return
        specs = {c["name"]: c for c in pod["spec"]["containers"]}
        restart = actuate(self.fs, rt, specs)
        for name in restart:
            old = rt.containers[name]
            self._stop_container(old)
            rt.containers[name] = self._start_container(
                rt, pod, specs[name], restarts=old.restarts + 1, last=old.last_terminated
            )

    def _post_status(self, rt: PodRuntime, pod: dict[str, Any]) -> None:
        for _ in range(5):
            status = pod_status(rt, pod, now_rfc3339())
            if status == rt.last_status:
                return
            meta = pod["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
            body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
            code, out = self.client.request("PATCH", path, body, content_type=MERGE_PATCH)
            if code == 200:
                rt.last_status = status
                with self._lock:
                    self._latest[rt.uid] = out
                return
            if code == 404:
                return
            if code != 409:
                raise KubeError(f"PATCH {path}: HTTP {code}: {out}", code)
            pod = self.client.ok("GET", path.removesuffix("/status"))  # conflict: recompute

    def _teardown(self, rt: PodRuntime) -> None:
        if rt.cgroup and self.fs.exists(rt.cgroup):
            self.fs.remove(rt.cgroup)
        for c in rt.containers.values():
            if c.proc is not None:
                with contextlib.suppress(Exception):
                    c.proc.wait(timeout=10)
                c.proc = None


class NodeShim:
    """The shim for a set of nodes; a context manager (see the module docstring)."""

    def __init__(
        self, kubeconfig: Path | str, nodes: Sequence[str], config: ShimConfig | None = None
    ) -> None:
        self.config = config or ShimConfig()
        self.client = KubeClient(kubeconfig)
        self.nodes = {name: ShimNode(self.client, name, self.config) for name in nodes}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Register the nodes and start their threads; on failure, undo what was started."""
        try:
            for node in self.nodes.values():
                node.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node: kill loads by pid, remove cgroups, delete registered nodes."""
        errors: list[BaseException] = []
        for node in self.nodes.values():
            try:
                node.stop()
            except (CgroupError, KubeError, OSError) as err:
                errors.append(err)
        self.client.close()
        if errors:
            raise CgroupError(f"node shim stop: {errors}")

    def cgroup_base(self, node: str) -> str:
        """``/presize-shim/<node>``: what the agent's ``scan`` takes as ``base``."""
        return self.nodes[node].fs.base
