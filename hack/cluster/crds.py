"""The chart's CRDs as manifests, rendered by the cached ``helm`` (for tests, bench and demo).

The CRDs are templates in ``charts/presize`` (labels come from the release), so they are
rendered with ``helm template --show-only`` rather than read as files: what tests install is
exactly what ``helm install`` installs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from hack.cluster.localcluster import Binaries

CHART = Path(__file__).resolve().parents[2] / "charts" / "presize"
CRD_TEMPLATES = ("templates/crds/workloadprofiles.yaml", "templates/crds/presizepolicies.yaml")


def crd_manifests(helm: Path | None = None) -> list[dict[str, Any]]:
    """Both CRDs, as dicts; raises ``FileNotFoundError`` when helm is not built."""
    binary = helm or Binaries.from_cache().helm
    if not binary.exists():
        raise FileNotFoundError(f"helm not built ({binary}); run hack/cluster/build.sh helm")
    args = [str(binary), "template", "presize", str(CHART)]
    for template in CRD_TEMPLATES:
        args += ["--show-only", template]
    rendered = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]
