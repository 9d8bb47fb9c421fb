"""The Helm chart installed for real into the local cluster (tests/cluster/conftest.py).

``helm install`` with ``webhook.url`` on 127.0.0.1 (the API server never dials a ClusterIP),
then: the CRDs are established and serve WorkloadProfiles (schema validation, status
subresource, printer columns through ``kubectl get``); the agent DaemonSet and the controller
and webhook Deployments run on the kwok nodes; RBAC is checked both ways, with
SubjectAccessReviews for each ServiceAccount (what it needs is allowed, what it does not is
denied) and by running the real webhook process with its ServiceAccount's token (it patches
its caBundle, lists namespaces and answers the API server's admission calls for an opted-in
namespace, not for its own); ``helm uninstall`` removes everything but the kept CRDs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import free_port, wait_for
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from hack.cluster.localcluster import Binaries, LocalCluster, stop_popen
from presize.model import PodRef, UsageWindow
from presize.wire import Report, Snapshot, encode_report, encode_snapshot_json

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "presize"
SUFFIX = uuid.uuid4().hex[:6]
RELEASE = f"presize-{SUFFIX}"  # contains "presize": object names are "<release>-<component>"
NAMESPACE = f"presize-sys-{SUFFIX}"
CRDS = ("workloadprofiles.presize.io", "presizepolicies.presize.io")


@dataclass
class Release:
    cluster: LocalCluster
    helm: Path
    kubectl: Path
    home: Path
    webhook_port: int
    install_output: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(
            KUBECONFIG=str(self.cluster.kubeconfig),
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
            NO_PROXY="127.0.0.1,localhost",
        )
        return env

    def helm_run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.helm), *args], env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def kubectl_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), *args], env=self.env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    @staticmethod
    def name(component: str) -> str:
        return f"{RELEASE}-{component}"


@pytest.fixture(scope="module")
def release(
    local_cluster: LocalCluster, kube: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    binaries = Binaries.from_cache()
    if not binaries.helm.exists():
        pytest.skip(f"helm not built ({binaries.helm}); run hack/cluster/build.sh helm")
    home = tmp_path_factory.mktemp("helm")
    port = free_port()
    rel = Release(local_cluster, binaries.helm, binaries.kubectl, home, port, "")
    values = home / "values.yaml"
    values.write_text(json.dumps({"webhook": {"url": f"https://127.0.0.1:{port}/mutate"}}))
    started = time.monotonic()
    proc = rel.helm_run(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
        "-f", str(values), "--wait", "--timeout", "180s",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"helm install --wait took {time.monotonic() - started:.1f}s")
    rel.install_output = proc.stdout
    try:
        yield rel
    finally:
        rel.helm_run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--ignore-not-found")
        ext = client.ApiextensionsV1Api(kube)
        for crd in CRDS:
            with contextlib.suppress(ApiException):
                ext.delete_custom_resource_definition(crd)
        with contextlib.suppress(ApiException):
            client.CoreV1Api(kube).delete_namespace(NAMESPACE)


def can(
    kube: client.ApiClient,
    sa: str,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> bool:
    """Whether ServiceAccount ``sa`` of the release may do this (a SubjectAccessReview)."""
    attrs: dict[str, Any] = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attrs["namespace"] = namespace
    if name:
        attrs["name"] = name
    if subresource:
        attrs["subresource"] = subresource
    review = client.AuthorizationV1Api(kube).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{NAMESPACE}:{sa}",
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{NAMESPACE}",
                    "system:authenticated",
                ],
                "resourceAttributes": attrs,
            },
        }
    )
    return bool(review.status.allowed)


# --------------------------------------------------------------------------------------------


def test_install_prints_notes(release: Release) -> None:
    out = release.install_output
    assert "STATUS: deployed" in out
    assert "presize.io/enabled=true" in out
    assert f"by URL https://127.0.0.1:{release.webhook_port}/mutate" in out


def test_crds_established(release: Release, kube: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(kube)
    for name in CRDS:
        crd = ext.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in crd.status.conditions}
        assert conditions.get("Established") == "True", (name, conditions)
        assert conditions.get("NamesAccepted") == "True", (name, conditions)


def test_workload_profiles_are_served(release: Release, kube: client.ApiClient, namespace: str):
    custom = client.CustomObjectsApi(kube)
    group, version = "presize.io", "v1alpha1"
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "WorkloadProfile",
        "metadata": {"name": "web"},
        "spec": {"workload": {"kind": "Deployment", "name": "web"}},
    }
    custom.create_namespaced_custom_object(group, version, namespace, "workloadprofiles", body)
    status = {
        "class": "periodic",
        "model": "seasonal",
        "summary": {"cpuTarget": "250m", "memoryTarget": "300Mi", "coverage": "94%"},
        "containers": [
            {
                "name": "app",
                "recommendation": {"cpu": {"target": "250m", "lower": "100m", "upper": "400m"}},
                "confidence": 0.9,
            }
        ],
        "lastDecision": {"action": "RESIZE_IN_PLACE", "reason": "forecast peak above request"},
    }
    custom.patch_namespaced_custom_object_status(
        group, version, namespace, "workloadprofiles", "web", {"status": status}
    )
    got = custom.get_namespaced_custom_object(group, version, namespace, "workloadprofiles", "web")
    assert got["status"]["summary"]["cpuTarget"] == "250m"
    # The status subresource keeps spec writes and status writes apart.
    custom.patch_namespaced_custom_object(
        group, version, namespace, "workloadprofiles", "web", {"status": {"class": "idle"}}
    )
    got = custom.get_namespaced_custom_object(group, version, namespace, "workloadprofiles", "web")
    assert got["status"]["class"] == "periodic"
    # The structural schema rejects what it does not know.
    bad = {**body, "metadata": {"name": "bad"}}
    bad["spec"] = {"workload": {"kind": "Banana", "name": "x"}}
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(group, version, namespace, "workloadprofiles", bad)
    assert err.value.status == 422
    # A PresizePolicy gets its defaulted mode.
    custom.create_namespaced_custom_object(
        group, version, namespace, "presizepolicies",
        {"apiVersion": f"{group}/{version}", "kind": "PresizePolicy",
         "metadata": {"name": "default"}, "spec": {"buffer": 1.2}},
    )  # fmt: skip
    policy = custom.get_namespaced_custom_object(
        group, version, namespace, "presizepolicies", "default"
    )
    assert policy["spec"]["mode"] == "initial"

    if not release.kubectl.exists():
        pytest.skip("kubectl not built; the printer columns are not checked")
    table = release.kubectl_run("get", "wlp", "-n", namespace)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert re.split(r"\s{2,}", header.strip()) == [
        "NAME", "WORKLOAD", "CLASS", "CPU TARGET", "MEMORY TARGET", "MODEL", "COVERAGE",
        "LAST DECISION", "AGE",
    ]  # fmt: skip
    assert row.split()[:8] == [
        "web", "web", "periodic", "250m", "300Mi", "seasonal", "94%", "RESIZE_IN_PLACE",
    ]  # fmt: skip
    wide = release.kubectl_run("get", "workloadprofiles", "-n", namespace, "-o", "wide")
    assert "forecast peak above request" in wide.stdout
    listed = release.kubectl_run("get", "presize", "-n", namespace, "-o", "name")  # category
    assert sorted(listed.stdout.split()) == [
        "presizepolicy.presize.io/default",
        "workloadprofile.presize.io/web",
    ]


def test_components_run_on_kwok_nodes(release: Release, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    nodes = {n.metadata.name for n in core.list_node(label_selector="type=kwok").items}

    def running() -> dict[str, list[Any]] | None:
        pods = core.list_namespaced_pod(
            NAMESPACE, label_selector=f"app.kubernetes.io/instance={RELEASE}"
        ).items
        by: dict[str, list[Any]] = {}
        for pod in pods:
            if pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None:
                by.setdefault(pod.metadata.labels["app.kubernetes.io/component"], []).append(pod)
        counts = {k: len(v) for k, v in by.items()}
        return by if counts == {"agent": len(nodes), "webhook": 2, "controller": 1} else None

    by = wait_for("the release's pods to run", running, 120)
    assert {p.spec.node_name for p in by["agent"]} == nodes  # one agent per node
    for pods in by.values():
        assert all(p.spec.node_name in nodes for p in pods)
    apps = client.AppsV1Api(kube)
    ds = apps.read_namespaced_daemon_set(release.name("agent"), NAMESPACE)
    assert ds.status.number_ready == ds.status.desired_number_scheduled == len(nodes)
    deploy = apps.read_namespaced_deployment(release.name("webhook"), NAMESPACE)
    assert deploy.status.ready_replicas == 2
    pdb = client.PolicyV1Api(kube).read_namespaced_pod_disruption_budget(
        release.name("webhook"), NAMESPACE
    )
    assert wait_for(
        "the PDB to allow one disruption",
        lambda: (
            client.PolicyV1Api(kube)
            .read_namespaced_pod_disruption_budget(release.name("webhook"), NAMESPACE)
            .status.disruptions_allowed
            == 1
        ),
        30,
    )
    assert pdb.spec.min_available == 1


def test_rbac_allows_what_each_component_needs(release: Release, kube: client.ApiClient) -> None:
    agent, controller, webhook = (release.name(c) for c in ("agent", "controller", "webhook"))
    ns = "some-team"
    allowed = [
        (agent, "list", "pods", {}),
        (agent, "watch", "pods", {}),
        (agent, "get", "nodes", {"name": "kwok-node-0"}),
        (controller, "patch", "pods", {"namespace": ns, "subresource": "resize"}),
        (controller, "create", "pods", {"namespace": ns, "subresource": "eviction"}),
        (controller, "watch", "pods", {}),
        (controller, "create", "events", {"namespace": ns}),
        (controller, "create", "workloadprofiles", {"group": "presize.io", "namespace": ns}),
        (controller, "patch", "workloadprofiles",
         {"group": "presize.io", "namespace": ns, "subresource": "status"}),
        (controller, "watch", "presizepolicies", {"group": "presize.io"}),
        (controller, "list", "replicasets", {"group": "apps"}),
        (controller, "watch", "cronjobs", {"group": "batch"}),
        (controller, "list", "limitranges", {}),
        (controller, "create", "tokenreviews", {"group": "authentication.k8s.io"}),
        (controller, "watch", "horizontalpodautoscalers", {"group": "autoscaling"}),
        (controller, "list", "poddisruptionbudgets", {"group": "policy"}),
        (controller, "create", "leases", {"group": "coordination.k8s.io", "namespace": NAMESPACE}),
        (controller, "update", "leases",
         {"group": "coordination.k8s.io", "namespace": NAMESPACE, "name": controller}),
        (webhook, "list", "namespaces", {}),
        (webhook, "list", "limitranges", {}),
        (webhook, "patch", "mutatingwebhookconfigurations",
         {"group": "admissionregistration.k8s.io", "name": RELEASE}),
        (webhook, "update", "secrets", {"namespace": NAMESPACE, "name": f"{RELEASE}-webhook-tls"}),
    ]  # fmt: skip
    missing = [(sa, verb, res, kw) for sa, verb, res, kw in allowed
               if not can(kube, sa, verb, res, **kw)]  # fmt: skip
    assert not missing, f"denied but needed: {missing}"


def test_rbac_denies_the_rest(release: Release, kube: client.ApiClient) -> None:
    agent, controller, webhook = (release.name(c) for c in ("agent", "controller", "webhook"))
    denied = [
        (sa, verb, res, kw)
        for sa in (agent, controller, webhook)
        for verb, res, kw in [
            ("list", "secrets", {}),
            ("get", "secrets", {"namespace": "kube-system", "name": "anything"}),
            ("delete", "nodes", {"name": "kwok-node-0"}),
            ("create", "pods", {"namespace": "default"}),
            ("delete", "pods", {"namespace": "default"}),
            ("patch", "deployments", {"group": "apps", "namespace": "default"}),
            ("create", "clusterrolebindings", {"group": "rbac.authorization.k8s.io"}),
            ("impersonate", "serviceaccounts", {}),
        ]
    ] + [
        (agent, "patch", "pods", {"namespace": "default"}),
        (agent, "list", "nodes", {}),
        (controller, "update", "presizepolicies", {"group": "presize.io", "namespace": "x"}),
        (controller, "update", "leases",
         {"group": "coordination.k8s.io", "namespace": NAMESPACE, "name": "someone-else"}),
        (controller, "create", "leases", {"group": "coordination.k8s.io", "namespace": "default"}),
        (webhook, "patch", "mutatingwebhookconfigurations",
         {"group": "admissionregistration.k8s.io", "name": "someone-elses"}),
        (webhook, "get", "secrets", {"namespace": NAMESPACE, "name": "another-secret"}),
        (webhook, "create", "secrets", {"namespace": NAMESPACE}),
        (webhook, "list", "pods", {}),
    ]  # fmt: skip
    granted = [(sa, verb, res, kw) for sa, verb, res, kw in denied
               if can(kube, sa, verb, res, **kw)]  # fmt: skip
    assert not granted, f"allowed but not needed: {granted}"


def _token_kubeconfig(release: Release, kube: client.ApiClient, sa: str, path: Path) -> Path:
    token = (
        client.CoreV1Api(kube)
        .create_namespaced_service_account_token(
            sa, NAMESPACE, {"spec": {"expirationSeconds": 3600}}
        )
        .status.token
    )
    cluster = release.cluster
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {
                    "server": cluster.api_url, "certificate-authority": str(cluster.ca_cert)}}],
                "users": [{"name": sa, "user": {"token": token}}],
                "contexts": [{"name": sa, "context": {"cluster": "local", "user": sa}}],
                "current-context": sa,
            }
        )
    )  # fmt: skip
    return path


def _metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def test_real_webhook_works_with_its_service_account(
    release: Release, kube: client.ApiClient, tmp_path: Path
) -> None:
    """The webhook process, authenticated as the chart's ServiceAccount, patches the caBundle of
    the release's configuration, fills its namespace cache, and is called by the API server for
    pods of an opted-in namespace but not for pods of the release's own namespace."""
    kubeconfig = _token_kubeconfig(release, kube, release.name("webhook"), tmp_path / "kc.json")
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_bytes(encode_snapshot_json(Snapshot(generation=1, generated_at=time.time())))
    certs = tmp_path / "certs"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(REPO)
    log = (tmp_path / "webhook.log").open("wb")
    port = release.webhook_port
    proc = subprocess.Popen(
        [sys.executable, "-m", "webhook", "--host", "127.0.0.1", "--port", str(port),
         "--generate-certs", str(certs), "--cert-hosts", "127.0.0.1",
         "--webhook-config", RELEASE, "--kubeconfig", str(kubeconfig),
         "--snapshot-file", str(snapshot), "--namespace-refresh-s", "1"],
        cwd=REPO, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    core = client.CoreV1Api(kube)
    opted_in = f"presize-on-{SUFFIX}"
    try:

        def metrics() -> str:
            ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
            url = f"https://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
                return str(resp.read().decode())

        def refreshed() -> str | None:
            assert proc.poll() is None, (tmp_path / "webhook.log").read_text()[-3000:]
            text = metrics()
            ok = 'presize_webhook_namespace_refreshes_total{result="ok"}'
            return text if _metric(text, ok) >= 1 else None

        wait_for("the webhook to list namespaces with its token", refreshed, 60)
        mwc = client.AdmissionregistrationV1Api(kube).read_mutating_webhook_configuration(RELEASE)
        (hook,) = mwc.webhooks
        assert hook.client_config.ca_bundle, "caBundle was not patched by the webhook"
        assert base64.b64decode(hook.client_config.ca_bundle) == (certs / "ca.crt").read_bytes()

        # The same token is refused what the chart does not grant.
        scoped = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        with pytest.raises(ApiException) as err:
            scoped.list_secret_for_all_namespaces()
        assert err.value.status == 403

        core.create_namespace(
            {"metadata": {"name": opted_in, "labels": {"presize.io/enabled": "true"}}}
        )
        wait_for("the default ServiceAccount",
                 lambda: core.read_namespaced_service_account("default", opted_in))  # fmt: skip
        core.patch_namespace(NAMESPACE, {"metadata": {"labels": {"presize.io/enabled": "true"}}})
        admissions = "presize_webhook_admissions_total"
        before = _metric(metrics(), admissions)
        pod = {
            "metadata": {"generateName": "p-"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
        }

        def called() -> bool:
            core.create_namespaced_pod(opted_in, pod)
            return _metric(metrics(), admissions) > before

        wait_for("an admission call for the opted-in namespace", called, 60)
        # Its own namespace is excluded, labelled or not.
        before = _metric(metrics(), admissions)
        for _ in range(3):
            core.create_namespaced_pod(NAMESPACE, pod)
        time.sleep(1)
        assert _metric(metrics(), admissions) == before
    finally:
        stop_popen(proc, 10)
        log.close()
        with contextlib.suppress(ApiException):
            core.delete_namespace(opted_in)
        with contextlib.suppress(ApiException):
            core.delete_collection_namespaced_pod(
                NAMESPACE, label_selector="!app.kubernetes.io/instance"
            )


def test_real_controller_works_with_its_service_account(
    release: Release, kube: client.ApiClient, tmp_path: Path
) -> None:
    """The controller process, authenticated as the chart's ServiceAccount: it takes the
    release's Lease, watches what it needs without a 403, checks an agent's token with a
    TokenReview (the agent's ServiceAccount, the chart's audience), and writes the
    WorkloadProfile of the workload it was told about, status included."""
    kubeconfig = _token_kubeconfig(release, kube, release.name("controller"), tmp_path / "kc.json")
    core = client.CoreV1Api(kube)
    agent_token = core.create_namespaced_service_account_token(
        release.name("agent"), NAMESPACE,
        {"spec": {"audiences": ["presize-controller"], "expirationSeconds": 3600}},
    ).status.token  # fmt: skip
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(REPO)
    port = free_port()
    log_path = tmp_path / "controller.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "--kubeconfig", str(kubeconfig),
         "--host", "127.0.0.1", "--port", str(port), "--token-audience", "presize-controller",
         "--agent-identity", f"system:serviceaccount:{NAMESPACE}:{release.name('agent')}",
         "--leader-elect", "--lease-name", release.name("controller"),
         "--lease-namespace", NAMESPACE, "--identity", "rbac-test",
         "--step", "10", "--profile-period", "1", "--checkpoint-period", "1"],
        cwd=REPO, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    team = f"presize-team-{SUFFIX}"
    coord = client.CoordinationV1Api(kube)
    custom = client.CustomObjectsApi(kube)
    try:
        core.create_namespace(
            {"metadata": {"name": team, "labels": {"presize.io/enabled": "true"}}}
        )
        wait_for("the default ServiceAccount",
                 lambda: core.read_namespaced_service_account("default", team))  # fmt: skip
        pod = core.create_namespaced_pod(team, {
            "metadata": {"name": "solo"},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1",
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                   "limits": {"cpu": "200m", "memory": "128Mi"}}}],
                     "tolerations": [{"operator": "Exists"}]},
        })  # fmt: skip

        def leading() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            lease = coord.read_namespaced_lease(release.name("controller"), NAMESPACE)
            return bool(lease.spec.holder_identity == "rbac-test")

        wait_for("the controller to take the release's Lease", leading, 60)

        def post(token: str) -> int:
            now = time.time()
            windows = tuple(
                UsageWindow(pod=PodRef(team, "solo", pod.metadata.uid, "kwok-node-0"),
                            container="app", start=now - 60 + 10 * i, seconds=10.0, samples=10,
                            cpu_mean=0.05, cpu_max=0.06, cpu_p50=0.05, cpu_p90=0.05,
                            cpu_p99=0.06, cpu_throttled_fraction=0.0, mem_mean=3e7,
                            mem_max=3.2e7)
                for i in range(5)
            )  # fmt: skip
            body = encode_report(Report(node="kwok-node-0", agent_id="rbac", sent_at=now,
                                        sequence=int(now * 1000), windows=windows))  # fmt: skip
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/reports", data=body, method="POST",
                headers={"Authorization": f"Bearer {token}",
                         "Content-Type": "application/msgpack"},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as err:
                return int(err.code)

        assert post("not-a-token") == 401
        wait_for("the agent's report accepted", lambda: post(agent_token) == 200, 60)

        def profile() -> bool:
            post(agent_token)
            obj = custom.get_namespaced_custom_object(
                "presize.io", "v1alpha1", team, "workloadprofiles", "pod-solo"
            )
            return bool((obj.get("status") or {}).get("checkpoint"))

        wait_for("the controller to write the WorkloadProfile with its status", profile, 90)
        text = log_path.read_text()
        assert "HTTP 403" not in text, text[-3000:]
    finally:
        stop_popen(proc, 20)
        log.close()
        with contextlib.suppress(ApiException):
            core.delete_namespace(team)


