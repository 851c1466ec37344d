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
