#!/usr/bin/env bash
# All of presize's checks and tests: lint (ruff), types (mypy --strict), architecture
# (import-linter contracts), then pytest over every tier that can run here:
#   tests/unit      pure functions, always
#   tests/cgroups   real cgroups (needs root)
#   tests/cluster   a real kube-apiserver (needs the cached binaries: hack/cluster/build.sh)
#   tests/docker    a real Docker Engine (needs dockerd from Debian's docker.io)
# A tier whose prerequisites are missing is skipped with the reason; CI installs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup-venv.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "==> ruff";          ruff check .
echo "==> mypy --strict"; mypy
echo "==> import-linter"; lint-imports
echo "==> pytest"
pytest -q "$@"
