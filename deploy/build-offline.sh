#!/usr/bin/env bash
# Build the peerlearn image without Docker Hub (which this project's machines cannot reach):
#   1. a Debian bookworm base image made with debootstrap from this machine's apt mirror
#      (python3 3.11 + venv), imported into Docker and tagged as $BASE_IMAGE;
#   2. the wheelhouse (deploy/build-wheelhouse.sh);
#   3. `docker build` of deploy/Dockerfile FROM that base, with no network access (--network none).
#
#   sudo apt-get install -y docker.io docker-compose debootstrap     # once
#   deploy/build-offline.sh                                          # then: docker-compose up
#
# Environment: IMAGE (default peerlearn:latest), BASE_IMAGE (default peerlearn-base:bookworm),
# CACHE_DIR (default deploy/.cache: the base tarball is kept there and reused), DOCKER (docker
# command), PYTHON (a Python 3.11 for the wheelhouse), MIRROR (Debian mirror; default: the first
# one in this machine's apt sources), SKIP_WHEELHOUSE=1 (reuse deploy/wheelhouse as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${IMAGE:-peerlearn:latest}
base=${BASE_IMAGE:-peerlearn-base:bookworm}
cache=${CACHE_DIR:-deploy/.cache}
docker=${DOCKER:-docker}
packages=python3,python3-venv,ca-certificates
say() { echo "build-offline: $*" >&2; }

apt_mirror() {
  # deb822 sources (URIs: ...) or one-line sources (deb URL bookworm main)
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
        | grep -v security | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | awk '{print $2}' | grep -v security | head -n1 || true)
  fi
  echo "$uri"
}

# --- 1. the base image
if "$docker" image inspect "$base" >/dev/null 2>&1; then
  say "base image $base exists"
else
  tarball="$cache/base-bookworm-${packages//,/_}.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { say "debootstrap missing: apt-get install -y debootstrap"; exit 2; }
    mirror=${MIRROR:-$(apt_mirror)}
    [ -n "$mirror" ] || { say "no Debian mirror found in the apt sources; set MIRROR"; exit 2; }
    mkdir -p "$cache"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    say "debootstrap bookworm ($packages) from $mirror (about a minute)"
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  say "importing $tarball as $base"
  "$docker" import --change 'CMD ["/bin/bash"]' "$tarball" "$base" >/dev/null
fi

# --- 2. the wheelhouse
if [ "${SKIP_WHEELHOUSE:-0}" != 1 ] || [ ! -s deploy/wheelhouse/constraints.txt ]; then
  deploy/build-wheelhouse.sh deploy/wheelhouse
fi

# --- 3. the image, built with no network: everything comes from the base and the wheelhouse
say "building $image FROM $base"
DOCKER_BUILDKIT=0 "$docker" build --network none --build-arg BASE_IMAGE="$base" -f deploy/Dockerfile -t "$image" .
say "done: $image (run: docker-compose up)"
