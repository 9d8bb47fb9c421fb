"""The controller's HTTP edge: ``POST /v1/reports``, ``GET /v1/snapshot``, health and metrics.

**Reports** (agent → controller). In order, each step answering before any work is done
for a request that fails it:

=====================================  =======  ===============================================
check                                  answer   why
=====================================  =======  ===============================================
no or unknown bearer token             401      the agent rereads its token and retries
authenticator unreachable              503      not the agent's fault; it keeps the report
body over ``max_report_bytes``         413      checked on Content-Length and while reading
not a version-1 msgpack report         400      with the decoder's message naming the field;
                                                the agent quarantines it
not leading (a standby replica)        503      the leader's profiles are the ones that count
already seen ``(agent_id, sequence)``  200      ``duplicate: true``; nothing ingested twice
otherwise                              200      msgpack :class:`~presize.wire.ReportAck`
=====================================  =======  ===============================================

Deduplication keeps, per agent, the highest sequence seen and the set of sequences within
``DEDUPE_WINDOW`` below it (the spool sends in order, so a repeat is recent). It lives in
memory: after a controller restart a resent report can be ingested again, which changes no
profile (every step aggregate but the OOM count is a maximum, and OOM kills are counted once
per window, see :mod:`controller.steps`).

**Snapshot** (controller → webhook). The snapshot is rebuilt by the loop; the handler
serves its cached encodings (JSON by default, msgpack on ``Accept: application/msgpack``)
with an ``ETag`` of its generation, and answers ``If-None-Match`` with 304.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from controller.errors import AuthError
from controller.metrics import ControllerMetrics
from controller.orchestrator import Authenticator
from presize.errors import WireError
from presize.wire import (
    Report,
    ReportAck,
    Snapshot,
    decode_report,
    encode_ack,
    encode_snapshot,
    encode_snapshot_json,
)

log = logging.getLogger(__name__)

MSGPACK = "application/msgpack"
DEDUPE_WINDOW = 4096


class Dedupe:
    """Which ``(agent_id, sequence)`` were seen (module docstring)."""

    def __init__(self, window: int = DEDUPE_WINDOW) -> None:
        self.window = window
        self._seen: dict[str, tuple[int, set[int]]] = {}

    def seen(self, agent_id: str, sequence: int) -> bool:
        """True if this report was taken before; records it otherwise."""
        high, recent = self._seen.get(agent_id, (-1, set()))
        if sequence in recent or sequence < high - self.window:
            return True
        recent.add(sequence)
        high = max(high, sequence)
        if len(recent) > 2 * self.window:
            recent = {s for s in recent if s >= high - self.window}
        self._seen[agent_id] = (high, recent)
        return False


@dataclass(slots=True)
class SnapshotCache:
    """The encoded forms of the latest snapshot, made once per generation."""

    snapshot: Snapshot | None = None
    json_body: bytes = b""
    msgpack_body: bytes = b""

    def install(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.json_body = encode_snapshot_json(snapshot)
        self.msgpack_body = encode_snapshot(snapshot)

    @property
    def etag(self) -> str:
        return f'"g{self.snapshot.generation}"' if self.snapshot else '"none"'


@dataclass(slots=True, kw_only=True)
class Edge:
    """What the handlers need, passed in explicitly."""

    authenticator: Authenticator | None
    on_report: Callable[[Report, float], ReportAck]
    is_leader: Callable[[], bool]
    metrics: ControllerMetrics
    max_report_bytes: int = 4 << 20
    clock: Callable[[], float] = time.time
    snapshots: SnapshotCache = field(default_factory=SnapshotCache)
    dedupe: Dedupe = field(default_factory=Dedupe)
    healthy: Callable[[], bool] = lambda: True


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    token = header[len("Bearer ") :].strip()
    return token or None


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
    if request.content_length is not None and request.content_length > cap:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > cap:
            return None
    return bytes(body)


def make_app(edge: Edge) -> web.Application:
    def reject(status: int, result: str, text: str) -> web.Response:
        edge.metrics.reports.labels(result).inc()
        return web.Response(status=status, text=text)

    async def reports(request: web.Request) -> web.Response:
        if edge.authenticator is not None:
            token = _bearer(request)
            if token is None:
                return reject(401, "unauthenticated", "a bearer token is required")
            try:
                who = await edge.authenticator.authenticate(token)
            except AuthError as exc:
                return reject(503, "auth-unavailable", f"cannot check the token now: {exc}")
            if who is None:
                return reject(401, "unauthenticated", "token not accepted")
        body = await _read_capped(request, edge.max_report_bytes)
        if body is None:
            return reject(413, "too-large", f"a report is capped at {edge.max_report_bytes} bytes")
        try:
            report = decode_report(body, max_bytes=edge.max_report_bytes)
        except WireError as exc:
            return reject(400, "malformed", str(exc))
        if not edge.is_leader():
            return reject(503, "not-leader", "this replica is on standby; retry")
        if edge.dedupe.seen(report.agent_id, report.sequence):
            edge.metrics.reports.labels("duplicate").inc()
            ack = ReportAck(sequence=report.sequence, duplicate=True)
        else:
            ack = edge.on_report(report, edge.clock())
            edge.metrics.reports.labels("accepted").inc()
        return web.Response(body=encode_ack(ack), content_type=MSGPACK)

    async def snapshot(request: web.Request) -> web.Response:
        cache = edge.snapshots
        if cache.snapshot is None:
            return web.Response(status=503, text="no snapshot yet")
        headers = {"ETag": cache.etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == cache.etag:
            return web.Response(status=304, headers=headers)
        if MSGPACK in request.headers.get("Accept", ""):
            return web.Response(body=cache.msgpack_body, content_type=MSGPACK, headers=headers)
        return web.Response(body=cache.json_body, content_type="application/json", headers=headers)

    async def healthz(_: web.Request) -> web.Response:
        ok = edge.healthy()
        return web.Response(status=200 if ok else 503, text="ok" if ok else "unhealthy")

    async def metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=edge.metrics.render())
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    app = web.Application(client_max_size=edge.max_report_bytes + 1024)
    app.router.add_post("/v1/reports", reports)
    app.router.add_get("/v1/snapshot", snapshot)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
