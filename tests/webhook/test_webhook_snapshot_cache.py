"""The snapshot cache against a stub controller on 127.0.0.1: ETag, versions, failures."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from webhook_builders import NOW, snapshot

from presize.wire import encode_snapshot, encode_snapshot_json
from webhook.metrics import WebhookMetrics
from webhook.snapshot import SnapshotCache


class Controller:
    """A stand-in for the controller's ``GET /v1/snapshot``; tests set what it answers."""

    def __init__(self) -> None:
        self.body = encode_snapshot_json(snapshot(generation=1))
        self.content_type = "application/json"
        self.status = 200
        self.etag = '"g1"'
        self.seen_if_none_match: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen_if_none_match.append(request.headers.get("If-None-Match"))
        if self.status != 200:
            return web.Response(status=self.status)
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304)
        return web.Response(
            body=self.body, headers={"Content-Type": self.content_type, "ETag": self.etag}
        )


async def make(controller: Controller) -> tuple[TestServer, SnapshotCache, WebhookMetrics]:
    app = web.Application()
    app.router.add_get("/v1/snapshot", controller.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    metrics = WebhookMetrics()
    cache = SnapshotCache(
        str(server.make_url("/v1/snapshot")),
        refresh_s=1,
        timeout_s=2,
        max_bytes=1 << 20,
        metrics=metrics,
        clock=lambda: NOW,
    )
    return server, cache, metrics


async def test_fetches_then_uses_etag() -> None:
    controller = Controller()
    server, cache, metrics = await make(controller)
    async with aiohttp.ClientSession() as session:
        assert await cache.refresh_once(session) == "ok"
        assert cache.current is not None
        assert cache.current.generation == 1
        assert await cache.refresh_once(session) == "not-modified"
        assert controller.seen_if_none_match == [None, '"g1"']
        controller.body, controller.etag = encode_snapshot_json(snapshot(generation=2)), '"g2"'
        assert await cache.refresh_once(session) == "ok"
        assert cache.current.generation == 2
    text = metrics.render().decode()
    assert "presize_webhook_snapshot_generation 2.0" in text
    assert "presize_webhook_snapshot_age_seconds 60.0" in text
    await server.close()


async def test_reads_msgpack_by_content_type() -> None:
    controller = Controller()
    controller.body, controller.content_type = (
        encode_snapshot(snapshot(generation=5)),
        "application/msgpack",
    )
    server, cache, _ = await make(controller)
    async with aiohttp.ClientSession() as session:
        assert await cache.refresh_once(session) == "ok"
    assert cache.current is not None
    assert cache.current.generation == 5
    await server.close()


async def test_unknown_version_drops_the_snapshot() -> None:
    controller = Controller()
    server, cache, metrics = await make(controller)
    async with aiohttp.ClientSession() as session:
        await cache.refresh_once(session)
        data: dict[str, Any] = json.loads(controller.body)
        data["version"] = 99
        controller.body, controller.etag = json.dumps(data).encode(), '"v99"'
        assert await cache.refresh_once(session) == "unknown-version"
    assert cache.current is None
    assert (
        'presize_webhook_snapshot_refreshes_total{result="unknown-version"} 1.0'
        in metrics.render().decode()
    )
    await server.close()


async def test_errors_keep_the_last_good_snapshot() -> None:
    controller = Controller()
    server, cache, _ = await make(controller)
    async with aiohttp.ClientSession() as session:
        await cache.refresh_once(session)
        controller.status = 503
        assert await cache.refresh_once(session) == "error"
        controller.status, controller.body, controller.etag = 200, b"{garbage", '"bad"'
        assert await cache.refresh_once(session) == "invalid"
        assert cache.current is not None
        assert cache.current.generation == 1
        await server.close()
        assert await cache.refresh_once(session) == "error"  # connection refused
    assert cache.current is not None
