"""The webhook against a real kube-apiserver: registered by URL with its own CA.

Set-up (once per module): three namespaces (opted in, opted in with a LimitRange, not opted
in), a MutatingWebhookConfiguration pointing at ``https://127.0.0.1:PORT/mutate`` with
``failurePolicy: Ignore`` and a 2 s timeout, a tiny HTTP stub on 127.0.0.1 that serves
``GET /v1/snapshot`` (a stand-in for the controller, which is not built yet), and the webhook
as a separate process (``python -m webhook``) that generates its CA and serving certificate,
writes the CA into the configuration's ``caBundle``, and lists namespaces and LimitRanges
through the admin kubeconfig.

Checked: pods of a Deployment in an opted-in namespace get the predicted requests and the
``presize.io/applied`` annotation; Guaranteed and BestEffort pods keep their QoS class; a
namespace without the label is untouched; an excluded pod is untouched; a LimitRange bounds
the result (and the API server accepts the pod); with the webhook process stopped, pods are
still created. The QoS class is read from ``status.qosClass``, which the API server computes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException

from hack.cluster.localcluster import LocalCluster
from hack.cluster.webhooks import loopback_webhook_configuration
from presize.model import (
    ContainerKey,
    OwnerKind,
    Recommendation,
    ResourceRecommendation,
    WorkloadClass,
    WorkloadKey,
)
from presize.units import MIB
from presize.wire import Snapshot, encode_snapshot_json

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SUFFIX = uuid.uuid4().hex[:6]
NS_ON, NS_LR, NS_OFF = f"wh-on-{SUFFIX}", f"wh-lr-{SUFFIX}", f"wh-off-{SUFFIX}"
MWC = f"presize-test-{SUFFIX}"


def _rec(ns: str, kind: OwnerKind, name: str, cpu: float, memory: float) -> Recommendation:
    return Recommendation(
        key=ContainerKey(WorkloadKey(ns, kind, name), "app"),
        cpu=ResourceRecommendation(target=cpu, lower=cpu / 2, upper=cpu * 2),
        memory=ResourceRecommendation(target=memory, lower=memory / 2, upper=memory * 2),
        workload_class=WorkloadClass.STEADY,
        confidence=0.9,
        generation=3,
        mem_peak=memory * 0.9,
    )


def _snapshot() -> Snapshot:
    recs = [
        _rec(ns, OwnerKind.DEPLOYMENT, name, 0.25, 300 * MIB)
        for ns in (NS_ON, NS_OFF)
        for name in ("web", "guaranteed", "besteffort")
    ]
    recs += [
        _rec(NS_ON, OwnerKind.POD, "excluded", 0.25, 300 * MIB),
        _rec(NS_ON, OwnerKind.DEPLOYMENT, "after", 0.25, 300 * MIB),
        _rec(NS_LR, OwnerKind.DEPLOYMENT, "big", 3.0, 100 * MIB),  # LimitRange: cpu max 500m
    ]
    return Snapshot(generation=11, generated_at=time.time(), recommendations=tuple(recs))


class ControllerStub:
    """Serves ``GET /v1/snapshot`` with an ETag on 127.0.0.1: the controller's stand-in."""

    def __init__(self, body: bytes) -> None:
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/v1/snapshot":
                    self.send_error(404)
                    return
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/snapshot"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ControllerStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _webhook_configuration(port: int) -> dict[str, Any]:
    return loopback_webhook_configuration(MWC, port, timeout_s=2)


class WebhookProcess:
    """``python -m webhook`` as a child process, stopped by its pid."""

    def __init__(self, workdir: Path, port: int, snapshot_url: str, kubeconfig: Path) -> None:
        self.workdir = workdir
        self.port = port
        self.ca_file = workdir / "certs" / "ca.crt"
        args = [
            sys.executable, "-m", "webhook", "--host", "127.0.0.1", "--port", str(port),
            "--generate-certs", str(workdir / "certs"), "--cert-hosts", "127.0.0.1",
            "--webhook-config", MWC, "--kubeconfig", str(kubeconfig),
            "--snapshot-url", snapshot_url, "--snapshot-refresh-s", "1",
            "--namespace-refresh-s", "1", "--log-level", "DEBUG",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["PYTHONPATH"] = str(REPO)
        self.log = (workdir / "webhook.log").open("wb")
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=self.log, stderr=self.log)

    def get(self, path: str) -> str:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        url = f"https://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return str(resp.read().decode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    def tail(self) -> str:
        return (self.workdir / "webhook.log").read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def core(kube: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube)


@pytest.fixture(scope="module")
def webhook(
    local_cluster: LocalCluster, kube: client.ApiClient, core: client.CoreV1Api,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebhookProcess]:  # fmt: skip
    for ns, enabled in ((NS_ON, True), (NS_LR, True), (NS_OFF, False)):
        labels = {"presize.io/enabled": "true"} if enabled else {}
        core.create_namespace({"metadata": {"name": ns, "labels": labels}})
    core.create_namespaced_limit_range(
        NS_LR,
        {
            "metadata": {"name": "bounds"},
            "spec": {
                "limits": [
                    {"type": "Container", "max": {"cpu": "500m"}, "min": {"memory": "200Mi"}}
                ]
            },
        },
    )
    admission = client.AdmissionregistrationV1Api(kube)
    port = _free_port()
    admission.create_mutating_webhook_configuration(_webhook_configuration(port))
    workdir = tmp_path_factory.mktemp("webhook")
    with ControllerStub(encode_snapshot_json(_snapshot())) as stub:
        proc = WebhookProcess(workdir, port, stub.url, local_cluster.kubeconfig)
        try:

            def ready() -> bool:
                metrics = proc.get("/metrics")
                return (
                    "presize_webhook_snapshot_generation 11.0" in metrics
                    and 'presize_webhook_namespace_refreshes_total{result="ok"}' in metrics
                )

            if not wait_for("the webhook to load the snapshot", ready, 60):
                pytest.fail(proc.tail())
            yield proc
        finally:
            proc.stop()
            with contextlib.suppress(ApiException):
                admission.delete_mutating_webhook_configuration(MWC)
            for ns in (NS_ON, NS_LR, NS_OFF):
                with contextlib.suppress(ApiException):
                    core.delete_namespace(ns)


