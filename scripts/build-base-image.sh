#!/usr/bin/env bash
# Make a local Debian bookworm + Python 3.11 base image with debootstrap and import it into podman,
# for machines that cannot pull python:3.11-slim-bookworm from a registry (CI here).
# Usage: scripts/build-base-image.sh [IMAGE]   (default localhost/tspo-bids-base:bookworm)
# Skips the work when IMAGE already exists. Needs root, debootstrap and podman.
set -euo pipefail
image="${1:-localhost/tspo-bids-base:bookworm}"
if podman image exists "$image"; then
    echo "base image $image already exists"
    exit 0
fi
# The Debian mirror this machine's apt uses (deb822 or one-line sources).
mirror="$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
          | head -n1 | awk '{print $2}' || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs="$(mktemp -d /var/tmp/tspo-bids-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "imported $image"
