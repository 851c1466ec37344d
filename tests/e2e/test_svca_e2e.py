"""End-to-end SVCA reference region on data/test_bids against the phantom's truth.

Path of the README: participant level (cerebellum reference; the shared e2e run) -> ``group
--build-svca-classes`` (healthy controls sub-01, sub-03, sub-05) -> participant level again with
``--ref-region svca`` (same work directory: only the SVCA and modelling nodes are new) into its own
output directory.

Acceptance (issue 4): >= 90 % of the SVCA reference voxels lie in the tissue the phantom simulates as the
non-binding reference (cerebellar-hemisphere GM: true GM probability > 0.5 inside the true atlas cerebellar
hemispheres, :func:`tspo_bids.simulate.pet.compartment_fractions`), and the SVCA reference TAC is within 3 %
of that tissue's true TAC (the phantom's noise-free ``desc-tissue_tacs.tsv``, column ``cerebellumgm``) at
every frame starting at or after 2 min. The SVCA pass runs with ``--pvc gtm``: the uncorrected reference TAC
(the mean of the selected voxels' TACs) cannot meet 3 % at 5 mm PSF and is printed; the partial-volume
corrected one (column ``svca`` of the ``pvc-GTM`` TACs: the GM compartments inside the SVCA mask) is asserted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from e2e_support import PARTICIPANT_OPTIONS, TEST_BIDS
from e2e_support import one as _one
from e2e_support import phantom_psf_mm as _phantom_psf_mm
from e2e_support import run_cli as _run_cli
from e2e_support import session_prefix as _prefix
from e2e_support import truth_sessions as _truth_sessions
from tspo_bids.anat.template import atlas_group_mask

pytestmark = pytest.mark.e2e

PURITY_MIN = 0.90
TAC_FROM_S = 120.0
TAC_MAX_ERROR = 0.03


def _session_file(root: Path, prefix: str, suffix: str, pvc: bool = False) -> Path:
    """The single ``{prefix}_*{suffix}`` file under ``root``: partial-volume corrected (``pvc-``) or not."""
    matches = [p for p in sorted(root.glob(f"sub-*/**/pet/{prefix}_*{suffix}")) if ("_pvc-" in p.name) == pvc]
    assert len(matches) == 1, f"expected one {'pvc ' if pvc else ''}{prefix}_*{suffix} under {root}, found {matches}"
    return matches[0]


def reference_tac_error(out_svca: Path, truth_kinpar: Path, pvc: bool) -> np.ndarray:
    """Relative error of a session's SVCA reference TAC in the frames starting at or after 2 min."""
    tacs = pd.read_csv(_session_file(out_svca, _prefix(truth_kinpar), "seg-tspo_desc-preproc_tacs.tsv", pvc),
                       sep="\t", na_values="n/a")
    truth = pd.read_csv(_one(truth_kinpar.parent, "*_desc-tissue_tacs.tsv"), sep="\t", na_values="n/a")
    np.testing.assert_allclose(tacs["frame_start"], truth["frame_start"])
    late = truth["frame_start"].to_numpy(float) >= TAC_FROM_S
    return tacs["svca"].to_numpy(float)[late] / truth["cerebellumgm"].to_numpy(float)[late] - 1.0


def reference_figures(out_svca: Path, truth_kinpar: Path) -> dict[str, float]:
    """Purity and the largest relative TAC error after 2 min of one session's SVCA reference."""
    prefix = _prefix(truth_kinpar)
    truth_dir = truth_kinpar.parent
    reference = np.asarray(nib.load(_one(out_svca, f"sub-*/**/pet/{prefix}_*space-T1w_label-svca_desc-ref_mask"
                                                   ".nii.gz")).dataobj) > 0
    true_gm = np.asarray(nib.load(_one(truth_dir, "*_space-T1w_label-GM_probseg.nii.gz")).dataobj)
    true_atlas = np.asarray(nib.load(_one(truth_dir, "*_space-T1w_atlas-AAL_dseg.nii.gz")).dataobj)
    assert reference.shape == true_gm.shape, "pipeline T1w grid differs from the phantom's T1w grid"
    in_reference_tissue = (true_gm > 0.5) & atlas_group_mask(true_atlas, "cerebellum")
    error = reference_tac_error(out_svca, truth_kinpar, pvc=False)
    return {"n_voxels": int(reference.sum()), "purity": float(in_reference_tissue[reference].mean()),
            "max_tac_error": float(np.abs(error).max()), "mean_tac_error": float(error.mean())}


