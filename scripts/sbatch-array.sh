#!/usr/bin/env bash
#SBATCH --job-name=tspo-bids
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=2G
#SBATCH --time=04:00:00
#SBATCH --output=tspo-bids_%A_%a.out
#
# tspo-bids participant level as a Slurm job array: one participant per array task, each task with
# its own work directory (WORK_ROOT/sub-<label>), all tasks writing into ONE output directory
# (tspo-bids writes every file atomically and dataset_description.json under a lock).
#
# Submit (task N = the N-th participant_id of BIDS_DIR/participants.tsv), then the group level:
#
#   n=$(( $(wc -l < BIDS_DIR/participants.tsv) - 1 ))
#   jid=$(sbatch --parsable --array=1-"$n" scripts/sbatch-array.sh BIDS_DIR OUTPUT_DIR WORK_ROOT [options])
#   sbatch --dependency=afterok:"${jid}" --wrap "tspo-bids BIDS_DIR OUTPUT_DIR group"
#
# Extra arguments after WORK_ROOT go to tspo-bids (e.g. --session-label, --models). The number of
# processes follows the task's CPUs (--cpus-per-task, default 1 above; change with sbatch -c N).
#
# TSPO_BIDS_CMD (environment) is the command that runs the app, default "tspo-bids". For the image:
#   Apptainer/Singularity: TSPO_BIDS_CMD="apptainer run --cleanenv -B /project tspo-bids.sif"
#   podman/docker:         TSPO_BIDS_CMD="podman run --rm --network=none --read-only --user $(id -u):$(id -g)
#                              -e HOME=/tmp -v /project:/project tspo-bids:0.1.0"
# (bind-mount the folders at the same paths inside, so BIDS_DIR, OUTPUT_DIR and WORK_ROOT work unchanged).
#
# Each task prints "tspo-bids-task <label> start <epoch s>" and "... end <epoch s> exit <code>" lines,
# so the timeline of the array can be checked from the output files.
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: sbatch --array=1-N $0 BIDS_DIR OUTPUT_DIR WORK_ROOT [tspo-bids options]" >&2
    exit 2
fi
bids_dir="$1"; output_dir="$2"; work_root="$3"; shift 3
task="${SLURM_ARRAY_TASK_ID:?not an array task: submit with sbatch --array=1-N}"

participants="$bids_dir/participants.tsv"
[[ -f $participants ]] || { echo "$participants: missing (needed to map array tasks to participants)" >&2; exit 1; }
# The participant_id column (whatever its position), row number $task after the header.
label="$(awk -F '\t' -v row="$task" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "participant_id") col = i; next }
    NR - 1 == row { print $col; exit }' "$participants" | tr -d '\r')"
label="${label#sub-}"
[[ -n $label ]] || { echo "$participants: no participant on row $task (array index too large?)" >&2; exit 1; }

read -r -a app <<< "${TSPO_BIDS_CMD:-tspo-bids}"
work_dir="$work_root/sub-$label"
echo "tspo-bids-task $label start $(date +%s.%N) host $(hostname) job ${SLURM_ARRAY_JOB_ID:-?}_${task}"
status=0
"${app[@]}" "$bids_dir" "$output_dir" participant --participant-label "$label" -w "$work_dir" \
    --nprocs "${SLURM_CPUS_PER_TASK:-1}" "$@" || status=$?
echo "tspo-bids-task $label end $(date +%s.%N) exit $status"
exit "$status"
