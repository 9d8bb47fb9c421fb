"""A stand-in for the controller's ingest endpoint, for the agent's publisher tests."""

from __future__ import annotations

import asyncio

from aiohttp import web

from presize.errors import WireError
from presize.wire import DiagnoseRequest, IoLimit, Report, ReportAck, decode_report, encode_ack

TOKEN = "good-token"


class IngestStandIn:
    """A real HTTP server on 127.0.0.1 standing in for the controller's ``POST /v1/reports``.

    It does what the agent relies on the controller to do, and nothing more: refuse a request
    without the expected bearer token (401; the controller's real check is a TokenReview,
    which is the controller's issue), refuse a payload that does not decode (400), and drop a
    report it already has by ``(agent_id, sequence)``, answering 200 again. ``fail_next``
    makes it answer 503 that many times; ``reject`` lists sequences it answers 400 for.

    A 200 carries a msgpack ``ReportAck`` with ``diagnose`` and ``io_limits`` (the controller's
    instructions, repeated on every answer); ``ack_body`` replaces it with raw bytes, to answer
    with something that does not decode.
    """

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.reports: list[Report] = []
        self.requests = 0
        self.duplicates = 0
        self.fail_next = 0
        self.reject: set[int] = set()
        self.diagnose: tuple[DiagnoseRequest, ...] = ()
        self.io_limits: tuple[IoLimit, ...] = ()
        self.ack_body: bytes | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.arrived = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/reports"

    @property
    def sequences(self) -> list[int]:
        return [r.sequence for r in self.reports]

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="unauthenticated")
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503, text="busy")
        try:
            report = decode_report(await request.read(), max_bytes=1 << 20)
        except WireError as exc:
            return web.Response(status=400, text=str(exc))
        if report.sequence in self.reject:
            return web.Response(status=400, text="rejected on purpose")
        key = (report.agent_id, report.sequence)
        duplicate = key in {(r.agent_id, r.sequence) for r in self.reports}
        if duplicate:
            self.duplicates += 1
        else:
            self.reports.append(report)
            self.arrived.set()
        if self.ack_body is not None:
            return web.Response(status=200, body=self.ack_body)
        ack = ReportAck(
            sequence=report.sequence,
            duplicate=duplicate,
            diagnose=self.diagnose,
            io_limits=self.io_limits,
        )
        return web.Response(status=200, body=encode_ack(ack), content_type="application/msgpack")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/reports", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if self.port == 0:  # bound to a free port: keep it, so a restart comes back there
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
