"""Shared pieces of the end-to-end tests on data/test_bids (imported by the tests and conftest).

The participant + group run is made once per session by ``tests/container/shared_runs.py``
(``reference_run``: in ``$TSPO_BIDS_E2E_DIR`` when .ci/run sets it, so the container and Slurm
comparisons reuse it, else in a temporary folder), with :data:`PARTICIPANT_OPTIONS`.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from tspo_bids.bids.names import parse_entities

REPO = Path(__file__).resolve().parents[2]
TEST_BIDS = REPO / "data" / "test_bids"

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


def truth_sessions(bids_dir: Path = TEST_BIDS) -> list[Path]:
    """The phantom's truth kinpar tables, one per participant/session (of data/test_bids by default)."""
    truth = bids_dir / "derivatives" / "phantom-truth"
    found = sorted(truth.glob("sub-*/**/*_desc-truth_kinpar.tsv"))
    assert found, f"no phantom truth under {truth}"
    return found


def phantom_psf_mm() -> str:
    """The PET PSF FWHM (mm) the phantom simulated, as a ``--pvc-psf`` argument."""
    sidecar = truth_sessions()[0].with_suffix(".json")
    return f"{json.loads(sidecar.read_text())['PSF_FWHM_mm']:g}"


def session_prefix(path: Path) -> str:
    """``sub-<l>[_ses-<l>]`` of a file."""
    entities = parse_entities(path)
    return f"sub-{entities['sub']}" + (f"_ses-{entities['ses']}" if "ses" in entities else "")


def one(root: Path, pattern: str) -> Path:
    """The single file matching ``pattern`` under ``root``."""
    matches = sorted(root.glob(pattern))
    assert len(matches) == 1, f"expected one {pattern} under {root}, found {matches}"
    return matches[0]


def phenotype_agreement(out: Path, bids_dir: Path = TEST_BIDS):
    """Every true lesion of the phantom with the phenotype the group level gave it (pandas table).

    Each true lesion is matched to the detected lesion it overlaps most ("not detected" when none);
    columns: session, volume_mm3, truth, predicted, rim/core DVR (true tissue and measured), threshold,
    correct, size (bins 27-100, 100-500, >= 500 mm^3).
    """
    import nibabel as nib
    import numpy as np
    import pandas as pd

    predicted = pd.read_csv(out / "group" / "lesion_phenotypes.tsv", sep="\t", na_values="n/a")
    rows = []
    for truth_table in sorted((bids_dir / "derivatives" / "phantom-truth").glob("sub-*/**/*_desc-truth_lesions.tsv")):
        prefix = session_prefix(truth_table)
        entities = parse_entities(truth_table)
        truth = pd.read_csv(truth_table, sep="\t", na_values="n/a")
        truth_labels = np.asarray(nib.load(one(truth_table.parent, f"{prefix}_*desc-lesions_dseg.nii.gz")).dataobj)
        found_labels = np.asarray(nib.load(one(out, f"sub-*/**/anat/{prefix}_desc-lesions_dseg.nii.gz")).dataobj)
        own = predicted[(predicted.participant_id == f"sub-{entities['sub']}")
                        & (predicted.session_id.astype(str) == str(entities.get("ses")))].set_index("lesion_id")
        for _, lesion in truth.iterrows():
            overlap = found_labels[truth_labels == int(lesion["index"])]
            overlap = overlap[overlap > 0]
            label = int(np.bincount(overlap).argmax()) if overlap.size else 0
            found = label in own.index
            rows.append({"session": prefix, "volume_mm3": lesion["volume_mm3"], "truth": lesion["phenotype"],
                         "predicted": own.loc[label, "phenotype"] if found else "not detected",
                         "core_dvr_true": lesion["core_DVR_tissue"],
                         "core_dvr_measured": own.loc[label, "core_mean_dvr"] if found else np.nan,
                         "rim_dvr_true": lesion["rim_DVR_tissue"],
                         "rim_dvr_measured": own.loc[label, "rim_mean_dvr"] if found else np.nan,
                         "threshold": own.loc[label, "active_threshold"] if found else np.nan})
    table = pd.DataFrame(rows)
    table["correct"] = table["truth"] == table["predicted"]
    table["size"] = pd.cut(table["volume_mm3"], (27, 100, 500, np.inf), right=False)
    return table
