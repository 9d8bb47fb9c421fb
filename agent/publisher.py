"""Deliver spooled reports to the controller (``POST /v1/reports``), oldest first, each once.

The publisher owns no data: every report is in the :class:`~agent.spool.Spool` before the
publisher sees it, and leaves it only when the controller has answered 2xx (or refused it for
good). One report is in flight at a time, so delivery is in order; a report whose answer is
lost (the agent dies after the controller stored it) is sent again, and the controller drops
the repeat by ``(agent_id, sequence)``: at least once on the wire, once in effect.

What each answer means, decided by :func:`classify` (a pure function of the status):

=================  ==========  ==============================================================
answer             outcome     why
=================  ==========  ==============================================================
2xx                delivered   acknowledged: delete from the spool
5xx, no answer,    retry       the controller or the network is away; the report is fine.
408, 429                       Back off exponentially (capped), keep spooling meanwhile
401, 403           retry       the *token* is wrong or not yet trusted (rotation, TokenReview
                               lag), not the report: quarantining would throw data away for a
                               credential problem. Logged loudly; the token file is reread
other 4xx          rejected    the controller will never take this report (malformed, too
                               large): quarantine it with the reason, go on with the next
=================  ==========  ==============================================================

A 2xx answer carries a msgpack :class:`~presize.wire.ReportAck`: what the controller asks of
the agent (diagnostics of flagged containers, I/O limits). The publisher decodes it and hands
it to ``on_ack`` (the composition root). A 2xx whose body does not decode (an older controller,
a proxy's empty 200) is still *delivered*: the report is safe on the controller's side, and the
controller repeats its instructions on every answer, so nothing is lost by skipping one.

The bearer token is a projected ServiceAccount token the kubelet rewrites before it expires;
:class:`TokenFile` rereads it when the file changes, so a rotation needs no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import aiohttp

from agent.spool import Pending, Spool
from presize.errors import SettingsError, WireError
from presize.wire import Report, ReportAck, decode_ack

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/msgpack"


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


def classify(status: int | None) -> Outcome:
    """What an HTTP answer (``None``: none came) means for the report (module table)."""
    if status is None or status >= 500 or status in (401, 403, 408, 429):
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    return Outcome.REJECTED


def backoff_s(failures: int, *, initial: float, maximum: float) -> float:
    """Delay before the next attempt after ``failures`` failures in a row: doubling, capped."""
    if failures <= 0:
        return 0.0
    return min(maximum, initial * 2.0 ** min(failures - 1, 30))


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    """``url``: the controller's ``/v1/reports``; ``token_path``: bearer token file (``None``:
    no Authorization header, for tests); ``ca_file``: CA bundle that signs the controller's
    certificate (``None``: the system's); ``max_report_bytes``: size cap, the controller's too."""

    url: str
    token_path: str | None = None
    ca_file: str | None = None
    timeout_s: float = 10.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    max_report_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise SettingsError(f"PublisherSettings.url {self.url!r}: expected http(s)://")
        if min(self.timeout_s, self.backoff_initial_s, self.backoff_max_s) <= 0:
            raise SettingsError("PublisherSettings: timeout and backoff must be > 0")


class TokenFile:
    """A bearer token in a file, reread whenever the file's identity or mtime changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._token: str | None = None

    def get(self) -> str | None:
        """The current token; ``None`` while the file is missing or empty."""
        try:
            st = os.stat(self.path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if key != self._seen:
                with open(self.path, encoding="utf-8") as f:
                    self._token = f.read().strip() or None
                self._seen = key
        except OSError as exc:
            log.warning("token file %s unreadable: %s", self.path, exc)
            self._seen, self._token = None, None
        return self._token


@dataclass(slots=True)
class PublisherStats:
    delivered: int = 0
    retries: int = 0
    rejected: int = 0
    auth_failures: int = 0
    consecutive_failures: int = 0
    acks: int = 0
    undecodable_acks: int = 0


class Publisher:
    """Sends the spool's head until the spool is empty, then waits for :meth:`submit`."""

    def __init__(
        self,
        spool: Spool,
        settings: PublisherSettings,
        on_ack: Callable[[ReportAck], None] | None = None,
    ) -> None:
        self.spool = spool
        self.s = settings
        self.on_ack = on_ack
        self.stats = PublisherStats()
        self._token = TokenFile(settings.token_path) if settings.token_path else None
        self._wake = asyncio.Event()

    def submit(self, report: Report) -> None:
        """Spool ``report`` (durably) and wake the sender."""
        self.spool.put(report)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; an unsent report stays spooled for the next run."""
        ssl_ctx = ssl.create_default_context(cafile=self.s.ca_file)
        timeout = aiohttp.ClientTimeout(total=self.s.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                pending = self.spool.head()
                if pending is None:
                    self._wake.clear()
                    await _first_of(stop, self._wake)
                    continue
                outcome, reason = await self._send(session, pending, ssl_ctx)
                self._settle(pending, outcome, reason)
                if outcome is Outcome.RETRY:
                    delay = backoff_s(
                        self.stats.consecutive_failures,
                        initial=self.s.backoff_initial_s,
                        maximum=self.s.backoff_max_s,
                    )
                    await _first_of(stop, timeout_s=delay)

    async def _send(
        self, session: aiohttp.ClientSession, pending: Pending, ssl_ctx: ssl.SSLContext
    ) -> tuple[Outcome, str]:
        if len(pending.payload) > self.s.max_report_bytes:
            return Outcome.REJECTED, f"{len(pending.payload)} bytes is over the cap"
        headers = {"Content-Type": CONTENT_TYPE}
        token = self._token.get() if self._token else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with session.post(
                self.s.url,
                data=pending.payload,
                headers=headers,
                ssl=ssl_ctx if self.s.url.startswith("https://") else False,
            ) as resp:
                body = await resp.read()
                outcome = classify(resp.status)
                if outcome is Outcome.DELIVERED:
                    self._acknowledged(body)
                text = body[:200].decode("utf-8", errors="replace")
                return outcome, f"HTTP {resp.status}: {text}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome.RETRY, f"{type(exc).__name__}: {exc}"

    def _acknowledged(self, body: bytes) -> None:
        """Decode a 2xx body and pass it on; an undecodable one is counted, not fatal."""
        try:
            ack = decode_ack(body, max_bytes=self.s.max_report_bytes)
        except WireError as exc:
            self.stats.undecodable_acks += 1
            if body:
                log.warning("controller answer not a ReportAck (%s); report delivered", exc)
            return
        self.stats.acks += 1
        if self.on_ack is not None:
            try:
                self.on_ack(ack)
            except Exception:  # the agent's handler must not undo a delivery
                log.exception("handling the controller's ack failed")

    def _settle(self, pending: Pending, outcome: Outcome, reason: str) -> None:
        if outcome is Outcome.DELIVERED:
            self.spool.ack(pending.sequence)
            self.stats.delivered += 1
            self.stats.consecutive_failures = 0
        elif outcome is Outcome.REJECTED:
            self.spool.reject(pending.sequence, reason)
            self.stats.rejected += 1
            log.error("report %d rejected by the controller: %s", pending.sequence, reason)
        else:
            self.spool.release()
            self.stats.retries += 1
            self.stats.consecutive_failures += 1
            if reason.startswith(("HTTP 401", "HTTP 403")):
                self.stats.auth_failures += 1
                log.error("controller refused our token (%s); will retry", reason)
            else:
                log.warning("report %d not delivered (%s); will retry", pending.sequence, reason)


async def _first_of(*events: asyncio.Event, timeout_s: float | None = None) -> None:
    """Return when any of ``events`` is set or ``timeout_s`` passed."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        for w in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await w
