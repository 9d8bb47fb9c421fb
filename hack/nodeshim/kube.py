"""A small API-server client for the shim: kubeconfig, JSON requests, a pod watch (stdlib only).

Why not the ``kubernetes`` package: the shim works on raw JSON (it writes the exact status
fields a kubelet writes and compares them as the API server stores them), and its watch must be
stoppable from another thread. ``http.client`` gives both in a page of code; the client
certificate, CA and token come from the kubeconfig as ``kubectl`` reads them (file paths or
inline ``*-data``; YAML kubeconfigs need PyYAML).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import importlib
import json
import socket
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


class KubeError(RuntimeError):
    """An API call failed (transport, or an HTTP status the caller did not expect)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _load_kubeconfig(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except ValueError:
        yaml = importlib.import_module("yaml")
        doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise KubeError(f"{path}: not a kubeconfig")
    return doc


def _named(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            found: dict[str, Any] = item.get(what) or {}
            return found
    raise KubeError(f"kubeconfig has no {what} {name!r}")


class KubeClient:
    """Requests against the API server of a kubeconfig's current context."""

    def __init__(self, kubeconfig: Path | str) -> None:
        path = Path(kubeconfig)
        doc = _load_kubeconfig(path)
        ctx = _named(doc.get("contexts", []), doc.get("current-context", ""), "context")
        cluster = _named(doc.get("clusters", []), ctx.get("cluster", ""), "cluster")
        user = _named(doc.get("users", []), ctx.get("user", ""), "user")
        url = urllib.parse.urlsplit(cluster["server"])
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 443
        self._secrets = tempfile.TemporaryDirectory(prefix="nodeshim-kube-")
        base = path.parent

        def file_of(section: Mapping[str, Any], key: str) -> str | None:
            if section.get(f"{key}-data"):
                out = Path(self._secrets.name) / key
                out.write_bytes(base64.b64decode(section[f"{key}-data"]))
                out.chmod(0o600)
                return str(out)
            value = section.get(key)
            return None if value is None else str(base / value)

        ca = file_of(cluster, "certificate-authority")
        self.ssl = ssl.create_default_context(cafile=ca)
        cert, key = file_of(user, "client-certificate"), file_of(user, "client-key")
        if cert and key:
            self.ssl.load_cert_chain(cert, key)
        self.token: str | None = user.get("token")

    def close(self) -> None:
        self._secrets.cleanup()

    def _connect(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=timeout)

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": JSON}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = JSON,
        timeout: float = 15.0,
    ) -> tuple[int, Any]:
        """One call: (HTTP status, parsed JSON body or text). Transport errors raise."""
        data = None if body is None else json.dumps(body).encode()
        conn = self._connect(timeout)
        try:
            conn.request(method, path, body=data, headers=self._headers(content_type))
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as err:
            raise KubeError(f"{method} {path}: {err}") from err
        finally:
            conn.close()
        text = raw.decode("utf-8", errors="replace")
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        """Like :meth:`request`, but any status other than 200/201 raises :class:`KubeError`."""
        status, out = self.request(method, path, body, **kw)
        if status not in (200, 201):
            reason = out.get("message") if isinstance(out, dict) else out
            raise KubeError(f"{method} {path}: HTTP {status}: {reason}", status)
        return out

    def watch(self, path: str, params: Mapping[str, str], stop: threading.Event) -> Watch:
        return Watch(self, path, params, stop)


class Watch:
    """One watch request; iterate for events, :meth:`close` (any thread) to end it."""

    def __init__(
        self, client: KubeClient, path: str, params: Mapping[str, str], stop: threading.Event
    ) -> None:
        self._client = client
        self._url = f"{path}?{urllib.parse.urlencode({**params, 'watch': '1'})}"
        self._stop = stop
        self._conn: http.client.HTTPSConnection | None = None
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        conn = self._client._connect(timeout=None)
        with self._lock:
            if self._stop.is_set():
                return
            self._conn = conn
        try:
            conn.request("GET", self._url, headers=self._client._headers(None))
            resp = conn.getresponse()
            if resp.status != 200:
                raise KubeError(f"watch {self._url}: HTTP {resp.status}", resp.status)
            while not self._stop.is_set():
                line = resp.readline()
                if not line:
                    return  # the server ended the watch (timeoutSeconds)
                if line.strip():
                    event: dict[str, Any] = json.loads(line)
                    yield event
        except (OSError, http.client.HTTPException, ValueError, AttributeError) as err:
            # AttributeError: http.client tripping over a socket shut down under it by close()
            if not self._stop.is_set():
                raise KubeError(f"watch {self._url}: {err}") from err
        finally:
            with self._lock:
                self._conn = None
            conn.close()

    def close(self) -> None:
        """End the watch from any thread: shut the socket down under the reading thread,
        which then closes the connection itself."""
        with self._lock:
            conn = self._conn
            if conn is not None and conn.sock is not None:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
