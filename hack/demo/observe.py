"""Watching the demo: a readable timeline on stdout, and the series the report is drawn from.

Every second :meth:`Observer.poll` lists the demo namespace's pods and Events through the API
server and reads each running pod's cgroups, and every ``profile_every_s`` its
WorkloadProfiles. What it prints:

* ``POD``      a pod appeared (node, requests/limits, and what the webhook injected, from its
               ``presize.io/applied`` annotation) or went away;
* ``APPLIED``  a pod's resources changed in place (the shim, playing the kubelet, applied a
               resize: these are the numbers the cgroups now have);
* ``RESTART``  a container restarted (an OOM kill, say);
* the controller's Events by reason (``Resized``, ``ResizeRolledBack``, ``Rescheduled``,
  ``MemoryLeakSuspected``, ``ScaleOutHint``...), each once even when it was recorded on both
  the pod and its Deployment;
* ``PROFILE``  each WorkloadProfile's class, targets, coverage and last decision, when they
  changed.

Why "used" comes from the cgroups and not from presize: the report compares presize's
allocations with what really happened, so it must not take presize's own word for the usage.
Where a pod's cgroups are depends on the node (the shim's pod cgroup under its prefix, or the
real kubelet's container cgroup): a :data:`~hack.demo.cgroups.CgroupLocator` says, given the
pod's uid, node and container ID. CPU is the delta of ``cpuacct.usage`` between polls, memory
the working set (``usage_in_bytes`` minus ``total_inactive_file``), as the kubelet computes it.
"Allocated" is what the node reports as applied (``status.containerStatuses[].resources``),
falling back to the pod spec.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hack.demo.cgroups import CgroupLocator, container_id
from hack.demo.workloads import CONTAINER, NAMESPACE
from presize.units import parse_bytes, parse_cpu

CONTROLLER_COMPONENT: Final = "presize-controller"
APPLIED: Final = "presize.io/applied"
MIB: Final = float(1 << 20)

Api = Callable[[str, str], Any]


@dataclass
class Sample:
    t: float  # seconds since the workloads were deployed
    cpu_used: float  # cores
    mem_used: float  # bytes
    cpu_request: float
    cpu_limit: float
    mem_request: float
    mem_limit: float


@dataclass
class PodTrack:
    uid: str
    name: str
    workload: str
    node: str
    created: float
    injected: dict[str, Any] | None
    resources: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    restarts: int = 0
    gone: float | None = None
    samples: list[Sample] = field(default_factory=list)
    container_id: str = ""  # the app container's current ID (a restart changes it)
    _cpu_prev: tuple[float, int] | None = None
    _cgroups: tuple[Path, Path] | None = None
    _cgroups_for: str | None = None  # the container ID _cgroups was found for


@dataclass
class Note:
    """One timeline line, kept for the report and the results file."""

    t: float
    kind: str
    subject: str
    text: str


def quantity(value: object, parse: Callable[[str], float]) -> float:
    try:
        return parse(str(value)) if value is not None else 0.0
    except ValueError:
        return 0.0


def fmt_cpu(cores: float) -> str:
    return f"{cores * 1000:.0f}m"


def fmt_mem(b: float) -> str:
    return f"{b / MIB:.0f}Mi"


def clock(t: float, scale: float) -> str:
    """``+MM:SS`` of real time and the virtual time of day the controller lives in."""
    virtual = t * scale
    day, rest = divmod(virtual, 86400.0)
    hh, mm = int(rest // 3600), int(rest % 3600 // 60)
    return f"+{int(t) // 60:02d}:{int(t) % 60:02d} (d{int(day)} {hh:02d}:{mm:02d})"


class Observer:
    def __init__(
        self,
        api: Api,
        *,
        scale: float,
        cgroups: CgroupLocator,
        out: Callable[[str], None],
        profile_every_s: float = 20.0,
        verbose: bool = False,
    ) -> None:
        self.api = api
        self.scale = scale
        self.cgroups = cgroups
        self.out = out
        self.profile_every_s = profile_every_s
        self.verbose = verbose
        self.t0 = time.monotonic()
        self.pods: dict[str, PodTrack] = {}
        self.notes: list[Note] = []
        self.events_seen: set[str] = set()
        self._shown: dict[tuple[str, str], tuple[float, str]] = {}  # (reason, message)
        self.counts: dict[str, int] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self._profile_lines: dict[str, str] = {}
        self._next_profiles = 0.0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, kind: str, subject: str, text: str, *, show: bool = True) -> None:
        t = self.now()
        self.notes.append(Note(t, kind, subject, text))
        if show:
            self.out(f"{clock(t, self.scale)}  {kind:<20} {subject:<22} {text}")

    # ------------------------------------------------------------------ polling

    def poll(self) -> None:
        t = self.now()
        pods = self.api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods").get("items") or []
        self._pods(t, pods)
        self._events()
        if t >= self._next_profiles:
            self._next_profiles = t + self.profile_every_s
            self.read_profiles(print_changes=True)

    def _pods(self, t: float, items: list[dict[str, Any]]) -> None:
        seen = set()
        for pod in items:
            meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
            uid = meta["uid"]
            seen.add(uid)
            track = self.pods.get(uid)
            resources = _resources(spec, status)
            if track is None:
                injected = meta.get("annotations", {}).get(APPLIED)
                track = PodTrack(
                    uid,
                    meta["name"],
                    meta.get("labels", {}).get("app", meta["name"]),
                    spec.get("nodeName", ""),
                    t,
                    json.loads(injected) if injected else None,
                    resources,
                )
                self.pods[uid] = track
                self._new_pod(track)
            elif resources != track.resources:
                self._count("applied")
                # The Resized Event says the same; this line confirms the node applied it.
                text = _change(track.resources, resources)
                self.note("APPLIED", track.name, text, show=self.verbose)
                track.resources = resources
            track.node = track.node or spec.get("nodeName", "")
            track.container_id = _app_container_id(status) or track.container_id
            self._restarts(track, status)
            if status.get("phase") == "Running":
                self._sample(track, t)
        for track in self.pods.values():
            if track.uid not in seen and track.gone is None:
                track.gone = t
                self.note("POD gone", track.name, "deleted")

    def _new_pod(self, track: PodTrack) -> None:
        cpu_req, cpu_lim, mem_req, mem_lim = track.resources
        text = (
            f"requests {fmt_cpu(cpu_req)}/{fmt_mem(mem_req)}, "
            f"limits {fmt_cpu(cpu_lim) if cpu_lim else '-'}/{fmt_mem(mem_lim)}"
        )
        if track.injected:
            self._count("injected")
            change = (track.injected.get("containers") or {}).get(CONTAINER, {})
            parts = []
            for kind in ("requests", "limits"):
                for res, (before, after) in (change.get(kind) or {}).items():
                    parts.append(f"{kind[:-1]} {res} {before}->{after}")
            text += (
                f"; webhook injected ({', '.join(parts)}; profile generation "
                f"{change.get('generation')}, confidence {change.get('confidence')})"
            )
            self.note("POD created+injected", track.name, text)
        else:
            self.note("POD created", track.name, f"on {track.node or '?'}: {text}")

    def _restarts(self, track: PodTrack, status: dict[str, Any]) -> None:
        for cs in status.get("containerStatuses") or []:
            count = int(cs.get("restartCount") or 0)
            if count > track.restarts:
                why = ((cs.get("lastState") or {}).get("terminated") or {}).get("reason", "?")
                self._count("restarts")
                self.note("RESTART", track.name, f"container {cs.get('name')} restarted ({why})")
                track.restarts = count

    def _cgroup_dirs(self, track: PodTrack) -> tuple[Path, Path] | None:
        """Looked up once per container ID: a restarted container on a real kubelet has a new
        cgroup (then the CPU counter starts over), the shim's pod cgroup stays the same."""
        if track._cgroups is None or track._cgroups_for != track.container_id:
            dirs = self.cgroups(track.uid, track.node, track.container_id)
            if dirs is not None:
                if dirs != track._cgroups:
                    track._cpu_prev = None
                track._cgroups, track._cgroups_for = dirs, track.container_id
        return track._cgroups

    def _sample(self, track: PodTrack, t: float) -> None:
        dirs = self._cgroup_dirs(track)
        if dirs is None:
            return
        try:
            usage_ns = int((dirs[0] / "cpuacct.usage").read_text())
            mem = int((dirs[1] / "memory.usage_in_bytes").read_text())
            stat = (dirs[1] / "memory.stat").read_text().split()
        except (OSError, ValueError):
            return
        stats = dict(zip(stat[::2], stat[1::2], strict=False))
        working_set = max(0, mem - int(stats.get("total_inactive_file", "0")))
        prev, track._cpu_prev = track._cpu_prev, (t, usage_ns)
        if prev is None or t <= prev[0] or usage_ns < prev[1]:
            return
        cpu = (usage_ns - prev[1]) / 1e9 / (t - prev[0])
        cpu_req, cpu_lim, mem_req, mem_lim = track.resources
        track.samples.append(Sample(t, cpu, working_set, cpu_req, cpu_lim, mem_req, mem_lim))

    def _events(self) -> None:
        items = self.api("GET", f"/api/v1/namespaces/{NAMESPACE}/events").get("items") or []
        items.sort(key=lambda e: (e.get("lastTimestamp") or "", e["metadata"]["name"]))
        for ev in items:
            uid = ev["metadata"]["uid"]
            if uid in self.events_seen:
                continue
            self.events_seen.add(uid)
            source = (ev.get("source") or {}).get("component") or ev.get("reportingComponent")
            if source != CONTROLLER_COMPONENT:
                continue
            reason, message = ev.get("reason", ""), ev.get("message", "")
            obj = ev.get("involvedObject") or {}
            kind = str(obj.get("kind", "?"))
            # Rollbacks, leak alerts and reschedules are recorded on the pod and on its
            # Deployment with the same message: show them once. Two pods' identical messages
            # (replicas resized alike) are both shown.
            earlier = self._shown.get((reason, message))
            t = self.now()
            if earlier is not None and t - earlier[0] < 10.0 and kind != earlier[1]:
                continue
            self._shown[(reason, message)] = (t, kind)
            self._count(reason)
            self.note(reason, f"{kind.lower()}/{obj.get('name', '?')}", message)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # ------------------------------------------------------------------ profiles

    def read_profiles(self, *, print_changes: bool) -> None:
        path = f"/apis/presize.io/v1alpha1/namespaces/{NAMESPACE}/workloadprofiles"
        for item in self.api("GET", path).get("items") or []:
            name = item["metadata"]["name"]
            status = item.get("status") or {}
            self.profiles[name] = status
            line = profile_line(status)
            if print_changes and self._profile_lines.get(name) != line:
                self.note("PROFILE", name, line)
            self._profile_lines[name] = line


