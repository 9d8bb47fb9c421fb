"""The demo's real-node mode, its pure parts: the pods it deploys (no shim placement, the load
program from a ConfigMap, the command that starts it), the chart values that compress time,
where the observer finds a container's cgroups, and what the report says about where it ran.
Nothing here starts a node, a cluster or helm."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.__main__ import build_parser
from hack.demo.cgroups import (
    container_id,
    kubelet_container_cgroups,
    kubelet_container_paths,
    shim_pod_cgroups,
)
from hack.demo.observe import Observer
from hack.demo.procs import REPO, leftover_pids, start_time
from hack.demo.realstack import chart_values, platform_text
from hack.demo.realworkloads import (
    LOAD_COMMAND,
    LOAD_CONFIGMAP,
    NODE_CPU,
    PRESIZE_CPU_REQUESTED,
    cpu_requested,
    demo_image,
    load_configmap,
    real_deployment,
    real_node_workloads,
)
from hack.demo.stack import Stack, StackConfig, time_flags
from hack.demo.workloads import NAMESPACE, SHIM_LABEL, Timing, deployment, workloads
from hack.nodeshim.patterns import LoadSpec, parse_load
from presize.units import parse_cpu

TIMING = Timing(6.0, 288.0)
IMAGE = demo_image("0.1.0")


def _real() -> list[dict[str, Any]]:
    return [real_deployment(w, IMAGE) for w in real_node_workloads(workloads(TIMING))]


def _container(d: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = d["spec"]["template"]["spec"]["containers"][0]
    return container


# ---- the pods


def test_real_pods_carry_no_shim_placement_and_no_load_annotation() -> None:
    for d in _real():
        template = d["spec"]["template"]
        assert "nodeSelector" not in template["spec"]
        assert "tolerations" not in template["spec"]
        assert SHIM_LABEL not in json.dumps(d)
        assert "presize.io/load" not in template["metadata"].get("annotations", {})


def test_shim_pods_are_unchanged_by_the_real_mode() -> None:
    for w in workloads(TIMING):
        d = deployment(w)
        spec = d["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {SHIM_LABEL: "true"}
        assert spec["tolerations"][0]["key"] == SHIM_LABEL
        assert json.loads(d["spec"]["template"]["metadata"]["annotations"]["presize.io/load"])
        real_deployment(w, IMAGE)  # builds from a copy: the shim manifest stays as it was
        assert deployment(w) == d


def test_container_runs_the_load_program_with_its_start_time() -> None:
    assert LOAD_COMMAND == (
        "sh",
        "-c",
        'exec python3 -m hack.nodeshim.load "$SPEC" "$(date +%s)"',
    )
    for w, d in zip(real_node_workloads(workloads(TIMING)), _real(), strict=True):
        c = _container(d)
        assert c["image"] == "presize/controller:0.1.0"
        assert c["imagePullPolicy"] == "Never"
        assert c["command"] == list(LOAD_COMMAND)
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["PYTHONPATH"] == "/load"
        # The canonical spec (memory keys in the CPU spelling) the load program parses.
        assert LoadSpec.from_canonical(env["SPEC"]) == parse_load(json.dumps(dict(w.load)))
        assert {p["resourceName"]: p["restartPolicy"] for p in c["resizePolicy"]} == {
            "cpu": "NotRequired",
            "memory": "NotRequired",
        }
        assert c["volumeMounts"] == [{"name": "load", "mountPath": "/load", "readOnly": True}]
        assert c["resources"] == {"requests": dict(w.requests), "limits": dict(w.limits)}


def test_volume_projects_the_load_program_to_its_package_paths() -> None:
    cm = load_configmap(NAMESPACE)
    assert cm["metadata"] == {"name": LOAD_CONFIGMAP, "namespace": NAMESPACE}
    for key in cm["data"]:
        assert re.fullmatch(r"[-._a-zA-Z0-9]+", key), key  # a valid ConfigMap key
    for d in _real():
        (volume,) = d["spec"]["template"]["spec"]["volumes"]
        assert volume["name"] == "load"
        assert volume["configMap"]["name"] == LOAD_CONFIGMAP
        items = {i["path"]: i["key"] for i in volume["configMap"]["items"]}
        assert set(items) == {
            "hack/__init__.py",
            "hack/nodeshim/__init__.py",
            "hack/nodeshim/patterns.py",
            "hack/nodeshim/load.py",
        }
        assert set(items.values()) == set(cm["data"])
        for path, key in items.items():
            if path.endswith("__init__.py"):
                assert cm["data"][key] == ""
            else:
                assert cm["data"][key] == (REPO / path).read_text(encoding="utf-8")


def test_the_configmap_layout_and_command_really_start_the_load(tmp_path: Path) -> None:
    """What the container does, on this machine: the ConfigMap's items laid out under a
    folder, PYTHONPATH there and nothing else of the repository importable."""
    if shutil.which("sh") is None or shutil.which("date") is None:
        pytest.skip("needs sh and date")
    root, cwd = tmp_path / "load", tmp_path / "cwd"
    cwd.mkdir()
    cm = load_configmap(NAMESPACE)
    d = _real()[0]
    for item in d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]:
        (root / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (root / item["path"]).write_text(cm["data"][item["key"]], encoding="utf-8")
    spec = json.dumps({"memory": {"pattern": "constant", "value": 2.0}})
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(root),
        "SPEC": spec,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.Popen(
        list(LOAD_COMMAND), cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(1.5)
        alive = proc.poll() is None
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    assert alive, f"the load program exited {proc.returncode}: {err.decode(errors='replace')}"


# ---- sizes


def test_real_node_sizes_fit_two_cpus_beside_presize() -> None:
    shim, real = workloads(TIMING), real_node_workloads(workloads(TIMING))
    assert cpu_requested(shim) + PRESIZE_CPU_REQUESTED > NODE_CPU  # why real mode differs
    total = cpu_requested(real) + PRESIZE_CPU_REQUESTED
    assert total <= 0.75 * NODE_CPU, total  # room left for presize's growth decisions
    for s, r in zip(shim, real, strict=True):
        assert (s.name, dict(s.load), dict(s.limits)) == (r.name, dict(r.load), dict(r.limits))
        assert s.requests["memory"] == r.requests["memory"]
        assert parse_cpu(r.requests["cpu"]) <= parse_cpu(s.requests["cpu"])


def test_presize_requests_match_the_chart_defaults() -> None:
    values = yaml.safe_load((REPO / "charts" / "presize" / "values.yaml").read_text())

    def cpu(component: str) -> float:
        return parse_cpu(values[component]["resources"]["requests"]["cpu"])

    expected = (
        cpu("agent")
        + cpu("controller") * values["controller"]["replicas"]
        + cpu("webhook") * values["webhook"]["replicas"]
    )
    assert expected == pytest.approx(PRESIZE_CPU_REQUESTED)


# ---- chart values


def test_chart_values_carry_the_shim_modes_time_flags_only(tmp_path: Path) -> None:
    config = StackConfig(tmp_path, TIMING, ())
    values = chart_values(config)
    assert set(values) == {"controller", "agent"}
    assert values["controller"] == {"extraArgs": time_flags(config)}
    assert values["agent"] == {"batchSeconds": 5}
    assert time_flags(config) == [
        "--time-scale", "288", "--step", "5", "--profile-period", "2",
        "--urgent-period", "2", "--rollback-window", "4320",
    ]  # fmt: skip
    args = build_parser().parse_args(values["controller"]["extraArgs"])
    assert (args.time_scale, args.step, args.rollback_window) == (288.0, 5.0, 4320.0)
    schema = json.loads((REPO / "charts" / "presize" / "values.schema.json").read_text())
    agent = schema["properties"]["agent"]["properties"]
    assert values["agent"]["batchSeconds"] >= agent["batchSeconds"]["minimum"]
    assert all(isinstance(a, str) for a in values["controller"]["extraArgs"])


def test_platform_text_names_the_kubelet_and_the_runtime(tmp_path: Path) -> None:
    text = platform_text(
        {"kubeletVersion": "v1.35.8", "containerRuntimeVersion": "containerd://1.6.20"}
    )
    assert text == (
        "on a real kubelet node (kubelet v1.35.8, containerd), presize installed by its Helm chart"
    )
    shim = Stack(StackConfig(tmp_path, TIMING, ("a", "b")), print).platform
    assert "node shim" in shim


# ---- cgroups


def test_container_id_drops_the_runtime_prefix() -> None:
    assert container_id("containerd://abc123") == "abc123"
    assert container_id("") == ""


def test_kubelet_paths_follow_the_cgroupfs_layout() -> None:
    root = Path("/sys/fs/cgroup")
    paths = kubelet_container_paths(root, "u-1", "c1")
    assert paths == [
        (root / "cpuacct/kubepods/podu-1/c1", root / "memory/kubepods/podu-1/c1"),
        (
            root / "cpuacct/kubepods/burstable/podu-1/c1",
            root / "memory/kubepods/burstable/podu-1/c1",
        ),
        (
            root / "cpuacct/kubepods/besteffort/podu-1/c1",
            root / "memory/kubepods/besteffort/podu-1/c1",
        ),
    ]


def test_locators_find_existing_dirs_only(tmp_path: Path) -> None:
    real = tmp_path / "cpuacct/kubepods/burstable/podu-1/c1"
    real.mkdir(parents=True)
    locate = kubelet_container_cgroups(tmp_path)
    assert locate("u-1", "presize-node", "c1") == (
        real,
        tmp_path / "memory/kubepods/burstable/podu-1/c1",
    )
    assert locate("u-1", "presize-node", "") is None  # not started yet
    assert locate("u-1", "presize-node", "c2") is None
    shim = tmp_path / "cpuacct/presize-shim/n0/kubepods/podu-2"
    shim.mkdir(parents=True)
    find = shim_pod_cgroups(tmp_path, "presize-shim")
    assert find("u-2", "n0", "whatever") == (
        shim,
        tmp_path / "memory/presize-shim/n0/kubepods/podu-2",
    )
    assert find("u-2", "", "x") is None


class _Api:
    """The API answers the observer needs: one running pod of the real node."""

    def __init__(self) -> None:
        self.cid = "containerd://c1"

    def __call__(self, method: str, path: str) -> dict[str, Any]:
        if not path.endswith("/pods"):
            return {"items": []}
        res = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
        pod = {
            "metadata": {"uid": "u-1", "name": "steady-1", "labels": {"app": "steady"}},
            "spec": {"nodeName": "presize-node", "containers": [{"name": "app", "resources": res}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": "app", "containerID": self.cid, "restartCount": 0, "resources": res}
                ],
            },
        }
        return {"items": [pod]}


def _write(d: Path, cpu_ns: int, mem: int) -> None:
    cpu, memory = d, Path(str(d).replace("/cpuacct/", "/memory/"))
    cpu.mkdir(parents=True, exist_ok=True)
    memory.mkdir(parents=True, exist_ok=True)
    (cpu / "cpuacct.usage").write_text(f"{cpu_ns}\n")
    (memory / "memory.usage_in_bytes").write_text(f"{mem}\n")
    (memory / "memory.stat").write_text("total_inactive_file 0\n")


def test_observer_reads_the_container_cgroup_and_follows_a_restart(tmp_path: Path) -> None:
    api = _Api()
    first = tmp_path / "cpuacct/kubepods/burstable/podu-1/c1"
    _write(first, 10_000_000_000, 50 << 20)
    obs = Observer(api, scale=288.0, cgroups=kubelet_container_cgroups(tmp_path), out=print)
    obs.poll()
    _write(first, 10_050_000_000, 50 << 20)
    time.sleep(0.05)
    obs.poll()
    (track,) = obs.pods.values()
    assert len(track.samples) == 1
    assert track.samples[0].mem_used == 50 << 20
    # Restarted: a new container ID and cgroup, its counter from zero. No sample spans the two.
    api.cid = "containerd://c2"
    second = tmp_path / "cpuacct/kubepods/burstable/podu-1/c2"
    _write(second, 1_000_000, 10 << 20)
    obs.poll()
    assert len(track.samples) == 1
    _write(second, 2_000_000, 12 << 20)
    time.sleep(0.05)
    obs.poll()
    assert len(track.samples) == 2
    assert track.samples[-1].mem_used == 12 << 20
    assert 0.0 < track.samples[-1].cpu_used < 1.0


# ---- --down


def test_leftovers_include_the_real_nodes_processes(tmp_path: Path) -> None:
    """The node's pids recorded in the demo's state file are found (this test's own pid
    stands in for a kubelet; nothing is signalled)."""
    state = tmp_path / "demo-state.json"
    me = {"pid": os.getpid(), "start_time": start_time(os.getpid())}
    gone = {"pid": os.getpid(), "start_time": -1}  # same pid, another start: not ours
    state.write_text(
        json.dumps(
            {
                "processes": {},
                "node": {"processes": {"kubelet": me}},
                "cluster": {"processes": {"etcd": gone}},
            }
        )
    )
    assert leftover_pids(state) == {"kubelet": os.getpid()}
