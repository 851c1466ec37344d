"""Group-level lesion phenotypes read participant maps; a damaged one is named, not a gzip traceback."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.workflows.group_lesions import _image_data


def test_damaged_participant_map_is_an_input_error(tmp_path):
    path = tmp_path / "sub-01_space-T1w_model-SRTM2_meas-DVR_mimap.nii.gz"
    data = np.random.default_rng(0).random((30, 30, 30)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    np.testing.assert_array_equal(_image_data(path, np.float32), data)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputError) as caught:
        _image_data(path, np.float32)
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot be read (EOFError") and "re-run the participant level" in message
    assert "\n" not in message


def test_group_folder_never_mixes_runs(tmp_path):
    """Stale lesion tables go when a run makes none; a damaged map stops the run before anything is written."""
    from types import SimpleNamespace

    import pandas as pd

    from tspo_bids.config import DEFAULT_CONTROL_GROUP
    from tspo_bids.workflows.group import run_group

    out, bids = tmp_path / "out", tmp_path / "bids"
    bids.mkdir()
    (bids / "participants.tsv").write_text("participant_id\tgroup\nsub-01\tHC\nsub-02\tRRMS\n")
    affine = np.eye(4)
    for subject in ("01", "02"):
        pet, anat = out / f"sub-{subject}" / "pet", out / f"sub-{subject}" / "anat"
        pet.mkdir(parents=True)
        anat.mkdir(parents=True)
        pd.DataFrame({"region": ["wm"], "BPND": [0.1]}).to_csv(pet / f"sub-{subject}_model-SRTM_kinpar.tsv", sep="\t",
                                                               index=False)
        nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), affine),
                 pet / f"sub-{subject}_space-T1w_model-SRTM2_meas-DVR_mimap.nii.gz")
        nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.uint8), affine), anat / f"sub-{subject}_label-nawm_mask.nii.gz")
    group = out / "group"
    group.mkdir()
    settings = SimpleNamespace(output_dir=out, bids_dir=bids, participant_label=None, control_group=DEFAULT_CONTROL_GROUP,
                               active_percentile=95.0, active_fraction=0.5, rim_active_min=0.1, inactive_max=0.5,
                               build_svca_classes=False)
    # no lesion anywhere: this run makes no lesion tables, and an earlier run's are removed with it
    for stale in ("lesion_phenotypes.tsv", "lesion_phenotypes.json", "participant_lesion_markers.tsv"):
        (group / stale).write_text("an earlier run's table\n")
    run_group(settings)
    assert sorted(p.name for p in group.iterdir()) == ["group_kinpar.json", "group_kinpar.tsv"]

    damaged = out / "sub-01" / "pet" / "sub-01_space-T1w_model-SRTM2_meas-DVR_mimap.nii.gz"
    damaged.write_bytes(damaged.read_bytes()[:60])
    (group / "group_kinpar.tsv").write_text("an earlier run's table\n")
    with pytest.raises(InputError, match=str(damaged)):
        run_group(settings)
    assert (group / "group_kinpar.tsv").read_text() == "an earlier run's table\n"
