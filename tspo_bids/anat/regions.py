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
                ``p_GM >= 0.5``, eroded by one voxel
==============  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Probability at or above which a voxel belongs to a tissue class.
TISSUE_THRESHOLD = 0.5

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

    reference = ndimage.binary_erosion(atlas.cerebellum & ~atlas.vermis & gm)
    return {
        "wholebrain": tissue,
        "cortexgm": gm & ~not_cerebral,
        "wm": wm & ~not_cerebral,
        "thalamus": atlas.thalamus & tissue,
        "deepgm": atlas.deepgm & tissue,
        REFERENCE_REGION: reference,
    }
