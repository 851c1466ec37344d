#!/usr/bin/env bash
# Start a real single-node Slurm (slurmctld + slurmd + munge) on this machine, for CI and for
# trying the SLURM plugin / sbatch array locally. Needs root and the Debian packages slurm-wlm and
# munge (scripts/install-system-deps.sh). No systemd needed.
#
# Usage: scripts/start-slurm.sh            start (idempotent: returns at once if sinfo shows idle)
#        scripts/stop-slurm.sh             stop exactly the daemons this script started (by PID)
#
# The node is "localhost" in partition "debug", with SLURM_CPUS (default 8) CPUs: more than the
# cores of a 2-core CI machine (SlurmdParameters=config_overrides), so that all single-CPU array
# tasks of data/test_bids run at the same time. Memory: SLURM_MEM_MB (default 3/4 of RAM), 2000 MB per CPU by default.
# It writes /etc/slurm/slurm.conf only when that file is absent or was written by this script.
# Starting the daemons clears the saved job state (slurmctld -c): jobs left by daemons that died are dropped.
set -euo pipefail
conf=/etc/slurm/slurm.conf
pids=/run/tspo-bids-slurm.pids
marker="# written by tspo-bids scripts/start-slurm.sh"
cpus="${SLURM_CPUS:-8}"
mem="${SLURM_MEM_MB:-$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) * 3 / 4 / 1024 ))}"

if [[ $EUID -ne 0 ]]; then echo "start-slurm.sh: run as root" >&2; exit 1; fi
for tool in slurmctld slurmd munged sinfo; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || {
        echo "start-slurm.sh: $tool missing (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
if [[ -f $conf ]] && ! grep -qF "$marker" "$conf"; then
    echo "start-slurm.sh: $conf exists and was not written by this script; not touching it" >&2
    exit 1
fi
mkdir -p /etc/slurm /var/lib/slurm/slurmd /var/lib/slurm/slurmctld /var/log/slurm /run/munge
wanted="$(cat <<CONF
$marker
ClusterName=tspo-bids-ci
SlurmctldHost=localhost
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
DefMemPerCPU=2000
ReturnToService=2
MailProg=/bin/true
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
)"
if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
    if [[ -f $conf && "$(cat "$conf")" == "$wanted" ]]; then
        echo "Slurm already running: $(sinfo -h -o '%P %D %t %c')"
        exit 0
    fi
    if [[ ! -s $pids ]]; then
        echo "start-slurm.sh: a Slurm not started by this script is running; not touching it" >&2
        exit 1
    fi
    echo "restarting the Slurm this script started (configuration changed)"
    "$(dirname "$0")/stop-slurm.sh"
    sleep 1
fi
printf '%s\n' "$wanted" > "$conf"
chown slurm:slurm /var/lib/slurm/slurmctld /var/log/slurm
chown munge:munge /run/munge
chmod 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi

: > "$pids"
if [[ ! -S /run/munge/munge.socket.2 ]] || ! munge -n </dev/null >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    sleep 0.5
    cat /run/munge/munged.pid >> "$pids"
fi
rm -f /run/slurmctld.pid /run/slurmd.pid  # so the wait below sees the new daemons
# No controller is running here, so any job in the saved state belongs to daemons that died (a machine
# restart mid-run): without -c the controller recovers those jobs, the node stays "mix" and never idles.
/usr/sbin/slurmctld -c
/usr/sbin/slurmd -c -N localhost
for _ in $(seq 1 60); do  # the pid files appear once the daemons have forked
    [[ -s /run/slurmctld.pid && -s /run/slurmd.pid ]] && break
    sleep 0.5
done
cat /run/slurmctld.pid /run/slurmd.pid >> "$pids"

for _ in $(seq 1 60); do
    state="$(sinfo -h -o %t 2>/dev/null || true)"
    if [[ $state == idle ]]; then
        echo "Slurm up: $(sinfo -h -o 'partition %P, %D node, state %t, %c CPUs, %m MB')"
        exit 0
    fi
    sleep 1
done
echo "start-slurm.sh: the node did not become idle (state: ${state:-none}); logs in /var/log/slurm" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
