"""Fixtures for tests against a real local control plane (hack/cluster/localcluster.py).

``local_cluster`` (session): etcd + kube-apiserver + controller-manager + scheduler + kwok with
two fake nodes, started once per test session and stopped at the end even when tests fail.
Skipped only when the binaries are not in the cache (build them with hack/cluster/build.sh);
set ``PRESIZE_REQUIRE_CLUSTER=1`` (as CI does after building) to turn that skip into a failure.

``kube`` (session): an admin ``kubernetes.client.ApiClient`` for the cluster.
``namespace`` (function): a fresh namespace per test, with its default ServiceAccount present,
deleted afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

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
