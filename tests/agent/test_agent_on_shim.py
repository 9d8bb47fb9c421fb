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

from hack.cluster.localcluster import LocalCluster, free_ports

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


def test_a_controller_away_for_a_minute_loses_no_summary(
    local_cluster: LocalCluster, kube: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """The agent for a shim node reports to an endpoint on 127.0.0.1 (the ingest stand-in, which
    checks the bearer token and drops repeats as the controller does); the endpoint is gone for
    a minute in the middle. Every report arrives once, in order, with no sequence missing, and
    the windows cover the minute the endpoint was away."""
    if os.geteuid() != 0:
        pytest.skip("the node shim creates cgroups: needs root")
    import asyncio
    import threading
    import urllib.request

    from ingest_standin import TOKEN, IngestStandIn

    from hack.nodeshim.shim import NodeShim, ShimConfig

    node = f"shim-spool-{os.getpid()}"
    prefix = f"presize-shim-spool-{os.getpid()}"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    standin = IngestStandIn()

    def on_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    on_loop(standin.start())
    token = tmp_path / "token"
    token.write_text(TOKEN)
    (metrics_port,) = free_ports(1)
    with NodeShim(local_cluster.kubeconfig, [node], ShimConfig(prefix=prefix)):
        client.CoreV1Api(kube).create_namespaced_pod(namespace, {
            "metadata": {"name": "worker",
                         "annotations": {"presize.io/load": '{"cpu": {"pattern": "constant", '
                                                            '"value": 0.02}}'}},
            "spec": {"nodeName": node, "containers": [{
                "name": "app", "image": "example.invalid/app:1",
                "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}}}]},
        })  # fmt: skip
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "--base", f"{prefix}/{node}", "--directory", "kube",
             "--kubeconfig", str(local_cluster.kubeconfig), "--node", node, "--batch", "5",
             "--controller-url", standin.url, "--token-path", str(token),
             "--spool-dir", str(tmp_path / "spool"), "--log-patterns", "",
             "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

        def spooled() -> float:
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as resp:
                text = resp.read().decode()
            return sum(float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("presize_agent_spool_reports "))  # fmt: skip

        try:
            _until(lambda: len(standin.reports) >= 2, 60, "first reports")
            on_loop(standin.stop())
            away_from = time.time()
            time.sleep(60)
            away_to = time.time()
            assert spooled() >= 5, "reports were not kept in the spool while the endpoint was away"
            on_loop(standin.start())
            _until(lambda: spooled() == 0, 120, "the spool to drain")
        finally:
            if agent.poll() is None:
                agent.terminate()
            _, err = agent.communicate(timeout=30)
    on_loop(standin.stop())
    loop.call_soon_threadsafe(loop.stop)
    sequences = standin.sequences
    assert sequences == sorted(sequences), "delivered out of order"
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), err[-2000:]
    starts = sorted(w.start for r in standin.reports for w in r.windows if w.container == "app")
    during = [t for t in starts if away_from + 5 <= t <= away_to - 5]
    assert len(during) >= 10, f"windows of the minute away were lost: {len(during)} kept"


def _until(probe: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe():
                return
        except OSError:
            pass  # the agent's /metrics not up yet
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)
