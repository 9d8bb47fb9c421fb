"""The controller at scale: a decision cycle over thousands of pods on kwok nodes, and ingest.

``python -m bench.controller --pods 5000 --nodes 500``

1. Starts the local cluster (real etcd, kube-apiserver, controller-manager, kwok) with
   ``--nodes`` fake nodes. The controller-manager's garbage collector is off so that pods can
   carry ReplicaSet owner references without ReplicaSets (creating 1,000 Deployments would
   measure the controller-manager, not presize).
2. Creates ``--pods`` pods, bound to the nodes round robin, five replicas per workload, in a
   namespace labelled ``presize.io/enabled=true`` (mode ``auto``), and waits until kwok has
   them all Running.
3. Runs the real controller (:class:`controller.loop.Controller` with the Kubernetes adapter)
   in this process, and its HTTP edge on 127.0.0.1 with TokenReview authentication.
4. **Ingest**: a separate process posts synthetic agent reports (one per node, one 10-second
   window per pod of the node, msgpack) with a real ServiceAccount token (TokenReview,
   cached), as fast as the edge takes them, over ``--ingest-seconds``, after ``--history``
   10-second rounds that give the profiles steps. ``reports_per_second`` is what one
   controller core ingests: accepted reports over the controller process's CPU seconds in
   that time (HTTP, authentication, decoding, aggregation; its watches too).
   ``reports_per_second_wall`` is the rate achieved here, where the generator shares the two
   cores with the controller and the control plane, so it is a floor, not the capacity.
5. **Cycle**: ``--cycles`` full decision cycles (state from the watch caches, steps closed
   into profiles, a decision for every pod); the median wall time is reported.

The last line is ``{"pods", "nodes", "cycle_seconds", "reports_per_second", "peak_rss_mb",
...}``. Targets (issue 6): a cycle under 5 s at 5,000 pods, 2,000 reports/s, under 500 MB.
``peak_rss_mb`` is this process's peak (the controller's; the load generator runs apart).
Only 127.0.0.1 is contacted; everything started is stopped by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import random
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from controller.kube import KubeHttp, KubeOrchestrator, TokenReviewAuthenticator, api_client
from controller.loop import Controller
from controller.metrics import ControllerMetrics
from controller.server import Edge, make_app
from controller.settings import ControllerSettings
from hack.cluster.crds import crd_manifests
from hack.cluster.localcluster import LocalCluster, NodeSpec
from presize.model import Mode, PodRef, UsageWindow
from presize.wire import Report, encode_report

NAMESPACE = "bench"
REPLICAS = 5
MiB = 1 << 20


def pod_manifest(i: int, nodes: list[str]) -> dict[str, Any]:
    workload = i // REPLICAS
    rs = f"svc-{workload}-7d9f8b6c5d"
    cpu = 0.1 + (workload % 10) * 0.05
    mem = (128 + (workload % 8) * 32) * MiB
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{rs}-{i % REPLICAS:05d}",
            "namespace": NAMESPACE,
            "labels": {"app": f"svc-{workload}", "pod-template-hash": "7d9f8b6c5d"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                "uid": f"00000000-0000-0000-0000-{workload:012d}", "controller": True,
            }],
        },
        "spec": {
            "nodeName": nodes[i % len(nodes)],
            "containers": [{
                "name": "app", "image": "registry.invalid/app:1",
                "resources": {
                    "requests": {"cpu": f"{int(cpu * 1000)}m", "memory": str(mem)},
                    "limits": {"cpu": f"{int(cpu * 2000)}m", "memory": str(2 * mem)},
                },
            }],
            "tolerations": [{"operator": "Exists"}],
        },
    }  # fmt: skip


async def create_pods(http: KubeHttp, n: int, nodes: list[str], concurrency: int = 32) -> None:
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            body = pod_manifest(i, nodes)
            for attempt in range(5):
                try:
                    await http.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", body=body)
                    break
                except Exception:
                    await asyncio.sleep(0.2 * (attempt + 1))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def wait_running(orch: KubeOrchestrator, n: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    running = 0
    while time.monotonic() < deadline:
        state = await orch.state()
        running = sum(1 for p in state.pods if p.running and p.ref.namespace == NAMESPACE)
        if running >= n:
            break
        await asyncio.sleep(2.0)
    return running


def windows_for(
    pods: list[tuple[str, str, str, float, float]], start: float, rng: random.Random
) -> list[UsageWindow]:
    out = []
    for name, uid, node, cpu, mem in pods:
        use = cpu * (0.6 + 0.3 * rng.random())
        out.append(UsageWindow(
            pod=PodRef(NAMESPACE, name, uid, node), container="app", start=start, seconds=10.0,
            samples=10, cpu_mean=use, cpu_max=use * 1.2, cpu_p50=use, cpu_p90=use * 1.1,
            cpu_p99=use * 1.2, cpu_throttled_fraction=0.0, mem_mean=mem * 0.5, mem_max=mem * 0.55,
            cpu_limit=cpu * 2, mem_limit=mem * 2,
        ))  # fmt: skip
    return out


@dataclass(frozen=True)
class Load:
    """What the load generator process is given."""

    url: str
    token: str
    by_node: dict[str, list[tuple[str, str, str, float, float]]]
    seconds: float
    t0: float
    history_steps: int


def load_generator(load: Load, out: Any) -> None:
    """Child process: history first (not timed), then reports as fast as they are taken."""

    url, token, by_node, seconds, t0 = load.url, load.token, load.by_node, load.seconds, load.t0
    history_steps = load.history_steps

    async def main() -> None:
        rng = random.Random(7)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/msgpack"}
        seq = dict.fromkeys(by_node, 0)
        conn = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=conn, headers=headers) as session:

            async def post(node: str, start: float) -> bool:
                seq[node] += 1
                report = Report(node=node, agent_id=f"agent-{node}", sent_at=start + 10,
                                sequence=seq[node],
                                windows=tuple(windows_for(by_node[node], start, rng)))  # fmt: skip
                async with session.post(url, data=encode_report(report)) as resp:
                    await resp.read()
                    return resp.status == 200

            for step in range(history_steps):
                start = t0 - (history_steps - step) * 10.0
                await asyncio.gather(*(post(node, start) for node in by_node))
            nodes = list(by_node)
            ok = 0
            began = time.perf_counter()
            end = began + seconds
            i = 0

            async def worker() -> None:
                nonlocal ok, i
                while time.perf_counter() < end:
                    node = nodes[i % len(nodes)]
                    i += 1
                    if await post(node, t0 + (i // len(nodes)) * 10.0):
                        ok += 1

            await asyncio.gather(*(worker() for _ in range(32)))
            out.put({"reports": ok, "seconds": time.perf_counter() - began,
                     "windows_per_report": len(by_node[nodes[0]])})  # fmt: skip

    asyncio.run(main())


async def service_account_token(http: KubeHttp) -> str:
    body = {"metadata": {"name": "agent"}}
    with contextlib.suppress(Exception):  # already there
        await http.request("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts", body=body)
    answer = await http.request(
        "POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/agent/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 3600}},
    )  # fmt: skip
    return str(answer["status"]["token"])


async def install_crds(http: KubeHttp) -> None:
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for crd in crd_manifests():
        await http.request("POST", path, body=crd)
    for crd in crd_manifests():
        for _ in range(60):
            got = await http.request("GET", f"{path}/{crd['metadata']['name']}")
            conditions = got.get("status", {}).get("conditions", [])
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            await asyncio.sleep(0.5)


async def run(args: argparse.Namespace, cluster: LocalCluster) -> dict[str, Any]:
    api = api_client(str(cluster.kubeconfig))
    http = KubeHttp(api, timeout_s=30.0)
    await install_crds(http)
    ns = {"metadata": {"name": NAMESPACE, "labels": {"presize.io/enabled": "true"},
                       "annotations": {"presize.io/mode": "auto"}}}  # fmt: skip
    await http.request("POST", "/api/v1/namespaces", body=ns)
    t = time.perf_counter()
    await create_pods(http, args.pods, cluster.node_names)
    created_s = time.perf_counter() - t
    orch = KubeOrchestrator(api, default_mode=Mode.INITIAL)
    orch.start()
    await orch.wait_synced(120)
    running = await wait_running(orch, args.pods, args.wait)
    print(f"pods created in {created_s:.0f}s, {running} running", file=sys.stderr, flush=True)
    metrics = ControllerMetrics()
    settings = ControllerSettings(step_s=60.0)
    ctl = Controller(orch, None, settings=settings, metrics=metrics, default_mode=Mode.INITIAL,
                     act=not args.dry_run)  # fmt: skip
    await ctl.refresh(time.time())
    token = await service_account_token(http)
    edge = Edge(authenticator=TokenReviewAuthenticator(api), on_report=ctl.on_report,
                is_leader=lambda: True, metrics=metrics)  # fmt: skip
    runner = web.AppRunner(make_app(edge), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    by_node: dict[str, list[tuple[str, str, str, float, float]]] = {}
    for p in ctl.cluster.pods:
        c = p.containers[0]
        by_node.setdefault(p.ref.node, []).append(
            (p.ref.name, p.ref.uid, p.ref.node, c.cpu_request or 0.1, c.memory_request or 1e8)
        )
    t0 = time.time()
    queue: Any = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(
        target=load_generator,
        args=(Load(f"http://127.0.0.1:{port}/v1/reports", token, by_node, args.ingest_seconds,
                   t0, args.history), queue),
    )  # fmt: skip
    accepted = metrics.reports.labels("accepted")
    cpu_before, accepted_before = time.process_time(), accepted._value.get()
    proc.start()
    result: dict[str, Any] = {}
    while proc.is_alive() or not queue.empty():
        try:
            result = queue.get_nowait()
            break
        except Exception:
            await asyncio.sleep(0.2)
    proc.join(timeout=30)
    server_cpu = time.process_time() - cpu_before
    taken = accepted._value.get() - accepted_before
    wall_rate = result.get("reports", 0) / max(result.get("seconds", 1.0), 1e-9)
    cycles = []
    now = t0 + args.ingest_seconds + 120.0
    for k in range(args.cycles):
        began = time.perf_counter()
        counts = await ctl.cycle(now + k * settings.profile_period_s)
        cycles.append(time.perf_counter() - began)
        print(f"cycle {k}: {cycles[-1]:.2f}s {counts}", file=sys.stderr, flush=True)
    await runner.cleanup()
    await orch.stop()
    await http.close()
    assert isinstance(edge.authenticator, TokenReviewAuthenticator)
    await edge.authenticator.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "pods": running,
        "nodes": len(cluster.node_names),
        "cycle_seconds": round(statistics.median(cycles), 3),
        "cycle_seconds_max": round(max(cycles), 3),
        # Reports one controller core takes per second: accepted reports over the controller
        # process's CPU time while they arrived (history and timed phase; watches included).
        "reports_per_second": round(taken / max(server_cpu, 1e-9), 1),
        # What arrived per wall second here, with the generator on the same two cores.
        "reports_per_second_wall": round(wall_rate, 1),
        "windows_per_report": result.get("windows_per_report", 0),
        "peak_rss_mb": round(peak_mb, 1),
        "profiles": len(ctl.profiles),
        "targets": {"cycle_seconds": 5.0, "reports_per_second": 2000, "peak_rss_mb": 500},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.controller", description=__doc__.splitlines()[0]
    )
    p.add_argument("--pods", type=int, default=5000)
    p.add_argument("--nodes", type=int, default=500)
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--history", type=int, default=30, help="10-second steps sent before timing")
    p.add_argument("--ingest-seconds", type=float, default=20.0)
    p.add_argument("--wait", type=float, default=600.0, help="seconds to wait for Running pods")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="presize-bench-") as tmp:
        cluster = LocalCluster(
            Path(tmp), nodes=args.nodes, node=NodeSpec(cpu="16", memory="64Gi", pods="200"),
            extra_args={
                "kube-controller-manager": ["--controllers=*,-garbage-collector-controller"]
            },
        )  # fmt: skip
        with cluster:
            out = asyncio.run(run(args, cluster))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
