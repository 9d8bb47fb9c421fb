"""Shared fixtures for the agent tests: the ingest stand-in, a check for leaked tasks, and the
real local control plane of ``tests/cluster/conftest.py`` (``local_cluster``, ``kube``,
``namespace``) for the tests that name pods through the API server.

Why the cluster fixtures are loaded from that file rather than copied or moved: that file is
the one definition of how the local cluster starts (its owner maintains it), and ``pytest_plugins``
is refused in a conftest below the root. Loaded here under a name of its own, its fixtures are
visible to ``tests/agent`` only; when the cluster tier runs in the same session it starts its
own instance, so an agent test that restarts its API server cannot disturb the cluster tests.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ingest_standin import IngestStandIn


def _load_cluster_fixtures() -> object:
    name = "presize_agent_cluster_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "cluster" / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_cluster = _load_cluster_fixtures()
local_cluster = _cluster.local_cluster  # type: ignore[attr-defined]
kube = _cluster.kube  # type: ignore[attr-defined]
namespace = _cluster.namespace  # type: ignore[attr-defined]


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
