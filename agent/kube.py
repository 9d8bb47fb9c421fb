"""Name this node's pods from the API server: a :class:`~agent.discovery.PodDirectory` kept
current by a watch (the only agent module that imports ``kubernetes``).

Why a watch, not polling: a node runs up to a few hundred pods and the agent asks about each of
them once a second. Asking the API server each time would put node × pod load on it; listing
every few seconds would still be node × list load and would name a new pod seconds late. A
list followed by a watch from the list's ``resourceVersion`` costs one long-lived request per
node and delivers each change once, as it happens. The list and the watch carry the field
selector ``spec.nodeName=<node>``, so the API server only sends this node's pods.

Why a thread: the kubernetes client is blocking. The watch runs in one daemon thread that
replaces entries of a plain ``dict`` (one assignment or deletion per event, atomic under the
GIL); :meth:`KubePods.lookup` is a dictionary read, so the 1 Hz sampling loop never waits on the
network. A pod the cgroups show before the watch delivers it is reported by UID until then
(:func:`agent.discovery.identify`).

Failure handling, each covered by a test against a real kube-apiserver:

================================  ==============================================================
what happens                      what the thread does
================================  ==============================================================
watch ends (server timeout)       watch again from the last ``resourceVersion`` seen
``410 Gone`` (history compacted,  list again (the list replaces the whole index, so pods
or an API server restart)         deleted meanwhile are forgotten) and watch from there
API server down / refused /       keep the index as it is (names stay known), retry the list
hung connection                   with exponential backoff (capped); the read timeout turns a
                                  connection that went silent into a retry
a malformed object                skipped and counted; it cannot name anything
================================  ==============================================================

The raw JSON is read (``_preload_content=False``) rather than the client's generated models:
the agent needs six fields of each pod, and building a ``V1Pod`` of a few hundred objects per
event costs more than the rest of the agent's tick.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from agent.discovery import PodInfo
from presize.errors import SettingsError
from presize.model import PodRef
from presize.owners import workload_candidates

log = logging.getLogger(__name__)

# Runtimes prefix container IDs with their scheme: containerd://<id>, cri-o://<id>, docker://<id>.
_SCHEME = "://"


def container_id(raw: object) -> str | None:
    """The bare 64-hex container ID of a ``containerStatuses[].containerID`` (``None`` if absent).

    >>> container_id("containerd://ab12")
    'ab12'
    """
    if not isinstance(raw, str) or not raw:
        return None
    return raw.split(_SCHEME, 1)[1] if _SCHEME in raw else raw


def pod_info(pod: Mapping[str, Any], node: str = "") -> tuple[str, PodInfo] | None:
    """``(uid, PodInfo)`` of a pod as the API server sends it (camelCase JSON); ``None`` if it
    lacks a UID, a name or a namespace. Pure.

    The owner is the top of the owner chain as far as the pod's own metadata tells it
    (:func:`presize.owners.workload_candidates`, most likely first); container names come from
    every status list (init and ephemeral containers have cgroups too).
    """
    meta = pod.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    uid, name, namespace = meta.get("uid"), meta.get("name"), meta.get("namespace")
    if not (isinstance(uid, str) and uid and isinstance(name, str) and name):
        return None
    if not (isinstance(namespace, str) and namespace):
        return None
    names: dict[str, str] = {}
    status = pod.get("status")
    if isinstance(status, Mapping):
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            statuses = status.get(key)
            if not isinstance(statuses, list):
                continue
            for cs in statuses:
                if not isinstance(cs, Mapping) or not isinstance(cs.get("name"), str):
                    continue
                cid = container_id(cs.get("containerID"))
                if cid is not None:
                    names[cid] = cs["name"]
    candidates = workload_candidates(pod, namespace)
    ref = PodRef(namespace=namespace, name=name, uid=uid, node=node)
    return uid, PodInfo(ref=ref, container_names=names, owner=candidates[0] if candidates else None)


@dataclass(slots=True)
class WatchStats:
    """Counts for metrics and tests: lists done, watch events applied, 410s, failures."""

    lists: int = 0
    watches: int = 0
    events: int = 0
    gone: int = 0
    failures: int = 0
    malformed: int = 0


class ResourceGoneError(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


def backoff_s(failures: int, *, initial: float = 0.5, maximum: float = 30.0) -> float:
    """Delay before retrying after ``failures`` failures in a row: doubling, capped."""
    return 0.0 if failures <= 0 else min(maximum, initial * 2.0 ** min(failures - 1, 30))


class KubePods:
    """This node's pods by UID, listed then watched in a daemon thread.

    ``api`` is a ``kubernetes.client.ApiClient``; ``watch_timeout_s`` is how long the API
    server keeps one watch open before it ends it (then the thread watches again from the
    last version); the client's read timeout is a little longer, so a connection that went
    silent (API server gone without a FIN) is noticed.
    """

    def __init__(
        self,
        api: client.ApiClient,
        node: str,
        *,
        watch_timeout_s: int = 300,
        backoff_max_s: float = 30.0,
    ) -> None:
        if not node:
            raise SettingsError("KubePods: the node name is required (--node / NODE_NAME)")
        self._api = api
        self._core = client.CoreV1Api(api)
        self.node = node
        self.watch_timeout_s = watch_timeout_s
        self.backoff_max_s = backoff_max_s
        self._pods: dict[str, PodInfo] = {}
        self._stop = threading.Event()
        self.synced = threading.Event()
        self.stats = WatchStats()
        self._thread: threading.Thread | None = None
        self._response: Any = None

    # ---- the PodDirectory side: never blocks

    def lookup(self, pod_uid: str) -> PodInfo | None:
        return self._pods.get(pod_uid)

    def pods(self) -> list[PodInfo]:
        """A copy of every pod currently known (for metrics and tests)."""
        return list(self._pods.values())

    # ---- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("KubePods already started")
        self._thread = threading.Thread(target=self._run, name="kube-pods", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread: closes the watch connection so a blocked read returns at once."""
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- the thread

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._list()
                failures = 0
                while not self._stop.is_set():
                    version = self._watch(version)
            except ResourceGoneError:
                self.stats.gone += 1
                log.info("pod watch: resourceVersion too old, listing again")
            except Exception as exc:  # any network/API failure: keep what we know, retry
                if self._stop.is_set():
                    return
                failures += 1
                self.stats.failures += 1
                delay = backoff_s(failures, maximum=self.backoff_max_s)
                log.warning("pod watch failed (%s: %s); retrying in %.1fs",
                            type(exc).__name__, exc, delay)  # fmt: skip
                self._stop.wait(delay)

    def _selector(self) -> str:
        return f"spec.nodeName={self.node}"

    def _list(self) -> str:
        resp: Any = self._core.list_pod_for_all_namespaces(  # raw: urllib3's response
            field_selector=self._selector(),
            _preload_content=False,
            _request_timeout=(5, 30),
        )
        try:
            body = json.loads(resp.data)
        finally:
            resp.release_conn()
        fresh: dict[str, PodInfo] = {}
        for item in body.get("items") or []:
            parsed = pod_info(item, self.node) if isinstance(item, Mapping) else None
            if parsed is None:
                self.stats.malformed += 1
                continue
            fresh[parsed[0]] = parsed[1]
        self._pods = fresh  # one assignment: readers see the old index or the new one
        self.stats.lists += 1
        self.synced.set()
        return str(body.get("metadata", {}).get("resourceVersion", ""))

    def _watch(self, version: str) -> str:
        """Apply events until the server ends this watch; the last version seen."""
        resp: Any = self._core.list_pod_for_all_namespaces(
            field_selector=self._selector(),
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=version,
            timeout_seconds=self.watch_timeout_s,
            _preload_content=False,
            _request_timeout=(5, self.watch_timeout_s + 30),
        )
        self._response = resp
        self.stats.watches += 1
        try:
            for line in _lines(resp):
                if self._stop.is_set():
                    break
                version = self.apply(line) or version
        finally:
            self._response = None
            resp.release_conn()
        return version

    def apply(self, line: bytes) -> str | None:
        """Apply one watch event (a JSON line); the resourceVersion it carries, if any.

        Raises :class:`ResourceGoneError` on a 410 error event; any other error event raises
        ``RuntimeError`` (the thread backs off and lists again)."""
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
        except (ValueError, KeyError, TypeError):
            self.stats.malformed += 1
            return None
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, Mapping) else None
            if code == 410:
                raise ResourceGoneError(str(obj.get("message", "")))
            raise RuntimeError(f"watch error event: {obj}")
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
        if kind == "BOOKMARK":
            return str(version) if version else None
        parsed = pod_info(obj, self.node)
        if parsed is None:
            self.stats.malformed += 1
            return str(version) if version else None
        uid, info = parsed
        if kind == "DELETED":
            self._pods.pop(uid, None)
        else:
            self._pods[uid] = info
        self.stats.events += 1
        return str(version) if version else None


def _lines(resp: Any) -> Iterator[bytes]:
    """Newline-delimited chunks of a streamed HTTP body (a watch sends one JSON per line)."""
    pending = b""
    for chunk in resp.stream(amt=None, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def make_api(kubeconfig: str | None) -> client.ApiClient:
    """An API client from ``kubeconfig``, or the pod's ServiceAccount when it is empty."""
    if kubeconfig:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        return api
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def start_directory(
    kubeconfig: str | None, node: str, *, make: Callable[[str | None], client.ApiClient] = make_api
) -> KubePods:
    """A started :class:`KubePods` for ``node`` (does not wait for the first list)."""
    pods = KubePods(make(kubeconfig), node)
    pods.start()
    return pods
