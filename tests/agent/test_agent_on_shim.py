"""The real agent process for a fake node, against the node shim and a real kube-apiserver.

The shim (``hack/nodeshim``) gives the pods of its node real cgroups at the kubelet's cgroupfs
paths and posts the container IDs a runtime would; the agent, started as ``python -m agent``
with ``--directory kube`` for that node, must discover the pod by its real cgroup and name it
(namespace, pod, container) through its API-server watch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from hack.cluster.localcluster import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.cgroups, pytest.mark.slow]


def test_agent_names_the_shims_pods_from_their_cgroups(
    local_cluster: LocalCluster, kube: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the node shim creates cgroups: needs root")
    from hack.nodeshim.shim import NodeShim, ShimConfig

    node = f"shim-agent-{os.getpid()}"
    prefix = f"presize-shim-agent-{os.getpid()}"
    with NodeShim(local_cluster.kubeconfig, [node], ShimConfig(prefix=prefix)):
        core = client.CoreV1Api(kube)
        pod: Any = {
            "metadata": {"name": "worker"},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "app", "image": "example.invalid/app:1",
                                "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}}}],
            },
        }  # fmt: skip
        core.create_namespaced_pod(namespace, pod)
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "--base", f"{prefix}/{node}", "--directory", "kube",
             "--kubeconfig", str(local_cluster.kubeconfig), "--node", node, "--batch", "3",
             "--print-windows", "--log-patterns", "", "--seconds", "40"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        named = None
        try:
            assert agent.stdout is not None
            deadline = time.monotonic() + 40
            for line in agent.stdout:
                window = json.loads(line)
                pod = window["pod"]
                if pod["name"] == "worker" and window["container"] == "app":
                    named = window
                    break
                assert time.monotonic() < deadline
        finally:
            if agent.poll() is None:
                agent.terminate()
            _, err = agent.communicate(timeout=30)
    assert named is not None, f"the agent never named the shim's pod; stderr:\n{err[-2000:]}"
    assert named["pod"]["namespace"] == namespace
    assert named["samples"] >= 1
    assert named["mem_max"] > 0
