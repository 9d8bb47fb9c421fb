#!/usr/bin/env bash
# Install what presize's test tiers and its demo need on this kind of machine (Debian 12, root),
# so that `bash hack/test.sh` passes on a fresh machine as it does in CI:
#   - Debian packages: openssl, gzip; docker.io and debootstrap (the docker tier and the image
#     builds: a private dockerd, a base image from a local root file system); containerd, runc,
#     containernetworking-plugins, busybox-static, iptables, iproute2 and gcc (the real node:
#     hack/cluster/realnode.py; gcc compiles its pause binary);
#   - the cluster binaries (etcd, kube-apiserver, controller-manager, scheduler, kubelet,
#     kube-proxy, kubectl, kwok, helm, CoreDNS) built from the Go module proxy and cached in
#     ${PRESIZE_CACHE:-/var/cache/presize}/bin by version (about 10-13 min the first time).
# Only what is missing is installed; a warm machine passes through in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "==> prereqs: not root; skipping Debian packages and the tiers that need them" >&2
else
  missing=()
  for pair in openssl:openssl gzip:gzip dockerd:docker.io debootstrap:debootstrap \
      containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
      /bin/busybox:busybox-static iptables:iptables ip:iproute2 gcc:gcc; do
    probe=${pair%%:*}
    if [[ $probe == /* ]]; then [ -e "$probe" ] && continue; else command -v "$probe" >/dev/null && continue; fi
    missing+=("${pair##*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi
if command -v go >/dev/null; then
  bash hack/cluster/build.sh
else
  echo "==> prereqs: go not found; the cluster and node tiers cannot run" >&2
  exit 1
fi
