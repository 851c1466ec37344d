"""Region-of-interest definitions: one table, used by the pipeline and the phantom truth.

The pipeline applies :func:`define_regions` to its own tissue segmentation and the
atlas labels it warped to T1w; the digital phantom applies the very same function to
the true tissue maps and true labels, so "the value a perfect pipeline would
measure" is defined exactly as the pipeline defines its regions.

Definitions (../shared/methods.md §3-4), all in T1w space:

==============  ==============================================================
name            voxels
==============  ==============================================================
wholebrain      grey + white matter: ``p_GM + p_WM >= 0.5``
cortexgm        ``p_GM >= 0.5`` outside cerebellum, vermis, thalamus, deep GM
wm              ``p_WM >= 0.5`` outside cerebellum, vermis, thalamus, deep GM
thalamus        atlas thalamus with ``p_GM + p_WM >= 0.5``
deepgm          atlas caudate, putamen, pallidum with ``p_GM + p_WM >= 0.5``
cerebellumgm    reference: atlas cerebellar hemispheres (vermis excluded) with
                ``p_GM >= 0.5``, eroded by one voxel, and farther than 2 mm from
                any voxel whose non-tissue fraction ``1 - p_GM - p_WM`` is
                ``>= 0.2`` (sulcal CSF, or outside the brain)
==============  ==============================================================

Why the CSF margin: CSF holds no tracer, so every per cent of CSF in the reference mask
lowers the reference TAC, and raises every DVR, by about one per cent, while WM in it moves
the TAC by only a fraction of its share. A T1w segmentation underestimates the CSF of thin
sulci (a voxel of GM with some CSF and some WM has the intensity of pure GM), so thresholding
``p_GM`` does not remove it; a margin from the voxels where some CSF is detected reduces it. On
four noise-free, PSF-free phantoms (``benchmarks/voxel_maps_seeds.py``) the margin lowers the true
CSF content of the reference mask from ~5 % to ~2-2.7 % (WM 8-10 %), and the mask's true DVR
relative to pure cerebellar GM rises from ~0.965 to 0.991-1.002, mostly because the WM left in it
(more binding) offsets the CSF left (README, Limitations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Probability at or above which a voxel belongs to a tissue class.
TISSUE_THRESHOLD = 0.5

#: Non-tissue fraction (``1 - p_GM - p_WM``) at or above which a voxel counts as holding CSF.
REFERENCE_CSF_MIN = 0.2
#: Reference voxels lie farther than this from any voxel holding CSF (mm).
REFERENCE_CSF_MARGIN_MM = 2.0

#: The reference region's definition in words (sidecars, messages).
REFERENCE_DEFINITION = (f"atlas cerebellar hemispheres (vermis excluded), GM probability >= {TISSUE_THRESHOLD:g}, "
                        f"eroded by one voxel, farther than {REFERENCE_CSF_MARGIN_MM:g} mm from voxels with a "
                        f"non-tissue (CSF) fraction >= {REFERENCE_CSF_MIN:g}")

#: Name of the default (cerebellar grey matter) reference region.
REFERENCE_REGION = "cerebellumgm"

#: Target regions of the end-to-end pipeline, in output column order.
TARGET_REGIONS: tuple[str, ...] = ("wholebrain", "cortexgm", "wm", "thalamus", "deepgm")


@dataclass(frozen=True)
class AtlasGroups:
    """Boolean masks of atlas label groups in the space of the tissue maps."""

    cerebellum: np.ndarray
    vermis: np.ndarray
    thalamus: np.ndarray
    deepgm: np.ndarray


def define_regions(
    gm_prob: np.ndarray,
    wm_prob: np.ndarray,
    atlas: AtlasGroups,
    brain_mask: np.ndarray | None = None,
    *,
    voxel_size_mm: Sequence[float],
) -> dict[str, np.ndarray]:
    """Build the region masks from tissue probabilities and atlas groups.

    Parameters
    ----------
    gm_prob, wm_prob : ndarray, shape (X, Y, Z)
        Grey- and white-matter probabilities in [0, 1].
    atlas : AtlasGroups
        Atlas label groups on the same grid.
    brain_mask : ndarray of bool, optional
        Restricts every region (default: no restriction).
    voxel_size_mm : sequence of 3 float
        Voxel size of the grid (mm), for the reference region's CSF margin.

    Returns
    -------
    dict of str to ndarray of bool
        ``TARGET_REGIONS`` plus :data:`REFERENCE_REGION`, in that order.
    """
    gm_prob = np.asarray(gm_prob, dtype=np.float32)
    wm_prob = np.asarray(wm_prob, dtype=np.float32)
    if gm_prob.shape != wm_prob.shape:
        raise ValueError("GM and WM probability maps differ in shape")
    inside = np.ones(gm_prob.shape, bool) if brain_mask is None else np.asarray(brain_mask, bool)

    tissue = (gm_prob + wm_prob >= TISSUE_THRESHOLD) & inside
    gm = (gm_prob >= TISSUE_THRESHOLD) & inside
    wm = (wm_prob >= TISSUE_THRESHOLD) & inside
    not_cerebral = atlas.cerebellum | atlas.vermis | atlas.thalamus | atlas.deepgm

    reference = beyond_csf_margin(ndimage.binary_erosion(atlas.cerebellum & ~atlas.vermis & gm),
                                  gm_prob, wm_prob, voxel_size_mm)
    return {
        "wholebrain": tissue,
        "cortexgm": gm & ~not_cerebral,
        "wm": wm & ~not_cerebral,
        "thalamus": atlas.thalamus & tissue,
        "deepgm": atlas.deepgm & tissue,
        REFERENCE_REGION: reference,
    }


def csf_distance_mm(gm_prob: np.ndarray, wm_prob: np.ndarray, voxel_size_mm: Sequence[float]) -> np.ndarray:
    """Distance (mm) from each voxel to the nearest voxel holding CSF.

    A voxel holds CSF when its non-tissue fraction ``1 - p_GM - p_WM`` is at least
    :data:`REFERENCE_CSF_MIN`; voxels holding CSF are at distance 0. Without any such voxel
    every distance is infinite.

    Parameters
    ----------
    gm_prob, wm_prob : ndarray, shape (X, Y, Z)
        Grey- and white-matter probabilities in [0, 1].
    voxel_size_mm : sequence of 3 float
        Voxel size (mm).

    Returns
    -------
    ndarray of float64, shape (X, Y, Z)
    """
    holds_csf = 1.0 - gm_prob - wm_prob >= REFERENCE_CSF_MIN
    if not holds_csf.any():
        return np.full(holds_csf.shape, np.inf)
    return ndimage.distance_transform_edt(~holds_csf, sampling=[float(v) for v in voxel_size_mm])


def beyond_csf_margin(candidates: np.ndarray, gm_prob: np.ndarray, wm_prob: np.ndarray,
                      voxel_size_mm: Sequence[float]) -> np.ndarray:
    """The candidate voxels farther than :data:`REFERENCE_CSF_MARGIN_MM` from any voxel holding CSF.

    The distance is computed only in the candidates' bounding box padded by the margin (plus one
    voxel), which holds every CSF voxel within the margin of a candidate: the result equals
    ``candidates & (csf_distance_mm(gm_prob, wm_prob, voxel_size_mm) > REFERENCE_CSF_MARGIN_MM)``
    at a fraction of the cost on a whole-head grid.

    Parameters
    ----------
    candidates : ndarray of bool, shape (X, Y, Z)
    gm_prob, wm_prob : ndarray, shape (X, Y, Z)
        Grey- and white-matter probabilities in [0, 1].
    voxel_size_mm : sequence of 3 float
        Voxel size (mm).

    Returns
    -------
    ndarray of bool, shape (X, Y, Z)
    """
    candidates = np.asarray(candidates, bool)
    if not candidates.any():
        return candidates.copy()
    pad = [int(np.ceil(REFERENCE_CSF_MARGIN_MM / float(v))) + 1 for v in voxel_size_mm]
    box = tuple(slice(max(int(i.min()) - p, 0), int(i.max()) + p + 1) for i, p in zip(np.nonzero(candidates), pad))
    kept = np.zeros_like(candidates)
    kept[box] = candidates[box] & (csf_distance_mm(gm_prob[box], wm_prob[box], voxel_size_mm) > REFERENCE_CSF_MARGIN_MM)
    return kept
