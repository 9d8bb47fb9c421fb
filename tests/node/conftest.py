"""Fixtures for the real-node tier: presize installed by its Helm chart on a real kubelet.

``real_cluster`` (session): the local control plane plus one real node (kubelet, containerd,
runc, CNI bridge, kube-proxy, CoreDNS; ``hack/cluster/realnode.py``), with presize's three
images built from their Dockerfiles (``hack/docker/images.py``, cached by content) and imported
into the node's containerd. Everything is stopped by pid and the host restored at the end.
Skipped when root, the Debian packages or the cached binaries are missing; with
``PRESIZE_REQUIRE_NODE=1`` (as CI sets) a skip becomes a failure.

``presize`` (session): ``helm install`` of ``charts/presize`` with its default values into
``presize-system`` (the images carry the chart's appVersion tag, so not even the image
references are overridden), waited for until every pod is Ready.

``app_namespace`` (function): a namespace opted in with ``presize.io/enabled=true`` and mode
``auto``, deleted afterwards. Workloads run ``tests/node/workload.py`` from a ConfigMap with the
Python of presize's controller image.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from hack.cluster.localcluster import Binaries
from hack.cluster.realnode import RealCluster, host_snapshot
from hack.docker.images import app_version

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "presize"
RELEASE = "presize"
NAMESPACE = "presize-system"
WORKLOAD = Path(__file__).with_name("workload.py")
T = TypeVar("T")


def _unavailable(reason: str) -> None:
    if os.environ.get("PRESIZE_REQUIRE_NODE") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll ``probe`` (an exception counts as "not yet") until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            error = None
        except Exception as err:
            error = err
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r}, {error!r})")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``helm uninstall`` ends the release every other node test uses: it runs last."""
    last = [i for i in items if i.nodeid.startswith("tests/node/test_uninstall.py")]
    items[:] = [i for i in items if i not in last] + last


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    if os.geteuid() != 0:
        _unavailable("the real node needs root")
    for tool in ("containerd", "runc", "ctr", "dockerd", "debootstrap", "gcc"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} missing: see .ci/run for the Debian packages")
    binaries = Binaries.from_cache()
    missing = [
        p
        for p in (*binaries.required(), binaries.kubelet, binaries.kube_proxy, binaries.coredns)
        if not p.exists()
    ]
    if missing:
        _unavailable(f"binaries not built (hack/cluster/build.sh): {missing}")
    from hack.docker.images import build_images

    started = time.monotonic()
    built = build_images()
    print(f"presize images ready in {time.monotonic() - started:.0f}s: {built}")
    archives = [Path(built[c]) for c in ("agent", "controller", "webhook")]
    workdir = tmp_path_factory.mktemp("real-node")
    before = host_snapshot()
    real = RealCluster(workdir, image_archives=archives)
    try:
        real.start()
        print(f"real node timings: {real.timings} {real.node.timings}")
        yield real
    finally:
        real.stop()
    after = host_snapshot()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"the node did not restore the host: {changed}"


@pytest.fixture(scope="session")
def api(real_cluster: RealCluster) -> Iterator[client.ApiClient]:
    kube = config.new_client_from_config(config_file=str(real_cluster.cluster.kubeconfig))
    try:
        yield kube
    finally:
        kube.close()


