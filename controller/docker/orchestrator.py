"""``DockerOrchestrator``: presize's decisions applied to Docker Swarm services and standalone
containers, through the Engine API.

Seeing. :meth:`DockerOrchestrator.state` serves a snapshot built by
:func:`controller.docker.views.cluster_state` and rebuilds it only when it is stale: after an
engine event (the watcher started by :meth:`start` follows ``/events`` for containers,
services and nodes), after one of our own actions, or when it is older than ``max_age_s``
(the polling fallback, and the only refresh when the watcher is not started). A rebuild costs
``/info`` + ``/containers/json`` (+ ``/services``, ``/tasks``, ``/nodes`` on a Swarm
manager) plus one inspect per standalone container *not seen before*: inspections are cached
by container id and dropped when that container has an event. When the engine cannot be
reached, the last snapshot is served (stale, never ``None``) and :attr:`last_error` says why;
the watcher reconnects with backoff and the next ``state()`` after it does is fresh.

Acting. A standalone container is updated in place (``/containers/{id}/update``: same id,
no restart). A Swarm task is resized through its *service* (all its tasks: in Swarm the
service is the unit of spec), by a service update that Swarm rolls through by its
``UpdateConfig``; a stale ``version`` is re-read and retried. Eviction moves a service's task
off its node with a placement constraint (at most one per service, see
:mod:`controller.docker.bodies`), and is refused when no other schedulable node exists (the
constraint would stop every task) or for a standalone container (Docker has no scheduler to
move it). :meth:`rollback_service` asks Swarm for its own ``PreviousSpec``.

Outcomes, from :mod:`controller.docker.engine` errors: not found → GONE; rejected or
conflicting options → REFUSED; unreachable, 5xx, conflicts beyond the retries → FAILED.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.docker import bodies, views
from controller.docker.engine import (
    EngineClient,
    EngineConflictError,
    EngineError,
    EngineNotFoundError,
    EngineRejectedError,
    SwarmInactiveError,
)
from controller.orchestrator import (
    ActionResult,
    ClusterState,
    ContainerResize,
    EventType,
    Outcome,
    PodView,
)
from presize.errors import SettingsError
from presize.model import Mode, OwnerKind, PodRef, WorkloadKey

log = logging.getLogger(__name__)
events_log = logging.getLogger("presize.events")

JSON = dict[str, Any]
WATCHED = {"type": ["container", "service", "node"]}
# Container event actions that say nothing about resources or liveness (exec probes, ttys).
QUIET_ACTIONS = ("exec_", "health_status", "attach", "resize", "top", "export", "archive-path")


@dataclass(frozen=True, slots=True)
class DockerSettings:
    """``max_age_s``: a snapshot older than this is rebuilt even without events;
    ``default_mode``: the mode of a namespace with opted-in workloads (labels refine it);
    ``conflict_retries``: service updates retried after a stale version;
    ``backoff_s``: the watcher's first and longest wait between reconnects."""

    max_age_s: float = 30.0
    default_mode: Mode = Mode.INITIAL
    conflict_retries: int = 3
    backoff_s: tuple[float, float] = (0.5, 10.0)

    def __post_init__(self) -> None:
        if self.max_age_s < 0 or self.conflict_retries < 0 or min(self.backoff_s) <= 0:
            raise SettingsError("DockerSettings: ages, retries and backoff must be positive")


def outcome_for(exc: EngineError) -> ActionResult:
    """The action outcome an engine error means (pure)."""
    if isinstance(exc, EngineNotFoundError):
        return ActionResult(Outcome.GONE, str(exc))
    if isinstance(exc, EngineRejectedError) or (
        isinstance(exc, EngineConflictError) and exc.status == 409
    ):
        return ActionResult(Outcome.REFUSED, str(exc))
    return ActionResult(Outcome.FAILED, str(exc))


def _applied(what: str, warnings: Sequence[str]) -> ActionResult:
    return ActionResult(Outcome.APPLIED, "; ".join([what, *warnings]))