def profile_line(status: dict[str, Any]) -> str:
    summary = status.get("summary") or {}
    last = status.get("lastDecision") or {}
    decision = f"{last.get('action', '-')} ({last.get('reason', '-')})" if last else "none yet"
    anomalies = ", ".join(a.get("kind", "?") for a in status.get("anomalies") or [])
    text = (
        f"class {status.get('class', '?')}, model {status.get('model', '?')}, "
        f"targets cpu {summary.get('cpuTarget', '?')} mem {summary.get('memoryTarget', '?')}, "
        f"coverage {summary.get('coverage', 'n/a')}, last decision {decision}"
    )
    if status.get("rollbacks"):
        text += f", {len(status['rollbacks'])} rollback(s)"
    return text + (f", anomalies: {anomalies}" if anomalies else "")


def _resources(spec: dict[str, Any], status: dict[str, Any]) -> tuple[float, float, float, float]:
    """(cpu request, cpu limit, memory request, memory limit) the node applied, else the spec's."""
    res: dict[str, Any] = {}
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") == CONTAINER and cs.get("resources"):
            res = cs["resources"]
    if not res:
        for c in spec.get("containers") or []:
            if c.get("name") == CONTAINER:
                res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    return (
        quantity(req.get("cpu"), parse_cpu),
        quantity(lim.get("cpu"), parse_cpu),
        quantity(req.get("memory"), parse_bytes),
        quantity(lim.get("memory"), parse_bytes),
    )


def _app_container_id(status: dict[str, Any]) -> str:
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return container_id(str(cs.get("containerID") or ""))
    return ""


def _change(old: tuple[float, ...], new: tuple[float, ...]) -> str:
    names = ("cpu request", "cpu limit", "memory request", "memory limit")
    parts = []
    for i, name in enumerate(names):
        if abs(old[i] - new[i]) > 1e-9:
            show = fmt_cpu if i < 2 else fmt_mem
            parts.append(f"{name} {show(old[i])} -> {show(new[i])}")
    return "resized in place: " + ", ".join(parts)
