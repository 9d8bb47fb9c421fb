#!/usr/bin/env bash
# Build (or reuse) the local Python base image for presize's Dockerfiles, with no registry:
# a Debian minbase root file system made by debootstrap from Debian's mirror, plus python3 and
# python3-venv (which brings ensurepip, so `python3 -m venv` gives a venv with pip), turned into
# an image with `tar | docker import`.
#
#   hack/docker/make-base-image.sh            # prints the image tag on its last line
#   BASE_IMAGE=$(hack/docker/make-base-image.sh | tail -n1)
#   docker build --build-arg BASE_IMAGE="$BASE_IMAGE" -f Dockerfile.webhook .
#   hack/docker/make-base-image.sh --print-tag  # only the tag it would make; needs no engine
#
# Cached twice, keyed by the recipe: the tag carries a hash of this script and of the suite, so
# editing the recipe makes a new tag; an existing image with that tag is reused as is, and the
# root file system tarball is kept under $PRESIZE_CACHE/images so that another Docker data root
# (a test's private dockerd) imports it in seconds instead of running debootstrap again.
#
# Environment: DOCKER (client command, default `docker`; DOCKER_HOST is honoured), SUITE
# (bookworm), MIRROR (http://deb.debian.org/debian), REPO (local/presize-base),
# PRESIZE_CACHE (/var/cache/presize), FORCE=1 to rebuild the tarball.
# Needs root, debootstrap and tar.
set -euo pipefail

DOCKER=${DOCKER:-docker}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
REPO=${REPO:-local/presize-base}
CACHE=${PRESIZE_CACHE:-/var/cache/presize}/images
PACKAGES=python3,python3-venv,ca-certificates

here=$(cd "$(dirname "$0")" && pwd)
recipe=$( (cat "$here/make-base-image.sh"; echo "$SUITE $PACKAGES") | sha256sum | cut -c1-12)
tag="$REPO:$SUITE-$recipe"
tarball="$CACHE/presize-base-$SUITE-$recipe.tar"

log() { echo "make-base-image: $*" >&2; }

if [ "${1:-}" = --print-tag ]; then
  echo "$tag"
  exit 0
fi

if $DOCKER image inspect "$tag" >/dev/null 2>&1 && [ "${FORCE:-0}" != 1 ]; then
  log "reusing image $tag"
  echo "$tag"
  exit 0
fi

if [ ! -s "$tarball" ] || [ "${FORCE:-0}" = 1 ]; then
  command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install -y debootstrap)"; exit 1; }
  [ "$(id -u)" = 0 ] || { log "debootstrap needs root"; exit 1; }
  mkdir -p "$CACHE"
  work=$(mktemp -d "${TMPDIR:-/tmp}/presize-rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  rootfs="$work/rootfs"
  log "debootstrap --variant=minbase $SUITE from $MIRROR (with $PACKAGES)"
  start=$(date +%s)
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  # Slim it: package caches and lists, docs, man pages, locales; nothing at run time needs them.
  # The standard library's .pyc files stay: the images run with a read-only root file system,
  # where Python could not write them back, so every start would compile the stdlib again.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
         "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
         "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
  find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true
  # Default apt sources for anyone who extends the image.
  echo "deb $MIRROR $SUITE main" >"$rootfs/etc/apt/sources.list"
  tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  # Older recipes of this suite are dead weight (about 120 MB each).
  find "$CACHE" -maxdepth 1 -name "presize-base-$SUITE-*.tar" ! -path "$tarball" -delete
  log "root file system in $(( $(date +%s) - start ))s: $(du -h "$tarball" | cut -f1) at $tarball"
fi

log "importing $tarball as $tag"
$DOCKER import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  "$tarball" "$tag" >/dev/null
echo "$tag"
