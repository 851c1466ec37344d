"""tspo_bids.bids.images: a file that cannot be read to its end is named before anything runs."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tspo_bids.bids.images import image_problems


def _image(path: Path, shape=(6, 5, 4, 3), affine=None) -> Path:
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine), path)
    return path


@pytest.mark.parametrize("name", ["ok.nii.gz", "ok.nii"])
def test_a_complete_image_has_no_problem(tmp_path, name):
    assert image_problems(_image(tmp_path / name)) == []


def test_broken_symbolic_link(tmp_path):
    link = tmp_path / "sub-01_T1w.nii.gz"
    link.symlink_to(tmp_path / ".git" / "annex" / "objects" / "XX" / "missing")
    (problem,) = image_problems(link)
    assert problem.startswith(f"{link}: a broken symbolic link") and "datalad get sub-01_T1w.nii.gz" in problem


def test_truncated_uncompressed_image_reports_the_byte_count(tmp_path):
    path = _image(tmp_path / "cut.nii")
    full = path.read_bytes()
    path.write_bytes(full[:-100])
    (problem,) = image_problems(path)
    assert problem == (f"{path}: truncated: {len(full) - 100} of the {len(full)} bytes its header announces; "
                       "copy the file again")


def test_truncated_compressed_image(tmp_path):
    path = _image(tmp_path / "cut.nii.gz", shape=(20, 20, 20, 4))
    path.write_bytes(path.read_bytes()[:3000])  # the header still reads, the data stream ends early
    (problem,) = image_problems(path)
    assert problem.startswith(f"{path}: corrupt or truncated compressed data (EOFError")


def test_complete_gzip_stream_with_too_few_bytes(tmp_path):
    """A well-formed gzip whose content is shorter than the header says (the cut happened before compression)."""
    source = _image(tmp_path / "full.nii")
    full = source.read_bytes()
    path = tmp_path / "short.nii.gz"
    path.write_bytes(gzip.compress(full[:-4]))
    (problem,) = image_problems(path)
    assert f"truncated: {len(full) - 4} of the {len(full)} bytes" in problem


def test_unreadable_header(tmp_path):
    path = tmp_path / "empty.nii.gz"
    path.write_bytes(b"")
    (problem,) = image_problems(path)
    assert problem.startswith(f"{path}: cannot read the NIfTI header")


def test_singular_affine(tmp_path):
    """An all-zero sform, the only transform (passes the BIDS validator): every voxel maps to one point."""
    path = _image(tmp_path / "bad_affine.nii")
    header = nib.Nifti1Header()
    raw = bytearray(path.read_bytes())
    header_fields = np.frombuffer(raw[:348], dtype=header.structarr.dtype).copy()
    header_fields["qform_code"], header_fields["sform_code"] = 0, 1
    for row in ("srow_x", "srow_y", "srow_z"):
        header_fields[row] = 0.0
    raw[:348] = header_fields.tobytes()
    path.write_bytes(bytes(raw))
    assert not nib.load(path).affine[:3, :3].any()  # the case this test is about
    (problem,) = image_problems(path)
    assert problem.startswith(f"{path}: the header's voxel-to-world affine is singular or not finite")


@pytest.mark.parametrize("name", ["pet.nii.gz", "pet.nii"])
@pytest.mark.parametrize("chunk_bytes", [7, 1 << 22])  # 7: every float32 element split across two chunks somewhere
def test_non_finite_values_listed_by_frame(tmp_path, monkeypatch, name, chunk_bytes):
    monkeypatch.setattr("tspo_bids.bids.images._CHUNK_BYTES", chunk_bytes)
    data = np.ones((6, 5, 4, 3), np.float32)
    data[0, 0, 0, 1] = np.nan  # first voxel of frame 2
    data[5, 4, 3, 1] = np.inf  # last voxel of frame 2
    data[2, 2, 2, 2] = np.nan
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    assert image_problems(path) == []  # values are checked only when asked (the PET series)
    (problem,) = image_problems(path, check_values=True)
    assert problem.startswith(f"{path}: NaN or infinite values in frame(s) 2 (2), 3 (1) (frame: voxel count)")


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_all_zero_series(tmp_path, dtype):
    path = _image(tmp_path / "zeros.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 4, 3), dtype), np.eye(4)), path)
    (problem,) = image_problems(path, check_values=True)
    assert problem == f"{path}: every voxel of every frame is 0; check how the PET series was exported"
    data = np.zeros((6, 5, 4, 3), dtype)
    data[5, 4, 3, 2] = 1  # the very last element
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    assert image_problems(path, check_values=True) == []
