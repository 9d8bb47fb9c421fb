"""The demo end to end: ``python -m hack.demo --minutes 3`` as a subprocess, then its outcomes.

The demo starts its own local cluster, node shim, presize controller, agents and webhook (so this
test does not use the session's ``local_cluster``), runs six workloads for three minutes and
tears everything down. Checked, from the outside and from the results JSON the demo writes:

* it exits 0, and the HTML report exists with its embedded plots;
* presize resized at least one running pod in place (a ``Resized`` Event from the controller,
  and resources the node applied that differ from the pod's first ones);
* the webhook created at least one pod with predicted requests (``presize.io/applied``);
* nothing it started is left: no recorded pid still runs (same pid *and* start time), and no
  ``/sys/fs/cgroup/*/presize-shim/<node>`` folder of its nodes remains.

Node names carry this process's pid, so a concurrent run of the demo or of the shim's own tests
on the same machine never shares cgroup folders with this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hack.cluster.localcluster import Binaries
from hack.demo.procs import STATE_FILE, child_env, leftover_pids

pytestmark = [pytest.mark.cluster, pytest.mark.cgroups, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _require_environment() -> None:
    missing = Binaries.from_cache().missing()
    if missing:
        reason = f"local-cluster binaries are not built; run hack/cluster/build.sh ({missing[0]})"
        if os.environ.get("PRESIZE_REQUIRE_CLUSTER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    if os.geteuid() != 0:
        pytest.skip("the node shim creates cgroups: needs root")


def test_demo_end_to_end(tmp_path: Path) -> None:
    _require_environment()
    workdir, report, results = tmp_path / "work", tmp_path / "demo.html", tmp_path / "demo.json"
    prefix = f"demo-t{os.getpid()}-"
    proc = subprocess.run(
        [sys.executable, "-m", "hack.demo", "--minutes", "3", "--workdir", str(workdir),
         "--report", str(report), "--results", str(results), "--node-prefix", prefix],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=330, check=False,
    )  # fmt: skip
    out = proc.stdout[-6000:] + "\n--- stderr\n" + proc.stderr[-3000:]
    assert proc.returncode == 0, out

    html = report.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 6, "one figure per workload"
    data = json.loads(results.read_text(encoding="utf-8"))
    assert data["ok"], data["failure"]

    counts = data["counts"]
    assert counts.get("Resized", 0) >= 1, f"no Resized Event; seen {counts}\n{out}"
    applied = [n for n in data["timeline"] if n["kind"] == "APPLIED"]
    assert applied, "the node never applied a resize (no pod's resources changed)"

    injected = data["injected_pods"]
    assert injected, f"the webhook annotated no pod; seen {counts}\n{out}"
    annotation = data["pods"][injected[0]]["injected"]
    assert annotation["workload"].endswith("/Deployment/api")
    assert annotation["containers"]["app"]["requests"]["cpu"][1] is not None

    left = leftover_pids(workdir / STATE_FILE)
    assert not left, f"processes still running after the demo: {left}"
    nodes = data["nodes"]
    assert nodes
    assert all(n.startswith(prefix) for n in nodes)
    stale = [p for n in nodes for p in CGROUP_ROOT.glob(f"*/presize-shim/{n}")]
    assert not stale, f"cgroups left behind: {stale}"
