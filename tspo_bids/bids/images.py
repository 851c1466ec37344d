"""Checks that an input NIfTI file can be read to its end, before any processing starts.

A broken file otherwise fails minutes later, inside a library, in a node whose name says nothing about the
input: a DataLad/git-annex symlink whose content was never fetched, a copy cut short (a full disk, an
interrupted transfer), or a header whose affine cannot map voxels to space. :func:`image_problems` finds
these from the file alone: it reads the header and streams the (decompressed) bytes once, without keeping
the data in memory, so it costs about one decompression of the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

#: Bytes read at a time when streaming a compressed image.
_CHUNK_BYTES = 1 << 22


def _stored_size(path: Path) -> int:
    """Bytes of the NIfTI stream: the file size, or the decompressed size of a ``.gz`` (reads it to its end)."""
    if path.name.endswith(".gz"):
        total = 0
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                total += len(chunk)
        return total
    return path.stat().st_size


def image_problems(path: Path) -> list[str]:
    """Problems that would stop any reader of a NIfTI image, each ``"<path>: <problem>"``.

    Parameters
    ----------
    path : Path
        A ``.nii`` or ``.nii.gz`` file.

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
        expected = int(proxy.offset) + int(np.prod(proxy.shape, dtype=np.int64)) * np.dtype(proxy.dtype).itemsize
    except Exception as error:  # nibabel raises several types for broken headers
        return [f"{path}: cannot read the NIfTI header ({type(error).__name__}: {error})"]
    problems = []
    affine = np.asarray(image.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        problems.append(f"{path}: the header's voxel-to-world affine is singular or not finite (zero voxel size, "
                        "or broken qform/sform); fix the header")
    try:
        stored = _stored_size(path)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        problems.append(f"{path}: corrupt or truncated compressed data ({type(error).__name__}: {error}); "
                        "copy the file again")
    else:
        if stored < expected:
            problems.append(f"{path}: truncated: {stored} of the {expected} bytes its header announces; "
                            "copy the file again")
    return problems
