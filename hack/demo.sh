#!/usr/bin/env bash
# presize's main job: the local demo. A real kube-apiserver (binaries built from the Go module
# proxy on first use and cached), the node shim giving kwok pods real cgroups and real load, and
# presize's agent, controller and webhook as local processes sizing six workloads while you
# watch; ends with a summary and out/demo.html, and stops everything it started.
#   bash hack/demo.sh [--minutes 6] [--report out/demo.html] [-v]
# Needs root (the node shim creates cgroups). The replay benchmark is `bash hack/replay.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup-venv.sh
bash hack/cluster/build.sh
mkdir -p out
exec .venv/bin/python -m hack.demo "$@"
