"""The local control plane itself: version, fake nodes, scheduling, RBAC, in-place resize.

These are the contract the other cluster tests rely on; each one fails if the piece it names
does not work (wrong binary version, kwok not running, scheduler or controller-manager down,
authorization off, resize subresource missing).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import wait_for
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from hack.cluster.localcluster import KWOK_NODE_LABEL, LOOPBACK, LocalCluster, read_versions

pytestmark = pytest.mark.cluster





def test_apiserver_reports_pinned_version(local_cluster: LocalCluster, kube: Any) -> None:
    pinned = read_versions()["KUBERNETES_VERSION"]
    info = client.VersionApi(kube).get_code()
    assert info.git_version == pinned
    assert f"{info.major}.{info.minor}" == pinned.removeprefix("v").rsplit(".", 1)[0]
    out = subprocess.run(
        [str(local_cluster.binaries.kube_apiserver), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"Kubernetes {pinned}"


def test_api_url_is_loopback(local_cluster: LocalCluster) -> None:
    assert local_cluster.api_url.startswith(f"https://{LOOPBACK}:")
    status, body = local_cluster.request("GET", "/readyz")
    assert (status, body) == (200, "ok")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _tcp_sockets() -> list[tuple[str, str, str, str]]:
    """(local ip, remote ip, state, inode) of every TCP socket, IPs as hex from /proc/net."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            rows.append((f[1].split(":")[0], f[2].split(":")[0], f[3], f[9]))
    return rows


LOOPBACK_HEX = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def test_components_listen_and_connect_on_loopback_only(local_cluster: LocalCluster) -> None:
    sockets = _tcp_sockets()
    for name, pid in local_cluster.pids.items():
        inodes = _socket_inodes(pid)
        mine = [s for s in sockets if s[3] in inodes]
        listening = [s for s in mine if s[2] == "0A"]
        established = [s for s in mine if s[2] == "01"]
        assert all(s[0] in LOOPBACK_HEX for s in listening), (name, listening)
        assert all(s[1] in LOOPBACK_HEX for s in established), (name, established)
        if name != "kwok":  # kwok serves nothing (no --server-address / --node-port)
            assert listening, name
        assert established, name  # everyone talks to etcd or the apiserver


def test_fake_nodes_are_ready_with_configured_capacity(
    local_cluster: LocalCluster, kube: Any
) -> None:
    key, value = KWOK_NODE_LABEL
    nodes = client.CoreV1Api(kube).list_node(label_selector=f"{key}={value}").items
    assert sorted(n.metadata.name for n in nodes) == sorted(local_cluster.node_names)
    assert len(nodes) == local_cluster.node_count
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}.get("Ready")
        assert ready == "True", node.metadata.name
        assert node.status.capacity["cpu"] == local_cluster.node.cpu
        assert node.status.allocatable["memory"] == local_cluster.node.memory
        assert node.status.node_info.kubelet_version.startswith("kwok-")
        addresses = {a.type: a.address for a in node.status.addresses}
        assert addresses["InternalIP"] == LOOPBACK
        assert not node.spec.taints, node.spec.taints


def test_deployment_is_scheduled_and_running_on_kwok_nodes(kube: Any, namespace: str) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "example.invalid/web:1",
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                            }
                        ]
                    },
                },
            },
        },
    )

    def available() -> int | None:
        status = apps.read_namespaced_deployment_status("web", namespace).status
        return status.available_replicas if status.available_replicas == 3 else None

    wait_for("3 available replicas", available, ignore_errors=False)
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    kwok_nodes = {
        n.metadata.name for n in core.list_node(label_selector="=".join(KWOK_NODE_LABEL)).items
    }
    assert len(pods) == 3
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.spec.node_name in kwok_nodes
        assert pod.status.pod_ip  # fake, bookkeeping only: never dialled


