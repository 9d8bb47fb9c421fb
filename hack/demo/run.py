"""The demo's script: bring the stack up, deploy, watch for ``--minutes``, report, tear down.

The only scripted step after deploying is the scale-out of ``api``: it waits until the
controller's snapshot (``GET /v1/snapshot``, what the webhook serves from) holds a
recommendation for ``demo/api``, then a little longer so the webhook has fetched it, and scales
the Deployment out, so the new pods are created with predicted requests. If no profile appears
by 60 % of the run it scales anyway, and the timeline shows the pods created without injection,
which is itself the finding.

Teardown runs in ``finally`` with SIGINT and SIGTERM held off (a second Ctrl-C must not leave
half the processes running); the report is written afterwards from what was observed, so even an
interrupted or failed run leaves its timeline behind.

Two modes, one script: the node shim (:class:`hack.demo.stack.Stack`, the default) and the real
node with presize installed by its chart (:class:`hack.demo.realstack.RealStack`,
``--real-node``). Everything that differs between them is behind :class:`DemoStack`: how the
workloads are sized and deployed, where their cgroups are, how the controller's snapshot is
reached, how long the webhook needs to see it, and what the report says about where it ran.
"""

from __future__ import annotations

import math
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from hack.cluster.localcluster import read_versions
from hack.demo.cgroups import CgroupLocator
from hack.demo.observe import Observer, clock, fmt_cpu, fmt_mem, profile_line
from hack.demo.procs import Supervisor
from hack.demo.report import results_json, summarise, summary_table, totals, write_html
from hack.demo.stack import Stack, StackConfig, check_root
from hack.demo.workloads import NAMESPACE, Timing, Workload
from presize.wire import decode_snapshot_json

MERGE_PATCH = "application/merge-patch+json"


def say(text: str) -> None:
    print(text, flush=True)


class _Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: stop everything, then exit."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted()


class DemoStack(Protocol):
    """What the script needs of a mode (see the module docstring)."""

    c: StackConfig
    sup: Supervisor

    @property
    def kubeconfig(self) -> Path: ...
    @property
    def nodes(self) -> tuple[str, ...]: ...
    @property
    def platform(self) -> str: ...
    @property
    def settle_s(self) -> float: ...
    def start(self) -> None: ...
    def stop(self) -> list[str]: ...
    def dead_children(self) -> list[str]: ...
    def api(self, method: str, path: str, body: Any = None, **kw: Any) -> Any: ...
    def snapshot(self) -> bytes: ...
    def cgroups(self) -> CgroupLocator: ...
    def workloads(self, timing: Timing) -> list[Workload]: ...
    def manifest(self, w: Workload) -> dict[str, Any]: ...


def _has_recommendation(stack: DemoStack, workload: str) -> bool:
    raw = stack.snapshot()
    snapshot = decode_snapshot_json(raw, max_bytes=64 << 20)
    return any(
        r.key.workload.namespace == NAMESPACE and r.key.workload.name == workload
        for r in snapshot.recommendations
    )


class Scenario:
    """Deploys the workloads and scales out the late one at the right moment."""

    def __init__(self, stack: DemoStack, timing: Timing, ws: list[Workload]) -> None:
        self.stack = stack
        self.timing = timing
        self.ws = ws
        self.pending = {w.name: w for w in ws if w.scale_to}
        self.ready_at: dict[str, float] = {}
        self.next_check = 0.0

    def deploy(self) -> None:
        for w in self.ws:
            self.stack.api(
                "POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", self.stack.manifest(w)
            )
        say(f"deployed {len(self.ws)} workloads in namespace {NAMESPACE}:")
        for w in self.ws:
            say(f"  {w.name:<7} {w.what:<28} requests {dict(w.requests)} limits {dict(w.limits)}")

    def step(self, obs: Observer) -> None:
        t = obs.now()
        run = self.timing.run_s
        for name, w in list(self.pending.items()):
            if t < max(30.0, 0.3 * run):
                continue
            if name not in self.ready_at and t >= self.next_check:
                self.next_check = t + 2.0
                try:
                    if _has_recommendation(self.stack, name):
                        self.ready_at[name] = t
                except Exception:  # no snapshot yet (503) or the controller is busy
                    pass
            ready = name in self.ready_at and t >= self.ready_at[name] + self.stack.settle_s
            if ready or t >= 0.6 * run:
                why = (
                    "its profile is in the webhook's snapshot now"
                    if ready
                    else "no profile yet (late): scaling anyway"
                )
                scaled = f"{w.replicas} -> {w.scale_to} replicas: {why}"
                obs.note("SCALE", f"deployment/{name}", scaled)
                self.stack.api(
                    "PATCH",
                    f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}/scale",
                    {"spec": {"replicas": w.scale_to}},
                    content_type=MERGE_PATCH,
                )
                del self.pending[name]


def watch(stack: DemoStack, timing: Timing, scenario: Scenario, obs: Observer) -> None:
    next_tick = time.monotonic()
    while obs.now() < timing.run_s:
        obs.poll()
        scenario.step(obs)
        dead = stack.dead_children()
        if dead:
            raise RuntimeError(f"a process of the demo exited: {'; '.join(dead)}")
        next_tick += 1.0
        time.sleep(max(0.0, next_tick - time.monotonic()))


