"""The Kubernetes :class:`~controller.orchestrator.Orchestrator`: watched caches, three actions.

Lifecycle::

    orch = KubeOrchestrator(api_client(kubeconfig), default_mode=Mode.INITIAL)
    orch.start()                      # one list+watch task per resource type
    await orch.wait_synced(30)        # optional: until every cache has listed once
    state = await orch.state()        # cheap, from the caches
    ...
    await orch.stop()                 # cancels the watches, closes the HTTP session

What is watched (cluster-wide): pods, nodes, namespaces, PresizePolicies, Deployments,
StatefulSets, DaemonSets, ReplicaSets, Jobs, HorizontalPodAutoscalers (autoscaling/v2) and
PodDisruptionBudgets (policy/v1). A resource that cannot be listed (a CRD not installed, RBAC
missing) is retried with backoff and simply stays empty; the others work.

Actions, one request each, with the pod's UID as a precondition so that a pod replaced under
the same name (StatefulSets) is never resized or evicted by mistake:

* :meth:`resize`: a strategic-merge PATCH of ``pods/<name>/resize`` with every changed
  container. Strategic merge because it merges ``spec.containers`` by name (a JSON merge patch
  replaces the whole list, which the API server refuses: "containers may not be added or
  removed on resize"). 404 → GONE; 422 (validation: e.g. "Pod QOS Class may not change"),
  403 and 409 → REFUSED with the server's message; the rest → FAILED.
* :meth:`evict`: a policy/v1 Eviction, so PodDisruptionBudgets hold. 429 (a budget says no)
  → REFUSED; 404 → GONE; 409 (UID precondition: another pod by that name) → GONE.
* :meth:`record_event`: a core/v1 Event on the pod and/or the workload; never raises.

RBAC needed beyond the chart's ClusterRole as of this writing: ``list``, ``watch`` on
``horizontalpodautoscalers`` (group ``autoscaling``) and ``poddisruptionbudgets`` (group
``policy``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from controller.kube.cache import ClusterCache
from controller.kube.client import STRATEGIC_MERGE, ApiError, KubeHttp
from controller.kube.reflector import Reflector
from controller.orchestrator import (
    ActionResult,
    ClusterState,
    ContainerResize,
    EventType,
    Outcome,
)
from presize.model import Mode, OwnerKind, PodRef, WorkloadKey
from presize.units import format_bytes, format_cpu

log = logging.getLogger(__name__)

#: Resource name (a :class:`ClusterCache` handler) → list/watch path.
WATCHED: dict[str, str] = {
    "namespaces": "/api/v1/namespaces",
    "nodes": "/api/v1/nodes",
    "replicasets": "/apis/apps/v1/replicasets",
    "jobs": "/apis/batch/v1/jobs",
    "deployments": "/apis/apps/v1/deployments",
    "statefulsets": "/apis/apps/v1/statefulsets",
    "daemonsets": "/apis/apps/v1/daemonsets",
    "horizontalpodautoscalers": "/apis/autoscaling/v2/horizontalpodautoscalers",
    "poddisruptionbudgets": "/apis/policy/v1/poddisruptionbudgets",
    "presizepolicies": "/apis/presize.io/v1alpha1/presizepolicies",
    "pods": "/api/v1/pods",
}

API_VERSIONS = {
    OwnerKind.DEPLOYMENT: "apps/v1",
    OwnerKind.STATEFULSET: "apps/v1",
    OwnerKind.DAEMONSET: "apps/v1",
    OwnerKind.REPLICASET: "apps/v1",
    OwnerKind.JOB: "batch/v1",
    OwnerKind.CRONJOB: "batch/v1",
    OwnerKind.POD: "v1",
}

REFUSING = frozenset({403, 409, 422})


def resize_body(pod: PodRef, changes: Sequence[ContainerResize]) -> dict[str, Any]:
    """The strategic-merge patch for ``pods/resize``: only the values that are set."""
    containers = []
    for change in changes:
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        if change.cpu_request is not None:
            requests["cpu"] = format_cpu(change.cpu_request)
        if change.memory_request is not None:
            requests["memory"] = format_bytes(change.memory_request, granularity=1)
        if change.cpu_limit is not None:
            limits["cpu"] = format_cpu(change.cpu_limit)
        if change.memory_limit is not None:
            limits["memory"] = format_bytes(change.memory_limit, granularity=1)
        resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
        containers.append({"name": change.name, "resources": resources})
    body: dict[str, Any] = {"spec": {"containers": containers}}
    if pod.uid:
        body["metadata"] = {"uid": pod.uid}  # the server refuses it if the pod was replaced
    return body


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeOrchestrator:
    """Watched caches of the cluster and the three actions, against one API server.

    ``api``: a ``kubernetes.client.ApiClient`` (see :func:`controller.kube.client.api_client`),
    or a :class:`KubeHttp` to share with the other adapters (then not closed by :meth:`stop`);
    ``default_mode``: the mode of an opted-in namespace without a ``presize.io/mode``
    annotation; ``component``/``instance``: the reporting controller in Events.
    """

    def __init__(
        self,
        api: Any,
        *,
        default_mode: Mode = Mode.INITIAL,
        component: str = "presize-controller",
        instance: str = "",
        timeout_s: float = 10.0,
        min_watch_s: float = 300.0,
        backoff_max_s: float = 30.0,
        resources: Sequence[str] = tuple(WATCHED),
    ) -> None:
        self._owns_http = not isinstance(api, KubeHttp)
        self.http = api if isinstance(api, KubeHttp) else KubeHttp(api, timeout_s=timeout_s)
        self.cache = ClusterCache(default_mode)
        self.component = component
        self.instance = instance or component
        self.reflectors = {
            name: Reflector(
                self.http,
                WATCHED[name],
                self.cache.handlers[name],
                min_watch_s=min_watch_s,
                backoff_max_s=backoff_max_s,
            )
            for name in resources
        }
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        return "kubernetes"

    # ---- lifecycle

    def start(self) -> None:
        """Start one list+watch task per resource type (call from the running loop)."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(r.run(), name=f"watch {name}")
            for name, r in self.reflectors.items()
        ]

    async def wait_synced(self, timeout_s: float) -> bool:
        """Whether every cache has listed once within ``timeout_s`` (it keeps trying after)."""
        waits = [r.synced.wait() for r in self.reflectors.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout_s)
        except TimeoutError:
            missing = [n for n, r in self.reflectors.items() if not r.synced.is_set()]
            log.warning("caches not synced after %.0fs: %s", timeout_s, ", ".join(missing))
            return False
        return True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._owns_http:
            await self.http.close()

    # ---- Orchestrator

    async def state(self) -> ClusterState:
        return self.cache.state()

    async def resize(self, pod: PodRef, changes: Sequence[ContainerResize]) -> ActionResult:
        path = f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/resize"
        try:
            await self.http.request(
                "PATCH", path, body=resize_body(pod, changes), content_type=STRATEGIC_MERGE
            )
        except ApiError as err:
            if err.status == 404 or (err.status == 422 and "metadata.uid" in err.message):
                return ActionResult(Outcome.GONE, err.message)
            if err.status in REFUSING:
                return ActionResult(Outcome.REFUSED, err.message)
            return ActionResult(Outcome.FAILED, str(err))
        return ActionResult(Outcome.APPLIED)

    async def evict(self, pod: PodRef, reason: str) -> ActionResult:
        path = f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/eviction"
        body: dict[str, Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
        }
        if pod.uid:
            body["deleteOptions"] = {"preconditions": {"uid": pod.uid}}
        try:
            await self.http.request("POST", path, body=body)
        except ApiError as err:
            if err.status in (404, 409):
                return ActionResult(Outcome.GONE, err.message)
            if err.status in (429, 403, 422):
                return ActionResult(Outcome.REFUSED, err.message)
            return ActionResult(Outcome.FAILED, str(err))
        log.info("evicted %s/%s: %s", pod.namespace, pod.name, reason)
        return ActionResult(Outcome.APPLIED)

    async def record_event(
        self,
        *,
        pod: PodRef | None,
        workload: WorkloadKey | None,
        type: EventType,
        reason: str,
        message: str,
    ) -> None:
        targets: list[dict[str, str]] = []
        if pod is not None:
            targets.append(
                {"apiVersion": "v1", "kind": "Pod", "namespace": pod.namespace,
                 "name": pod.name, "uid": pod.uid}
            )  # fmt: skip
        if workload is not None and workload.kind in API_VERSIONS:
            targets.append(
                {"apiVersion": API_VERSIONS[workload.kind], "kind": workload.kind.value,
                 "namespace": workload.namespace, "name": workload.name,
                 "uid": self.cache.workload_uid(workload)}
            )  # fmt: skip
        for target in targets:
            await self._post_event(target, type, reason, message)

    async def _post_event(
        self, target: dict[str, str], type_: EventType, reason: str, message: str
    ) -> None:
        now = _now_rfc3339()
        involved = {k: v for k, v in target.items() if v}
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{target['name'][:200]}.{time.time_ns():x}{secrets.token_hex(2)}",
                "namespace": target["namespace"],
            },
            "involvedObject": involved,
            "type": type_.value,
            "reason": reason[:128],
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.http.request(
                "POST", f"/api/v1/namespaces/{target['namespace']}/events", body=body
            )
        except Exception as exc:  # never raises: an event is worth a log line, not a crash
            log.warning(
                "event %s on %s %s/%s not recorded: %s",
                reason, target["kind"], target["namespace"], target["name"], exc,
            )  # fmt: skip
