#!/usr/bin/env bash
# The replay benchmark: replay every sizing policy over the real
# traces in ../shared/traces (read in place) and write a table, JSON and an HTML report.
#   bash hack/replay.sh [extra presize replay flags, e.g. --limit 20 or --curve]
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup-venv.sh
TRACES=${PRESIZE_TRACES:-../shared/traces}
mkdir -p out
.venv/bin/presize replay --traces "$TRACES" --json out/replay.json --report out/replay.html "$@"
echo "==> out/replay.json, out/replay.html"
