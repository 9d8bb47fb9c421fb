"""Fuzz: at least 10,000 random and malformed reviews against the real aiohttp app.

The app runs in a thread on 127.0.0.1 and is driven over a keep-alive HTTP connection, so
the whole transport path (parsing, size cap, error mapping) is exercised, not just ``admit``.
Properties checked for every request:

* the answer is a 4xx with a reason, or a 200 carrying a valid v1 AdmissionReview response
  that echoes the ``uid`` and allows the pod;
* a patch, when present, is a JSON Patch that applies to the object sent, and the patched pod
  has the same QoS class as before;
* no request ever hit the internal-error path (``mutate`` must not raise for any input);
* the server still answers ``/healthz`` afterwards.

Inputs mix raw bytes, arbitrary JSON, envelopes with wrong fields, and pods built from
realistic parts (owners, sidecars, valid and invalid quantities, annotations) so that the
sizing code runs on most of them, not only the parser.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import string
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webhook_builders import NS, apply_patch, decode_patch, index, make_webhook, qos_of, rec

from presize.model import Bounds, OwnerKind, WorkloadKey
from presize.units import MIB
from webhook.mutate import Outcome
from webhook.namespaces import NamespaceInfo, ResourceLimits, StaticNamespaces
from webhook.server import Webhook, make_app

BATCH = 25
EXAMPLES = 404  # 404 x 25 = 10,100 reviews
SENT = {"count": 0, "patched": 0}


class ServerThread:
    """The real app on 127.0.0.1 in its own thread and event loop."""

    def __init__(self, hook: Webhook) -> None:
        self.hook = hook
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(make_app(self.hook), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    workloads = [
        WorkloadKey(NS, OwnerKind.DEPLOYMENT, "web"),
        WorkloadKey(NS, OwnerKind.STATEFULSET, "db"),
        WorkloadKey(NS, OwnerKind.CRONJOB, "web"),
        WorkloadKey(NS, OwnerKind.POD, "web"),
    ]
    recs = [
        r
        for w in workloads
        for r in (
            rec("app", workload=w),
            rec("side", workload=w, cpu=0.05, memory=64 * MIB, mem_peak=80 * MIB),
            rec("proxy", workload=w, cpu=3.0, memory=5000 * MIB),
        )
    ]
    hook = make_webhook(index(*recs), max_body_bytes=256 * 1024)
    limits = ResourceLimits(
        cpu=Bounds(maximum=4.0), memory=Bounds(minimum=32 * MIB), memory_max_ratio=4
    )
    hook.namespaces = StaticNamespaces({NS: NamespaceInfo(name=NS, enabled=True, container=limits)})
    with ServerThread(hook) as running:
        yield running


# ---------------------------------------------------------------- strategies

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
cpu_quantities = st.sampled_from(["0", "1m", "100m", "250m", "1", "2", "1500m", "0.5", "64"])
mem_quantities = st.sampled_from(["0", "1Ki", "64Mi", "128Mi", "1Gi", "1G", "300M", "2Gi"])
bad_quantities = (
    st.sampled_from(["", "lots", "-1", "1.2.3", "1e999999", "Infinity", "0x10"]) | json_scalars
)
quantities = cpu_quantities | mem_quantities | bad_quantities


@st.composite
def resource_maps(draw: st.DrawFn) -> Any:
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return draw(json_values)
    out: dict[str, Any] = {}
    for part in ("requests", "limits"):
        if draw(st.booleans()):
            section = {}
            if draw(st.booleans()):
                section["cpu"] = draw(cpu_quantities if shape > 1 else quantities)
            if draw(st.booleans()):
                section["memory"] = draw(mem_quantities if shape > 1 else quantities)
            if draw(st.integers(0, 5)) == 0:
                section["ephemeral-storage"] = "1Gi"
            out[part] = section
    if shape == 9 and "limits" in out:  # make it Guaranteed
        out["requests"] = dict(out["limits"])
    return out


@st.composite
def containers(draw: st.DrawFn, init: bool = False) -> Any:
    c: dict[str, Any] = {
        "name": draw(st.sampled_from(["app", "side", "proxy", "other", ""])),
        "image": "x",
    }
    if draw(st.integers(0, 3)):
        c["resources"] = draw(resource_maps())
    if init and draw(st.booleans()):
        c["restartPolicy"] = draw(st.sampled_from(["Always", "Never", 5]))
    if draw(st.integers(0, 40)) == 0:
        c = draw(json_values)
    return c


DEPLOYMENT_POD = [{"kind": "ReplicaSet", "name": "web-7d9f8b6c5d", "controller": True}]
owners = st.sampled_from(
    [
        None,
        DEPLOYMENT_POD,
        DEPLOYMENT_POD,
        DEPLOYMENT_POD,
        [{"kind": "ReplicaSet", "name": "web-xyz", "controller": True}],
        [{"kind": "StatefulSet", "name": "db"}],
        [{"kind": "Job", "name": "web-29474560", "controller": True}],
        [{"kind": "Rollout", "name": "web"}],
        [{"kind": 5, "name": None}],
        "not-a-list",
        [],
    ]
)


@st.composite
def pods(draw: st.DrawFn) -> Any:
    metadata: dict[str, Any] = {
        "namespace": NS,
        "generateName": draw(st.sampled_from(["web-", "", "-"])),
    }
    refs = draw(owners)
    if refs is not None:
        metadata["ownerReferences"] = refs
    metadata["labels"] = draw(st.sampled_from([{}, {"pod-template-hash": "7d9f8b6c5d"}, None, "x"]))
    annotations = draw(
        st.sampled_from(
            [
                None,
                {},
                {"presize.io/exclude": "true"},
                {"a/b~c": "1"},
                {"presize.io/exclude": "no"},
                7,
            ]
        )
    )
    if annotations is not None:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {"containers": draw(st.lists(containers(), min_size=0, max_size=3))}
    if draw(st.booleans()):
        spec["initContainers"] = draw(st.lists(containers(init=True), max_size=2))
    if draw(st.integers(0, 60)) == 0:
        spec["resources"] = {"requests": {"cpu": "1"}}
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    if draw(st.integers(0, 30)) == 0:
        obj["spec"] = draw(json_values)
    return obj


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[bytes, Any]:
    uid = draw(st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12))
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": NS,
        "operation": "CREATE",
        "object": draw(pods()),
    }
    mutation = draw(st.integers(0, 20))
    if mutation == 1:
        request["kind"] = draw(json_values)
    elif mutation == 2:
        request["operation"] = draw(st.sampled_from(["UPDATE", "DELETE", "CONNECT", 1, None]))
    elif mutation == 3:
        request["uid"] = draw(json_scalars)
    elif mutation == 4:
        request["object"] = draw(json_values)
    elif mutation == 5:
        request["namespace"] = draw(json_scalars)
    elif mutation == 6:
        del request["uid"]
    review: dict[str, Any] = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }
    if mutation == 7:
        review["apiVersion"] = draw(st.sampled_from(["admission.k8s.io/v1beta1", "v1", None]))
    elif mutation == 8:
        review["request"] = draw(json_values)
    body = json.dumps(review).encode()
    if mutation == 9:
        body = body[: draw(st.integers(0, len(body)))]
    return body, review


bodies = (
    envelopes()
    | envelopes()
    | envelopes()
    | envelopes()
    | envelopes()
    | envelopes()
    | st.binary(max_size=300).map(lambda b: (b, None))
    | json_values.map(lambda v: (json.dumps(v).encode(), None))
)


# ---------------------------------------------------------------- the test


def check(status: int, text: bytes, sent: Any) -> None:
    if status != 200:
        assert status in (400, 413), (status, text[:200])
        assert text.strip(), "a 4xx must say why"
        return
    answer = json.loads(text)
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert sent is not None
    assert response["uid"] == sent["request"]["uid"]
    assert response["allowed"] is True
    assert all(isinstance(w, str) and len(w) <= 120 for w in response.get("warnings", []))
    ops = decode_patch(answer)
    if ops:
        SENT["patched"] += 1
        obj = sent["request"]["object"]
        patched = apply_patch(obj, ops)
        assert qos_of(patched) is qos_of(obj)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(batch=st.lists(bodies, min_size=BATCH, max_size=BATCH))
def test_random_reviews_are_answered(server: ServerThread, batch: list[tuple[bytes, Any]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for body, sent in batch:
            conn.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            check(resp.status, resp.read(), sent)
            SENT["count"] += 1
    finally:
        conn.close()


def test_server_survived_the_fuzz(server: ServerThread) -> None:
    """Runs after the fuzz test (file order): count, liveness, and no internal errors."""
    assert SENT["count"] >= 10_000
    print(f"fuzz: {SENT['count']} reviews, {SENT['patched']} patched")
    assert SENT["patched"] >= 250, "too few inputs reached the sizing path"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()
    metrics = server.hook.metrics
    assert metrics.internal_errors._value.get() == 0
    patched = metrics.admissions.labels(outcome=Outcome.PATCHED.value)._value.get()
    assert patched == SENT["patched"]