@dataclass
class Presize:
    """The installed release and the tools to look at it."""

    real: RealCluster
    api: client.ApiClient
    home: Path
    install_seconds: float
    fleet: dict[str, str] = field(default_factory=dict)  # mode -> namespace of FLEET

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(
            KUBECONFIG=str(self.real.cluster.kubeconfig),
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
        )
        return env

    def helm(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        helm = self.real.cluster.binaries.helm
        return subprocess.run(
            [str(helm), *args], env=self.env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        kubectl = self.real.cluster.binaries.kubectl
        return subprocess.run(
            [str(kubectl), *args], env=self.env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip

    def pods(self, component: str) -> list[Any]:
        core = client.CoreV1Api(self.api)
        selector = f"app.kubernetes.io/component={component}"
        return list(core.list_namespaced_pod(NAMESPACE, label_selector=selector).items)

    def logs(self, component: str) -> str:
        core = client.CoreV1Api(self.api)
        out = []
        for pod in self.pods(component):
            with contextlib.suppress(ApiException):
                out.append(core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE))
        return "\n".join(out)


def all_ready(pods: list[Any]) -> bool:
    return bool(pods) and all(
        p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        for p in pods
    )


@pytest.fixture(scope="session")
def presize(
    real_cluster: RealCluster, api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Presize]:
    home = tmp_path_factory.mktemp("helm")
    started = time.monotonic()
    release = Presize(real_cluster, api, home, 0.0)
    proc = release.helm(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace", "--wait",
        "--timeout", "240s",
    )  # fmt: skip
    if proc.returncode != 0:
        state = release.kubectl("get", "pods", "-A", "-o", "wide").stdout
        events = release.kubectl("get", "events", "-n", NAMESPACE).stdout
        pytest.fail(f"helm install failed:\n{proc.stdout}{proc.stderr}\n{state}\n{events}")
    wait_for(
        "every presize pod Ready",
        lambda: all(all_ready(release.pods(c)) for c in ("agent", "controller", "webhook")),
        120,
    )
    release.install_seconds = time.monotonic() - started
    print(f"helm install --wait and every pod Ready: {release.install_seconds:.1f}s")
    release.fleet = create_fleet(api)
    try:
        yield release
    finally:
        for ns in release.fleet.values():
            delete_namespace(api, ns)
        release.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--ignore-not-found")


def opted_in_namespace(api: client.ApiClient, prefix: str, mode: str) -> str:
    """A new namespace labelled ``presize.io/enabled=true`` in ``mode``, with the workload
    script's ConfigMap and its default ServiceAccount."""
    core = client.CoreV1Api(api)
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    labels, notes = {"presize.io/enabled": "true"}, {"presize.io/mode": mode}
    core.create_namespace({"metadata": {"name": name, "labels": labels, "annotations": notes}})
    core.create_namespaced_config_map(
        name, {"metadata": {"name": "workload"}, "data": {"workload.py": WORKLOAD.read_text()}}
    )
    wait_for(
        "the default ServiceAccount",
        lambda: core.read_namespaced_service_account("default", name),
        30,
    )
    return name


def delete_namespace(api: client.ApiClient, name: str) -> None:
    with contextlib.suppress(ApiException):
        client.CoreV1Api(api).delete_namespace(name, grace_period_seconds=0)


# Workloads created right after the install, so that presize has watched them for a few
# minutes (its profiles need a few agent batches) by the time the tests that need a profile
# run: mode -> name -> (workload spec, cpu, memory).
FLEET: dict[str, dict[str, tuple[dict[str, Any], str, str]]] = {
    "initial": {"web": ({"cpu": {"value": 0.05}, "memory_mb": 40}, "400m", "256Mi")},
    "auto": {
        "steady": ({"cpu": {"value": 0.05}, "memory_mb": 40}, "200m", "128Mi"),
        "big": ({"cpu": {"value": 0.02}}, "100m", "64Mi"),
        "holder": ({"memory_mb": 80}, "100m", "160Mi"),
        "waiter": ({"cpu": {"value": 0.02}}, "100m", "64Mi"),
    },
}


def create_fleet(api: client.ApiClient) -> dict[str, str]:
    apps = client.AppsV1Api(api)
    namespaces = {}
    for mode, workloads in FLEET.items():
        ns = namespaces[mode] = opted_in_namespace(api, f"fleet-{mode}", mode)
        for name, (spec, cpu, memory) in workloads.items():
            apps.create_namespaced_deployment(ns, workload(name, spec, cpu=cpu, memory=memory))
    return namespaces


def wait_profile(api: client.ApiClient, namespace: str, name: str, timeout: float = 300) -> Any:
    """The WorkloadProfile of deployment ``name`` once it has its container's profile."""

    def ready() -> Any:
        obj = profile(api, namespace, f"deployment-{name}") or {}
        return obj if obj.get("status", {}).get("containers") else None

    return wait_for(f"the WorkloadProfile of deployment/{name}", ready, timeout)


@pytest.fixture
def app_namespace(presize: Presize, api: client.ApiClient) -> Iterator[str]:
    name = opted_in_namespace(api, "app", "auto")
    try:
        yield name
    finally:
        delete_namespace(api, name)


def workload(
    name: str,
    spec: dict[str, Any],
    *,
    cpu: str,
    memory: str,
    limit_cpu: str | None = None,
    limit_memory: str | None = None,
    replicas: int = 1,
    image: str = "",
) -> dict[str, Any]:
    """A Deployment whose one container runs ``workload.py`` with ``spec``; resize policy
    NotRequired for both resources (what in-place resize needs)."""
    limits = {"cpu": limit_cpu or cpu, "memory": limit_memory or memory}
    image = image or f"presize/controller:{app_version()}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "/work/workload.py", json.dumps(spec)],
                            "resources": {
                                "requests": {"cpu": cpu, "memory": memory},
                                "limits": limits,
                            },
                            "resizePolicy": [
                                {"resourceName": "cpu", "restartPolicy": "NotRequired"},
                                {"resourceName": "memory", "restartPolicy": "NotRequired"},
                            ],
                            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                        }
                    ],
                    "volumes": [{"name": "work", "configMap": {"name": "workload"}}],
                },
            },
        },
    }


