"""A small typed async client of the Docker Engine API, over the engine's unix socket.

Only the endpoints presize needs: ping/version/info, containers (list, inspect, update),
services (list, inspect, update with ``version``, ``rollback=previous``), tasks, nodes and the
event stream. Answers stay JSON (``dict[str, Any]``): the pure functions of
:mod:`controller.docker.views` read the few fields they need, so a field the engine adds
never breaks anything and one it drops is a ``.get`` that falls back.

Why not the ``docker`` package: it is synchronous (``requests``), pulls a second HTTP stack
into an aiohttp process, and hides the status codes this adapter maps onto outcomes.

Version: the client asks ``/_ping`` for the engine's API version once per connection and
speaks ``min(engine, MAX_API)``, so an engine newer than the one this was written against
(20.10, API 1.41) is spoken to in the dialect we know; an engine older than ``MIN_API``
is refused with an :class:`EngineError`.

Errors, by meaning (all under :class:`controller.errors.OrchestratorError`)::

    EngineError                 any answer we cannot use (5xx, garbage); may retry later
    ├── EngineUnavailableError  the socket cannot be reached (engine stopped, restarting)
    ├── EngineNotFoundError     404: the container, service or task no longer exists
    ├── EngineConflictError     409, or Swarm's "update out of sequence": re-read and retry
    ├── EngineRejectedError     other 4xx: wrong or forbidden; do not retry as is
    └── SwarmInactiveError      503 "not a swarm manager": this engine runs no Swarm (normal)
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from controller.errors import OrchestratorError

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MIN_API = (1, 30)
MAX_API = (1, 43)


class EngineError(OrchestratorError):
    """The engine answered in a way we cannot use; ``status`` is 0 when it did not answer."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class EngineUnavailableError(EngineError):
    """The engine's socket cannot be reached: stopped, restarting, or a wrong path."""


class EngineNotFoundError(EngineError):
    """The object (container, service, task, node) does not exist (any more)."""


class EngineConflictError(EngineError):
    """A conflicting change: a stale service ``version``, or options that exclude each other."""


class EngineRejectedError(EngineError):
    """A request the engine refuses as wrong or forbidden (4xx other than 404/409)."""


class SwarmInactiveError(EngineError):
    """This engine is not a Swarm manager: Swarm endpoints are not served (503)."""


def error_for(status: int, message: str) -> EngineError:
    """The error that an answer ``status`` with body ``message`` means (pure)."""
    text = f"engine answered {status}: {message}"
    if status == 404:
        return EngineNotFoundError(text, status)
    if status == 409 or "update out of sequence" in message:
        return EngineConflictError(text, status)
    if status == 503 and ("swarm" in message.lower() or "not a manager" in message.lower()):
        return SwarmInactiveError(text, status)
    if 400 <= status < 500:
        return EngineRejectedError(text, status)
    return EngineError(text, status)


def parse_api_version(text: str) -> tuple[int, int]:
    """``"1.41"`` → ``(1, 41)``; raises :class:`EngineError` for anything else."""
    try:
        major, minor = text.strip().split(".")[:2]
        return int(major), int(minor)
    except ValueError as exc:
        raise EngineError(f"engine API version {text!r} is not MAJOR.MINOR") from exc


def choose_api_version(engine: tuple[int, int]) -> str:
    """The version to speak with an engine that speaks ``engine`` (pure)."""
    if engine < MIN_API:
        raise EngineError(f"engine API {engine[0]}.{engine[1]} is older than the minimum 1.30")
    chosen = min(engine, MAX_API)
    return f"{chosen[0]}.{chosen[1]}"


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip()[:500]
    if isinstance(data, dict):
        return str(data.get("message", data))[:500]
    return str(data)[:500]


def _warnings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [str(w) for w in data.get("Warnings") or [] if w]
    return []


