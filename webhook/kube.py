"""The webhook's only Kubernetes API client: namespace/LimitRange cache and caBundle patching.

Both uses are off the admission path. :class:`KubeNamespaceCache` lists namespaces and
LimitRanges every few seconds in a worker thread (the ``kubernetes`` client is synchronous)
and swaps in a fresh :class:`~webhook.namespaces.StaticNamespaces`; admissions read whatever
was last swapped in. A list every few seconds costs two cheap requests; a watch would be
fresher but needs reconnect and resync handling that this small cache does not justify.
Responses are read raw (``_preload_content=False``) and handed to the pure builder in
:mod:`webhook.namespaces`, so the client's model classes never leak out of this module.

:func:`patch_ca_bundle` writes the CA of a generated certificate into every webhook of a
MutatingWebhookConfiguration, so that the API server trusts the webhook's new certificate.

:class:`KubeSecretStore` reads and conditionally replaces the one Secret that holds the
certificates shared by all replicas (``--cert-secret``).

RBAC needed: ``list`` on ``namespaces`` and ``limitranges`` (cluster-wide), ``get``,
``patch`` on the one ``mutatingwebhookconfigurations`` object when certificates are generated,
and ``get``, ``update`` on the one certificate Secret.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from webhook.metrics import WebhookMetrics
from webhook.namespaces import NamespaceInfo, StaticNamespaces, build_namespace_infos

log = logging.getLogger(__name__)


def api_client(kubeconfig: str | None) -> Any:
    """An ``ApiClient`` from ``kubeconfig``, or from the in-cluster service account."""
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def _items(response: Any) -> list[dict[str, Any]]:
    data = json.loads(response.data)
    items = data.get("items") if isinstance(data, dict) else None
    return items if isinstance(items, list) else []


class KubeNamespaceCache:
    """Namespace labels, mode annotations and LimitRanges, listed every ``refresh_s``."""

    def __init__(
        self, api: Any, *, refresh_s: float, timeout_s: float, metrics: WebhookMetrics
    ) -> None:
        self._core: Any = client.CoreV1Api(api)  # Any: responses are read raw
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self._metrics = metrics
        self._state = StaticNamespaces()
        self._failing = False

    def info(self, name: str) -> NamespaceInfo:
        return self._state.info(name)

    def _fetch(self) -> StaticNamespaces:
        kw: dict[str, Any] = {"_preload_content": False, "_request_timeout": self.timeout_s}
        namespaces = _items(self._core.list_namespace(**kw))
        limit_ranges = _items(self._core.list_limit_range_for_all_namespaces(**kw))
        return StaticNamespaces(build_namespace_infos(namespaces, limit_ranges))

    async def refresh_once(self) -> bool:
        """One list-and-swap; on failure the previous state stays. Never raises."""
        try:
            self._state = await asyncio.to_thread(self._fetch)
        except Exception as exc:  # any client or network error: keep what we had
            self._metrics.namespace_refreshes.labels(result="error").inc()
            if not self._failing:
                log.warning("namespace cache refresh failed: %s: %s", type(exc).__name__, exc)
            self._failing = True
            return False
        self._metrics.namespace_refreshes.labels(result="ok").inc()
        if self._failing:
            log.info("namespace cache refresh recovered")
        self._failing = False
        return True

    async def run(self) -> None:
        while True:
            await self.refresh_once()
            await asyncio.sleep(self.refresh_s)


def patch_ca_bundle(api: Any, name: str, ca_pem: bytes) -> int:
    """Set ``caBundle`` on every webhook of MutatingWebhookConfiguration ``name``.

    Returns how many webhooks were patched. A JSON patch by index keeps the other fields and
    fails cleanly (HTTP 422) if the object changed shape in between.
    """
    admission: Any = client.AdmissionregistrationV1Api(api)
    current = admission.read_mutating_webhook_configuration(name, _preload_content=False)
    webhooks = json.loads(current.data).get("webhooks") or []
    bundle = base64.b64encode(ca_pem).decode("ascii")
    ops = [
        {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle}
        for i in range(len(webhooks))
    ]
    if ops:
        admission.patch_mutating_webhook_configuration(name, ops)
    return len(ops)


class KubeSecretStore:
    """The one Secret that holds the shared webhook certificates (``get`` and ``update``).

    ``replace`` sends the resourceVersion it was given, so the API server refuses (409) a
    write based on a stale read; that is how concurrent replicas agree on one CA.
    """

    def __init__(self, api: Any, namespace: str, name: str, *, timeout_s: float = 10.0) -> None:
        self._core: Any = client.CoreV1Api(api)
        self.namespace = namespace
        self.name = name
        self.timeout_s = timeout_s
        self._type = "Opaque"  # a Secret's type is immutable: write back what was read

    def read(self) -> tuple[dict[str, str], str]:
        response = self._core.read_namespaced_secret(
            self.name, self.namespace, _preload_content=False, _request_timeout=self.timeout_s
        )
        secret = json.loads(response.data)
        data = secret.get("data") or {}
        version = str((secret.get("metadata") or {}).get("resourceVersion") or "")
        self._type = str(secret.get("type") or "Opaque")
        return {str(k): str(v) for k, v in data.items()}, version

    def replace(self, data: dict[str, str], resource_version: str) -> bool:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": resource_version,
            },
            "type": self._type,
            "data": data,
        }
        try:
            self._core.replace_namespaced_secret(
                self.name, self.namespace, body, _preload_content=False,
                _request_timeout=self.timeout_s,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True
