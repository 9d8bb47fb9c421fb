"""Admission latency of the webhook under a fixed request rate, over real TLS on 127.0.0.1.

``python -m bench.webhook --rps 500 --seconds 20``

Starts ``python -m webhook`` as a separate process (generated CA and serving certificate, a
static snapshot of ``--workloads`` Deployments with two containers each), then sends
AdmissionReview requests for realistic pods (env, probes, volumes, a sidecar, the projected
service-account volume the API server adds: about 4 KB of JSON each) at a fixed rate,
open loop: request *i* is sent at ``t0 + i / rps`` whether or not earlier ones have
returned, so a slow server shows up as latency, not as a lower rate.

Latency is measured per request from just before it is written to the response being read.
``late_ms_p99`` reports how far behind schedule the client itself was sending (its own
scheduling jitter on a shared machine); it is not part of the latency figures. The last line
of output is one JSON object: ``p50_ms``, ``p99_ms``, ``max_ms``, ``achieved_rps``, ``errors``
and a few extras. Only 127.0.0.1 is contacted; the server is stopped by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

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

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "shop"


def snapshot(workloads: int, now: float) -> Snapshot:
    recs = [
        Recommendation(
            key=ContainerKey(WorkloadKey(NAMESPACE, OwnerKind.DEPLOYMENT, f"svc-{i}"), name),
            cpu=ResourceRecommendation(target=0.2 + i % 7 * 0.05, lower=0.1, upper=0.8),
            memory=ResourceRecommendation(target=(200 + i % 13 * 16) * MIB, lower=0, upper=1e9),
            workload_class=WorkloadClass.STEADY,
            confidence=0.8,
            generation=i,
            mem_peak=190 * MIB,
        )
        for i in range(workloads)
        for name in ("app", "envoy")
    ]
    return Snapshot(generation=1, generated_at=now, recommendations=tuple(recs))


def pod(i: int) -> dict[str, Any]:
    """A pod as the ReplicaSet controller creates it, after the API server's defaulting."""
    rs = f"svc-{i}-7d9f8b6c5d"
    env = [{"name": f"SETTING_{k}", "value": f"value-{k}-{i}"} for k in range(12)]
    probe = {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{rs}-",
            "namespace": NAMESPACE,
            "labels": {"app": f"svc-{i}", "pod-template-hash": "7d9f8b6c5d", "tier": "backend"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": f"uid-{i}",
                 "controller": True, "blockOwnerDeletion": True}
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "app", "image": f"registry.example/svc-{i}:1.4.2",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}], "env": env,
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                  "limits": {"cpu": "1", "memory": "512Mi"}},
                    "livenessProbe": probe, "readinessProbe": probe,
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/app"},
                        {"name": "kube-api-access-x7k2p", "readOnly": True,
                         "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                    ],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
                },
                {
                    "name": "envoy", "image": "envoyproxy/envoy:v1.31.0",
                    "args": ["-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
                },
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": f"svc-{i}-config", "defaultMode": 420}},
                {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt",
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                ]}},
            ],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
            "schedulerName": "default-scheduler", "enableServiceLinks": True,
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
            ],
            "priority": 0, "preemptionPolicy": "PreemptLowerPriority",
        },
    }  # fmt: skip


def review(i: int, uid: int) -> bytes:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"bench-{uid}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod(i),
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
    return json.dumps(body).encode()


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def server_share(metrics: str) -> dict[str, float]:
    """Share of admissions (warm-up included) the server handled within 1 ms and 2 ms,
    from its own histogram: separates server time from client and TLS overhead."""
    buckets: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("presize_webhook_admission_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
    total = buckets.get("+Inf", 0.0) or 1.0
    return {
        "server_share_le_1ms": round(buckets.get("0.001", 0.0) / total, 4),
        "server_share_le_2ms": round(buckets.get("0.002", 0.0) / total, 4),
    }


class Server:
    """The webhook as a child process on 127.0.0.1."""

    def __init__(self, workdir: Path, snapshot_file: Path) -> None:
        self.port_file = workdir / "port"
        self.ca = workdir / "certs" / "ca.crt"
        args = [
            sys.executable, "-m", "webhook", "--host", "127.0.0.1", "--port", "0",
            "--port-file", str(self.port_file), "--generate-certs", str(workdir / "certs"),
            "--cert-hosts", "127.0.0.1", "--snapshot-file", str(snapshot_file),
            "--max-snapshot-age-s", "86400", "--log-level", "WARNING",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["PYTHONPATH"] = str(REPO)
        self.proc = subprocess.Popen(args, cwd=REPO, env=env)

    def wait_port(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"webhook exited with {self.proc.returncode}")
            if self.port_file.exists() and self.port_file.read_text().strip():
                return int(self.port_file.read_text())
            time.sleep(0.05)
        raise RuntimeError("webhook did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def drive(
    url: str, ca: Path, bodies: list[bytes], *, rps: float, seconds: float, connections: int
) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(ca))
    connector = aiohttp.TCPConnector(ssl=ctx, limit=connections)
    latencies: list[float] = []
    late: list[float] = []
    errors = 0
    total = int(rps * seconds)
    headers = {"Content-Type": "application/json"}

    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes) -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    payload = await resp.read()
                    ok = resp.status == 200 and b'"patch"' in payload
            except (aiohttp.ClientError, OSError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

        for i in range(min(50, total)):  # warm-up: open the TLS connections
            await one(bodies[i % len(bodies)])
        latencies.clear()
        tasks: set[asyncio.Task[None]] = set()
        t0 = time.perf_counter()
        for i in range(total):
            due = t0 + i / rps
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late.append(time.perf_counter() - due)
            task = asyncio.create_task(one(bodies[i % len(bodies)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        async with session.get(url.replace("/mutate", "/metrics")) as resp:
            server = server_share(await resp.text())
    lat = sorted(x * 1000 for x in latencies)
    late_sorted = sorted(x * 1000 for x in late)
    return {
        "p50_ms": round(quantile(lat, 0.50), 3),
        "p99_ms": round(quantile(lat, 0.99), 3),
        "max_ms": round(lat[-1], 3) if lat else None,
        "achieved_rps": round(len(latencies) / elapsed, 1),
        "errors": errors,
        "requests": total,
        "late_ms_p99": round(quantile(late_sorted, 0.99), 3),
        "body_bytes": len(bodies[0]),
        **server,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__)
    parser.add_argument("--rps", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workloads", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        workdir = Path(tmp)
        snapshot_file = workdir / "snapshot.json"
        snapshot_file.write_bytes(encode_snapshot_json(snapshot(args.workloads, time.time())))
        bodies = [review(i % args.workloads, i) for i in range(min(2000, args.workloads))]
        server = Server(workdir, snapshot_file)
        try:
            port = server.wait_port()
            result = asyncio.run(
                drive(
                    f"https://127.0.0.1:{port}/mutate", server.ca, bodies,
                    rps=args.rps, seconds=args.seconds, connections=args.connections,
                )
            )  # fmt: skip
        finally:
            server.stop()
    result.update(rps_target=args.rps, seconds=args.seconds, workloads=args.workloads)
    print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
