"""The controller's timers: one asyncio loop running the cycles, refits, anomalies, checkpoints.

=====================  ==========================  ===========================================
task                   period                      what
=====================  ==========================  ===========================================
urgent cycle           ``urgent_period_s`` (5 s)   decide the pods an agent flagged urgent
full cycle             ``profile_period_s`` (30 s) decide every managed pod; rebuild snapshot
anomalies              ``anomaly_period_s``        leak and runaway detectors
refit                  ``seasonal_refit_s`` / 2    seasonal models, in a worker thread
checkpoint             ``checkpoint_period_s``     changed profiles to the store
standby refresh        ``checkpoint_period_s``     a standby re-reads the store so its
                                                   snapshot is never far behind the leader's
=====================  ==========================  ===========================================

Leadership: only the leader decides and acts. On gaining it, the replica first restores every
profile from the store (what the previous leader checkpointed), so a failover resumes where
the last checkpoint left; on losing it, the replica stops acting at once (the cycles check
``is_leader`` before each pass) and writes nothing more. A crash in one task is logged and
the task goes on at its next period: one bad pass must not stop the controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from controller.loop import Controller
from controller.server import SnapshotCache

log = logging.getLogger("controller")


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class AlwaysLeader:
    """For a single replica (``--no-leader-elect``), tests and the Docker orchestrator."""

    @property
    def is_leader(self) -> bool:
        return True

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()


class Runtime:
    def __init__(
        self,
        controller: Controller,
        snapshots: SnapshotCache,
        leadership: Leadership,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.c = controller
        self.snapshots = snapshots
        self.leadership = leadership
        self.clock = clock
        self.led = False
        self.restored = asyncio.Event()
        self.passes: dict[str, int] = {}
        self.last_full = 0.0
        self._transition = asyncio.Lock()

    def healthy(self) -> bool:
        """Alive unless the full cycle has not completed for ten periods while leading."""
        if not self.leadership.is_leader or self.last_full == 0.0:
            return True
        return self.clock() - self.last_full < 10 * self.c.s.profile_period_s + 60.0

    async def _every(
        self, name: str, period: float, stop: asyncio.Event, fn: Callable[[], Awaitable[None]]
    ) -> None:
        while not stop.is_set():
            try:
                await fn()
                self.passes[name] = self.passes.get(name, 0) + 1
            except Exception:  # keep the controller going; the next pass may succeed
                log.exception("%s pass failed", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)

    async def _leadership_changes(self) -> bool:
        """True when this replica leads and has restored; handles the transitions. Serialised:
        the urgent and full passes both call it, and one restore is enough."""
        async with self._transition:
            leading = self.leadership.is_leader
            self.c.metrics.leader.set(1 if leading else 0)
            if leading and not self.led:
                log.info("leading: restoring profiles from the store")
                n = await self.c.restore()
                log.info("restored %d container profiles", n)
                self.led = True
                self.restored.set()
            elif not leading and self.led:
                log.warning("lost leadership: no more actions from this replica")
                self.led = False
            return leading and self.led

    async def urgent(self) -> None:
        if await self._leadership_changes() and self.c.urgent:
            counts = await self.c.cycle(self.clock(), urgent_only=True)
            await self._checkpoint_if_acted(counts)

    async def full(self) -> None:
        if await self._leadership_changes():
            now = self.clock()
            counts = await self.c.cycle(now)
            self.snapshots.install(self.c.snapshot(now))
            self.last_full = self.clock()
            await self._checkpoint_if_acted(counts)

    async def _checkpoint_if_acted(self, counts: dict[str, int]) -> None:
        """A cycle that changed something writes its decision states at once: a crash right
        after an action must not let the next leader repeat it or ignore its cooldown."""
        if any(action != "NOOP" for action in counts):
            await self.c.checkpoint(self.clock())

    async def anomalies(self) -> None:
        if await self._leadership_changes():
            await self.c.detect_anomalies(self.clock())

    async def refit(self) -> None:
        if self.led:
            await asyncio.to_thread(self.c.refit, self.clock())

    async def checkpoint(self) -> None:
        if self.led:
            await self.c.checkpoint(self.clock())
        elif not self.leadership.is_leader:
            # Standby: follow the leader's checkpoints so the webhook's snapshot stays close.
            self.c.profiles.clear()
            await self.c.restore()
            await self.c.refresh(self.clock())
            self.snapshots.install(self.c.snapshot(self.clock()))

    async def run(self, stop: asyncio.Event) -> None:
        s = self.c.s
        tasks = [
            asyncio.create_task(self.leadership.run(stop)),
            asyncio.create_task(self._every("urgent", s.urgent_period_s, stop, self.urgent)),
            asyncio.create_task(self._every("full", s.profile_period_s, stop, self.full)),
            asyncio.create_task(self._every("anomalies", s.anomaly_period_s, stop, self.anomalies)),
            asyncio.create_task(self._every("refit", s.seasonal_refit_s / 2, stop, self.refit)),
            asyncio.create_task(
                self._every("checkpoint", s.checkpoint_period_s, stop, self.checkpoint)
            ),
        ]
        await stop.wait()
        if self.led:
            with contextlib.suppress(Exception):
                await self.c.checkpoint(self.clock(), all_=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
