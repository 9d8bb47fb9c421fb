"""Keeping the controller's snapshot in memory, refreshed in the background.

The admission path reads :attr:`SnapshotCache.current` and nothing else: an attribute read,
no lock, no I/O. A background task fetches ``GET /v1/snapshot`` every ``refresh_s`` seconds
with ``If-None-Match``, so an unchanged snapshot costs the controller a 304 and no encoding.

What each failure does, and why:

=====================  ==================================  =================================
failure                 snapshot kept?                      why
=====================  ==================================  =================================
network error, 5xx,     yes, until it is stale              a controller restart must not
timeout, bad payload    (``mutate`` checks the age)         stop sizing for a few seconds
unknown version         **no**: dropped at once              the controller now speaks a format
                                                            this build cannot read; any
                                                            old reading may be wrong
=====================  ==================================  =================================

Each failure is logged (once per change of state, so a dead controller does not flood the
log), counted in ``presize_webhook_snapshot_refreshes{result=...}`` and, through ``mutate``,
shown as a warning on the pods admitted without a patch.

:class:`StaticSnapshot` serves a snapshot read once from a file: for development and the
benchmark, where there is no controller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import aiohttp

from presize.errors import WireError, WireVersionError
from presize.wire import Snapshot, decode_snapshot, decode_snapshot_json
from webhook.index import SnapshotIndex
from webhook.metrics import WebhookMetrics

log = logging.getLogger(__name__)


class SnapshotSource(Protocol):
    """What the server reads on every admission: the snapshot in use, or ``None``."""

    @property
    def current(self) -> SnapshotIndex | None: ...


def decode_payload(body: bytes, content_type: str, *, max_bytes: int) -> Snapshot:
    """The snapshot in a response body, msgpack or JSON by content type (JSON by default)."""
    if "msgpack" in content_type:
        return decode_snapshot(body, max_bytes=max_bytes)
    return decode_snapshot_json(body, max_bytes=max_bytes)


class StaticSnapshot:
    """A snapshot loaded once from a JSON or msgpack file; never refreshed."""

    def __init__(self, path: Path, *, max_bytes: int, metrics: WebhookMetrics) -> None:
        kind = "msgpack" if path.suffix in (".msgpack", ".mpk") else "json"
        snapshot = decode_payload(path.read_bytes(), kind, max_bytes=max_bytes)
        self._index = SnapshotIndex.build(snapshot)
        metrics.snapshot_generation.set(snapshot.generation)

    @property
    def current(self) -> SnapshotIndex | None:
        return self._index


class SnapshotCache:
    """The latest snapshot from the controller, refreshed by :meth:`run`."""

    def __init__(
        self,
        url: str,
        *,
        refresh_s: float,
        timeout_s: float,
        max_bytes: int,
        metrics: WebhookMetrics,
        clock: Callable[[], float] = time.time,
        ssl: bool | object = True,
    ) -> None:
        self.url = url
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._metrics = metrics
        self._clock = clock
        self._ssl = ssl
        self._index: SnapshotIndex | None = None
        self._etag: str | None = None
        self._last_result = ""
        metrics.track_snapshot_age(self._age)

    @property
    def current(self) -> SnapshotIndex | None:
        return self._index

    def _age(self) -> float:
        index = self._index
        return -1.0 if index is None else max(0.0, self._clock() - index.generated_at)

    def _record(self, result: str, message: str) -> None:
        self._metrics.snapshot_refreshes.labels(result=result).inc()
        if result != self._last_result:  # log changes of state, not every failed poll
            level = logging.INFO if result in ("ok", "not-modified") else logging.WARNING
            log.log(level, "snapshot refresh from %s: %s (%s)", self.url, result, message)
        self._last_result = result

    def _install(self, snapshot: Snapshot | None, etag: str | None) -> None:
        self._index = None if snapshot is None else SnapshotIndex.build(snapshot)
        self._etag = etag
        self._metrics.snapshot_generation.set(-1 if snapshot is None else snapshot.generation)

    async def refresh_once(self, session: aiohttp.ClientSession) -> str:
        """Fetch once; returns the result label. Never raises (except cancellation)."""
        headers = {"Accept": "application/json, application/msgpack"}
        if self._etag and self._index is not None:
            headers["If-None-Match"] = self._etag
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            async with session.get(
                self.url,
                headers=headers,
                timeout=timeout,
                ssl=self._ssl,  # type: ignore[arg-type]
            ) as resp:
                if resp.status == 304:
                    self._record("not-modified", f"generation {self._index_generation()}")
                    return "not-modified"
                if resp.status != 200:
                    self._record("error", f"HTTP {resp.status}")
                    return "error"
                body = await resp.content.read(self.max_bytes + 1)
                snapshot = decode_payload(
                    body, resp.headers.get("Content-Type", ""), max_bytes=self.max_bytes
                )
                self._install(snapshot, resp.headers.get("ETag"))
        except WireVersionError as exc:
            self._install(None, None)
            self._record("unknown-version", str(exc))
            return "unknown-version"
        except WireError as exc:
            self._record("invalid", str(exc))
            return "invalid"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._record("error", f"{type(exc).__name__}: {exc}")
            return "error"
        self._record("ok", f"generation {snapshot.generation}")
        return "ok"

    def _index_generation(self) -> int | None:
        return None if self._index is None else self._index.generation

    async def run(self) -> None:
        """Refresh forever (until cancelled); the first fetch happens at once."""
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    await self.refresh_once(session)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug here must not end refreshing for good
                    log.exception("snapshot refresh failed unexpectedly")
                    self._metrics.snapshot_refreshes.labels(result="bug").inc()
                await asyncio.sleep(self.refresh_s)