def test_rbac_denies_service_account_without_roles(
    local_cluster: LocalCluster, kube: Any, namespace: str
) -> None:
    core, rbac = client.CoreV1Api(kube), client.RbacAuthorizationV1Api(kube)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token

    cfg = client.Configuration()
    cfg.host = local_cluster.api_url
    cfg.ssl_ca_cert = str(local_cluster.ca_cert)
    cfg.api_key = {"BearerToken": token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    with client.ApiClient(cfg) as as_nobody:
        nobody = client.CoreV1Api(as_nobody)
        with pytest.raises(ApiException) as denied:
            nobody.list_namespaced_secret(namespace)
        assert denied.value.status == 403  # authenticated (not 401) but not authorised
        assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)

        # Control: the same token works once a Role grants it, so the 403 was RBAC's doing.
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "read-secrets"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "nobody-reads-secrets"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-secrets",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
            },
        )

        def allowed() -> bool:
            try:
                nobody.list_namespaced_secret(namespace)
            except ApiException as err:
                if err.status != 403:
                    raise
                return False
            return True

        wait_for("the RoleBinding to take effect", allowed, timeout=30, ignore_errors=False)
        with pytest.raises(ApiException) as still_denied:
            nobody.list_namespaced_config_map(namespace)
        assert still_denied.value.status == 403


def test_extra_client_certificate_identity(local_cluster: LocalCluster) -> None:
    kubeconfig = local_cluster.issue_client_kubeconfig("alice", "alice", groups=["dev"])
    with config.new_client_from_config(config_file=str(kubeconfig)) as as_alice:
        review = client.AuthenticationV1Api(as_alice).create_self_subject_review({})
        assert review.status.user_info.username == "alice"
        assert "dev" in review.status.user_info.groups
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(as_alice).list_namespaced_pod("default")
        assert denied.value.status == 403


def _resources(cpu_req: str, cpu_lim: str, mem_req: str, mem_lim: str) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu_req, "memory": mem_req},
        "limits": {"cpu": cpu_lim, "memory": mem_lim},
    }


def test_in_place_resize_through_pods_resize_subresource(kube: Any, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "resizable"},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "example.invalid/app:1",
                        "resources": _resources("100m", "200m", "64Mi", "128Mi"),
                        "resizePolicy": [
                            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
                            {"resourceName": "memory", "restartPolicy": "NotRequired"},
                        ],
                    }
                ]
            },
        },
    )

    def running() -> Any:
        pod = core.read_namespaced_pod("resizable", namespace)
        return pod if pod.status.phase == "Running" else None

    before = wait_for("the pod to run", running, ignore_errors=False)
    generation = before.metadata.generation

    # A plain pod patch may not touch resources: resizes must go through pods/resize.
    wanted = _resources("250m", "500m", "96Mi", "192Mi")
    patch = {"spec": {"containers": [{"name": "app", "resources": wanted}]}}
    with pytest.raises(ApiException) as rejected:
        core.patch_namespaced_pod("resizable", namespace, patch)
    assert rejected.value.status == 422

    resized = core.patch_namespaced_pod_resize("resizable", namespace, patch)
    res = resized.spec.containers[0].resources
    assert res.requests == wanted["requests"]
    assert res.limits == wanted["limits"]
    assert resized.metadata.generation > generation
    assert resized.status.phase == "Running"  # resized in place, not recreated
    assert resized.metadata.uid == before.metadata.uid

    # The simulated kubelet (kwok stage) reports the new values as actual.
    def actuated() -> Any:
        pod = core.read_namespaced_pod("resizable", namespace)
        status = pod.status.container_statuses[0]
        if (
            status.resources is not None
            and status.resources.requests == wanted["requests"]
            and status.resources.limits == wanted["limits"]
            and pod.status.observed_generation == pod.metadata.generation
        ):
            return pod
        return None

    pod = wait_for("the resize to be reported in status", actuated, timeout=30, ignore_errors=False)
    assert pod.status.container_statuses[0].ready is True
    assert pod.status.container_statuses[0].restart_count == 0

    # Decreasing memory below the current limit with NotRequired is allowed in 1.35 as well.
    smaller = _resources("150m", "300m", "80Mi", "160Mi")
    patch = {"spec": {"containers": [{"name": "app", "resources": smaller}]}}
    shrunk = core.patch_namespaced_pod_resize("resizable", namespace, patch)
    assert shrunk.spec.containers[0].resources.limits == smaller["limits"]

    # Invalid resizes are rejected by the subresource too (requests above limits).
    bad = {
        "spec": {
            "containers": [{"name": "app", "resources": _resources("1", "500m", "80Mi", "160Mi")}]
        }
    }
    with pytest.raises(ApiException) as invalid:
        core.patch_namespaced_pod_resize("resizable", namespace, bad)
    assert invalid.value.status == 422