def test_uninstall_cleans_up(release: Release, kube: client.ApiClient) -> None:
    proc = release.helm_run("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    selector = f"app.kubernetes.io/instance={RELEASE}"
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    rbac = client.RbacAuthorizationV1Api(kube)
    leftovers: dict[str, list[Any]] = {
        "deployments": apps.list_namespaced_deployment(NAMESPACE, label_selector=selector).items,
        "daemonsets": apps.list_namespaced_daemon_set(NAMESPACE, label_selector=selector).items,
        "services": core.list_namespaced_service(NAMESPACE, label_selector=selector).items,
        "serviceaccounts": core.list_namespaced_service_account(
            NAMESPACE, label_selector=selector
        ).items,
        "secrets": core.list_namespaced_secret(NAMESPACE, label_selector=selector).items,
        "roles": rbac.list_namespaced_role(NAMESPACE, label_selector=selector).items,
        "rolebindings": rbac.list_namespaced_role_binding(NAMESPACE, label_selector=selector).items,
        "clusterroles": rbac.list_cluster_role(label_selector=selector).items,
        "clusterrolebindings": rbac.list_cluster_role_binding(label_selector=selector).items,
        "pdbs": client.PolicyV1Api(kube)
        .list_namespaced_pod_disruption_budget(NAMESPACE, label_selector=selector)
        .items,
        "mwcs": client.AdmissionregistrationV1Api(kube)
        .list_mutating_webhook_configuration(label_selector=selector)
        .items,
    }
    assert {k: [o.metadata.name for o in v] for k, v in leftovers.items() if v} == {}
    # The release's pods go with their controllers (kwok deletes them).
    wait_for(
        "the release's pods to go",
        lambda: not core.list_namespaced_pod(NAMESPACE, label_selector=selector).items,
        60,
    )
    # The CRDs are kept on purpose (helm.sh/resource-policy: keep): they hold user data.
    ext = client.ApiextensionsV1Api(kube)
    for crd in CRDS:
        assert ext.read_custom_resource_definition(crd).metadata.name == crd
