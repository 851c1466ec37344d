"""Checks that an input NIfTI file can be read to its end, before any processing starts.

A broken file otherwise fails minutes later, inside a library, in a node whose name says nothing about the
input: a DataLad/git-annex symlink whose content was never fetched, a copy cut short (a full disk, an
interrupted transfer), or a header whose affine cannot map voxels to space; for the PET series also NaN
values or an image of zeros. :func:`image_problems` finds these from the file alone: it reads the header
and streams the (decompressed) bytes once, without keeping the data in memory, so it costs about one
decompression of the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

#: Bytes read at a time when streaming a compressed image.
_CHUNK_BYTES = 1 << 22


class _ValueScan:
    """Running per-frame count of non-finite values, and whether any value is non-zero, over a byte stream."""

    def __init__(self, offset: int, dtype: np.dtype, voxels_per_frame: int, n_frames: int) -> None:
        self.offset, self.dtype = offset, dtype
        self.voxels_per_frame = max(voxels_per_frame, 1)
        self.non_finite = np.zeros(max(n_frames, 1), dtype=np.int64)
        self.any_nonzero = False
        self._pending = b""  # bytes of an element split across chunks
        self._elements = 0  # elements decoded so far

    def feed(self, chunk: bytes, position: int) -> None:
        """Take the bytes ``chunk`` found at ``position`` of the (decompressed) file."""
        start = max(self.offset - position, 0)
        if start >= len(chunk):
            return
        data = self._pending + chunk[start:]
        usable = len(data) - len(data) % self.dtype.itemsize
        values, self._pending = np.frombuffer(data[:usable], dtype=self.dtype), data[usable:]
        if values.size:
            self.any_nonzero = self.any_nonzero or bool(values.any())
            if values.dtype.kind in "fc":
                bad = np.flatnonzero(~np.isfinite(values)) + self._elements
                if bad.size:
                    frames = np.minimum(bad // self.voxels_per_frame, self.non_finite.size - 1)
                    self.non_finite += np.bincount(frames, minlength=self.non_finite.size)
            self._elements += values.size


def _stored_size(path: Path, scan: _ValueScan | None = None) -> int:
    """Bytes of the NIfTI stream: the file size, or the decompressed size of a ``.gz`` (reads it to its end).

    With ``scan``, every byte is also passed through it (the file is then read even when not compressed).
    """
    if path.name.endswith(".gz") or scan is not None:
        total = 0
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                if scan is not None:
                    scan.feed(chunk, total)
                total += len(chunk)
        return total
    return path.stat().st_size


def image_problems(path: Path, check_values: bool = False) -> list[str]:
    """Problems that would stop any reader of a NIfTI image, each ``"<path>: <problem>"``.

    Parameters
    ----------
    path : Path
        A ``.nii`` or ``.nii.gz`` file.
    check_values : bool
        Also refuse NaN/infinite values (listed by volume, i.e. PET frame) and an image that is 0
        everywhere, found in the same pass over the bytes (for the PET series).

    Returns
    -------
    list of str
        Empty when the header reads, the affine is invertible and finite, and the file holds every byte
        the header announces (``vox_offset + n_voxels * bytes_per_voxel``).
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return [f"{path}: a broken symbolic link (an annexed file whose content is not here? with DataLad: "
                f"datalad get {path.name})"]
    try:
        image = nib.load(str(path))
        proxy = image.dataobj  # where the data start in the file, as the reader will use it
        dtype = np.dtype(proxy.dtype)
        expected = int(proxy.offset) + int(np.prod(proxy.shape, dtype=np.int64)) * dtype.itemsize
        shape = tuple(int(n) for n in proxy.shape)
        scan = (_ValueScan(int(proxy.offset), dtype, int(np.prod(shape[:3], dtype=np.int64)),
                           int(np.prod(shape[3:], dtype=np.int64)) if len(shape) > 3 else 1)
                if check_values else None)
    except Exception as error:  # nibabel raises several types for broken headers
        return [f"{path}: cannot read the NIfTI header ({type(error).__name__}: {error})"]
    problems = []
    affine = np.asarray(image.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        problems.append(f"{path}: the header's voxel-to-world affine is singular or not finite (zero voxel size, "
                        "or broken qform/sform); fix the header")
    try:
        stored = _stored_size(path, scan)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        problems.append(f"{path}: corrupt or truncated compressed data ({type(error).__name__}: {error}); "
                        "copy the file again")
        return problems
    if stored < expected:
        problems.append(f"{path}: truncated: {stored} of the {expected} bytes its header announces; "
                        "copy the file again")
    elif scan is not None:
        problems.extend(pet_value_problems(path, scan.non_finite, scan.any_nonzero))
    return problems


def pet_value_problems(path: Path | str, non_finite_per_frame: np.ndarray, any_nonzero: bool) -> list[str]:
    """The PET series' value problems, each ``"<path>: <problem>"``: NaN/inf counts by frame, an all-zero series."""
    problems = []
    if np.any(non_finite_per_frame):
        frames = ", ".join(f"{index + 1} ({count})" for index, count in enumerate(non_finite_per_frame) if count)
        problems.append(f"{path}: NaN or infinite values in frame(s) {frames} (frame: voxel count); tspo-bids "
                        "needs finite values: set them to 0 outside the field of view, or drop those frames")
    if not any_nonzero:
        problems.append(f"{path}: every voxel of every frame is 0; check how the PET series was exported")
    return problems
