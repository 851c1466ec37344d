"""Small file helpers shared by the interfaces (working-directory files only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np


def save_like(data: np.ndarray, reference: nib.Nifti1Image, path: Path, dtype: type = np.float32) -> str:
    """Save ``data`` as NIfTI with the affine (and xyz units) of ``reference``; return the path."""
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), reference.affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))
    return str(path)


def save_matrix(matrix: np.ndarray, path: Path, **extra: Any) -> str:
    """Save a 4x4 world matrix (and notes) as JSON; return the path."""
    payload = {"matrix": np.asarray(matrix, float).tolist(), **extra}
    Path(path).write_text(json.dumps(payload, indent=2))
    return str(path)


def load_matrix(path: str | Path) -> np.ndarray:
    """Read a 4x4 world matrix written by :func:`save_matrix`."""
    return np.asarray(json.loads(Path(path).read_text())["matrix"], float)
