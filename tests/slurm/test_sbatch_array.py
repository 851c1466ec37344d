"""The documented sbatch array (scripts/sbatch-array.sh) running the container image on a real Slurm.

One array task per participant of data/test_bids, each task its own work directory, all tasks
writing into ONE output directory at the same time; every task runs the image as Singularity
would (``--network=none --read-only --user 65534:65534 -e HOME=/tmp``, bind-mounted folders). Then
the group level runs in the container. This one run checks three acceptance items at once:

- the container's participant + group derivatives equal the pip-installed run's (1e-6);
- the sbatch array completes on Slurm and matches the MultiProc results;
- concurrent participant runs into one OUTPUT_DIR: the tasks overlapped in time, every output
  exists and parses, dataset_description.json is valid, no file is lost or half-written.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from tspo_bids import __version__

TASK_LINE = re.compile(r"^tspo-bids-task (\w+) (start|end) ([0-9.]+)(?: .*exit (\d+))?")


def _participants(shared) -> list[str]:
    table = pd.read_csv(shared.TEST_BIDS / "participants.tsv", sep="\t")
    return [p.removeprefix("sub-") for p in table["participant_id"]]


@pytest.fixture(scope="module")
def array_run(shared, image, tmp_path_factory):
    shared.require_slurm()
    root = tmp_path_factory.mktemp("sbatch_array")
    os.chmod(root, 0o777)  # the container runs as uid 65534 and creates out/ and work/ here
    out, work, logs = root / "out", root / "work", root / "slurm-logs"
    logs.mkdir()
    bids = shared.TEST_BIDS
    env = shared.podman_env() | {"TSPO_BIDS_CMD": shared.container_command(image, f"{bids}:{bids}:ro",
                                                                             f"{root}:{root}")}
    labels = _participants(shared)
    submit = subprocess.run(
        ["sbatch", "--wait", "--parsable", f"--array=1-{len(labels)}", f"--output={logs}/task_%a.out",
         f"--chdir={root}", str(shared.SCRIPTS / "sbatch-array.sh"), str(bids), str(out), str(work),
         "--omp-nthreads", "1", "-v"],
        capture_output=True, text=True, env=env, timeout=3600)
    task_logs = {p.name: p.read_text()[-3000:] for p in sorted(logs.glob("task_*.out"))}
    assert submit.returncode == 0, f"{submit.stdout}\n{submit.stderr}\n" + "\n".join(
        f"--- {name}\n{text}" for name, text in task_logs.items())
    group = shared.podman_run(image, str(bids), str(out), "group", mounts=(f"{bids}:{bids}:ro", f"{root}:{root}"))
    assert group.returncode == 0, group.stderr[-4000:]
    return root, out, logs, labels


def test_every_task_ran_and_they_overlapped(array_run):
    _, _, logs, labels = array_run
    starts, ends = {}, {}
    for log in logs.glob("task_*.out"):
        for line in log.read_text().splitlines():
            match = TASK_LINE.match(line)
            if match and match[2] == "start":
                starts[match[1]] = float(match[3])
            elif match:
                ends[match[1]] = float(match[3])
                assert match[4] == "0", line
    assert sorted(starts) == sorted(labels) == sorted(ends)
    latest_start, earliest_end = max(starts.values()), min(ends.values())
    assert latest_start < earliest_end, (
        f"the {len(labels)} participant tasks did not all run at the same time: last start "
        f"{latest_start:.0f} >= first end {earliest_end:.0f}")


def test_shared_output_dir_valid_and_nothing_lost(shared, array_run):
    root, out, _, labels = array_run
    description = shared.check_dataset_description(out)
    assert description["GeneratedBy"][0]["Container"] == {"Type": "docker", "Tag": f"tspo-bids:{__version__}"}
    prefixes = shared.session_prefixes()
    assert {p.split("_")[0] for p in prefixes} == {f"sub-{label}" for label in labels}
    assert shared.check_outputs_parse(out, prefixes) > 0
    logs = list((out / "logs").glob("sub-*.log"))
    assert len(logs) == len(labels), [p.name for p in logs]
    assert sorted(p.name for p in (root / "work").iterdir()) == sorted(f"sub-{label}" for label in labels)
    temporary = [p for p in out.rglob(".*") if p.is_file() and p.name != ".dataset_description.lock"
                 and p.name != ".bidsignore"]
    assert not temporary, temporary[:5]
    ignored = (out / ".bidsignore").read_text().splitlines()
    assert ignored and len(ignored) == len(set(ignored)), ignored


def test_container_outputs_complete(shared, array_run):
    """Same tables, columns and rows as the pip-installed run, group table included (numbers: below)."""
    _, out, _, labels = array_run
    reference = shared.reference_run()
    assert shared.count_numbers(out) > 100
    problems = shared.compare_derivatives(reference, out, tolerance=math.inf)
    problems += shared.compare_tables(reference / "group" / "group_kinpar.tsv", out / "group" / "group_kinpar.tsv",
                                      tolerance=math.inf)
    assert not problems, "\n".join(problems[:20])
    found = pd.read_csv(out / "group" / "group_kinpar.tsv", sep="\t", na_values="n/a")
    assert set(found["participant_id"]) == {f"sub-{label}" for label in labels}
    json.loads((out / "group" / "group_kinpar.json").read_text())


def test_container_array_matches_pip_run(shared, array_run):
    _, out, _, _ = array_run
    problems = shared.compare_derivatives(shared.reference_run(), out)
    assert not problems, "\n".join(problems[:20])


def test_container_group_level_matches_pip_run(shared, array_run):
    _, out, _, _ = array_run
    problems = shared.compare_tables(shared.reference_run() / "group" / "group_kinpar.tsv",
                                     out / "group" / "group_kinpar.tsv")
    assert not problems, "\n".join(problems[:20])
