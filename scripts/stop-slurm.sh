#!/usr/bin/env bash
# Stop the daemons scripts/start-slurm.sh started (munged, slurmctld, slurmd), by their PIDs.
set -uo pipefail
pids=/run/tspo-bids-slurm.pids
[[ -f $pids ]] || { echo "stop-slurm.sh: no $pids (nothing started by start-slurm.sh)"; exit 0; }
while read -r pid; do
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && echo "stopped $pid"
done < "$pids"
rm -f "$pids"
