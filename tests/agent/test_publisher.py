"""The publisher against a real HTTP server on 127.0.0.1 standing in for the controller's
ingest endpoint (``conftest.IngestStandIn``): order, outages, rejections, tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from ingest_standin import TOKEN, IngestStandIn

from agent.publisher import Outcome, Publisher, PublisherSettings, backoff_s, classify
from agent.spool import Spool
from presize.errors import SettingsError
from presize.model import PodRef, UsageWindow
from presize.wire import DiagnoseRequest, IoLimit, Report, ReportAck

pytestmark = pytest.mark.usefixtures("no_leaked_tasks")

POD = PodRef(namespace="shop", name="web-0", uid="u0")


def make_report(spool: Spool) -> Report:
    seq = spool.next_sequence()
    w = UsageWindow(
        pod=POD, container="app", start=60.0 * seq, seconds=60.0, samples=60, cpu_mean=0.1,
        cpu_max=0.2, cpu_p50=0.1, cpu_p90=0.15, cpu_p99=0.2, cpu_throttled_fraction=0.0,
        mem_mean=1e6, mem_max=2e6,
    )  # fmt: skip
    return Report(node="n1", agent_id=spool.agent_id, sent_at=w.end, sequence=seq, windows=(w,))


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def publisher_for(
    tmp_path: Path, url: str, token: Path, on_ack: Callable[[ReportAck], None] | None = None
) -> Publisher:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    settings = PublisherSettings(
        url=url, token_path=str(token), timeout_s=2.0, backoff_initial_s=0.02, backoff_max_s=0.1
    )
    return Publisher(spool, settings, on_ack=on_ack)


@asynccontextmanager
async def running(publisher: Publisher) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


async def test_reports_are_delivered_in_order(
    tmp_path: Path, ingest: IngestStandIn, token_file: Path
) -> None:
    pub = publisher_for(tmp_path, ingest.url, token_file)
    async with running(pub):
        for _ in range(5):
            pub.submit(make_report(pub.spool))
        await until(lambda: len(ingest.reports) == 5)
    assert ingest.sequences == [0, 1, 2, 3, 4]
    assert len(pub.spool) == 0
    assert pub.stats.delivered == 5


async def test_an_outage_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, ingest: IngestStandIn, token_file: Path
) -> None:
    pub = publisher_for(tmp_path, ingest.url, token_file)
    async with running(pub):
        pub.submit(make_report(pub.spool))
        await until(lambda: ingest.sequences == [0])
        await ingest.stop()
        for _ in range(4):  # sampling goes on while the controller is away
            pub.submit(make_report(pub.spool))
            await asyncio.sleep(0.05)
        await until(lambda: pub.stats.retries >= 3)
        assert len(pub.spool) == 4  # all spooled, none lost
        await ingest.start()  # back on the same port
        await until(lambda: len(ingest.reports) == 5)
    assert ingest.sequences == [0, 1, 2, 3, 4]
    assert ingest.duplicates == 0
    assert len(pub.spool) == 0


async def test_an_agent_restart_resends_what_was_spooled(
    tmp_path: Path, ingest: IngestStandIn, token_file: Path
) -> None:
    first = publisher_for(tmp_path, ingest.url, token_file)
    for _ in range(3):  # spooled, never sent: the agent dies before its sender runs
        first.spool.put(make_report(first.spool))
    second = publisher_for(tmp_path, ingest.url, token_file)
    async with running(second):
        second.submit(make_report(second.spool))
        await until(lambda: len(ingest.reports) == 4)
    assert ingest.sequences == [0, 1, 2, 3]


async def test_5xx_is_retried_and_4xx_is_quarantined(
    tmp_path: Path, ingest: IngestStandIn, token_file: Path
) -> None:
    ingest.fail_next = 2
    ingest.reject = {1}
    pub = publisher_for(tmp_path, ingest.url, token_file)
    async with running(pub):
        for _ in range(3):
            pub.submit(make_report(pub.spool))
        await until(lambda: len(ingest.reports) == 2)
    assert ingest.sequences == [0, 2]
    assert pub.stats.retries == 2
    assert pub.stats.rejected == 1
    assert len(list((tmp_path / "spool" / "quarantine").iterdir())) == 1


async def test_the_stand_in_rejects_a_request_without_the_token(ingest: IngestStandIn) -> None:
    async with aiohttp.ClientSession() as session, session.post(ingest.url, data=b"x") as resp:
        assert resp.status == 401
    assert ingest.reports == []


async def test_a_wrong_token_keeps_the_report_until_the_rotated_token_is_read(
    tmp_path: Path, ingest: IngestStandIn, token_file: Path
) -> None:
    token_file.write_text("stale-token\n")
    pub = publisher_for(tmp_path, ingest.url, token_file)
    async with running(pub):
        pub.submit(make_report(pub.spool))
        await until(lambda: pub.stats.auth_failures >= 2)
        assert ingest.reports == []
        assert len(pub.spool) == 1  # kept: a credential problem is not the report's fault
        token_file.write_text(TOKEN + "\n")  # the kubelet rotates the projected token
        await until(lambda: len(ingest.reports) == 1)
    assert pub.stats.rejected == 0


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, Outcome.DELIVERED), (204, Outcome.DELIVERED), (None, Outcome.RETRY),
     (503, Outcome.RETRY), (429, Outcome.RETRY), (401, Outcome.RETRY),
     (400, Outcome.REJECTED), (413, Outcome.REJECTED)],
)  # fmt: skip
def test_classify_answers(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_backoff_doubles_and_is_capped() -> None:
    delays = [backoff_s(n, initial=1.0, maximum=10.0) for n in range(6)]
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0]


def test_settings_refuse_a_url_without_a_scheme() -> None:
    with pytest.raises(SettingsError):
        PublisherSettings(url="controller:8443/v1/reports")


async def test_the_acks_instructions_reach_the_agent(
    tmp_path: Path, ingest: IngestStandIn, token_file: Path
) -> None:
    ingest.diagnose = (DiagnoseRequest("u0", "app"),)
    ingest.io_limits = (IoLimit("u0", "app", 1e6, None, None, 100.0),)
    acks: list[ReportAck] = []
    pub = publisher_for(tmp_path, ingest.url, token_file, on_ack=acks.append)
    async with running(pub):
        pub.submit(make_report(pub.spool))
        await until(lambda: len(acks) == 1)
    assert acks[0].sequence == 0
    assert not acks[0].duplicate
    assert acks[0].diagnose == ingest.diagnose
    assert acks[0].io_limits == ingest.io_limits


@pytest.mark.parametrize("body", [b"", b"ok", b"\x81\xa7version\x63"])
async def test_a_2xx_with_an_undecodable_body_is_still_delivered(
    tmp_path: Path, ingest: IngestStandIn, token_file: Path, body: bytes
) -> None:
    ingest.ack_body = body
    acks: list[ReportAck] = []
    pub = publisher_for(tmp_path, ingest.url, token_file, on_ack=acks.append)
    async with running(pub):
        pub.submit(make_report(pub.spool))
        pub.submit(make_report(pub.spool))
        await until(lambda: pub.stats.delivered == 2)
    assert acks == []
    assert pub.stats.undecodable_acks == 2
    assert len(pub.spool) == 0
    assert pub.stats.retries == 0


async def test_a_failing_ack_handler_does_not_undo_the_delivery(
    tmp_path: Path, ingest: IngestStandIn, token_file: Path
) -> None:
    def explode(ack: ReportAck) -> None:
        raise ValueError("bug in the handler")

    pub = publisher_for(tmp_path, ingest.url, token_file, on_ack=explode)
    async with running(pub):
        pub.submit(make_report(pub.spool))
        await until(lambda: pub.stats.delivered == 1)
    assert len(pub.spool) == 0
    assert pub.stats.acks == 1
