#!/usr/bin/env bash
# All of presize's checks and tests: lint (ruff), types (mypy --strict), architecture
# (import-linter contracts), then pytest over every tier that can run here:
#   tests/unit      pure functions, always
#   tests/cgroups   real cgroups (needs root)
#   tests/cluster   a real kube-apiserver (needs the cached binaries: hack/cluster/build.sh)
#   tests/docker    a real Docker Engine (needs dockerd from Debian's docker.io)
#   tests/node      presize installed by its chart on a real kubelet node (root, containerd)
# First it installs what the tiers need (hack/prereqs.sh: Debian packages as root, the cluster
# binaries; PRESIZE_SKIP_PREREQS=1 skips that). A tier whose prerequisites are still missing is
# skipped with the reason; CI sets PRESIZE_REQUIRE_* so that a skip fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${PRESIZE_SKIP_PREREQS:-0}" = 1 ] || bash hack/prereqs.sh
bash hack/setup-venv.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "==> ruff";          ruff check .
echo "==> mypy --strict"; mypy
echo "==> import-linter"; lint-imports
echo "==> pytest"
pytest -q "$@"
