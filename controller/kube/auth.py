"""Agent authentication by TokenReview (authentication.k8s.io/v1).

Each agent sends its projected ServiceAccount token; the API server says whose it is. A
TokenReview per report would cost an API call per agent per few seconds, so answers are
cached for ``ttl_s`` (default 30 s: a revoked token or deleted ServiceAccount stops working
within that), keyed by the token's SHA-256 (the token itself is never kept), in a bounded LRU
so a flood of garbage tokens cannot grow memory. Rejections are cached too (shorter,
``negative_ttl_s``), so garbage does not turn into a TokenReview per request either. API
errors are *not* cached: the next request asks again.

``audience``: when set, the review asks the API server to check the token was minted for it
(a token for another audience, e.g. the API server's own, is then rejected). ``allowed``: when
set, only these usernames are accepted (e.g. ``system:serviceaccount:presize:presize-agent``);
authentication by Kubernetes alone proves identity, not that the caller is an agent.

Needs ``create`` on ``tokenreviews`` (in the chart's ClusterRole).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from controller.kube.client import ApiError, KubeHttp, as_http

log = logging.getLogger(__name__)


class TokenReviewAuthenticator:
    """:class:`~controller.orchestrator.Authenticator` backed by the API server."""

    def __init__(
        self,
        api: Any,
        *,
        audience: str | None = None,
        allowed: Iterable[str] | None = None,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 5.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._owns_http = not isinstance(api, KubeHttp)
        self.http = as_http(api)
        self.audience = audience or None
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self.reviews = 0  # TokenReviews sent (for tests and metrics)

    async def close(self) -> None:
        if self._owns_http:
            await self.http.close()

    async def authenticate(self, token: str) -> str | None:
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(digest)
            return hit[1]
        try:
            user = await self._review(token)
        except ApiError as err:
            log.warning("TokenReview failed, request not authenticated: %s", err)
            return None
        ttl = self.ttl_s if user is not None else self.negative_ttl_s
        self._cache[digest] = (now + ttl, user)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return user

    async def _review(self, token: str) -> str | None:
        spec: dict[str, Any] = {"token": token}
        if self.audience:
            spec["audiences"] = [self.audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        self.reviews += 1
        review = await self.http.request(
            "POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=body
        )
        status = review.get("status") or {}
        if status.get("authenticated") is not True:
            return None
        if self.audience and self.audience not in (status.get("audiences") or ()):
            return None  # an authenticator that ignores audiences must not let one through
        username = (status.get("user") or {}).get("username")
        if not isinstance(username, str) or not username:
            return None
        if self.allowed is not None and username not in self.allowed:
            log.warning("token of %s is valid but not an allowed agent identity", username)
            return None
        return username
