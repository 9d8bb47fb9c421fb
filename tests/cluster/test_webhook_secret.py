"""Webhook certificates shared through a Secret, against the real kube-apiserver.

Two replicas bootstrapping at once from the same empty Secret (both read before either
writes, so one update must get a 409 from the API server) end up with the same CA; a CA inside
the renewal window is replaced and the MutatingWebhookConfiguration's ``caBundle`` follows.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from webhook.certs import (
    CertFiles,
    CertMaterial,
    SecretCertRotator,
    ensure_secret_certificates,
    material_is_fresh,
    renew_material,
)
from webhook.kube import KubeSecretStore, patch_ca_bundle
from webhook.metrics import WebhookMetrics

pytestmark = pytest.mark.cluster

NOW = dt.datetime.now(dt.UTC)
HOSTS = ["127.0.0.1"]


class ReadThenWait(KubeSecretStore):
    """Waits for the other replica to have read too before writing: a guaranteed race."""

    def __init__(self, *args: object, barrier: threading.Barrier) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.barrier = barrier
        self.results: list[bool] = []

    def replace(self, data: dict[str, str], resource_version: str) -> bool:
        if not self.results:
            self.barrier.wait(30)
        ok = super().replace(data, resource_version)
        self.results.append(ok)
        return ok


@pytest.fixture
def secret(kube: client.ApiClient, namespace: str) -> str:
    name = "presize-webhook-tls"
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace, {"metadata": {"name": name}, "type": "Opaque"}
    )
    return name


@pytest.fixture
def webhook_config(kube: client.ApiClient) -> Iterator[str]:
    name = f"presize-secret-test-{uuid.uuid4().hex[:6]}"
    admission = client.AdmissionregistrationV1Api(kube)
    admission.create_mutating_webhook_configuration(
        {
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "pods.presize.io",
                    "clientConfig": {"url": "https://127.0.0.1:1/mutate"},
                    "rules": [],
                    "failurePolicy": "Ignore",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        }
    )
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            admission.delete_mutating_webhook_configuration(name)


def _ca_bundle(kube: client.ApiClient, name: str) -> bytes:
    mwc = client.AdmissionregistrationV1Api(kube).read_mutating_webhook_configuration(name)
    return base64.b64decode(mwc.webhooks[0].client_config.ca_bundle)


def test_two_replicas_starting_together_share_one_ca(
    kube: client.ApiClient, namespace: str, secret: str
) -> None:
    barrier = threading.Barrier(2)
    stores = [ReadThenWait(kube, namespace, secret, barrier=barrier) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(ensure_secret_certificates, s, hosts=HOSTS, now=NOW) for s in stores]
        results = [f.result(60) for f in futures]
    (first, wrote_first), (second, wrote_second) = results
    assert first.ca == second.ca
    assert first.serving == second.serving
    assert sorted([wrote_first, wrote_second]) == [False, True]  # one winner, one 409
    assert sorted(ok for s in stores for ok in s.results) == [False, True]
    stored = CertMaterial.from_secret_data(KubeSecretStore(kube, namespace, secret).read()[0])
    assert stored == first
    assert material_is_fresh(first, now=NOW)


def test_a_ca_in_the_renewal_window_is_rotated_and_the_ca_bundle_follows(
    kube: client.ApiClient, namespace: str, secret: str, webhook_config: str, tmp_path: Path
) -> None:
    store = KubeSecretStore(kube, namespace, secret)
    old = renew_material(None, hosts=HOSTS, now=NOW, ca_days=20, serving_days=20)
    assert store.replace(old.to_secret_data(), store.read()[1])
    patch_ca_bundle(kube, webhook_config, old.ca_bundle)
    rotator = SecretCertRotator(
        store, CertFiles(tmp_path), hosts=HOSTS, clock=lambda: NOW, metrics=WebhookMetrics(),
        on_ca=lambda bundle: patch_ca_bundle(kube, webhook_config, bundle),
    )  # fmt: skip
    assert rotator.check_once()
    new = CertMaterial.from_secret_data(store.read()[0])
    assert new is not None
    assert new.ca != old.ca
    assert material_is_fresh(new, now=NOW)
    assert _ca_bundle(kube, webhook_config) == new.ca_bundle
    assert new.ca_bundle.startswith(new.ca.cert_pem)
    assert old.ca.cert_pem in new.ca_bundle
    assert (tmp_path / "tls.crt").read_bytes() == new.serving.cert_pem
    # a second replica starting now reuses the rotated material instead of rotating again
    again, wrote = ensure_secret_certificates(store, hosts=HOSTS, now=NOW)
    assert again == new
    assert not wrote
