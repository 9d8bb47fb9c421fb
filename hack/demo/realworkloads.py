"""The demo's workloads as real pods on the real node (pure, apart from reading two source files).

On the node shim a kwok pod's "container" is a load process the shim starts in the pod's
cgroup, following the pod's ``presize.io/load`` annotation. A real kubelet runs what the pod
says, so in real-node mode each container runs that same load program itself:

* **The program comes from a ConfigMap.** ``hack/nodeshim/patterns.py`` and
  ``hack/nodeshim/load.py`` (stdlib only) are its data, projected with volume ``items`` to
  ``/load/hack/nodeshim/{patterns,load}.py`` beside empty ``__init__.py`` files for
  ``/load/hack`` and ``/load/hack/nodeshim`` (the repository's own ``__init__`` files are not
  needed, and the shim's would import nothing useful here). With ``PYTHONPATH=/load``,
  ``python3 -m hack.nodeshim.load`` is the very module the shim runs: same patterns, same
  self-correcting CPU burner, same touched memory, so the two modes differ in the node only.
* **The interpreter is presize's controller image** (``presize/controller:<appVersion>``,
  already imported into the node's containerd for the chart, hence ``imagePullPolicy:
  Never``: no registry exists here). Its Debian base has ``sh`` and ``date``.
* **The pattern clock starts at the container's start.** ``load.py`` takes ``STARTED_AT`` (Unix
  time) so that its ``t`` is "seconds since the container started", as the shim reports
  ``startedAt``. Inside a container nothing tells the program when that was, and a placeholder
  would put every pattern at the wrong phase, so a shell wrapper reads the clock as the
  container starts: ``sh -c 'exec python3 -m hack.nodeshim.load "$SPEC" "$(date +%s)"'``. After
  an OOM kill the restarted container starts its patterns (and its memory) from the beginning,
  as on the shim. ``SPEC`` is the canonical JSON of the load (``LoadSpec.to_json``: memory
  keys in the CPU spelling), validated here when the manifest is built.
* **No shim placement.** The shim's node selector and toleration are dropped: the pods land on
  the one real node, ``presize-node``. ``resizePolicy`` is ``NotRequired`` for both resources
  (what an in-place resize without a restart needs; it is also the default). The grace period
  is 2 s: the load program is PID 1 of its container and has no SIGTERM handler, so the kernel
  ignores SIGTERM and the kubelet kills it after the grace period.

**Sizes.** The real node has the machine's 2 CPUs, and presize's own pods request 0.22 CPU
(the chart's defaults: agent 20m, controller 100m, two webhook replicas of 50m each). The shim
demo's CPU requests add up to 2.18 CPU once ``api`` has 3 replicas (the shim's fake nodes have
4 CPUs each), which a real scheduler would not place on one 2-CPU node. So the two
over-provisioned workloads ask for less here: ``steady`` 250m instead of 500m (it uses 30m, so
it is still 8x over-provisioned) and ``api`` 150m instead of 400m per replica (it uses 40m).
That makes 1.18 CPU for the demo at its peak replica count, 1.40 with presize, and leaves
about 0.6 CPU of requests for presize's growth decisions (``ramp`` grows past its 100m limit).
Loads, limits and memory are unchanged (the machine has far more memory than the demo asks).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from hack.demo.procs import REPO
from hack.demo.workloads import Workload, deployment
from hack.nodeshim.patterns import parse_load
from presize.units import parse_cpu

LOAD_CONFIGMAP: Final = "presize-demo-load"
LOAD_VOLUME: Final = "load"
LOAD_ROOT: Final = "/load"
# ConfigMap key -> (source in this repository, or None for an empty file; path under /load).
LOAD_FILES: Final = (
    ("hack.__init__.py", None, "hack/__init__.py"),
    ("hack.nodeshim.__init__.py", None, "hack/nodeshim/__init__.py"),
    ("hack.nodeshim.patterns.py", "hack/nodeshim/patterns.py", "hack/nodeshim/patterns.py"),
    ("hack.nodeshim.load.py", "hack/nodeshim/load.py", "hack/nodeshim/load.py"),
)
LOAD_COMMAND: Final = (
    "sh",
    "-c",
    'exec python3 -m hack.nodeshim.load "$SPEC" "$(date +%s)"',
)
REAL_NODE_CPU_REQUESTS: Final = {"steady": "250m", "api": "150m"}
PRESIZE_CPU_REQUESTED: Final = 0.22  # the chart's default requests, see the module docstring
NODE_CPU: Final = 2.0


def demo_image(app_version: str) -> str:
    """The image whose Python runs the load: presize's controller image, as the chart tags it."""
    return f"presize/controller:{app_version}"


def load_configmap(namespace: str, repo: Path = REPO) -> dict[str, Any]:
    """The ConfigMap holding the load program (see the module docstring)."""
    data = {
        key: (repo / source).read_text(encoding="utf-8") if source else ""
        for key, source, _ in LOAD_FILES
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": LOAD_CONFIGMAP, "namespace": namespace},
        "data": data,
    }


def load_volume() -> dict[str, Any]:
    """The ConfigMap as a volume, each file projected to its package path under /load."""
    items = [{"key": key, "path": path} for key, _, path in LOAD_FILES]
    return {"name": LOAD_VOLUME, "configMap": {"name": LOAD_CONFIGMAP, "items": items}}


def real_node_workloads(ws: Sequence[Workload]) -> list[Workload]:
    """The shim demo's workloads with the CPU requests that fit the real node."""
    out = []
    for w in ws:
        cpu = REAL_NODE_CPU_REQUESTS.get(w.name)
        out.append(replace(w, requests={**w.requests, "cpu": cpu}) if cpu else w)
    return out


def cpu_requested(ws: Sequence[Workload]) -> float:
    """Cores the workloads request once every scale-out happened (before presize resizes)."""
    return sum(parse_cpu(w.requests.get("cpu", "0")) * max(w.replicas, w.scale_to or 1) for w in ws)


def load_spec(w: Workload) -> str:
    """The canonical load JSON the program takes (raises ``LoadSpecError`` if invalid)."""
    return parse_load(json.dumps(dict(w.load), sort_keys=True)).to_json()


def real_deployment(w: Workload, image: str) -> dict[str, Any]:
    """:func:`hack.demo.workloads.deployment` for a real kubelet: same names, labels, replicas
    and resources, but the container runs the load program itself and may land on any node."""
    d = deployment(w)
    template = d["spec"]["template"]
    template["metadata"].pop("annotations", None)  # no shim here to read presize.io/load
    spec = template["spec"]
    spec.pop("nodeSelector", None)
    spec.pop("tolerations", None)
    spec["terminationGracePeriodSeconds"] = 2
    spec["volumes"] = [load_volume()]
    container = spec["containers"][0]
    container.update(
        image=image,
        imagePullPolicy="Never",
        command=list(LOAD_COMMAND),
        env=[
            {"name": "SPEC", "value": load_spec(w)},
            {"name": "PYTHONPATH", "value": LOAD_ROOT},
        ],
        resizePolicy=[
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "NotRequired"},
        ],
        volumeMounts=[{"name": LOAD_VOLUME, "mountPath": LOAD_ROOT, "readOnly": True}],
    )
    return d
