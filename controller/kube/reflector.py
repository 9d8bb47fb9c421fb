"""List-then-watch of one resource type, feeding a handler, surviving API-server outages.

The same protocol client-go's reflector follows, written for ``asyncio``:

1. **List** in pages (``limit``/``continue``: a 5,000-pod list arrives in bounded chunks) and
   hand the complete set to :meth:`Handler.replace`, which drops whatever vanished while no
   watch was running. The list's ``resourceVersion`` is where the watch starts.
2. **Watch** from that version with bookmarks on, so a quiet resource still advances its
   version and a reconnect does not fall out of the server's watch cache. The server ends a
   watch after ``timeoutSeconds`` (randomised between ``min_watch_s`` and twice that, so that
   many watches do not all reconnect at once); the reflector then watches again from the last
   version it saw.
3. **410 Gone** (the version is too old: compaction, or a long outage) means events were lost:
   list again. Any other failure (refused connection, timeout, 5xx, 403) keeps the cache as it
   is and retries the same step after a capped, jittered exponential backoff, so a restarted
   API server is found again within ``backoff_max_s`` and the controller keeps serving its
   last view meanwhile.

A handler is called on the event loop, one event at a time; it must be quick and must not
raise (an exception is logged and the event dropped).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from typing import Any, Protocol

from controller.kube.client import ApiError, KubeHttp

log = logging.getLogger(__name__)


class Handler(Protocol):
    def replace(self, items: list[dict[str, Any]]) -> None:
        """The complete current set (after a list)."""
        ...

    def apply(self, event_type: str, obj: dict[str, Any]) -> None:
        """One ``ADDED``, ``MODIFIED`` or ``DELETED`` event."""
        ...


class _GoneError(Exception):
    """The watch's resourceVersion is too old: list again."""


class Reflector:
    """Keeps ``handler`` in step with the objects at ``path`` (e.g. ``/api/v1/pods``)."""

    def __init__(
        self,
        http: KubeHttp,
        path: str,
        handler: Handler,
        *,
        page_size: int = 500,
        min_watch_s: float = 300.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.http = http
        self.path = path
        self.handler = handler
        self.page_size = page_size
        self.min_watch_s = min_watch_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.synced = asyncio.Event()  # set after the first complete list
        self.resource_version = ""
        self.lists = 0  # complete lists done (re-lists after 410 included)
        self.last_error = ""
        self.last_event_at = 0.0  # monotonic time of the last list page or watch event
        self._failing = False
        self._delay = backoff_initial_s

    async def _list(self) -> None:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query: dict[str, str | int] = {"limit": self.page_size}
            if token:
                query["continue"] = token
            try:
                page = await self.http.request("GET", self.path, query=query, timeout_s=60.0)
            except ApiError as err:
                if err.status == 410 and token:  # the continue token expired: start over
                    items, token = [], ""
                    continue
                raise
            self.last_event_at = time.monotonic()
            items.extend(i for i in page.get("items") or () if isinstance(i, dict))
            meta = page.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                self.resource_version = str(meta.get("resourceVersion") or "")
                break
        self.handler.replace(items)
        self.lists += 1
        self.synced.set()

    async def _watch(self) -> None:
        timeout_s = int(self.min_watch_s * (1.0 + random.random()))
        query: Mapping[str, str | int] = {
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_s,
        }
        # A read timeout above the server's own timeout: only a dead connection trips it.
        async for event in self.http.watch(self.path, query, read_timeout_s=timeout_s + 30.0):
            self.last_event_at = time.monotonic()
            if self._failing:
                self._healthy()
            kind, obj = event.get("type"), event.get("object")
            if not isinstance(obj, dict):
                continue
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise _GoneError(str(obj.get("message") or "too old resource version"))
                raise ApiError(int(obj.get("code") or 500), str(obj.get("message") or obj))
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if kind != "BOOKMARK":
                try:
                    self.handler.apply(str(kind), obj)
                except Exception:  # a handler bug must not stop the watch
                    log.exception("%s: handling a %s event failed", self.path, kind)
            if version:
                self.resource_version = str(version)

    def _healthy(self) -> None:
        """The server answered: forget the failure and its backoff."""
        if self._failing:
            log.info("%s: watching again", self.path)
        self._failing = False
        self.last_error = ""
        self._delay = self.backoff_initial_s

    async def run(self) -> None:
        """Forever (until cancelled): list, watch, re-watch; re-list on 410."""
        self._delay = self.backoff_initial_s
        self._failing = False
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                    self._healthy()
                await self._watch()
            except _GoneError as gone:
                log.info("%s: %s; listing again", self.path, gone)
                self.resource_version = ""
                continue
            except Exception as err:  # ApiError, or a bug: either way keep the task alive
                if isinstance(err, ApiError) and err.status == 410:
                    self.resource_version = ""
                    continue
                if not isinstance(err, ApiError):
                    log.exception("%s: unexpected error; listing again", self.path)
                    self.resource_version = ""
                self.last_error = str(err)
                if not self._failing:
                    log.warning("%s: %s; retrying with backoff", self.path, err)
                self._failing = True
                await asyncio.sleep(self._delay * (0.5 + random.random() / 2))
                self._delay = min(self._delay * 2.0, self.backoff_max_s)
                continue
            self._healthy()
