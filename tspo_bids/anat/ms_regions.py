"""MS regions of interest: lesions, normal-appearing white matter and perilesional shells.

Definitions (methods.md section 4; Rissanen et al. 2018 NNN, Nylund et al. 2022 Brain Commun), in T1w
space, with distances in mm measured by an exact Euclidean distance transform that honours the voxel
size (``scipy.ndimage.distance_transform_edt(..., sampling=voxel_size_mm)``); a voxel's distance is
from its centre to the centre of the nearest lesion voxel.

================  ======================================================================================
name              voxels
================  ======================================================================================
lesion            the lesion mask (inside the brain mask when one is given)
nawm              ``p_WM >= 0.9``, eroded by one voxel (26-neighbourhood), farther than 6 mm from any
                  lesion voxel
perilesion03      white matter (``p_WM >= 0.5``), not lesion, ``0 < distance <= 3 mm``
perilesion36      white matter (``p_WM >= 0.5``), not lesion, ``3 < distance <= 6 mm``
================  ======================================================================================

White matter excludes cerebellum, vermis, thalamus and deep GM when atlas groups are given (as the
``wm`` region of :mod:`tspo_bids.anat.regions`). Names are BIDS ``label-`` values and TSV columns.
Cortex GM, thalamus, deep GM and whole brain come from :func:`tspo_bids.anat.regions.define_regions`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from tspo_bids.anat.lesions import check_voxel_size
from tspo_bids.anat.regions import TISSUE_THRESHOLD, AtlasGroups
from tspo_bids.errors import InputError

__all__ = ["MS_REGIONS", "NAWM_WM_THRESHOLD", "define_ms_regions", "lesion_distance_mm", "region_volumes_mm3"]

#: MS region names, in output column order.
MS_REGIONS: tuple[str, ...] = ("lesion", "nawm", "perilesion03", "perilesion36")

#: White-matter probability of normal-appearing white matter (before erosion).
NAWM_WM_THRESHOLD = 0.9


def lesion_distance_mm(lesion_mask: ArrayLike, voxel_size_mm: ArrayLike | float) -> NDArray[np.float64]:
    """Euclidean distance of every voxel centre to the nearest lesion voxel centre, mm.

    Lesion voxels have distance 0; without any lesion every distance is ``inf``.

    Parameters
    ----------
    lesion_mask
        Lesions (non-zero), shape (X, Y, Z).
    voxel_size_mm
        Voxel size along each axis, mm.
    """
    lesion = np.asarray(lesion_mask) != 0
    sizes = check_voxel_size(voxel_size_mm, lesion.ndim)
    if not lesion.any():
        return np.full(lesion.shape, np.inf)
    return ndimage.distance_transform_edt(~lesion, sampling=sizes)


def define_ms_regions(
    wm_prob: ArrayLike,
    gm_prob: ArrayLike,
    lesion_mask: ArrayLike,
    voxel_size_mm: ArrayLike | float,
    *,
    atlas: AtlasGroups | None = None,
    brain_mask: ArrayLike | None = None,
    nawm_wm_threshold: float = NAWM_WM_THRESHOLD,
    wm_threshold: float = TISSUE_THRESHOLD,
    lesion_dilation_mm: float = 6.0,
    shell_edges_mm: tuple[float, float, float] = (0.0, 3.0, 6.0),
) -> dict[str, NDArray[np.bool_]]:
    """Lesion, NAWM and perilesional-shell masks (see the module table).

    Parameters
    ----------
    wm_prob, gm_prob
        White- and grey-matter probabilities in [0, 1], shape (X, Y, Z). ``gm_prob`` is checked for
        shape only (the regions are white-matter regions; it keeps the call parallel to
        :func:`~tspo_bids.anat.regions.define_regions`).
    lesion_mask
        Lesions (non-zero) on the same grid, e.g. labels from :func:`tspo_bids.anat.lesions.label_lesions`.
    voxel_size_mm
        Voxel size along each axis, mm.
    atlas
        When given, cerebellum, vermis, thalamus and deep GM are removed from the white matter.
    brain_mask
        Restricts every region (default: no restriction).
    nawm_wm_threshold
        WM probability of NAWM before erosion (default 0.9).
    wm_threshold
        WM probability of the white matter holding the perilesional shells (default 0.5).
    lesion_dilation_mm
        NAWM keeps voxels farther than this from any lesion, mm (default 6).
    shell_edges_mm
        Edges of the two shells, mm (default 0, 3, 6): ``perilesion03`` is ``(e0, e1]``,
        ``perilesion36`` is ``(e1, e2]``. The names stay the same when other edges are chosen.

    Returns
    -------
    dict of str to ndarray of bool
        :data:`MS_REGIONS` in that order. Without lesions, ``lesion`` and the shells are empty and
        NAWM is the eroded white matter.

    Raises
    ------
    InputError
        Mismatched shapes, bad voxel sizes or bad distances.
    """
    wm = np.asarray(wm_prob, dtype=float)
    gm = np.asarray(gm_prob, dtype=float)
    lesion = np.asarray(lesion_mask) != 0
    for name, array in (("GM probability", gm), ("lesion mask", lesion)):
        if array.shape != wm.shape:
            raise InputError(f"{name} has shape {array.shape} but the WM probability map has {wm.shape}; resample it")
    sizes = check_voxel_size(voxel_size_mm, wm.ndim)
    edges = np.asarray(shell_edges_mm, dtype=float)
    if edges.shape != (3,) or edges[0] < 0 or not np.all(np.diff(edges) > 0):
        raise InputError(f"perilesional shell edges must be three increasing distances >= 0 mm, got {shell_edges_mm!r}")
    if not (np.isfinite(lesion_dilation_mm) and lesion_dilation_mm >= 0):
        raise InputError(f"lesion dilation must be a non-negative number of mm, got {lesion_dilation_mm!r}")

    inside = np.ones(wm.shape, bool) if brain_mask is None else np.asarray(brain_mask) != 0
    if inside.shape != wm.shape:
        raise InputError(f"brain mask has shape {inside.shape} but the WM probability map has {wm.shape}")
    allowed = inside.copy()
    if atlas is not None:
        allowed &= ~(atlas.cerebellum | atlas.vermis | atlas.thalamus | atlas.deepgm)
    lesion &= inside
    distance = lesion_distance_mm(lesion, sizes)

    white = (wm >= wm_threshold) & allowed & ~lesion
    confident = (wm >= nawm_wm_threshold) & allowed
    eroded = ndimage.binary_erosion(confident, structure=np.ones((3,) * wm.ndim, bool))
    return {
        "lesion": lesion,
        "nawm": eroded & ~lesion & (distance > lesion_dilation_mm),
        "perilesion03": white & (distance > edges[0]) & (distance <= edges[1]),
        "perilesion36": white & (distance > edges[1]) & (distance <= edges[2]),
    }


def region_volumes_mm3(regions: dict[str, ArrayLike], voxel_size_mm: ArrayLike | float) -> dict[str, float]:
    """Volume of each region mask, mm^3 (voxel count x voxel volume), in the dict's order."""
    volumes = {}
    for name, mask in regions.items():
        array = np.asarray(mask) != 0
        volumes[name] = float(array.sum()) * float(np.prod(check_voxel_size(voxel_size_mm, array.ndim)))
    return volumes