@pytest.fixture(scope="session")
def svca_run(e2e_run):
    out, work = e2e_run
    # A fresh output directory holding what the group level reads from the shared participant run
    # (the shared run's own tree stays as the container/Slurm comparisons expect it).
    out_svca = out.parent / "out_svca"
    out_svca.mkdir(exist_ok=True)
    shutil.copy(out / "dataset_description.json", out_svca / "dataset_description.json")
    for pattern in ("sub-*/**/pet/*_kinpar.tsv", "sub-*/**/pet/*_seg-svca_desc-normalised_tacs.tsv"):
        for path in out.glob(pattern):
            target = out_svca / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    result = _run_cli(str(TEST_BIDS), str(out_svca), "group", "--build-svca-classes")
    assert result.returncode == 0, result.stderr[-4000:]
    classes = out_svca / "group" / "trc-PK11195_desc-svca_classes.tsv"
    assert classes.is_file() and classes.with_suffix(".json").is_file()
    result = _run_cli(str(TEST_BIDS), str(out_svca), "participant", "-w", str(work), *PARTICIPANT_OPTIONS,
                      "--ref-region", "svca", "--pvc", "gtm", "--pvc-psf", _phantom_psf_mm())
    assert result.returncode == 0, result.stderr[-4000:]
    # The svca run shares the work directory (anatomy and registration are reused) and so re-ran the
    # modelling nodes with the svca reference; run the shared cerebellum command again so that the work
    # directory holds the reference run's state (tests/e2e/test_test_bids.py checks that it resumes).
    restore = _run_cli(str(TEST_BIDS), str(out), "participant", "-w", str(work), *PARTICIPANT_OPTIONS)
    assert restore.returncode == 0, restore.stderr[-4000:]
    return out_svca


def test_svca_outputs_and_reference_column(svca_run):
    for truth_file in _truth_sessions():
        prefix = _prefix(truth_file)
        for pattern in ("space-T1w_label-svca_desc-ref_mask", "space-T1w_label-GM_desc-svca_probseg"):
            image = _one(svca_run, f"sub-*/**/pet/{prefix}_*{pattern}.nii.gz")
            assert image.with_name(image.name.replace(".nii.gz", ".json")).is_file()
        fraction = np.asarray(nib.load(_one(svca_run, f"sub-*/**/pet/{prefix}_*label-GM_desc-svca_probseg.nii.gz"
                                            )).dataobj)
        assert np.nanmin(fraction) >= 0.0 and np.nanmax(fraction) <= 1.0 + 1e-6
        for pvc in (False, True):
            kinpar = pd.read_csv(_session_file(svca_run, prefix, "_model-SRTM_kinpar.tsv", pvc), sep="\t",
                                 na_values="n/a").set_index("region")
            assert "svca" not in kinpar.index  # the reference is not a target
            assert "cerebellumgm" in kinpar.index
        # no atlas reference mask is claimed as the reference with SVCA
        assert not list(svca_run.glob(f"sub-*/**/anat/{prefix}_*label-cerebellumgm_desc-ref_mask.nii.gz"))


def test_svca_reference_purity(svca_run):
    """Purity is asserted; the uncorrected TAC error is printed (no voxel keeps the tissue's TAC at 5 mm PSF:
    README "SVCA reference region"; also ``benchmarks/validate_svca.py --test-bids``)."""
    figures = {_prefix(t): reference_figures(svca_run, t) for t in _truth_sessions()}
    report = "; ".join(f"{k}: purity {v['purity']:.3f} ({v['n_voxels']} voxels), TAC max |error| "
                       f"{v['max_tac_error']:.3f}, mean {v['mean_tac_error']:+.3f}" for k, v in figures.items())
    print(report)
    assert all(v["purity"] >= PURITY_MIN for v in figures.values()), report


def test_pvc_svca_reference_tac_within_3_percent(svca_run):
    """With ``--pvc gtm`` the SVCA reference TAC (the GM compartments inside the SVCA mask) is within 3 % of the
    reference tissue's true TAC at every frame from 2 min, in every session of data/test_bids."""
    errors = {_prefix(t): reference_tac_error(svca_run, t, pvc=True) for t in _truth_sessions()}
    report = "; ".join(f"{k}: max |error| {np.abs(e).max():.4f}, mean {e.mean():+.4f}" for k, e in errors.items())
    print(report)
    assert all(np.abs(e).max() <= TAC_MAX_ERROR for e in errors.values()), report
