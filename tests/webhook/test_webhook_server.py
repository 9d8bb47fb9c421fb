"""The aiohttp shell: status codes for bad requests, fail-open on internal errors, health and
metrics, size and time limits. Sizing itself is tested in test_webhook_mutate.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from webhook_builders import apply_patch, decode_patch, pod, review

from webhook.server import Webhook


async def post(client: TestClient, body: Any) -> tuple[int, Any]:  # type: ignore[type-arg]
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.post("/mutate", data=data, headers={"Content-Type": "application/json"})
    text = await resp.text()
    return resp.status, (json.loads(text) if resp.status == 200 else text)


async def test_pod_create_is_answered_with_a_patch(client: TestClient) -> None:  # type: ignore[type-arg]
    status, body = await post(client, review(pod(), uid="abc"))
    assert status == 200
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    assert body["response"]["uid"] == "abc"
    assert body["response"]["allowed"] is True
    patched = apply_patch(pod(), decode_patch(body))
    assert patched["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "250m",
        "memory": "300Mi",
    }


@pytest.mark.parametrize(
    ("operation", "kind"), [("UPDATE", "Pod"), ("DELETE", "Pod"), ("CREATE", "Deployment")]
)
async def test_other_reviews_are_allowed_untouched(
    client: TestClient,
    operation: str,
    kind: str,  # type: ignore[type-arg]
) -> None:
    status, body = await post(client, review(pod(), operation=operation, kind=kind))
    assert status == 200
    assert body["response"] == {"uid": "uid-1", "allowed": True}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (
            {
                "apiVersion": "admission.k8s.io/v1beta1",
                "kind": "AdmissionReview",
                "request": {"uid": "x"},
            },
            "apiVersion",
        ),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}, "kind must be"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request"),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 5}},
            "uid",
        ),
        (b"[" * 50_000, "not JSON"),
    ],
)
async def test_invalid_reviews_get_a_400_with_the_reason(
    client: TestClient,
    body: Any,
    message: str,  # type: ignore[type-arg]
) -> None:
    status, text = await post(client, body)
    assert status == 400
    assert message in text


async def test_oversized_body_gets_413(client: TestClient) -> None:  # type: ignore[type-arg]
    status, _ = await post(client, b" " * (64 * 1024 + 1))
    assert status == 413


async def test_oversized_chunked_body_gets_413(client: TestClient) -> None:  # type: ignore[type-arg]
    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 8192

    resp = await client.post("/mutate", data=chunks())
    assert resp.status == 413


async def test_slow_body_gets_408(client: TestClient) -> None:  # type: ignore[type-arg]
    async def slow() -> Any:
        yield b"{"
        await asyncio.sleep(1.0)
        yield b"}"

    resp = await client.post("/mutate", data=slow())
    assert resp.status == 408


class Exploding:
    @property
    def current(self) -> Any:
        raise RuntimeError("bug in the snapshot source")


async def test_internal_errors_fail_open(client: TestClient, webhook: Webhook) -> None:  # type: ignore[type-arg]
    webhook.snapshots = Exploding()
    status, body = await post(client, review(pod(), uid="u9"))
    assert status == 200
    assert body["response"]["uid"] == "u9"
    assert body["response"]["allowed"] is True
    assert "patch" not in body["response"]
    assert "internal error" in body["response"]["warnings"][0]
    metrics = await (await client.get("/metrics")).text()
    assert "presize_webhook_internal_errors_total 1.0" in metrics


async def test_weird_pods_are_allowed_with_a_warning(client: TestClient) -> None:  # type: ignore[type-arg]
    for obj in (None, 5, "pod", [], {"spec": "x"}, {"metadata": {"annotations": "x"}}):
        status, body = await post(client, review(obj))
        assert status == 200
        assert body["response"]["allowed"] is True


async def test_healthz_and_metrics(client: TestClient) -> None:  # type: ignore[type-arg]
    await post(client, review(pod()))
    await post(client, b"nope")
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert 'presize_webhook_admissions_total{outcome="patched"} 1.0' in text
    assert 'presize_webhook_bad_requests_total{reason="invalid-review"} 1.0' in text
    assert "presize_webhook_admission_seconds_count 1.0" in text


async def test_wrong_method_is_405(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/mutate")).status == 405
