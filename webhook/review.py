"""AdmissionReview v1 as typed dictionaries: what the API server sends and what we answer.

The API server speaks JSON; this module names its shape so the rest of the webhook can be
type-checked against it. Nothing here validates: a ``RawAdmissionReview`` is *claimed* to have
this shape by whoever sent it, and :mod:`webhook.admission` checks every field it reads before
trusting it. The ``Raw`` prefix marks exactly that: unparsed wire data, not a domain value.

Only the fields presize reads or writes are listed; the API server sends more (``resource``,
``requestKind``, ``options``...), and ``total=False`` keeps them legal.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

#: ``apiVersion`` and ``kind`` of the only review this webhook speaks.
API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
PatchType = Literal["JSONPatch"]

#: A pod, a namespace or any other Kubernetes object as JSON; read defensively.
RawObject = dict[str, Any]


class RawGroupVersionKind(TypedDict, total=False):
    group: str
    version: str
    kind: str


class RawUserInfo(TypedDict, total=False):
    username: str
    uid: str
    groups: list[str]


class RawRequest(TypedDict, total=False):
    """``AdmissionReview.request``: ``uid`` must be echoed back in the response."""

    uid: str
    kind: RawGroupVersionKind
    name: str
    namespace: str
    operation: Operation
    userInfo: RawUserInfo
    object: RawObject
    oldObject: RawObject | None
    dryRun: bool


class RawAdmissionReview(TypedDict, total=False):
    apiVersion: str
    kind: str
    request: RawRequest


class RawStatus(TypedDict, total=False):
    code: int
    message: str


class RawResponse(TypedDict, total=False):
    """``AdmissionReview.response``. ``patch`` is base64 of a JSON Patch document."""

    uid: str
    allowed: bool
    status: RawStatus
    patch: str
    patchType: PatchType
    warnings: list[str]
    auditAnnotations: dict[str, str]


class RawAdmissionReviewResponse(TypedDict):
    apiVersion: str
    kind: str
    response: RawResponse


class PatchOp(TypedDict):
    """One RFC 6902 operation; presize only ever emits ``add`` (which also replaces)."""

    op: Literal["add", "replace", "remove"]
    path: str
    value: Any
