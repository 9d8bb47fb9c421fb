#!/usr/bin/env bash
# presize's main job: the local demo. A real kube-apiserver (binaries built from the Go module
# proxy on first use and cached), the node shim giving kwok pods real cgroups and real load, and
# presize's agent, controller and webhook as local processes sizing six workloads while you
# watch; ends with a summary and out/demo.html, and stops everything it started.
#   bash hack/demo.sh [--minutes 6] [--report out/demo.html] [-v]
#   bash hack/demo.sh --real-node   # the same on a real kubelet node, presize installed by its
#                                   # Helm chart (first installs hack/prereqs.sh's packages and
#                                   # builds presize's images; PRESIZE_SKIP_PREREQS=1 skips the
#                                   # packages)
# Needs root (the node shim creates cgroups). The replay benchmark is `bash hack/replay.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup-venv.sh
real_node=0
for arg in "$@"; do if [ "$arg" = --real-node ]; then real_node=1; fi; done
if [ "$real_node" = 1 ] && [ "${PRESIZE_SKIP_PREREQS:-0}" != 1 ]; then
  bash hack/prereqs.sh   # Debian packages for the node and the image builds, then build.sh
else
  bash hack/cluster/build.sh
fi
mkdir -p out
exec .venv/bin/python -m hack.demo "$@"
