"""Profiles kept in ``WorkloadProfile`` objects (presize.io/v1alpha1), so a restart loses nothing.

One object per workload, in the workload's namespace, named by :func:`profile_name`:
``<kind>-<name>`` in lower case (``deployment-web``). Kinds contain no dash, so that name is
unique per (kind, name); a name too long for the 253 characters of a DNS subdomain is cut and
given an 8-hex-digit hash of the full key, so two long names stay apart. ``spec.workload``
names the workload, which is what :meth:`KubeProfileStore.load_all` reads back (never the
object name).

Writing goes through the status subresource with a full replace (PUT) carrying the
``resourceVersion`` last seen: a replace, not a merge patch, so a field the controller dropped
from a profile disappears from the object too; the version, so a write based on a stale read
is refused (409) rather than silently overwriting another writer. On 409 the store reads the
object again and retries; on 404 (deleted meanwhile) it creates it again. The version of every
write is remembered, so a steady state costs one request per save.

The CRD's structural schema prunes fields it does not declare; a save whose top-level status
keys do not all come back is logged once per key, so a profile format that outgrew the schema
does not lose data unnoticed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from controller.errors import StoreError
from controller.kube.client import ApiError, KubeHttp, as_http
from presize.model import OwnerKind, WorkloadKey

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "presize.io", "v1alpha1", "workloadprofiles"
_BASE = f"/apis/{GROUP}/{VERSION}"
_MAX_NAME = 253
_STORABLE = frozenset(
    k for k in OwnerKind if k not in (OwnerKind.SWARM_SERVICE, OwnerKind.CONTAINER)
)
_WORKLOAD_API = {
    OwnerKind.JOB: "batch/v1",
    OwnerKind.CRONJOB: "batch/v1",
    OwnerKind.POD: "v1",
}


def profile_name(key: WorkloadKey) -> str:
    """A valid, deterministic, collision-safe object name for ``key``'s profile."""
    raw = f"{key.kind.value}-{key.name}".lower()
    name = re.sub(r"[^a-z0-9.-]", "-", raw).strip("-.")
    if name == raw and len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(f"{key.kind.value}/{key.name}".encode()).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9].rstrip('-.')}-{digest}"


class KubeProfileStore:
    """:class:`~controller.orchestrator.ProfileStore` on ``WorkloadProfile`` status."""

    def __init__(self, api: Any, *, attempts: int = 5) -> None:
        """``api``: an ``ApiClient``, or a :class:`KubeHttp` to share (then not closed here)."""
        self._owns_http = not isinstance(api, KubeHttp)
        self.http = as_http(api)
        self.attempts = attempts
        self._versions: dict[WorkloadKey, str] = {}
        self._pruned_warned: set[str] = set()

    async def close(self) -> None:
        if self._owns_http:
            await self.http.close()

    @staticmethod
    def _path(key: WorkloadKey, *, status: bool = False) -> str:
        base = f"{_BASE}/namespaces/{key.namespace}/{PLURAL}/{profile_name(key)}"
        return base + "/status" if status else base

    @staticmethod
    def _spec(key: WorkloadKey) -> dict[str, Any]:
        workload = {
            "apiVersion": _WORKLOAD_API.get(key.kind, "apps/v1"),
            "kind": key.kind.value,
            "name": key.name,
        }
        return {"workload": workload}

    async def load_all(self) -> dict[WorkloadKey, Mapping[str, object]]:
        profiles: dict[WorkloadKey, Mapping[str, object]] = {}
        token = ""
        while True:
            query: dict[str, str | int] = {"limit": 500}
            if token:
                query["continue"] = token
            try:
                page = await self.http.request("GET", f"{_BASE}/{PLURAL}", query=query)
            except ApiError as err:
                raise StoreError(f"listing WorkloadProfiles: {err}") from err
            for item in page.get("items") or ():
                key = self._key(item)
                if key is None:
                    continue
                profiles[key] = item.get("status") or {}
                version = (item.get("metadata") or {}).get("resourceVersion")
                if version:
                    self._versions[key] = str(version)
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return profiles

    @staticmethod
    def _key(item: Mapping[str, Any]) -> WorkloadKey | None:
        meta, spec = item.get("metadata") or {}, item.get("spec") or {}
        workload = spec.get("workload") or {}
        try:
            kind = OwnerKind(str(workload.get("kind")))
        except ValueError:
            return None
        name, namespace = workload.get("name"), meta.get("namespace")
        if not isinstance(name, str) or not isinstance(namespace, str) or not name:
            return None
        return WorkloadKey(namespace, kind, name)

    async def _read_or_create(self, key: WorkloadKey) -> str:
        """The object's resourceVersion, creating it (spec only) if it does not exist."""
        try:
            current = await self.http.request("GET", self._path(key))
        except ApiError as err:
            if err.status != 404:
                raise
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "WorkloadProfile",
                "metadata": {
                    "name": profile_name(key),
                    "namespace": key.namespace,
                    "labels": {"app.kubernetes.io/managed-by": "presize"},
                },
                "spec": self._spec(key),
            }
            try:
                current = await self.http.request(
                    "POST", f"{_BASE}/namespaces/{key.namespace}/{PLURAL}", body=body
                )
            except ApiError as create_err:
                if create_err.status != 409:  # 409: created meanwhile; read it next round
                    raise
                current = await self.http.request("GET", self._path(key))
        return str((current.get("metadata") or {}).get("resourceVersion") or "")

    async def save(self, key: WorkloadKey, status: Mapping[str, object]) -> None:
        if key.kind not in _STORABLE:
            raise StoreError(f"{key}: WorkloadProfiles hold Kubernetes workloads only")
        last: ApiError | None = None
        for _ in range(self.attempts):
            try:
                version = self._versions.get(key) or await self._read_or_create(key)
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "WorkloadProfile",
                    "metadata": {
                        "name": profile_name(key),
                        "namespace": key.namespace,
                        "resourceVersion": version,
                    },
                    "spec": self._spec(key),
                    "status": dict(status),
                }
                written = await self.http.request("PUT", self._path(key, status=True), body=body)
            except ApiError as err:
                self._versions.pop(key, None)
                if err.status in (404, 409):  # deleted or changed meanwhile: read again
                    last = err
                    continue
                raise StoreError(f"saving the profile of {key}: {err}") from err
            self._versions[key] = str((written.get("metadata") or {}).get("resourceVersion"))
            self._check_pruned(status, written.get("status") or {})
            return
        raise StoreError(f"saving the profile of {key}: still conflicting ({last})")

    def _check_pruned(self, sent: Mapping[str, object], stored: Mapping[str, Any]) -> None:
        kept = {k for k, v in sent.items() if v is not None}
        for field in kept - set(stored) - self._pruned_warned:
            self._pruned_warned.add(field)
            log.warning("WorkloadProfile status field %r is not in the CRD schema: dropped", field)
