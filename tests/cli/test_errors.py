"""The seven user errors of issue 3: each ends with exit 1 and ONE stderr line naming file and problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bids_factory import edit_json, make_bids

from tspo_bids.bids.validation import find_validator
from tspo_bids.cli.run import main

VALIDATION_MODES = [
    pytest.param([], id="validator", marks=pytest.mark.skipif(find_validator() is None,
                                                             reason="bids-validator-deno not installed")),
    pytest.param(["--skip-bids-validation"], id="own-checks"),
]


@pytest.fixture()
def dataset(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the default work dir (./work) lands in tmp_path
    return make_bids(tmp_path / "bids", subjects=["01", "02"], sessions=["baseline"])


def _run(capsys, *argv: str) -> str:
    work = Path.cwd() / "work"
    code = main([str(a) for a in argv])
    assert not work.exists()  # nothing ran: no work directory left behind
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 1, captured.err
    assert len(lines) == 1, lines
    assert lines[0].startswith("tspo-bids: error: ")
    return lines[0]


@pytest.mark.parametrize("mode", VALIDATION_MODES)
def test_not_a_bids_directory(tmp_path, capsys, mode, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "not-bids"
    folder.mkdir()
    line = _run(capsys, folder, tmp_path / "out", "participant", *mode)
    assert f"{folder}: not a BIDS dataset (no dataset_description.json)" in line


@pytest.mark.parametrize("mode", VALIDATION_MODES)
def test_no_pet(dataset, tmp_path, capsys, mode):
    for pet in dataset.glob("sub-*/ses-*/pet"):
        shutil.rmtree(pet)
    line = _run(capsys, dataset, tmp_path / "out", "participant", *mode)
    assert f"{dataset}: no PET images" in line


def test_no_pet_for_the_selection(dataset, tmp_path, capsys):
    line = _run(capsys, dataset, tmp_path / "out", "participant", "--session-label", "followup",
                "--skip-bids-validation")
    assert f"{dataset}: no PET images" in line and "session(s) followup" in line


@pytest.mark.parametrize("mode", VALIDATION_MODES)
def test_sidecar_without_frame_duration(dataset, tmp_path, capsys, mode):
    sidecar = dataset / "sub-02/ses-baseline/pet/sub-02_ses-baseline_pet.json"
    edit_json(sidecar, FrameDuration=None)
    line = _run(capsys, dataset, tmp_path / "out", "participant", *mode)
    assert f"{sidecar}: FrameDuration missing" in line


@pytest.mark.parametrize("mode", VALIDATION_MODES)
def test_frame_count_differs_from_volume_count(dataset, tmp_path, capsys, mode):
    pet = dataset / "sub-01/ses-baseline/pet/sub-01_ses-baseline_pet.nii.gz"
    nib.Nifti1Image(np.ones((4, 4, 4, 5), np.float32), np.diag([2.0, 2.0, 2.0, 1.0])).to_filename(pet)
    line = _run(capsys, dataset, tmp_path / "out", "participant", *mode)
    sidecar = pet.with_name("sub-01_ses-baseline_pet.json")
    assert f"{sidecar}: FrameTimesStart has 3 values but the image has 5 volumes" in line
    assert f"{sidecar}: FrameDuration has 3 values but the image has 5 volumes" in line


@pytest.mark.parametrize("mode", VALIDATION_MODES)
def test_pet_without_t1w(dataset, tmp_path, capsys, mode):
    (dataset / "sub-02/ses-baseline/anat/sub-02_ses-baseline_T1w.nii.gz").unlink()
    line = _run(capsys, dataset, tmp_path / "out", "participant", *mode)
    pet = dataset / "sub-02/ses-baseline/pet/sub-02_ses-baseline_pet.nii.gz"
    assert f"{pet}: no T1w image in sub-02/ses-baseline/anat" in line


@pytest.mark.parametrize("mode", VALIDATION_MODES)
def test_unfetched_annexed_t1w_and_truncated_pet(dataset, tmp_path, capsys, mode):
    """A DataLad dataset whose T1w content was never fetched, and a PET copy cut short: both named, before any work."""
    t1w = dataset / "sub-01/ses-baseline/anat/sub-01_ses-baseline_T1w.nii.gz"
    t1w.unlink()
    t1w.symlink_to("../../../.git/annex/objects/Xk/MD5E-s1234--abc.nii.gz/MD5E-s1234--abc.nii.gz")
    pet = dataset / "sub-02/ses-baseline/pet/sub-02_ses-baseline_pet.nii"
    gz = pet.with_suffix(".nii.gz")
    nib.save(nib.load(gz), pet)
    gz.unlink()
    pet.write_bytes(pet.read_bytes()[:-64])
    line = _run(capsys, dataset, tmp_path / "out", "participant", *mode)
    assert f"{t1w}: a broken symbolic link" in line
    assert f"{pet}: truncated: " in line


@pytest.mark.parametrize("mode", VALIDATION_MODES)
def test_unknown_participant_label(dataset, tmp_path, capsys, mode):
    line = _run(capsys, dataset, tmp_path / "out", "participant", "--participant-label", "sub-09", *mode)
    assert f"{dataset}: participant label(s) 09 not found (available: 01, 02)" in line


@pytest.mark.parametrize("mode", VALIDATION_MODES)
def test_output_dir_equal_to_bids_dir(dataset, capsys, mode):
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    line = _run(capsys, dataset, str(dataset) + "/", "participant", *mode)
    assert f"{dataset}: OUTPUT_DIR is BIDS_DIR" in line
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before  # nothing written there


def test_output_dir_inside_a_subject_folder(dataset, capsys):
    """Derivatives inside the raw dataset are allowed only under BIDS_DIR/derivatives."""
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    target = dataset / "sub-01" / "derivs"
    line = _run(capsys, dataset, target, "participant")
    assert f"{target}: OUTPUT_DIR is inside BIDS_DIR but not under BIDS_DIR/derivatives" in line
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before  # nothing written there


def test_missing_bids_dir_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _run(capsys, tmp_path / "mistyped", tmp_path / "out", "participant")
    assert f"{tmp_path / 'mistyped'}: BIDS_DIR does not exist or is not a directory" in line
    assert not (tmp_path / "out").exists()  # no OUTPUT_DIR (and logs) for a mistyped path


def test_work_dir_inside_bids_dir(dataset, tmp_path, capsys):
    line = _run(capsys, dataset, tmp_path / "out", "participant", "-w", dataset / "work")
    assert f"{dataset / 'work'}: the work directory is inside BIDS_DIR" in line
    assert not (dataset / "work").exists()


def test_group_level_before_participant_level(dataset, tmp_path, capsys):
    line = _run(capsys, dataset, tmp_path / "out", "group")
    assert f"{tmp_path / 'out'}: no tspo-bids derivatives here" in line


def test_unknown_tracer_when_a_model_needs_its_preset(dataset, tmp_path, capsys):
    for sidecar in dataset.glob("sub-*/ses-*/pet/*_pet.json"):
        edit_json(sidecar, TracerName="[11C]raclopride")
    line = _run(capsys, dataset, tmp_path / "out", "participant", "--skip-bids-validation", "--models", "SUVR")
    assert "sub-01_ses-baseline_pet.json: TracerName '[11C]raclopride' is not a known TSPO tracer" in line
    assert "sub-02_ses-baseline_pet.json" in line  # every run listed


@pytest.mark.skipif(find_validator() is None, reason="bids-validator-deno not installed")
def test_validator_error_our_checks_do_not_cover(dataset, tmp_path, capsys):
    stray = dataset / "sub-01/ses-baseline/pet/sub-01_ses-baseline_notes.txt"
    stray.write_text("not BIDS")
    line = _run(capsys, dataset, tmp_path / "out", "participant")
    assert line.startswith("tspo-bids: error: BIDS validation failed (use --skip-bids-validation to bypass): ")
    assert f"{stray}: NOT_INCLUDED" in line


def test_unwritable_work_dir(dataset, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "-w", str(blocker / "work")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tspo-bids: error: ")]
    assert code == 1 and len(errors) == 1
    assert f"{blocker / 'work'}: cannot create the work directory (Not a directory)" in errors[0]


@pytest.mark.parametrize("raised, expected", [
    (PermissionError(13, "Permission denied", "/data/out/logs"), "/data/out/logs: Permission denied (PermissionError)"),
    (OSError(28, "No space left on device", "/scratch/work/x.nii.gz"),
     "/scratch/work/x.nii.gz: No space left on device (OSError)"),
    (ZeroDivisionError("float division by zero"), "unexpected ZeroDivisionError: float division by zero -- this is a "
                                                  "bug in tspo-bids"),
])
def test_environment_errors_and_bugs_end_in_one_line(dataset, tmp_path, capsys, monkeypatch, raised, expected):
    """A full disk, a permission, or a bug deep in a library: one line, exit 1; the traceback of a bug is in the log."""
    def fail(settings):
        raise raised

    monkeypatch.setattr("tspo_bids.cli.run.run_participant", fail)
    out = tmp_path / "out"
    code = main([str(dataset), str(out), "participant"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("tspo-bids: error: ") and expected in lines[0], lines
    log = "".join(p.read_text() for p in (out / "logs").glob("*.log"))
    assert expected.split(" -- ")[0].split(": ", 1)[-1] in log
    assert ("Traceback" in log) == isinstance(raised, ZeroDivisionError)
