"""From a review body to a review response, knowing nothing about HTTP (pure).

Two different things can be wrong, and they are answered differently:

* **The review itself is bad** (not JSON, not an ``admission.k8s.io/v1`` ``AdmissionReview``,
  no request ``uid``): :class:`ReviewError`. There is no ``uid`` to answer to, so no valid
  response can be built; the server answers HTTP 400 with the message. The API server then
  applies the webhook's failure policy (``Ignore``), so the pod is still created.
* **The object under review is odd** (not a pod, a pod that does not parse, no profile...):
  that is not an error at all. The answer is ``allowed: true`` without a patch, and a warning
  says why. presize never denies a pod: its job is sizing, not policy.

Everything in between is :func:`webhook.mutate.mutate`; this module only unwraps the review,
picks out the namespace and wraps the result.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from webhook.index import SnapshotIndex
from webhook.mutate import MutateSettings, MutationResult, mutate
from webhook.namespaces import NamespaceInfo
from webhook.review import (
    API_VERSION,
    KIND,
    RawAdmissionReviewResponse,
    RawRequest,
    RawResponse,
)

#: Metric label for reviews that are not a pod CREATE (answered "allowed", never patched).
IGNORED = "ignored"

_MAX_WARNING = 120  # the API server may truncate longer warnings


class ReviewError(ValueError):
    """The HTTP request is not an AdmissionReview this webhook can answer (HTTP 400)."""


def parse_review(body: bytes) -> RawRequest:
    """The ``request`` of the AdmissionReview in ``body``; raises :class:`ReviewError`."""
    try:
        review = json.loads(body)
    except (ValueError, RecursionError) as exc:  # includes UnicodeDecodeError
        raise ReviewError(f"body is not JSON: {type(exc).__name__}") from exc
    if not isinstance(review, dict):
        raise ReviewError("body is not a JSON object")
    if review.get("kind") != KIND:
        raise ReviewError(f"kind must be {KIND}")
    if review.get("apiVersion") != API_VERSION:
        raise ReviewError(f"apiVersion must be {API_VERSION} (register admissionReviewVersions v1)")
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid is missing")
    return request  # type: ignore[return-value]


def clean_warning(text: str) -> str:
    """A warning the API server will pass on intact: printable, one line, short."""
    printable = "".join(ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= _MAX_WARNING else printable[: _MAX_WARNING - 3] + "..."


def build_response(
    uid: str, *, patch: list[Any] | tuple[Any, ...] = (), warnings: tuple[str, ...] = ()
) -> RawAdmissionReviewResponse:
    """An ``allowed`` response for ``uid``, with the JSON ``patch`` base64-encoded if any."""
    response: RawResponse = {"uid": uid, "allowed": True}
    if patch:
        document = json.dumps(list(patch), separators=(",", ":")).encode()
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(document).decode("ascii")
    if warnings:
        response["warnings"] = [clean_warning(w) for w in warnings]
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def _is_pod_create(request: Mapping[str, Any]) -> bool:
    kind = request.get("kind")
    if not isinstance(kind, Mapping):
        return False
    return (
        kind.get("kind") == "Pod"
        and kind.get("group", "") == ""
        and request.get("operation") == "CREATE"
        and not request.get("subResource")
    )


def _namespace_of(request: Mapping[str, Any]) -> str:
    namespace = request.get("namespace")
    if isinstance(namespace, str) and namespace:
        return namespace
    obj = request.get("object")
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    fallback = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return fallback if isinstance(fallback, str) else ""


def admit(
    request: RawRequest,
    *,
    namespaces: Callable[[str], NamespaceInfo],
    snapshot: SnapshotIndex | None,
    settings: MutateSettings,
    now: float,
) -> tuple[RawAdmissionReviewResponse, str, MutationResult | None]:
    """Answer one parsed review request: (response, outcome label, the mutation if any)."""
    uid = request["uid"]
    if not _is_pod_create(request):
        return build_response(uid), IGNORED, None
    namespace = namespaces(_namespace_of(request))
    result = mutate(request.get("object"), namespace, snapshot, settings, now)
    response = build_response(uid, patch=result.patch, warnings=result.warnings)
    return response, result.outcome.value, result
