"""The controller's one connection to the API server: credentials from ``kubernetes``, HTTP by
``aiohttp``.

Why not the ``kubernetes`` client's generated methods: they are synchronous (every call and
every watch would hold a thread, and a thread blocked in a watch read cannot be cancelled),
their signatures and return types changed between client versions (29 … 37), and their model
classes cost a deserialisation per object that a 5,000-pod cache does not want. So the client
is used only for what it is good at, reading a kubeconfig or the in-cluster service account
(client certificates, CA, bearer tokens including their refresh hooks and exec plugins), and
:class:`KubeHttp` speaks the API server's plain JSON over one ``aiohttp`` session: responses are
read raw, watches are cancellable tasks, and a request that cannot reach the server fails
fast with :class:`ApiError` status 0 instead of hanging.

:class:`KubeHttp` must be used from one event loop (its session is created lazily in it) and
closed with :meth:`KubeHttp.close`.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from kubernetes import client, config

log = logging.getLogger(__name__)

JSON = "application/json"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def api_client(kubeconfig: str | None) -> Any:
    """An ``ApiClient`` from ``kubeconfig``, or from the in-cluster service account."""
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def as_http(api: Any) -> KubeHttp:
    """``api`` itself if it is a :class:`KubeHttp`, else a new one for the ``ApiClient``."""
    return api if isinstance(api, KubeHttp) else KubeHttp(api)


class ApiError(Exception):
    """An answer other than 2xx, or ``status == 0`` when the server could not be reached."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message
        self.reason = reason  # the Status object's ``reason`` (e.g. "Expired", "Conflict")


def _status_error(status: int, text: str) -> ApiError:
    """The API server's ``Status`` body turned into an :class:`ApiError` with its message."""
    try:
        body = json.loads(text)
    except ValueError:
        return ApiError(status, text.strip()[:500] or f"HTTP {status}")
    if isinstance(body, dict):
        return ApiError(
            status, str(body.get("message") or text[:500]), str(body.get("reason") or "")
        )
    return ApiError(status, text[:500])


class KubeHttp:
    """JSON requests and watch streams against the API server of an ``ApiClient``.

    ``api`` is a ``kubernetes.client.ApiClient`` (typed ``Any``: only its ``configuration`` is
    read). ``timeout_s`` bounds every request except watch streams, whose reads are bounded by
    the caller's ``read_timeout_s``.
    """

    def __init__(self, api: Any, *, timeout_s: float = 10.0) -> None:
        self._config: Any = api.configuration
        self.host = str(self._config.host).rstrip("/")
        self.timeout_s = timeout_s
        self._ssl = self._ssl_context(self._config)
        self._proxy: str | None = getattr(self._config, "proxy", None) or None
        self._server_name: str | None = getattr(self._config, "tls_server_name", None) or None
        self._session: aiohttp.ClientSession | None = None

    @staticmethod
    def _ssl_context(cfg: Any) -> ssl.SSLContext | bool:
        if not str(cfg.host).startswith("https"):
            return False
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
        return ctx

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": JSON, "User-Agent": "presize-controller"}
        if content_type:
            headers["Content-Type"] = content_type
        # auth_settings() calls the refresh hook (in-cluster token rotation, exec plugins).
        for setting in (self._config.auth_settings() or {}).values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        return headers

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=64)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: object = None,
        content_type: str = JSON,
        timeout_s: float | None = None,
    ) -> Any:
        """The decoded JSON answer of a 2xx; raises :class:`ApiError` otherwise."""
        data = None if body is None else json.dumps(body).encode()
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        try:
            async with self._get_session().request(
                method,
                self.host + path,
                params=dict(query or {}),
                data=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=timeout,
                proxy=self._proxy,
                server_hostname=self._server_name,
            ) as resp:
                text = await resp.text()
                if resp.status >= 300:
                    raise _status_error(resp.status, text)
                return json.loads(text) if text else {}
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise ApiError(0, f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def watch(
        self, path: str, query: Mapping[str, str | int], *, read_timeout_s: float
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, decoded, until the server ends the stream.

        Lines are split by hand: a pod with large annotations can exceed ``aiohttp``'s
        ``readline`` limit.
        """
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout_s, sock_read=read_timeout_s
        )
        try:
            async with self._get_session().get(
                self.host + path,
                params={**query, "watch": "1"},
                headers=self._headers(None),
                timeout=timeout,
                proxy=self._proxy,
                server_hostname=self._server_name,
            ) as resp:
                if resp.status >= 300:
                    raise _status_error(resp.status, await resp.text())
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise ApiError(0, f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
