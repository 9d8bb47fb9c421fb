#!/usr/bin/env bash
# Build the local-cluster binaries (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy, kubectl, kwok, helm, coredns) from the Go module proxy into a cache outside the repo, keyed by version:
#
#   ${PRESIZE_CACHE:-/var/cache/presize}/bin/<component>-<version>/<binary>
#
# Usage: hack/cluster/build.sh [--force] [--list] [component ...]
#   components: kubernetes etcd kwok helm coredns (default: all). kubernetes builds
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl.
#   --force  rebuild even when a cached binary is present and reports the right version.
#   --list   print the cached binary paths and exit (no build).
#
# Idempotent: a binary is rebuilt only if it is missing or its version output does not name the
# pinned version. Versions come from hack/cluster/versions.env, which must agree with the
# wrapper modules in hack/cluster/gomod/*/go.mod (checked before building).
#
# Environment: PRESIZE_CACHE (cache root), PRESIZE_BUILD_NICE (nice level, default 19),
# PRESIZE_BUILD_JOBS (go build -p, default 2). GOMODCACHE/GOCACHE are Go's own (defaults
# ~/go/pkg/mod and ~/.cache/go-build); keep them between runs for fast rebuilds.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

CACHE="${PRESIZE_CACHE:-/var/cache/presize}"
BIN="$CACHE/bin"
NICE="${PRESIZE_BUILD_NICE:-19}"
JOBS="${PRESIZE_BUILD_JOBS:-2}"

export GOTOOLCHAIN=local   # never download another Go toolchain
export CGO_ENABLED=0       # static binaries, like the upstream releases
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"

FORCE=0
LIST=0
COMPONENTS=()
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --list) LIST=1 ;;
    kubernetes|etcd|kwok|helm|coredns) COMPONENTS+=("$arg") ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
