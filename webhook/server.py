"""The aiohttp shell: ``POST /mutate``, ``GET /healthz``, ``GET /metrics``. No sizing logic here.

The handler turns HTTP into a call of :func:`webhook.admission.admit` and back, and owns the
transport rules:

* **Bounded.** The body is capped (``max_body_bytes``, answered 413) and must arrive within
  ``body_timeout_s`` (408), so a slow or huge client cannot hold the server. The work after
  that is a few dictionary lookups and arithmetic: no I/O, nothing to wait for.
* **Two ways to fail, on purpose.** A request that is not a v1 ``AdmissionReview`` gets a
  4xx with a one-line reason (there is no ``uid`` to answer to; the API server then applies
  ``failurePolicy: Ignore``). Once there is a ``uid``, *anything* that goes wrong inside
  (a bug included) is answered ``allowed: true`` without a patch and with a warning, counted
  in ``presize_webhook_internal_errors`` and logged with its traceback. The webhook must
  never be the reason a pod cannot start.
* **Time** comes from the injected ``clock`` (wall time for snapshot age), latency from
  ``perf_counter``.

Background work (snapshot and namespace refreshes, certificate reloads) is handed in as
coroutine factories and run for the application's lifetime; :mod:`webhook.__main__` wires it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from webhook.admission import ReviewError, admit, build_response, parse_review
from webhook.metrics import WebhookMetrics
from webhook.mutate import MutateSettings, Outcome
from webhook.namespaces import NamespaceSource
from webhook.snapshot import SnapshotSource

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal-error"
_INTERNAL_WARNING = "presize: internal error in the webhook; pod admitted unchanged"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """Transport limits. 3 MiB is above the largest object etcd stores (1.5 MiB) twice over."""

    max_body_bytes: int = 3 * 1024 * 1024
    body_timeout_s: float = 5.0


@dataclass(slots=True, kw_only=True)
class Webhook:
    """Everything the handler needs, passed in explicitly (no module globals)."""

    snapshots: SnapshotSource
    namespaces: NamespaceSource
    settings: MutateSettings
    metrics: WebhookMetrics
    server: ServerSettings = field(default_factory=ServerSettings)
    clock: Callable[[], float] = time.time

    def _bad_request(self, status: int, reason: str, message: str) -> web.Response:
        self.metrics.bad_requests.labels(reason=reason).inc()
        return web.Response(status=status, text=f"{message}\n")

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        declared = request.content_length
        if declared is not None and declared > self.server.max_body_bytes:
            return self._bad_request(413, "too-large", "request body is over the size cap")
        try:
            async with asyncio.timeout(self.server.body_timeout_s):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._bad_request(413, "too-large", "request body is over the size cap")
        except TimeoutError:
            return self._bad_request(408, "timeout", "request body did not arrive in time")

    async def handle_mutate(self, request: web.Request) -> web.Response:
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        started = time.perf_counter()
        try:
            review = parse_review(body)
        except ReviewError as exc:
            return self._bad_request(400, "invalid-review", str(exc))
        try:
            response, outcome, result = admit(
                review,
                namespaces=self.namespaces.info,
                snapshot=self.snapshots.current,
                settings=self.settings,
                now=self.clock(),
            )
            text = json.dumps(response, separators=(",", ":"))
            if result is not None and result.outcome is Outcome.PATCHED:
                log.debug("patched pod of %s: %s", result.workload, result.annotation)
        except Exception:  # fail open: a bug must never block a pod
            log.exception("internal error answering review %s", review.get("uid"))
            self.metrics.internal_errors.inc()
            outcome = INTERNAL_ERROR
            fallback = build_response(review["uid"], warnings=(_INTERNAL_WARNING,))
            text = json.dumps(fallback, separators=(",", ":"))
        self.metrics.admissions.labels(outcome=outcome).inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        return web.Response(text=text, content_type="application/json")

    async def handle_healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def handle_metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def make_app(
    webhook: Webhook, *, background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
) -> web.Application:
    """The aiohttp application; ``background`` coroutines run while it is up."""
    # aiohttp enforces client_max_size on read(); our own check above answers earlier when
    # Content-Length is declared, this one covers chunked bodies.
    app = web.Application(client_max_size=webhook.server.max_body_bytes)
    app.router.add_post("/mutate", webhook.handle_mutate)
    app.router.add_get("/healthz", webhook.handle_healthz)
    app.router.add_get("/metrics", webhook.handle_metrics)

    async def run_background(_: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(start()) for start in background]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    app.cleanup_ctx.append(run_background)
    return app
