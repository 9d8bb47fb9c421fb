"""Shared fixtures for the agent tests: the ingest stand-in, and a check for leaked tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from ingest_standin import IngestStandIn


@pytest.fixture
async def ingest() -> AsyncIterator[IngestStandIn]:
    standin = IngestStandIn()
    await standin.start()
    try:
        yield standin
    finally:
        await standin.stop()


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it."""
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"