[[ ${#COMPONENTS[@]} -eq 0 ]] && COMPONENTS=(kubernetes etcd kwok helm coredns)

T0=$(date +%s)
log() { printf '[build %s +%4ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*"; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go not found in PATH"

# check_pin <wrapper dir> <module path> <version>: the wrapper's go.mod must require exactly it.
check_pin() {
  local dir="$HERE/gomod/$1" mod="$2" ver="$3"
  grep -Eq "^[[:space:]]*(require[[:space:]]+)?${mod//./\\.} ${ver//./\\.}( |$)" "$dir/go.mod" \
    || die "$dir/go.mod does not require $mod $ver (versions.env and go.mod disagree)"
}

# version_ok <binary> <expected substring> <args...>: binary runs and prints the version.
version_ok() {
  local bin="$1" want="$2"; shift 2
  [[ -x "$bin" ]] || return 1
  local out
  out="$("$bin" "$@" 2>&1)" || return 1
  [[ "$out" == *"$want"* ]]
}

# build_one <component dir> <wrapper> <package> <binary> <expected> <ldflags> <version args...>
build_one() {
  local outdir="$1" wrapper="$2" pkg="$3" name="$4" want="$5" ldflags="$6"; shift 6
  local dest="$outdir/$name"
  if [[ $FORCE -eq 0 ]] && version_ok "$dest" "$want" "$@"; then
    log "$name: cached ($dest)"
    return 0
  fi
  mkdir -p "$outdir"
  log "$name: building $pkg (nice $NICE, -p $JOBS)"
  local s; s=$(date +%s)
  (cd "$HERE/gomod/$wrapper" && nice -n "$NICE" go build -p "$JOBS" -ldflags "$ldflags" \
      -o "$dest.tmp.$$" "$pkg") || { rm -f "$dest.tmp.$$"; die "$name: go build failed"; }
  version_ok "$dest.tmp.$$" "$want" "$@" \
    || { "$dest.tmp.$$" "$@" || true; rm -f "$dest.tmp.$$"; die "$name: version output lacks '$want'"; }
  mv -f "$dest.tmp.$$" "$dest"
  log "$name: built in $(( $(date +%s) - s ))s, $(du -h "$dest" | cut -f1) -> $dest"
}

build_kubernetes() {
  local v="$KUBERNETES_VERSION" minor staging
  check_pin kubernetes k8s.io/kubernetes "$v"
  minor="$(echo "$v" | cut -d. -f2)"
  staging="v0.${v#v1.}"
  # every staging replace must point at v0.X.Y
  if grep -E '^[[:space:]]*k8s\.io/[a-z-]+ => k8s\.io/' "$HERE/gomod/kubernetes/go.mod" \
      | grep -vq " $staging\$"; then
    die "gomod/kubernetes/go.mod has staging replaces not at $staging"
  fi
  local out="$BIN/kubernetes-$v" x
  x="-s -w"
  # The module zips carry placeholders ("v0.0.0-master+$Format:%H$"); stamp what a release
  # build stamps. There is no git commit to stamp, so gitCommit is emptied.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitCommit="
    x+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local b
  # The kubelet and kube-proxy are the real node's (hack/cluster/realnode.py); same module,
  # same stamps.
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    build_one "$out" kubernetes "k8s.io/kubernetes/cmd/$b" "$b" "Kubernetes $v" "$x" --version
  done
  build_one "$out" kubernetes k8s.io/kubernetes/cmd/kubectl kubectl "Client Version: $v" "$x" \
    version --client
}

build_etcd() {
  local v="$ETCD_VERSION"
  check_pin etcd go.etcd.io/etcd/server/v3 "$v"
  # etcd's version string is a constant in go.etcd.io/etcd/api/v3/version; only the SHA is stamped.
  build_one "$BIN/etcd-$v" etcd go.etcd.io/etcd/server/v3 etcd "etcd Version: ${v#v}" \
    "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$v" --version
}

build_kwok() {
  local v="$KWOK_VERSION" out="$BIN/kwok-$KWOK_VERSION"
  check_pin kwok sigs.k8s.io/kwok "$v"
  build_one "$out" kwok sigs.k8s.io/kwok/cmd/kwok kwok "${v#v}" \
    "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${v#v} -X sigs.k8s.io/kwok/pkg/consts.PreRelease=GA" \
    --version
  # Standalone kwok has no built-in stages; copy the upstream default ones out of the module
  # source (in GOMODCACHE; `go mod download` fetches it if needed).
  local stages=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
                pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)
  local f missing=$FORCE
  for f in "${stages[@]}"; do [[ -s "$out/stages/$(basename "$f")" ]] || missing=1; done
  if [[ $missing -eq 0 ]]; then
    log "kwok: stages cached ($out/stages)"
    return 0
  fi
  local moddir
  moddir="$(cd "$HERE/gomod/kwok" && go mod download -json sigs.k8s.io/kwok \
            | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -n "$moddir" && -d "$moddir/kustomize/stage" ]] || die "kwok module source not found"
  mkdir -p "$out/stages"
  for f in "${stages[@]}"; do
    install -m 0644 "$moddir/kustomize/stage/$f" "$out/stages/$(basename "$f")"
  done
  log "kwok: upstream stages copied to $out/stages"
}

build_helm() {
  local v="$HELM_VERSION" kminor
  check_pin helm helm.sh/helm/v3 "$v"
  # Without stamping, helm reports "v3.21" and `helm template`/`helm lint` assume Kubernetes
  # v1.20. Stamp the release version and the pinned cluster's minor.
  kminor="$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
  local x="-s -w -X helm.sh/helm/v3/internal/version.version=$v"
  x+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  x+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  x+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kminor"
  x+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  x+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kminor"
  build_one "$BIN/helm-$v" helm helm.sh/helm/v3/cmd/helm helm "$v" "$x" version --short
}

build_coredns() {
  # The real node's cluster DNS (pods resolve <service>.<namespace>.svc as on any cluster).
  local v="$COREDNS_VERSION"
  check_pin coredns github.com/coredns/coredns "$v"
  build_one "$BIN/coredns-$v" coredns github.com/coredns/coredns coredns "CoreDNS-${v#v}" \
    "-s -w" -version
}

if [[ $LIST -eq 1 ]]; then
  for d in "kubernetes-$KUBERNETES_VERSION" "etcd-$ETCD_VERSION" "kwok-$KWOK_VERSION" \
           "helm-$HELM_VERSION" "coredns-$COREDNS_VERSION"; do
    ls -1d "$BIN/$d"/* 2>/dev/null || echo "missing: $BIN/$d"
  done
  exit 0
fi

log "go: $(go version | cut -d' ' -f3-); cache: $BIN; components: ${COMPONENTS[*]}"
mkdir -p "$BIN"
for c in "${COMPONENTS[@]}"; do
  s=$(date +%s)
  log "== $c"
  "build_$c"
  log "== $c done in $(( $(date +%s) - s ))s"
done
log "all done in $(( $(date +%s) - T0 ))s; cache size $(du -sh "$BIN" | cut -f1)"
