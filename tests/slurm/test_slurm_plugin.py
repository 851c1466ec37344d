"""Nipype's SLURM plugin on a real Slurm: one participant through ``--use-plugin``.

Needs a running Slurm (scripts/start-slurm.sh; .ci/run starts one). The run is restricted to one
participant (CI time) and must give the same kinpar/tacs numbers as the pip-installed MultiProc run
(tests/container/shared_runs.py: reference_run) within 1e-6.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

PARTICIPANT = "01"


@pytest.fixture(scope="module")
def slurm_plugin_run(shared, tmp_path_factory):
    shared.require_slurm()
    root = tmp_path_factory.mktemp("slurm_plugin")
    plugin = root / "slurm.yml"
    plugin.write_text(
        "plugin: SLURM\n"
        "plugin_args:\n"
        "  sbatch_args: --cpus-per-task=1 --mem=2G --time=60\n"
        "  max_tries: 2\n"
        "  retry_timeout: 2\n"
    )
    out, work = root / "out", root / "work"
    command = [sys.executable, "-m", "tspo_bids.cli.run", str(shared.TEST_BIDS), str(out), "participant",
               "-w", str(work), "--participant-label", PARTICIPANT, "--use-plugin", str(plugin),
               *shared.e2e_participant_options()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, work, result


def test_nodes_ran_as_slurm_jobs(slurm_plugin_run):
    _, work, result = slurm_plugin_run
    scripts = list(work.rglob("batch/batchscript_*.sh"))
    outputs = list(work.rglob("batch/slurm-*.out"))
    assert scripts, f"no Nipype batch scripts under {work}: the SLURM plugin did not submit"
    assert len(outputs) >= len(scripts) * 0.9, (len(outputs), len(scripts))
    assert "SLURM" in result.stderr


def test_slurm_plugin_outputs_complete(shared, slurm_plugin_run):
    """Same tables, columns and rows as the MultiProc run (numbers: the next test)."""
    out, _, _ = slurm_plugin_run
    reference = shared.reference_run()
    assert shared.count_numbers(out, PARTICIPANT) > 0
    problems = shared.compare_derivatives(reference, out, participant=PARTICIPANT, tolerance=math.inf)
    assert not problems, "\n".join(problems[:20])
    shared.check_dataset_description(out)
    shared.check_outputs_parse(out, shared.session_prefixes(participant=PARTICIPANT))


def test_slurm_plugin_matches_multiproc(shared, slurm_plugin_run):
    out, _, _ = slurm_plugin_run
    problems = shared.compare_derivatives(shared.reference_run(), out, participant=PARTICIPANT)
    assert not problems, "\n".join(problems[:20])
