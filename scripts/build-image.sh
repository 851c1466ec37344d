#!/usr/bin/env bash
# Build the tspo-bids image from the Dockerfile with podman (no Docker daemon needed).
# Usage: scripts/build-image.sh [TAG] [BASE_IMAGE]
#   TAG         default localhost/tspo-bids:latest
#   BASE_IMAGE  default: the Dockerfile's (python:3.11-slim-bookworm); CI passes the local
#               debootstrap image from scripts/build-base-image.sh.
# The host CA bundle is mounted read-only for the build's pip (HTTPS through an intercepting
# proxy); nothing of it stays in the image. Prints the build time and the image size.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-localhost/tspo-bids:latest}"
base="${2:-}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' tspo_bids/__init__.py)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
args=(--isolation=chroot --layers -f Dockerfile -t "$tag"
      --build-arg "VERSION=$version" --build-arg "VCS_REF=$revision"
      --build-arg "BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
[[ -n "$base" ]] && args+=(--build-arg "BASE_IMAGE=$base")
ca=/etc/ssl/certs/ca-certificates.crt
[[ -f "$ca" ]] && args+=(-v "$ca:$ca:ro" --env "PIP_CERT=$ca")
start=$(date +%s)
podman build "${args[@]}" .
end=$(date +%s)
size=$(podman image inspect "$tag" --format '{{.Size}}')
echo "built $tag in $((end - start)) s; image size $((size / 1000000)) MB"