def running_pods(api: client.ApiClient, namespace: str, app: str) -> list[Any]:
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.status.phase == "Running"
        and p.metadata.deletion_timestamp is None
        and p.status.container_statuses
        and p.status.container_statuses[0].state.running is not None
    ]


def container_cgroup(pod: Any, controller: str) -> Path:
    """The container's cgroup directory in a v1 hierarchy, as the kubelet's cgroupfs driver
    lays it out: /sys/fs/cgroup/<controller>/kubepods[/<qos>]/pod<uid>/<container id>."""
    cid = pod.status.container_statuses[0].container_id.split("://", 1)[1]
    base = Path("/sys/fs/cgroup") / controller / "kubepods"
    for qos in ("", "burstable", "besteffort"):
        path = (base / qos if qos else base) / f"pod{pod.metadata.uid}" / cid
        if path.is_dir():
            return path
    raise FileNotFoundError(f"no {controller} cgroup for {pod.metadata.name} ({cid})")


def events(api: client.ApiClient, namespace: str, reason: str) -> list[Any]:
    core = client.CoreV1Api(api)
    return [e for e in core.list_namespaced_event(namespace).items if e.reason == reason]


def profile(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    custom = client.CustomObjectsApi(api)
    try:
        obj = custom.get_namespaced_custom_object(
            "presize.io", "v1alpha1", namespace, "workloadprofiles", name
        )
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return obj  # type: ignore[no-any-return]


def set_mode(api: client.ApiClient, namespace: str, mode: str) -> None:
    client.CoreV1Api(api).patch_namespace(
        namespace, {"metadata": {"annotations": {"presize.io/mode": mode}}}
    )


def read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def kubelet_cpu_files(request_cores: float, limit_cores: float) -> tuple[int, int]:
    """``(cpu.shares, cpu.cfs_quota_us)`` the kubelet writes on cgroup v1 for these values
    (shares = milli × 1024 / 1000, at least 2; quota = milli × period / 1000, period 100 ms)."""
    milli_request, milli_limit = round(request_cores * 1000), round(limit_cores * 1000)
    return max(2, milli_request * 1024 // 1000), max(1000, milli_limit * 100)


def pod_resources(pod: Any) -> tuple[dict[str, str], dict[str, str]]:
    res = pod.spec.containers[0].resources
    return dict(res.requests or {}), dict(res.limits or {})


def status_resources(pod: Any) -> tuple[dict[str, str], dict[str, str]]:
    res = pod.status.container_statuses[0].resources
    return dict(res.requests or {}), dict(res.limits or {})


def read_pod(api: client.ApiClient, namespace: str, name: str) -> Any:
    return client.CoreV1Api(api).read_namespaced_pod(name, namespace)


def decision(api: client.ApiClient, namespace: str, workload_name: str) -> dict[str, Any]:
    obj = profile(api, namespace, workload_name) or {}
    last = obj.get("status", {}).get("lastDecision") or {}
    return last if isinstance(last, dict) else {}


def metric(presize: Presize, component: str, prefix: str, *labels: str) -> float:
    """Sum of the samples of metrics starting with ``prefix`` whose labels include each of
    ``labels`` (e.g. ``'namespace="x"'``), read from each pod's /metrics through the
    apiserver's pod proxy (the kubelet serves nothing of presize's)."""
    core = client.CoreV1Api(presize.api)
    total = 0.0
    for pod in presize.pods(component):
        port = pod.spec.containers[0].ports[0].container_port
        name = f"{pod.metadata.name}:{port}"
        if component == "webhook":
            name = f"https:{name}"
        text = core.connect_get_namespaced_pod_proxy_with_path(name, NAMESPACE, "metrics")
        for line in str(text).splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if (
                line.startswith(prefix)
                and not name.endswith("_created")
                and all(label in line for label in labels)
            ):
                total += float(line.rsplit(" ", 1)[1])
    return total
