"""Fixtures for tests against a real local control plane (hack/cluster/localcluster.py).

``local_cluster`` (session): etcd + kube-apiserver + controller-manager + scheduler + kwok with
two fake nodes, started once per test session and stopped at the end even when tests fail.
Skipped only when the binaries are not in the cache (build them with hack/cluster/build.sh);
set ``PRESIZE_REQUIRE_CLUSTER=1`` (as CI does after building) to turn that skip into a failure.

``kube`` (session): an admin ``kubernetes.client.ApiClient`` for the cluster.
``namespace`` (function): a fresh namespace per test, with its default ServiceAccount present,
deleted afterwards.
``crds`` (module): the chart's two CRDs, rendered by ``helm template``, removed again afterwards
(a later ``helm install`` of the chart must not find CRDs it does not own).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from hack.cluster.crds import crd_manifests
from hack.cluster.localcluster import Binaries, LocalCluster, NodeSpec

NODES = 2
NODE_CPU = "8"
NODE_MEMORY = "32Gi"


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    binaries = Binaries.from_cache()
    missing = binaries.missing()
    if missing:
        reason = (
            "local-cluster binaries are not built; run hack/cluster/build.sh "
            f"(missing: {', '.join(str(p) for p in missing)})"
        )
        if os.environ.get("PRESIZE_REQUIRE_CLUSTER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("local-cluster")
    cluster = LocalCluster(
        workdir,
        nodes=NODES,
        node=NodeSpec(cpu=NODE_CPU, memory=NODE_MEMORY, pods="110"),
        binaries=binaries,
    )
    try:
        cluster.start()  # stops whatever it started if start-up fails
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube(local_cluster: LocalCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(local_cluster.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(kube)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name}})
    deadline = time.monotonic() + 60
    while True:  # the ServiceAccount admission plugin needs it before pods can be created
        try:
            core.read_namespaced_service_account("default", name)
            break
        except ApiException as err:
            if err.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield name
    finally:
        core.delete_namespace(name)


def _wait(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _crd_exists(ext: client.ApiextensionsV1Api, name: str) -> bool:
    try:
        ext.read_custom_resource_definition(name)
        return True
    except ApiException as err:
        if err.status == 404:
            return False
        raise


@pytest.fixture(scope="module")
def crds(local_cluster: LocalCluster, kube: client.ApiClient) -> Iterator[None]:
    try:
        docs = crd_manifests()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    ext = client.ApiextensionsV1Api(kube)
    names = [doc["metadata"]["name"] for doc in docs]
    for doc in docs:
        name = doc["metadata"]["name"]
        with contextlib.suppress(ApiException):
            ext.delete_custom_resource_definition(name)
        _wait(lambda n=name: not _crd_exists(ext, n), 60, f"CRD {name} gone")
        ext.create_custom_resource_definition(doc)

    def established() -> bool:
        for name in names:
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conds):
                return False
        return True

    _wait(established, 60, "CRDs established")
    try:
        yield
    finally:
        for name in names:
            with contextlib.suppress(ApiException):
                ext.delete_custom_resource_definition(name)
        _wait(lambda: not any(_crd_exists(ext, n) for n in names), 60, "CRDs removed")
