"""Shared fixtures for the webhook tests: an app over a fixed snapshot, and a test client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from webhook_builders import make_webhook

from webhook.server import Webhook, make_app


@pytest.fixture
def webhook() -> Webhook:
    return make_webhook(max_body_bytes=64 * 1024, body_timeout_s=0.5)


@pytest.fixture
async def client(webhook: Webhook) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    async with TestClient(TestServer(make_app(webhook), host="127.0.0.1")) as c:
        yield c


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it."""
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"
