"""The BIDS validator (bids-validator-deno) on tiny datasets: offline, errors as one InputError."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from bids_factory import make_bids

from tspo_bids.bids import validation
from tspo_bids.bids.validation import find_validator, validate_bids
from tspo_bids.errors import InputError

VALIDATOR = find_validator()
needs_validator = pytest.mark.skipif(VALIDATOR is None, reason="bids-validator-deno is not installed "
                                     "(pip install bids-validator-deno; it is in the test extra)")


@needs_validator
def test_valid_dataset_passes_with_warnings_only(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"], sessions=["a"])
    warnings = validate_bids(root)
    assert warnings  # e.g. README_FILE_SMALL: it ran and reported
    assert all(": " in w for w in warnings)


@needs_validator
def test_errors_listed_in_one_line(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"])
    (root / "sub-01/pet/sub-01_pet.nii.gz").write_bytes(b"garbage")
    (root / "sub-02/pet/sub-02_pet.json").write_text('{"Units": "kBq/mL"}')
    with pytest.raises(InputError) as caught:
        validate_bids(root)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("BIDS validation failed (use --skip-bids-validation to bypass): ")
    assert f"{root}/sub-01/pet/sub-01_pet.nii.gz: NIFTI_HEADER_UNREADABLE" in message
    # the validator names the image whose sidecar lacks required keys; the list is capped at 20
    assert f"{root}/sub-02/pet/sub-02_pet.nii.gz: SIDECAR_KEY_REQUIRED TracerName" in message
    assert message.count("SIDECAR_KEY_REQUIRED") == 19 and message.endswith("more")


@needs_validator
def test_errors_of_other_participants_are_ignored(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"])
    (root / "sub-02/pet/sub-02_pet.nii.gz").write_bytes(b"garbage")
    assert validate_bids(root, participant_label=["01"]) is not None
    with pytest.raises(InputError, match="sub-02_pet.nii.gz"):
        validate_bids(root, participant_label=["sub-02"])


def test_missing_validator_warns_and_continues(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(validation, "find_validator", lambda: None)
    caplog.set_level(logging.WARNING, logger="tspo_bids")
    assert validate_bids(tmp_path) == []
    assert "BIDS validation skipped" in caplog.text


def test_validator_without_json_warns(tmp_path, caplog):
    fake = tmp_path / "fake-validator"
    fake.write_text("#!/bin/sh\necho 'boom' >&2\nexit 3\n")
    fake.chmod(0o755)
    caplog.set_level(logging.WARNING, logger="tspo_bids")
    assert validate_bids(tmp_path, executable=Path(fake)) == []
    assert "gave no JSON report (exit 3: boom)" in caplog.text


@needs_validator
def test_derivative_names_pass_the_validator(tmp_path):
    """Our derivative dataset: draft-BEP names are listed in .bidsignore, the rest is valid BIDS."""
    import shutil

    from tspo_bids.bids.derivatives import derivative_path, write_dataset_description, write_json_atomic

    raw = make_bids(tmp_path / "raw")
    out = tmp_path / "out"
    write_dataset_description(out, raw)
    image = raw / "sub-01/anat/sub-01_T1w.nii.gz"
    names = [
        ({"sub": "01", "label": "wm"}, "mask", ".nii.gz", "anat", {"Type": "ROI"}),
        ({"sub": "01"}, "dseg", ".nii.gz", "anat", {}),
        ({"sub": "01", "label": "GM"}, "probseg", ".nii.gz", "anat", {}),
        ({"sub": "01", "seg": "tspo"}, "morph", ".tsv", "anat", {}),
        ({"sub": "01", "from": "pet", "to": "T1w", "mode": "image"}, "xfm", ".mat", "pet", {}),
        ({"sub": "01"}, "petref", ".nii.gz", "pet", {}),
        ({"sub": "01", "seg": "tspo", "desc": "preproc"}, "tacs", ".tsv", "pet", {"Units": "kBq/mL"}),
        ({"sub": "01", "model": "SRTM"}, "kinpar", ".tsv", "pet", {"ReferenceRegion": "cerebellumgm"}),
        ({"sub": "01", "space": "T1w", "model": "SRTM", "meas": "BPND"}, "mimap", ".nii.gz", "pet", {}),
        ({"sub": "01", "desc": "confounds"}, "timeseries", ".tsv", "pet", {}),
    ]
    for entities, suffix, extension, datatype, meta in names:
        path = out / derivative_path(entities, suffix, extension, datatype)
        path.parent.mkdir(parents=True, exist_ok=True)
        if extension == ".nii.gz":
            shutil.copy(image, path)
        else:
            path.write_text("a\tb\n1\t2\n")
        if meta:
            write_json_atomic(meta, path.with_name(path.name.split(".")[0] + ".json"))
    (out / "logs").mkdir()
    (out / "logs" / "sub-01_1_1.log").write_text("log\n")
    (out / "group").mkdir()
    (out / "group" / "group_kinpar.tsv").write_text("a\n1\n")
    (out / "sub-01.html").write_text("<html></html>\n")
    validate_bids(out)  # raises InputError on any error