class DockerOrchestrator:
    """The :class:`controller.orchestrator.Orchestrator` for one Docker Engine (a Swarm
    manager, or a standalone engine)."""

    def __init__(
        self,
        engine: EngineClient,
        settings: DockerSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.s = settings or DockerSettings()
        self.clock = clock
        self.last_error = ""
        self.refreshes = 0
        self._snapshot: ClusterState | None = None
        self._task_services: dict[str, str] = {}  # task container id → service id
        self._inspected: dict[str, JSON] = {}
        self._dirty = True
        self._connected = False
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return "docker"

    @property
    def watching(self) -> bool:
        """Whether the event stream is connected now (else the snapshot ages by polling)."""
        return self._connected

    async def start(self) -> None:
        """Follow the engine's events in the background (idempotent)."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="docker-events")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self.engine.close()

    async def __aenter__(self) -> DockerOrchestrator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- seeing ---------------------------------------------------------------------------

    async def _watch(self) -> None:
        low, high = self.s.backoff_s
        delay = low
        while True:
            try:
                async for event in self.engine.events(filters=WATCHED):
                    if not self._connected:
                        self._connected, delay = True, low
                        self._dirty = True  # what happened while we were away is unknown
                    self._on_event(event)
            except EngineError as exc:
                if self._connected:
                    log.warning("docker event stream lost: %s", exc)
            self._connected = False
            self._dirty = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, high)

    def _on_event(self, event: JSON) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        if event.get("Type") == "container":
            if action.startswith(QUIET_ACTIONS):
                return
            self._inspected.pop(str((event.get("Actor") or {}).get("ID", "")), None)
        self._dirty = True

    def mark_stale(self) -> None:
        """Make the next :meth:`state` rebuild the snapshot."""
        self._dirty = True

    @staticmethod
    def _swarm_manager(info: JSON) -> bool:
        swarm = info.get("Swarm") or {}
        return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))

    async def _standalone(self) -> list[JSON]:
        listed = await self.engine.containers()
        ids = [str(c["Id"]) for c in listed if views.TASK_ID not in views.labels_of(c)]
        for cid in list(self._inspected.keys() - set(ids)):
            del self._inspected[cid]
        for cid in ids:
            if cid not in self._inspected:
                with contextlib.suppress(EngineNotFoundError):  # removed since the listing
                    self._inspected[cid] = await self.engine.container(cid)
        return [self._inspected[c] for c in ids if c in self._inspected]

    async def refresh(self) -> ClusterState:
        """Rebuild the snapshot from the engine now; raises :class:`EngineError`."""
        self._dirty = False
        try:
            info = await self.engine.info()
            containers = await self._standalone()
            services: list[JSON] = []
            tasks: list[JSON] = []
            nodes: list[JSON] = []
            if self._swarm_manager(info):
                with contextlib.suppress(SwarmInactiveError):  # left the swarm meanwhile
                    services = await self.engine.services()
                    tasks = await self.engine.tasks({"desired-state": ["running"]})
                    nodes = await self.engine.nodes()
        except EngineError:
            self._dirty = True
            raise
        snapshot = views.cluster_state(
            taken_at=self.clock(),
            info=info,
            containers=containers,
            services=services,
            tasks=tasks,
            nodes=nodes,
            default_mode=self.s.default_mode,
        )
        self._task_services = {
            str(cid): str(t.get("ServiceID"))
            for t in tasks
            if (cid := ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID"))
        }
        self._snapshot = snapshot
        self.refreshes += 1
        self.last_error = ""
        return snapshot

    async def state(self) -> ClusterState:
        async with self._lock:
            snap = self._snapshot
            stale = snap is None or self._dirty or self.clock() - snap.taken_at >= self.s.max_age_s
            if stale:
                try:
                    snap = await self.refresh()
                except EngineError as exc:
                    if self.last_error != str(exc):
                        log.warning("docker state not refreshed, serving the last one: %s", exc)
                    self.last_error = str(exc)
        return snap if snap is not None else ClusterState(taken_at=self.clock())

    def _find(self, pod: PodRef) -> PodView | None:
        if self._snapshot is None:
            return None
        pods = self._snapshot.pods
        return next((p for p in pods if pod.uid and p.ref.uid == pod.uid), None) or next(
            (p for p in pods if (p.ref.namespace, p.ref.name) == (pod.namespace, pod.name)), None
        )

    async def _view(self, pod: PodRef) -> PodView | None:
        view = self._find(pod)
        if view is None:
            self.mark_stale()
            await self.state()
            view = self._find(pod)
        return view

    # -- acting ---------------------------------------------------------------------------

    async def resize(self, pod: PodRef, changes: Sequence[ContainerResize]) -> ActionResult:
        view = await self._view(pod)
        if view is None:
            return ActionResult(Outcome.GONE, f"no running container or task {pod.name or pod.uid}")
        name = view.containers[0].name
        change = next((c for c in changes if c.name == name), None)
        if change is None:
            return ActionResult(Outcome.REFUSED, f"{view.ref.name} has no container in {changes}")
        try:
            if view.workload.kind is OwnerKind.CONTAINER:
                return await self._update_container(view.ref.uid, change)
            return await self._update_service(
                self._task_services.get(view.ref.uid, view.workload.name),
                lambda spec: bodies.service_spec_with_resources(spec, change),
                what=f"service {view.workload.name} resized",
            )
        except EngineError as exc:
            return outcome_for(exc)
        finally:
            self.mark_stale()

    async def _update_container(
        self, cid: str, change: ContainerResize, blkio_weight: int | None = None
    ) -> ActionResult:
        host_config = (await self.engine.container(cid)).get("HostConfig") or {}
        try:
            body = bodies.container_update_body(host_config, change, blkio_weight=blkio_weight)
        except bodies.BodyError as exc:
            return ActionResult(Outcome.REFUSED, str(exc))
        if not body:
            return ActionResult(Outcome.APPLIED, "nothing to change")
        warnings = await self.engine.update_container(cid, body)
        self._inspected.pop(cid, None)
        if blkio_weight is not None and any("Block I/O weight" in w for w in warnings):
            return ActionResult(Outcome.REFUSED, "; ".join(warnings))
        return _applied(f"container {cid[:12]} updated in place: {body}", warnings)

    async def _update_service(
        self,
        ref: str,
        edit: Callable[[JSON], JSON | None],
        *,
        what: str,
        rollback: bool = False,
    ) -> ActionResult:
        """Read the service, ``edit`` its spec, send it with its version; retried on a stale
        version. ``edit`` returning ``None`` (or the same spec) means nothing to do."""
        for attempt in range(self.s.conflict_retries + 1):
            service = await self.engine.service(ref)
            spec = service.get("Spec") or {}
            new = edit(spec)
            if new is None or (not rollback and not bodies.changed_fields(spec, new)):
                return ActionResult(Outcome.APPLIED, f"{what}: nothing to change")
            version = int((service.get("Version") or {}).get("Index", 0))
            try:
                warnings = await self.engine.update_service(ref, version, new, rollback=rollback)
            except EngineConflictError as exc:
                if exc.status == 409 or attempt == self.s.conflict_retries:
                    raise
                log.info("service %s changed under us (version %d); retrying", ref, version)
                continue
            return _applied(what, warnings)
        raise AssertionError("unreachable")  # pragma: no cover

    async def set_blkio_weight(self, pod: PodRef, weight: int) -> ActionResult:
        """Set a standalone container's block I/O weight (10–1000) in place; REFUSED when the
        kernel has no weight support (the engine then discards it with a warning)."""
        view = await self._view(pod)
        if view is None:
            return ActionResult(Outcome.GONE, f"no running container {pod.name or pod.uid}")
        if view.workload.kind is not OwnerKind.CONTAINER:
            return ActionResult(Outcome.REFUSED, "block I/O weight: standalone containers only")
        try:
            return await self._update_container(
                view.ref.uid, ContainerResize(view.containers[0].name), blkio_weight=weight
            )
        except EngineError as exc:
            return outcome_for(exc)

    async def evict(self, pod: PodRef, reason: str) -> ActionResult:
        view = await self._view(pod)
        if view is None:
            return ActionResult(Outcome.GONE, f"no running container or task {pod.name or pod.uid}")
        if view.workload.kind is OwnerKind.CONTAINER:
            return ActionResult(
                Outcome.REFUSED,
                f"{view.ref.name} is a standalone container: Docker has no scheduler to move it "
                "(recreate it on another host, or run it as a Swarm service)",
            )
        node = view.ref.node or pod.node
        snapshot = await self.state()
        if not any(n.name != node for n in snapshot.nodes):
            return ActionResult(
                Outcome.REFUSED,
                f"no other schedulable node in the swarm to move {view.ref.name} to: placing "
                f"service {view.workload.name} off {node} would stop all its tasks",
            )
        try:
            result = await self._update_service(
                self._task_services.get(view.ref.uid, view.workload.name),
                lambda spec: bodies.service_spec_avoiding(spec, node),
                what=f"service {view.workload.name} placed off {node} ({reason})",
            )
        except EngineError as exc:
            return outcome_for(exc)
        finally:
            self.mark_stale()
        return result

    async def rollback_service(self, service: str) -> ActionResult:
        """Swarm's own rollback to the service's ``PreviousSpec`` (``rollback=previous``);
        ``service`` is its name or id. REFUSED when there is no previous spec."""
        try:
            current = await self.engine.service(service)
            if not current.get("PreviousSpec"):
                return ActionResult(Outcome.REFUSED, f"service {service} has no previous spec")
            return await self._update_service(
                service, lambda spec: spec, what=f"service {service} rolled back", rollback=True
            )
        except EngineError as exc:
            return outcome_for(exc)
        finally:
            self.mark_stale()

    async def record_event(
        self,
        *,
        pod: PodRef | None,
        workload: WorkloadKey | None,
        type: EventType,
        reason: str,
        message: str,
    ) -> None:
        """Docker has no event API to write to: one JSON line on ``presize.events``."""
        try:
            line = {
                "type": type.value,
                "reason": reason,
                "message": message,
                "pod": None if pod is None else f"{pod.namespace}/{pod.name}",
                "uid": None if pod is None else pod.uid,
                "workload": None if workload is None else str(workload),
                "time": self.clock(),
            }
            level = logging.WARNING if type is EventType.WARNING else logging.INFO
            events_log.log(level, json.dumps(line, sort_keys=True))
        except Exception:  # never raises, by contract
            log.exception("could not record an event")
