"""The work directory's build stamp: resume with the same build, refuse another build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tspo_bids.cli.workdir import STAMP_NAME, build_fingerprint, check_work_dir_build
from tspo_bids.errors import InputError

PACKAGE = Path(__file__).resolve().parents[2] / "tspo_bids"


def test_first_run_stamps_and_the_same_build_resumes(tmp_path):
    check_work_dir_build(tmp_path)
    assert (tmp_path / STAMP_NAME).read_text().strip() == build_fingerprint()
    check_work_dir_build(tmp_path)  # the same build: no error
    assert [p.name for p in tmp_path.iterdir()] == [STAMP_NAME]  # no temporary file left


def test_another_build_is_refused_in_one_line(tmp_path):
    (tmp_path / STAMP_NAME).write_text("0.0.1 0123456789abcdef\n")
    with pytest.raises(InputError) as raised:
        check_work_dir_build(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and str(tmp_path) in message and "0.0.1 0123456789abcdef" in message
    assert "-w/--work-dir" in message


def test_fingerprint_follows_the_code(tmp_path):
    """One changed byte in any module changes the fingerprint; a copy of the package has the same one."""
    copy = tmp_path / "tspo_bids"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert build_fingerprint(copy) == build_fingerprint()
    regions = copy / "anat" / "regions.py"
    regions.write_text(regions.read_text() + "\n")
    assert build_fingerprint(copy) != build_fingerprint()


def test_cli_refuses_a_work_directory_of_another_build(tmp_path):
    """Through the command line: exit code 1 and the one-line message, nothing written to OUTPUT_DIR."""
    work = tmp_path / "work"
    work.mkdir()
    (work / STAMP_NAME).write_text("0.0.1 0123456789abcdef\n")
    bids = Path(__file__).resolve().parents[2] / "data" / "test_bids"
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "tspo_bids.cli.run", str(bids), str(out), "participant",
                             "-w", str(work), "--participant-label", "01", "--skip-bids-validation"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "filled by another tspo-bids build" in result.stderr and "Traceback" not in result.stderr
    assert not (out / "dataset_description.json").exists()
