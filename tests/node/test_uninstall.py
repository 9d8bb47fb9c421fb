"""``helm uninstall`` removes presize's workloads and its webhook configuration; the
application pods keep running with the sizes they had. Runs after every other node test
(tests/node/conftest.py orders it last): it ends the shared release."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.node.conftest import (
    NAMESPACE,
    RELEASE,
    Presize,
    pod_resources,
    running_pods,
    wait_for,
    workload,
)

pytestmark = [pytest.mark.node, pytest.mark.slow]


def test_uninstall_removes_presize_and_leaves_applications_as_they_are(
    presize: Presize, app_namespace: str
) -> None:
    ns = app_namespace
    client.AppsV1Api(presize.api).create_namespaced_deployment(
        ns, workload("stays", {"cpu": {"value": 0.02}}, cpu="150m", memory="64Mi")
    )
    before = {
        p.metadata.name: (pod_resources(p), p.status.container_statuses[0].restart_count)
        for p in wait_for("a running pod", lambda: running_pods(presize.api, ns, "stays"), 90)
    }
    proc = presize.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "120s")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    wait_for(
        "presize's pods gone",
        lambda: not any(presize.pods(c) for c in ("agent", "controller", "webhook")),
        120,
    )
    hooks = client.AdmissionregistrationV1Api(presize.api)
    names = [h.metadata.name for h in hooks.list_mutating_webhook_configuration().items]
    assert not [n for n in names if "presize" in n], names
    apps = client.AppsV1Api(presize.api)
    assert not apps.list_namespaced_deployment(NAMESPACE).items
    assert not apps.list_namespaced_daemon_set(NAMESPACE).items

    after = {
        p.metadata.name: (pod_resources(p), p.status.container_statuses[0].restart_count)
        for p in running_pods(presize.api, ns, "stays")
    }
    assert after == before, "an application pod changed or restarted on uninstall"
    # and new pods are admitted without presize (the webhook configuration is gone)
    apps.patch_namespaced_deployment_scale("stays", ns, {"spec": {"replicas": 2}})
    wait_for("a second pod", lambda: len(running_pods(presize.api, ns, "stays")) == 2, 90)
