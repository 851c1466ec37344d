"""Shared pieces of the end-to-end tests on data/test_bids (imported by the tests and conftest).

The participant + group run is made once per session by ``tests/container/shared_runs.py``
(``reference_run``: in ``$TSPO_BIDS_E2E_DIR`` when .ci/run sets it, so the container and Slurm
comparisons reuse it, else in a temporary folder), with :data:`PARTICIPANT_OPTIONS`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tspo_bids.bids.names import parse_entities

REPO = Path(__file__).resolve().parents[2]
TEST_BIDS = REPO / "data" / "test_bids"
TRUTH = TEST_BIDS / "derivatives" / "phantom-truth"

#: The participant command, run once and again by the resume test (same command line, so the
#: sidecars' CommandLine is the same; -v makes Nipype log "Executing"/"Cached").
PARTICIPANT_OPTIONS = ("--nprocs", "2", "--omp-nthreads", "1", "-v")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``tspo-bids`` in a subprocess (as a user would), capturing its output."""
    return subprocess.run([sys.executable, "-m", "tspo_bids.cli.run", *args],
                          capture_output=True, text=True, timeout=1800)


def shared_runs():
    """tests/container/shared_runs.py, loaded by path (test folders are not packages)."""
    name = "tspo_bids_shared_runs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "container" / "shared_runs.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def truth_sessions() -> list[Path]:
    """The phantom's truth kinpar tables, one per participant/session."""
    found = sorted(TRUTH.glob("sub-*/**/*_desc-truth_kinpar.tsv"))
    assert found, f"no phantom truth under {TRUTH}"
    return found


def session_prefix(path: Path) -> str:
    """``sub-<l>[_ses-<l>]`` of a file."""
    entities = parse_entities(path)
    return f"sub-{entities['sub']}" + (f"_ses-{entities['ses']}" if "ses" in entities else "")


def one(root: Path, pattern: str) -> Path:
    """The single file matching ``pattern`` under ``root``."""
    matches = sorted(root.glob(pattern))
    assert len(matches) == 1, f"expected one {pattern} under {root}, found {matches}"
    return matches[0]
