#!/usr/bin/env bash
# Build presize's three images (presize/{agent,controller,webhook}:<chart appVersion>) and save
# them as archives for `ctr images import` or `docker load`; prints a JSON object with the
# archive paths on its last line. A second run with unchanged sources returns in seconds.
#
#   bash hack/images.sh                    # archives in $PRESIZE_CACHE/images (/var/cache/presize)
#   bash hack/images.sh --out DIR          # elsewhere
#   bash hack/images.sh --docker-host unix:///run/docker.sock   # an engine you run, not a private one
#
# Needs root, Debian's docker.io and debootstrap (python -m hack.docker.images --help; its
# docstring says how it builds and caches).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/setup-venv.sh
case "${1:-}" in
  build|-h|--help) ;;
  *) set -- build "$@" ;;
esac
exec .venv/bin/python -m hack.docker.images "$@"