class EngineClient:
    """The Engine API at ``socket_path``; one connection pool, opened on first use.

    ``timeout_s`` bounds each request (not the event stream, which is long-lived by design).
    """

    def __init__(self, socket_path: str, *, timeout_s: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._api: str | None = None

    async def __aenter__(self) -> EngineClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url="http://docker",
                connector=aiohttp.UnixConnector(path=self.socket_path),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            )
        return self._session

    async def api_version(self) -> str:
        """The negotiated API version (asked once; asked again after the engine was away)."""
        if self._api is None:
            try:
                async with self._http().get("/_ping") as resp:
                    header = resp.headers.get("Api-Version")
                    if resp.status != 200 or header is None:
                        raise error_for(resp.status, _message(await resp.read()))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise EngineUnavailableError(f"engine at {self.socket_path}: {exc!r}") from exc
            self._api = choose_api_version(parse_api_version(header))
        return self._api

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """One call to ``/v<api><path>``; the decoded JSON answer (``None`` when empty).

        A GET whose pooled connection the engine closed (it restarted) is tried once more on a
        fresh connection; other methods are not, so an update is never sent twice.
        """
        attempts = 2 if method == "GET" else 1
        for attempt in range(attempts):
            url = f"/v{await self.api_version()}{path}"
            try:
                async with self._http().request(method, url, params=params, json=body) as resp:
                    raw = await resp.read()
                    if resp.status >= 400:
                        raise error_for(resp.status, _message(raw))
                    return json.loads(raw) if raw.strip() else None
            except aiohttp.ServerDisconnectedError as exc:
                self._api = None
                if attempt + 1 == attempts:
                    raise EngineUnavailableError(f"{method} {path}: {exc!r}") from exc
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._api = None
                raise EngineUnavailableError(f"{method} {path}: {exc!r}") from exc
            except ValueError as exc:
                raise EngineError(f"{method} {path}: the answer is not JSON") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _list(self, path: str, params: Mapping[str, str] | None = None) -> list[JSON]:
        data = await self.request("GET", path, params=params)
        if not isinstance(data, list):
            raise EngineError(f"GET {path}: expected a list")
        return [d for d in data if isinstance(d, dict)]

    async def _object(self, path: str) -> JSON:
        data = await self.request("GET", path)
        if not isinstance(data, dict):
            raise EngineError(f"GET {path}: expected an object")
        return data

    @staticmethod
    def _filters(filters: Mapping[str, list[str]] | None) -> dict[str, str]:
        return {"filters": json.dumps(dict(filters))} if filters else {}

    async def version(self) -> JSON:
        return await self._object("/version")

    async def info(self) -> JSON:
        return await self._object("/info")

    async def containers(
        self, *, all: bool = False, filters: Mapping[str, list[str]] | None = None
    ) -> list[JSON]:
        params = {"all": "1" if all else "0", **self._filters(filters)}
        return await self._list("/containers/json", params)

    async def container(self, ref: str) -> JSON:
        return await self._object(f"/containers/{ref}/json")

    async def update_container(self, ref: str, body: Mapping[str, Any]) -> list[str]:
        """``POST /containers/{ref}/update``: applied in place; returns the engine's warnings."""
        return _warnings(await self.request("POST", f"/containers/{ref}/update", body=body))

    async def services(self, filters: Mapping[str, list[str]] | None = None) -> list[JSON]:
        return await self._list("/services", self._filters(filters))

    async def service(self, ref: str) -> JSON:
        return await self._object(f"/services/{ref}")

    async def update_service(
        self, ref: str, version: int, spec: Mapping[str, Any], *, rollback: bool = False
    ) -> list[str]:
        """``POST /services/{ref}/update?version=N``: Swarm rolls the tasks; the warnings."""
        params = {"version": str(version)}
        if rollback:
            params["rollback"] = "previous"
        data = await self.request("POST", f"/services/{ref}/update", params=params, body=spec)
        return _warnings(data)

    async def tasks(self, filters: Mapping[str, list[str]] | None = None) -> list[JSON]:
        return await self._list("/tasks", self._filters(filters))

    async def nodes(self) -> list[JSON]:
        return await self._list("/nodes")

    async def events(
        self, *, filters: Mapping[str, list[str]] | None = None, since: float | None = None
    ) -> AsyncIterator[JSON]:
        """The engine's event stream, one decoded event per line, until the engine closes it.

        Raises :class:`EngineUnavailableError` when the stream cannot be opened or breaks; the
        caller reconnects (with ``since`` to miss nothing) and treats its cache as stale.
        """
        params = self._filters(filters)
        if since is not None:
            params["since"] = f"{since:.9f}"
        url = f"/v{await self.api_version()}/events"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=self.timeout_s)
        try:
            async with self._http().get(url, params=params, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise error_for(resp.status, _message(await resp.read()))
                async for line in resp.content:
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        log.warning("skipping an undecodable engine event: %.200r", line)
                        continue
                    if isinstance(event, dict):
                        yield event
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._api = None
            raise EngineUnavailableError(f"event stream: {exc!r}") from exc
