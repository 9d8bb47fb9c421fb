"""Leader election on a coordination.k8s.io/v1 Lease, so only one controller replica acts.

The algorithm is client-go's, in ``asyncio``:

* Every ``retry_period_s`` a candidate reads the Lease. It may take it when nobody holds it
  (``holderIdentity`` empty, e.g. released) or when the holder has not renewed for the lease's
  ``leaseDurationSeconds`` **as observed locally**: expiry is measured from when this process
  last saw the record change, on its own monotonic clock, never by comparing the holder's
  ``renewTime`` with the local wall clock, so skewed clocks cannot steal a live lease.
* Writes are replaces carrying the ``resourceVersion`` that was read: two candidates racing
  for an expired lease cannot both win (the loser gets 409 and stays a follower).
* The leader renews every ``retry_period_s``. When it has not renewed for ``renew_deadline_s``
  (shorter than the lease duration) it stops leading *before* anyone else may take over, so
  there is never a moment with two leaders acting on their own clocks. When a read shows
  another holder, it stops at once.
* On a clean :meth:`LeaseElector.stop` the leader releases the lease (empty holder, 1 s
  duration), so the other replica takes over within one retry period instead of a lease
  duration.

Use either the callbacks of :meth:`LeaseElector.run`, or :attr:`LeaseElector.is_leader` with
:meth:`LeaseElector.wait_leading`. Needs ``create`` on leases in the namespace and ``get``,
``update`` on the named one (the chart's Role).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controller.kube.client import ApiError, KubeHttp, as_http

log = logging.getLogger(__name__)


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """One candidate for the Lease ``namespace/name``, identified by ``identity``."""

    def __init__(
        self,
        api: Any,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration_s: float = 15.0,
        renew_deadline_s: float = 10.0,
        retry_period_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not renew_deadline_s < lease_duration_s:
            raise ValueError("renew_deadline_s must be shorter than lease_duration_s")
        self._owns_http = not isinstance(api, KubeHttp)
        self.http = as_http(api)
        self.name, self.namespace, self.identity = name, namespace, identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.clock = clock
        self._leading = asyncio.Event()
        self._stopping = asyncio.Event()
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._observed_duration = lease_duration_s
        self._version = ""  # resourceVersion of the Lease as last read or written
        self.transitions = 0  # times this candidate started leading
        self._lease_transitions = 0  # the Lease's own count, kept across a release

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    async def wait_leading(self) -> None:
        await self._leading.wait()

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def _body(self, spec: dict[str, Any]) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self._version:
            meta["resourceVersion"] = self._version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": spec}  # fmt: skip

    async def _try_acquire_or_renew(self) -> bool:
        """One round: True when this candidate holds the lease afterwards."""
        now = _micro_time()
        mine: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration_s)),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        try:
            lease = await self.http.request("GET", self._path)
        except ApiError as err:
            if err.status != 404:
                raise
            self._version = ""
            try:
                created = await self.http.request(
                    "POST", self._path.rsplit("/", 1)[0], body=self._body(mine)
                )
            except ApiError as create_err:
                if create_err.status == 409:  # another candidate created it first
                    return False
                raise
            self._version = str(created["metadata"]["resourceVersion"])
            return True
        self._version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
            self._observed_duration = float(spec.get("leaseDurationSeconds") or 0)
        expired = self._observed_at + self._observed_duration <= self.clock()
        if holder and holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            mine["acquireTime"] = spec.get("acquireTime") or now
            mine["leaseTransitions"] = transitions
        else:
            mine["leaseTransitions"] = transitions + 1
        try:
            written = await self.http.request("PUT", self._path, body=self._body(mine))
        except ApiError as err:
            if err.status == 409:  # someone wrote in between: read again next round
                return False
            raise
        self._version = str(written["metadata"]["resourceVersion"])
        self._lease_transitions = int(mine["leaseTransitions"])
        self._observed, self._observed_at = (self.identity, now), self.clock()
        return True

    async def _round(self) -> bool:
        try:
            return await asyncio.wait_for(
                self._try_acquire_or_renew(), timeout=max(self.retry_period_s, 1.0) * 2
            )
        except (ApiError, TimeoutError) as err:
            log.warning("lease %s/%s: %s", self.namespace, self.name, err)
            return False

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(
        self,
        on_started_leading: Callable[[], object] | None = None,
        on_stopped_leading: Callable[[], object] | None = None,
    ) -> None:
        """Campaign, lead, and campaign again after losing, until :meth:`stop` or cancel."""
        self._stopping.clear()
        try:
            while not self._stopping.is_set():
                if not await self._round():
                    await self._sleep(self.retry_period_s * (1.0 + random.random() * 0.2))
                    continue
                self.transitions += 1
                self._leading.set()
                log.info("lease %s/%s: %s leads", self.namespace, self.name, self.identity)
                if on_started_leading is not None:
                    on_started_leading()
                await self._renew_until_lost()
                if self._stopping.is_set():
                    break  # still leading: the finally below releases the lease
                self._leading.clear()
                if on_stopped_leading is not None:
                    on_stopped_leading()
        finally:
            if self._leading.is_set():
                self._leading.clear()
                await asyncio.shield(self._release())
                if on_stopped_leading is not None:
                    on_stopped_leading()

    async def _renew_until_lost(self) -> None:
        renewed_at = self.clock()
        while not self._stopping.is_set():
            await self._sleep(self.retry_period_s)
            if self._stopping.is_set():
                return  # run()'s finally releases the lease
            if await self._round():
                renewed_at = self.clock()
                continue
            if self._observed and self._observed[0] not in ("", self.identity):
                log.warning("lease %s/%s taken by %s", self.namespace, self.name, self._observed[0])
                return
            if self.clock() - renewed_at >= self.renew_deadline_s:
                log.warning(
                    "lease %s/%s: not renewed within the deadline", self.namespace, self.name
                )
                return

    async def _release(self) -> None:
        """Give the lease up at once (only if it is still ours, by resourceVersion)."""
        now = _micro_time()
        spec = {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
                "renewTime": now, "leaseTransitions": self._lease_transitions}  # fmt: skip
        try:
            await asyncio.wait_for(
                self.http.request("PUT", self._path, body=self._body(spec)), timeout=5.0
            )
            log.info("lease %s/%s released by %s", self.namespace, self.name, self.identity)
        except (ApiError, TimeoutError) as err:
            log.warning("lease %s/%s not released: %s", self.namespace, self.name, err)

    async def stop(self) -> None:
        """Ask :meth:`run` to return (releasing the lease if held); closes an owned session."""
        self._stopping.set()

    async def close(self) -> None:
        if self._owns_http:
            await self.http.close()
