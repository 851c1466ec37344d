"""Lesion inputs: bad user masks get one clear log line and the run continues."""

import json
import logging

import nibabel as nib
import numpy as np
import pytest

from tspo_bids.interfaces.lesions import LesionMask

SHAPE = (24, 24, 24)


@pytest.fixture()
def anatomy(tmp_path):
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    files = {}
    wm = np.zeros(SHAPE, np.float32)
    wm[4:20, 4:20, 4:20] = 1.0
    for name, data in (("t1w", wm * 100 + 30), ("brain", np.ones(SHAPE)), ("gm", 1 - wm), ("wm", wm),
                       ("atlas", np.zeros(SHAPE))):
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), str(path))
        files[name] = str(path)
    return files, affine


def _run(tmp_path, files, **inputs):
    node = LesionMask(t1w_preproc=files["t1w"], brain_mask=files["brain"], gm_prob=files["gm"],
                      wm_prob=files["wm"], atlas_labels=files["atlas"], **inputs)
    cwd = tmp_path / "run"
    cwd.mkdir(exist_ok=True)
    import os
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return node.run().outputs
    finally:
        os.chdir(old)


def test_user_mask_in_t1w_is_labelled(tmp_path, anatomy):
    files, affine = anatomy
    mask = np.zeros(SHAPE, np.uint8)
    mask[8:12, 8:12, 8:12] = 1  # 64 voxels x 3.375 mm^3
    mask[15, 15, 15] = 1  # 3.4 mm^3: below the minimum volume
    path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, affine), str(path))
    out = _run(tmp_path, files, user_mask=str(path), user_mask_space="T1w")
    labels = np.asarray(nib.load(out.lesion_labels).dataobj)
    assert out.source == "user" and out.n_lesions == 1 and labels.sum() == 64


def test_mask_on_another_grid_is_ignored_with_a_message(tmp_path, anatomy, caplog):
    files, _ = anatomy
    path = tmp_path / "sub-01_space-T1w_label-lesion_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), np.eye(4)), str(path))
    with caplog.at_level(logging.WARNING, logger="nipype.interface"):
        out = _run(tmp_path, files, user_mask=str(path), user_mask_space="T1w")
    assert out.source == "none" and out.n_lesions == 0
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(path.name in m and "not on the T1w grid" in m for m in messages), messages


def test_empty_mask_gives_no_lesion_and_a_message(tmp_path, anatomy, caplog):
    files, affine = anatomy
    path = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), affine), str(path))
    with caplog.at_level(logging.WARNING, logger="nipype.interface"):
        out = _run(tmp_path, files, user_mask=str(path), user_mask_space="T1w")
    assert out.source == "user" and out.n_lesions == 0
    assert any("no lesion" in r.getMessage() for r in caplog.records)


def test_flair_space_mask_goes_through_the_transform(tmp_path, anatomy):
    files, affine = anatomy
    flair_affine = affine.copy()
    flair_affine[:3, 3] = [3.0, 0.0, 0.0]  # FLAIR grid shifted 3 mm (2 voxels) along x
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), flair_affine), str(tmp_path / "flair.nii.gz"))
    mask = np.zeros(SHAPE, np.uint8)
    mask[8:12, 8:12, 8:12] = 1
    nib.save(nib.Nifti1Image(mask, flair_affine), str(tmp_path / "mask.nii.gz"))
    (tmp_path / "xfm.json").write_text(json.dumps({"matrix": np.eye(4).tolist()}))  # heads aligned
    out = _run(tmp_path, files, user_mask=str(tmp_path / "mask.nii.gz"), user_mask_space="FLAIR",
               flair_file=str(tmp_path / "flair.nii.gz"), flair_matrix=str(tmp_path / "xfm.json"))
    labels = np.asarray(nib.load(out.lesion_labels).dataobj) > 0
    expected = np.zeros(SHAPE, bool)
    expected[10:14, 8:12, 8:12] = True  # same world position, 2 voxels further on the T1w grid
    assert out.n_lesions == 1 and np.array_equal(labels, expected)
