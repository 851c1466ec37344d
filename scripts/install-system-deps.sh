#!/usr/bin/env bash
# Install the system tools the container and Slurm tests need (Debian bookworm, as root):
#   podman, buildah, runc (build and run the image without a Docker daemon), debootstrap (a local
#   base image), slurm-wlm + munge (a real single-node Slurm), python3-venv (the README's virtualenv).
#   About 20 s on a fresh machine.
# Usage: scripts/install-system-deps.sh    (skips apt when everything is already there)
set -euo pipefail
packages=(podman buildah runc fuse-overlayfs uidmap debootstrap slurm-wlm munge ca-certificates python3-venv)
tools=(podman buildah runc debootstrap slurmctld slurmd munged sbatch)
have_all=true
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { have_all=false; break; }
done
# the README's test command makes a virtualenv: Debian's python3 needs python3-venv for ensurepip
python3 -c "import ensurepip, venv" 2>/dev/null || have_all=false
if $have_all; then
    echo "system tools already installed: ${tools[*]}"
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "install-system-deps.sh: run as root (apt-get install ${packages[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "installed: ${packages[*]}"