def run(
    *,
    minutes: float,
    time_scale: float,
    nodes: int,
    node_prefix: str,
    workdir: Path | None,
    report: Path,
    results: Path | None,
    verbose: bool = False,
    real_node: bool = False,
) -> int:
    stack: DemoStack
    timing = Timing(minutes, time_scale)
    if real_node:
        from hack.demo.realstack import RealStack, check_real_node

        why = check_real_node()
        if why:
            say(f"presize demo: {why}")
            return 2
        work = workdir or Path(tempfile.mkdtemp(prefix="presize-demo-real-"))
        stack = RealStack(StackConfig(work.resolve(), timing, ()), say)
    else:
        why = check_root()
        if why:
            say(f"presize demo: {why}")
            return 2
        work = workdir or Path(tempfile.mkdtemp(prefix="presize-demo-"))
        names = tuple(f"{node_prefix}{i}" for i in range(nodes))
        stack = Stack(StackConfig(work.resolve(), timing, names), say)
    signal.signal(signal.SIGTERM, _on_term)
    mode = "real node, presize installed by its Helm chart" if real_node else "node shim"
    say(f"presize demo ({mode}): {minutes:g} minutes, work dir {work} (logs in {work}/logs)")
    status, obs, failure = 0, None, ""
    t_start = time.time()
    try:
        stack.start()
        say(f"  kubectl --kubeconfig {stack.kubeconfig} get wlp,pods -n {NAMESPACE}")
        scenario = Scenario(stack, timing, stack.workloads(timing))
        scenario.deploy()
        obs = Observer(
            stack.api, scale=timing.scale, cgroups=stack.cgroups(), out=say, verbose=verbose
        )
        say(f"watching for {minutes:g} minutes ({clock(timing.run_s, timing.scale)} virtual)")
        watch(stack, timing, scenario, obs)
        say("--- final WorkloadProfiles")
        obs.read_profiles(print_changes=False)
        for name, st in sorted(obs.profiles.items()):
            say(f"  {name}: {profile_line(st)}")
    except KeyboardInterrupt:
        status, failure = 130, "interrupted"
        say("\ninterrupted: stopping everything")
    except Exception as exc:
        status, failure = 1, f"{type(exc).__name__}: {exc}"
        say(f"presize demo failed: {failure}")
        traceback.print_exc()
    finally:
        previous = _hold_signals()
        t0 = time.monotonic()
        errors = stack.stop()
        _restore_signals(previous)
        took = time.monotonic() - t0
        say(f"stopped everything in {took:.1f}s" + (f"; errors: {errors}" if errors else ""))
    if errors and status == 0:
        status, failure = 1, "; ".join(errors)
    if obs is not None:
        outcome = {"status": status, "failure": failure, "errors": errors, "started_at": t_start}
        _finish(obs, timing, stack, report=report, results=results, outcome=outcome)
    return status


def _finish(
    obs: Observer,
    timing: Timing,
    stack: DemoStack,
    *,
    report: Path,
    results: Path | None,
    outcome: dict[str, Any],
) -> None:
    """Summary on stdout, then the HTML report and the results JSON."""
    rows = summarise(obs)
    tot = totals(obs, timing.run_s)
    text = summary_table(rows)
    totals_text = (
        "all demo pods, first minute -> last minute:\n"
        f"  CPU requested {_c(tot['first_cpu_request'])} -> {_c(tot['last_cpu_request'])} "
        f"cores, used {_c(tot['first_cpu_used'])} -> {_c(tot['last_cpu_used'])}\n"
        f"  memory requested {_m(tot['first_mem_request'])} -> {_m(tot['last_mem_request'])}, "
        f"used {_m(tot['first_mem_used'])} -> {_m(tot['last_mem_used'])}"
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(obs.counts.items())) or "nothing"
    say(f"--- summary ({stack.platform})\n" + text + "\n" + totals_text + f"\nseen: {counts}")
    versions = read_versions()
    meta: dict[str, Any] = {
        "ok": outcome["status"] == 0,
        **outcome,
        "minutes": timing.minutes,
        "time_scale": timing.scale,
        "workdir": str(stack.c.workdir),
        "state_file": str(stack.sup.state_file),
        "nodes": list(stack.nodes),
        "platform": stack.platform,
        "report": str(report),
        "totals": tot,
        "totals_text": totals_text,
        "headline": (
            f"{timing.minutes:g} real minutes at time scale {timing.scale:g} "
            f"(a virtual day = {timing.day_s / 60:.1f} min) {stack.platform}; Kubernetes "
            f"{versions.get('KUBERNETES_VERSION', '?')}. {counts}."
        ),
    }
    try:
        write_html(report, obs, rows, meta)
        say(f"report: {report}")
    except Exception as exc:  # the run's outcome stands; say why the report is missing
        say(f"report not written: {exc}")
    if results is not None:
        results_json(results, obs, rows, meta)
        say(f"results: {results}")


def _c(x: float) -> str:
    return "?" if math.isnan(x) else fmt_cpu(x)


def _m(x: float) -> str:
    return "?" if math.isnan(x) else fmt_mem(x)


Handler = Callable[[int, FrameType | None], Any] | int | None


def _hold_signals() -> dict[int, Handler]:
    def later(signum: int, frame: FrameType | None) -> None:
        print("still stopping; please wait", file=sys.stderr, flush=True)

    return {s: signal.signal(s, later) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict[int, Handler]) -> None:
    for s, handler in previous.items():
        signal.signal(s, handler)
