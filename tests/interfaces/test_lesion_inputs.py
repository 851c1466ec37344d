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


def test_probability_map_as_mask_is_thresholded_with_a_message(tmp_path, anatomy, caplog):
    """A lesion probability map given as the mask: voxels >= 0.5 are lesion, not every voxel above zero."""
    files, affine = anatomy
    probability = np.full(SHAPE, 0.02, np.float32)  # a faint tail everywhere
    probability[8:12, 8:12, 8:12] = 0.9  # 64 voxels
    probability[8:12, 8:12, 12] = 0.4  # a lower-probability edge: not lesion
    path = tmp_path / "sub-01_space-T1w_label-lesion_mask.nii.gz"
    nib.save(nib.Nifti1Image(probability, affine), str(path))
    with caplog.at_level(logging.WARNING, logger="tspo_bids"):
        out = _run(tmp_path, files, user_mask=str(path), user_mask_space="T1w")
    labels = np.asarray(nib.load(out.lesion_labels).dataobj)
    assert out.source == "user" and out.n_lesions == 1 and (labels > 0).sum() == 64
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(path.name in m and "fractional values (max 0.9)" in m for m in messages), messages


def test_mask_on_another_grid_is_ignored_with_a_message(tmp_path, anatomy, caplog):
    files, _ = anatomy
    path = tmp_path / "sub-01_space-T1w_label-lesion_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), np.eye(4)), str(path))
    with caplog.at_level(logging.WARNING, logger="tspo_bids"):
        out = _run(tmp_path, files, user_mask=str(path), user_mask_space="T1w")
    assert out.source == "none" and out.n_lesions == 0
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(path.name in m and "not on the T1w grid" in m for m in messages), messages


def test_empty_mask_gives_no_lesion_and_a_message(tmp_path, anatomy, caplog):
    files, affine = anatomy
    path = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), affine), str(path))
    with caplog.at_level(logging.WARNING, logger="tspo_bids"):
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


# ----------------------------------------------------------------------------- CLI: mask of an unknown participant


def _bids_factory():
    """tests/bids/bids_factory.py, loaded by path (test folders are not packages)."""
    import importlib.util
    import sys
    from pathlib import Path

    name = "bids_factory"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "bids" / "bids_factory.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture()
def cli_logging():
    """Remove the handlers tspo-bids' main() installs (they hold the captured stderr)."""
    yield
    for logger in (logging.getLogger("tspo_bids"), logging.getLogger("nipype")):
        for handler in list(logger.handlers):
            if getattr(handler, "_tspo_bids", False):
                logger.removeHandler(handler)
                handler.close()


def test_cli_warns_once_about_a_mask_of_an_unknown_participant_and_runs_the_others(tmp_path, monkeypatch, capsys,
                                                                                   cli_logging):
    """tspo-bids participant -d lesions=PATH with a mask for sub-99: one warning line, every run goes on.

    The workflow itself is replaced (its building and running are tested elsewhere): this checks
    what the user sees on the console and which runs reach the workflow.
    """
    from tspo_bids.cli import run as cli_run
    from tspo_bids.workflows import base

    root = _bids_factory().make_bids(tmp_path / "ds", subjects=["01", "02"])
    lesions = tmp_path / "lesions"
    stranger = lesions / "sub-99" / "anat" / "sub-99_space-T1w_label-lesion_mask.nii.gz"
    own = lesions / "sub-01" / "anat" / "sub-01_space-T1w_label-lesion_mask.nii.gz"
    for path in (stranger, own):
        path.parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), str(path))
    reached = []
    monkeypatch.setattr(base, "init_tspo_wf", lambda runs, settings: reached.extend(runs) or "workflow")
    monkeypatch.setattr(cli_run, "run_workflow", lambda workflow, settings: None)

    code = cli_run.main([str(root), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "work"),
                         "--skip-bids-validation", "-d", f"lesions={lesions}"])

    stderr = capsys.readouterr().err
    assert code == 0, stderr
    assert [(run.label, run.lesion_mask_file) for run in reached] == [("sub-01", own), ("sub-02", None)]
    lines = [line for line in stderr.splitlines() if str(stranger) in line]
    assert len(lines) == 1, stderr
    assert "WARNING" in lines[0] and "sub-99" in lines[0] and "no such participant" in lines[0], lines[0]