def _deployment(kube: client.ApiClient, ns: str, name: str, resources: dict[str, Any]) -> None:
    body = {
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "example/app:1", "resources": resources}
                    ]
                },
            },
        },
    }
    client.AppsV1Api(kube).create_namespaced_deployment(ns, body)


def _pods(core: client.CoreV1Api, ns: str, app: str, count: int = 2) -> list[Any]:
    def listed() -> list[Any] | None:
        items = core.list_namespaced_pod(ns, label_selector=f"app={app}").items
        return items if len(items) >= count else None

    return wait_for(f"{count} pods of {ns}/{app}", listed)


def _resources(pod: Any) -> dict[str, Any]:
    r = pod.spec.containers[0].resources
    return {"requests": r.requests or {}, "limits": r.limits or {}}


def _applied(pod: Any) -> dict[str, Any] | None:
    raw = (pod.metadata.annotations or {}).get("presize.io/applied")
    return None if raw is None else dict(json.loads(raw))


def test_ca_bundle_was_written_by_the_webhook(
    kube: client.ApiClient, webhook: WebhookProcess
) -> None:
    config = client.AdmissionregistrationV1Api(kube).read_mutating_webhook_configuration(MWC)
    bundle = base64.b64decode(config.webhooks[0].client_config.ca_bundle)
    assert bundle == webhook.ca_file.read_bytes()


def test_deployment_pods_get_the_predicted_requests(
    kube: client.ApiClient, core: client.CoreV1Api, webhook: WebhookProcess
) -> None:
    _deployment(
        kube,
        NS_ON,
        "web",
        {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    )
    for pod in _pods(core, NS_ON, "web"):
        assert _resources(pod) == {
            "requests": {"cpu": "250m", "memory": "300Mi"},
            "limits": {"memory": "600Mi"},  # the user's 2x limit/request ratio is kept
        }
        applied = _applied(pod)
        assert applied is not None
        assert applied["workload"] == f"{NS_ON}/Deployment/web"
        assert applied["snapshot"] == 11
        assert applied["containers"]["app"]["generation"] == 3
        assert applied["containers"]["app"]["requests"]["cpu"] == ["100m", "250m"]
        assert pod.status.qos_class == "Burstable"


def test_guaranteed_and_best_effort_keep_their_qos(
    kube: client.ApiClient, core: client.CoreV1Api, webhook: WebhookProcess
) -> None:
    both = {"cpu": "1", "memory": "1Gi"}
    _deployment(kube, NS_ON, "guaranteed", {"requests": both, "limits": both})
    _deployment(kube, NS_ON, "besteffort", {})
    for pod in _pods(core, NS_ON, "guaranteed"):
        sized = {"cpu": "250m", "memory": "300Mi"}
        assert _resources(pod) == {"requests": sized, "limits": sized}
        assert pod.status.qos_class == "Guaranteed"
    for pod in _pods(core, NS_ON, "besteffort"):
        assert _resources(pod) == {"requests": {}, "limits": {}}
        assert _applied(pod) is None
        assert pod.status.qos_class == "BestEffort"


def test_namespace_without_the_label_is_untouched(
    kube: client.ApiClient, core: client.CoreV1Api, webhook: WebhookProcess
) -> None:
    _deployment(kube, NS_OFF, "web", {"requests": {"cpu": "100m", "memory": "128Mi"}})
    for pod in _pods(core, NS_OFF, "web"):
        assert _resources(pod) == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {}}
        assert _applied(pod) is None


def test_excluded_pod_is_untouched(core: client.CoreV1Api, webhook: WebhookProcess) -> None:
    pod = core.create_namespaced_pod(
        NS_ON,
        {
            "metadata": {"name": "excluded", "annotations": {"presize.io/exclude": "true"}},
            "spec": {
                "containers": [
                    {"name": "app", "image": "x", "resources": {"requests": {"cpu": "100m"}}}
                ]
            },
        },
    )
    assert _resources(pod) == {"requests": {"cpu": "100m"}, "limits": {}}
    assert _applied(pod) is None


def test_limit_range_bounds_the_requests(
    kube: client.ApiClient, core: client.CoreV1Api, webhook: WebhookProcess
) -> None:
    _deployment(kube, NS_LR, "big", {"requests": {"cpu": "100m", "memory": "256Mi"}})
    for pod in _pods(core, NS_LR, "big"):
        # recommended 3 cores and 100Mi; the LimitRange allows at most 500m and at least 200Mi
        assert _resources(pod)["requests"] == {"cpu": "500m", "memory": "200Mi"}
        assert _applied(pod) is not None


def test_pods_are_created_when_the_webhook_is_down(
    kube: client.ApiClient, core: client.CoreV1Api, webhook: WebhookProcess
) -> None:
    """Runs last: it stops the webhook process."""
    webhook.stop()
    assert webhook.proc.returncode == 0, webhook.tail()
    started = time.monotonic()
    _deployment(kube, NS_ON, "after", {"requests": {"cpu": "100m", "memory": "128Mi"}})
    for pod in _pods(core, NS_ON, "after"):
        assert _resources(pod)["requests"] == {"cpu": "100m", "memory": "128Mi"}
        assert _applied(pod) is None
    assert time.monotonic() - started < 30
