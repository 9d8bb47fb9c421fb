"""The agent in Docker mode: Docker's container cgroups, named through the Engine API.

Discovery. :func:`agent.discovery.classify` already knows Docker's cgroup paths (cgroupfs
``/docker/<id>``, systemd ``/system.slice/docker-<id>.scope``; the same names on v1 and v2).
:func:`discover_docker` keeps those plain-Docker containers and gives each the container id
as its pod uid, because in Docker the unit the controller sizes (a Swarm task or a standalone
container) *is* the container: the controller's ``PodRef.uid`` is the container id too. With
that, :func:`agent.discovery.identify` asks the directory by container id, unchanged.

Naming. :class:`DockerDirectory` is a :class:`agent.discovery.PodDirectory` over
``/containers/json``: a Swarm task's container (labels ``com.docker.swarm.service.name``,
``com.docker.swarm.task.name``) is pod ``<task name>`` with one container named after the
service; a standalone container is pod and container ``<container name>``. The namespace is
``presize.io/namespace``, else ``com.docker.stack.namespace``, else ``swarm``/``docker`` —
container labels only, because a worker node's engine cannot list services. These rules
mirror :mod:`controller.docker.views` (the agent may not import the controller); a test
checks that both name every container alike.

Freshness. :meth:`DockerDirectory.run` refreshes on container events (``start``, ``destroy``,
``rename``) and every ``poll_s`` regardless; when the engine is away it keeps the last mapping
(containers keep their names while it restarts) and reconnects with backoff. A container seen
in cgroups before the directory knows it is reported by id until it does, as for Kubernetes.

Wiring (in ``agent/__main__.py``): ``Collector(..., directory=DockerDirectory(socket),
discover=discover_docker)`` and ``directory.run(stop)`` as a task next to the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp

from agent.discovery import ContainerCgroup, PodInfo, scan
from presize.model import PodRef

log = logging.getLogger(__name__)

SERVICE_NAME = "com.docker.swarm.service.name"
TASK_NAME = "com.docker.swarm.task.name"
NAMESPACE = "presize.io/namespace"
STACK = "com.docker.stack.namespace"
EVENT_ACTIONS = ("start", "destroy", "rename", "die")


def discover_docker(root: str, base: str = "") -> list[ContainerCgroup]:
    """Plain-Docker container cgroups under ``root`` (``Collector``'s ``discover``), each with
    its container id as pod uid (see the module doc)."""
    return [
        dataclasses.replace(c, pod_uid=c.container_id)
        for c in scan(root, base=base)
        if c.runtime == "docker" and c.pod_uid is None
    ]


def _labels(summary: Mapping[str, Any]) -> dict[str, str]:
    raw = summary.get("Labels") or {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def namespace_of(labels: Mapping[str, str]) -> str:
    for key in (NAMESPACE, STACK):
        if labels.get(key):
            return labels[key]
    return "swarm" if SERVICE_NAME in labels else "docker"


def pod_info(summary: Mapping[str, Any], node: str) -> PodInfo:
    """A ``/containers/json`` entry as the pod and container name the controller uses."""
    cid = str(summary.get("Id", ""))
    labels = _labels(summary)
    names = summary.get("Names") or []
    own = str(names[0] if names else cid[:12]).lstrip("/")
    service = labels.get(SERVICE_NAME)
    pod = labels.get(TASK_NAME, own) if service else own
    ref = PodRef(namespace=namespace_of(labels), name=pod, uid=cid, node=node)
    return PodInfo(ref=ref, container_names={cid: service or own})


def directory_entries(summaries: Sequence[Mapping[str, Any]], node: str) -> dict[str, PodInfo]:
    """The whole mapping, by container id (pure)."""
    return {str(s.get("Id")): pod_info(s, node) for s in summaries if s.get("Id")}


class DockerDirectory:
    """Containers on this node by id, from the engine at ``socket_path``."""

    def __init__(self, socket_path: str, *, poll_s: float = 30.0, timeout_s: float = 10.0) -> None:
        self.socket_path = socket_path
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.refreshes = 0
        self.last_error = ""
        self._pods: dict[str, PodInfo] = {}
        self._session: aiohttp.ClientSession | None = None

    def lookup(self, pod_uid: str) -> PodInfo | None:
        return self._pods.get(pod_uid)

    def __len__(self) -> int:
        return len(self._pods)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url="http://docker", connector=aiohttp.UnixConnector(path=self.socket_path)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _get(self, path: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with self._http().get(path, timeout=timeout) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def refresh(self) -> bool:
        """Reread the containers; ``False`` (mapping kept) when the engine cannot answer."""
        try:
            info = await self._get("/info")
            summaries = await self._get("/containers/json")
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            self.last_error = repr(exc)
            return False
        node = str(info.get("Name", "")) if isinstance(info, dict) else ""
        if isinstance(summaries, list):
            self._pods = directory_entries([s for s in summaries if isinstance(s, dict)], node)
        self.refreshes += 1
        self.last_error = ""
        return True

    async def _events(self) -> AsyncIterator[str]:
        filters = json.dumps({"type": ["container"], "event": list(EVENT_ACTIONS)})
        timeout = aiohttp.ClientTimeout(total=None, sock_read=self.poll_s)
        async with self._http().get(
            "/events", params={"filters": filters}, timeout=timeout
        ) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if line.strip():
                    yield line.decode(errors="replace")

    async def _follow(self) -> None:
        """Refresh on each event until the stream breaks, or stays quiet for ``poll_s``."""
        async for _ in self._events():
            await self.refresh()

    async def run(
        self, stop: asyncio.Event, *, backoff_s: tuple[float, float] = (0.5, 10.0)
    ) -> None:
        """Keep the mapping fresh until ``stop``: a reread on events and at least every
        ``poll_s``; while the engine is away, retries with backoff and keeps the last mapping."""
        delay = backoff_s[0]
        while not stop.is_set():
            if await self.refresh():
                delay = backoff_s[0]
                follow = asyncio.create_task(self._follow())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({follow, stopper}, return_when=asyncio.FIRST_COMPLETED)
                for task in (follow, stopper):
                    task.cancel()
                with contextlib.suppress(
                    asyncio.CancelledError, aiohttp.ClientError, OSError, TimeoutError
                ):
                    await follow
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, backoff_s[1])
        await self.close()
