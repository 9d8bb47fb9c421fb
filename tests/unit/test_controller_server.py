"""The controller's HTTP edge over real loopback HTTP (aiohttp's test server)."""

from __future__ import annotations

import msgpack
import pytest
from aiohttp.test_utils import TestClient, TestServer

from controller.errors import AuthError
from controller.metrics import ControllerMetrics
from controller.server import Dedupe, Edge, SnapshotCache, make_app
from presize.model import Mode
from presize.wire import (
    Report,
    ReportAck,
    Snapshot,
    decode_ack,
    decode_snapshot,
    decode_snapshot_json,
    encode_report,
)


class Tokens:
    def __init__(self, down: bool = False) -> None:
        self.down = down

    async def authenticate(self, token: str) -> str | None:
        if self.down:
            raise AuthError("TokenReview unreachable")
        return "system:serviceaccount:presize:agent" if token == "good" else None


def report(seq: int, agent: str = "a") -> bytes:
    return encode_report(Report(node="n", agent_id=agent, sent_at=1.0, sequence=seq))


@pytest.fixture
async def client() -> TestClient:  # type: ignore[misc]
    taken: list[Report] = []
    edge = Edge(
        authenticator=Tokens(), metrics=ControllerMetrics(), max_report_bytes=2048,
        on_report=lambda r, now: (taken.append(r), ReportAck(sequence=r.sequence))[1],
        is_leader=lambda: True,
    )  # fmt: skip
    c = TestClient(TestServer(make_app(edge)))
    await c.start_server()
    c.taken = taken  # type: ignore[attr-defined]
    c.edge = edge  # type: ignore[attr-defined]
    yield c
    await c.close()


GOOD = {"Authorization": "Bearer good"}


async def test_reports_need_a_token_the_authenticator_accepts(client: TestClient) -> None:
    assert (await client.post("/v1/reports", data=report(1))).status == 401
    bad = {"Authorization": "Bearer forged"}
    assert (await client.post("/v1/reports", data=report(1), headers=bad)).status == 401
    assert client.taken == []  # type: ignore[attr-defined]


async def test_an_unreachable_authenticator_is_503_not_401(client: TestClient) -> None:
    client.edge.authenticator = Tokens(down=True)  # type: ignore[attr-defined]
    assert (await client.post("/v1/reports", data=report(1), headers=GOOD)).status == 503


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"\xc1garbage", 400, "not valid msgpack"),
        (msgpack.packb({"version": 1, "node": "n"}), 400, "missing fields"),
        (msgpack.packb({"version": 9}), 400, "version 9"),
        (b"x" * 5000, 413, "capped"),
    ],
)
async def test_bad_reports_get_a_clear_status(
    client: TestClient, body: bytes, status: int, text: str
) -> None:
    resp = await client.post("/v1/reports", data=body, headers=GOOD)
    assert resp.status == status
    assert text in await resp.text()
    assert client.taken == []  # type: ignore[attr-defined]


async def test_a_report_is_taken_once_and_acked(client: TestClient) -> None:
    for _ in range(3):
        resp = await client.post("/v1/reports", data=report(7), headers=GOOD)
        assert resp.status == 200
        ack = decode_ack(await resp.read(), max_bytes=4096)
        assert ack.sequence == 7
    assert [r.sequence for r in client.taken] == [7]  # type: ignore[attr-defined]
    assert ack.duplicate


async def test_a_standby_refuses_reports(client: TestClient) -> None:
    client.edge.is_leader = lambda: False  # type: ignore[attr-defined]
    assert (await client.post("/v1/reports", data=report(1), headers=GOOD)).status == 503


async def test_snapshot_is_served_with_an_etag_in_both_encodings(client: TestClient) -> None:
    assert (await client.get("/v1/snapshot")).status == 503  # none yet
    cache: SnapshotCache = client.edge.snapshots  # type: ignore[attr-defined]
    snap = Snapshot(generation=3, generated_at=5.0, namespace_modes=(("shop", Mode.AUTO),))
    cache.install(snap)
    resp = await client.get("/v1/snapshot")
    assert resp.status == 200
    assert resp.headers["ETag"] == '"g3"'
    assert decode_snapshot_json(await resp.read(), max_bytes=1 << 20) == snap
    resp = await client.get("/v1/snapshot", headers={"Accept": "application/msgpack"})
    assert decode_snapshot(await resp.read(), max_bytes=1 << 20) == snap
    resp = await client.get("/v1/snapshot", headers={"If-None-Match": '"g3"'})
    assert resp.status == 304


def test_dedupe_forgets_nothing_recent_and_refuses_ancient_repeats() -> None:
    d = Dedupe(window=10)
    assert not d.seen("a", 1)
    assert d.seen("a", 1)
    assert not d.seen("b", 1)  # per agent
    for s in range(2, 40):
        assert not d.seen("a", s)
    assert d.seen("a", 5)  # far below the high mark: an old resend
    assert not d.seen("a", 41)
    assert d.seen("a", 39)
