"""Regional time-activity curves from a PET series and region masks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def regional_tacs(pet_series: np.ndarray, masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mean activity of each region in every frame.

    Parameters
    ----------
    pet_series : ndarray, shape (X, Y, Z, n_frames)
        PET series on the grid of the masks (kBq/mL).
    masks : mapping of str to ndarray of bool, shape (X, Y, Z)
        Region masks on the same grid.

    Returns
    -------
    dict of str to ndarray, shape (n_frames,)
        Mean over each region's voxels, frame by frame (kBq/mL). An empty region
        gives NaN in every frame, so a caller can flag it instead of fitting zeros.
    """
    series = np.asarray(pet_series)
    if series.ndim != 4:
        raise ValueError(f"PET series must be 4D, got shape {series.shape}")
    flat = series.reshape(-1, series.shape[-1])
    tacs: dict[str, np.ndarray] = {}
    for name, mask in masks.items():
        mask = np.asarray(mask, bool)
        if mask.shape != series.shape[:3]:
            raise ValueError(f"mask {name!r} has shape {mask.shape}, PET grid is {series.shape[:3]}")
        n_voxels = int(mask.sum())
        if n_voxels == 0:
            tacs[name] = np.full(series.shape[-1], np.nan)
        else:
            tacs[name] = flat[mask.ravel()].mean(axis=0, dtype=np.float64)
    return tacs
