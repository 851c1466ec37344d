"""Tissue compartments for partial-volume correction with fractional tissue maps.

Rousset's GTM (1998) treats each region as uniform. Our regions are thresholded tissue
fractions (a ``cortexgm`` voxel may hold 30 % CSF or WM), so a GTM over binary regions returns
the activity of each region's tissue *mixture*; a CSF-diluted reference then inflates every
BPND. Here each **compartment** is a tissue within an anatomical zone, described by its
fraction map (``f_GM`` in the cortex, ``f_WM`` in the cerebral WM zones, ``f_GM + f_WM`` in
thalamus and deep GM, ``f_CSF`` everywhere), and the GTM solves for the activity of every
compartment: the "tissue" activity the truth of a digital phantom, and the biology, refer to.
This follows the mixed-tissue formulation of Rousset et al. (1998) with the fractional
segmentations of Müller-Gärtner et al. (1992) and the high-resolution segmentation approach of
Greve et al. (2016, PETSurfer).

Observation regions (the GTM rows) are the voxels where each compartment dominates.

With lesion labels, every lesion's core and its rim (the WM shell of :func:`tspo_bids.pet.phenotypes.
lesion_core_and_rim`, 2 mm) are compartments of their own (``lesion-<i>-core``, ``lesion-<i>-rim``):
lesion phenotypes compare a lesion's core with its rim, and a single "lesion" compartment would
average a homogeneously active lesion with an inactive one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tspo_bids.anat.regions import REFERENCE_REGION, AtlasGroups
from tspo_bids.pet.phenotypes import CoreRim

#: Compartments by tissue type: GM-like regions report their GM compartment, WM-like their WM
#: compartments, mixed regions all tissue compartments inside them.
GM_COMPARTMENTS = ("cortexgm", REFERENCE_REGION)
#: WM compartments: lesions and perilesional shells bind differently; all other cerebral WM is one
#: tissue ("nawm"): splitting it into arbitrary zones only adds unknowns that model mismatch
#: pushes apart.
WM_COMPARTMENTS = ("lesion", "perilesion03", "perilesion36", "nawm")
SUBCORTICAL_COMPARTMENTS = ("thalamus", "deepgm")
CSF_COMPARTMENT = "csf"

#: Region name -> the compartments whose tissue it reports (None: every tissue compartment inside it).
REGION_COMPARTMENTS: dict[str, tuple[str, ...] | None] = {
    "cortexgm": ("cortexgm",),
    REFERENCE_REGION: (REFERENCE_REGION,),
    "thalamus": ("thalamus",),
    "deepgm": ("deepgm",),
    "lesion": ("lesion",),
    "perilesion03": ("perilesion03",),
    "perilesion36": ("perilesion36",),
    "nawm": ("nawm",),
    "wm": WM_COMPARTMENTS,
    "wholebrain": None,
}


def lesion_compartment_name(lesion_id: int, part: str) -> str:
    """Name of a lesion's own compartment: ``lesion-<id>-core`` or ``lesion-<id>-rim``."""
    if part not in ("core", "rim"):
        raise ValueError(f"lesion compartment part must be 'core' or 'rim', got {part!r}")
    return f"lesion-{int(lesion_id):03d}-{part}"


def parent_compartment(name: str) -> str:
    """The MS region a compartment belongs to: a lesion core -> ``lesion``, a 2 mm rim ->
    ``perilesion03`` (the rim lies in the 0-3 mm shell); other names are their own parent."""
    if name.startswith("lesion-") and name.endswith("-core"):
        return "lesion"
    if name.startswith("lesion-") and name.endswith("-rim"):
        return "perilesion03"
    return name


@dataclass(frozen=True)
class Compartments:
    """Fraction maps of the tissue compartments on the T1w grid.

    Attributes
    ----------
    names : tuple of str
        Compartment names; ``"csf"`` last.
    fractions : tuple of ndarray
        One fraction map per compartment (float32, 0-1); they sum to 1 inside the brain.
    """

    names: tuple[str, ...]
    fractions: tuple[NDArray[np.float32], ...]

    def dominant_labels(self, brain_mask: NDArray[np.bool_]) -> NDArray[np.int32]:
        """Label image (1-based, compartment order) of the compartment with the largest fraction
        (the first one on ties; a running maximum: no stack of all fraction maps in memory)."""
        best = np.full(np.shape(brain_mask), -np.inf, np.float32)
        labels = np.zeros(np.shape(brain_mask), np.int32)
        for index, fraction in enumerate(self.fractions, start=1):
            larger = fraction > best
            best[larger] = fraction[larger]
            labels[larger] = index
        return np.where(brain_mask, labels, 0).astype(np.int32)


def tissue_compartments(
    gm_prob: NDArray,
    wm_prob: NDArray,
    csf_prob: NDArray,
    brain_mask: NDArray,
    atlas: AtlasGroups,
    ms_masks: Mapping[str, NDArray] | None = None,
    lesion_rims: CoreRim | None = None,
) -> Compartments:
    """Split the brain's tissue fractions into anatomical compartments.

    Parameters
    ----------
    gm_prob, wm_prob, csf_prob : ndarray, shape (X, Y, Z)
        Partial-volume fractions on the T1w grid (sum 1 in the brain).
    brain_mask : ndarray of bool
    atlas : AtlasGroups
        Cerebellum, vermis, thalamus and deep-GM masks on the T1w grid.
    ms_masks : mapping, optional
        ``lesion``, ``perilesion03``, ``perilesion36`` masks (binary); their WM fraction forms one
        compartment each (first listed wins where they overlap); the rest of the cerebral WM
        fraction forms ``nawm``.
    lesion_rims : CoreRim, optional
        Lesion cores and rims (:func:`tspo_bids.pet.phenotypes.lesion_core_and_rim`): the WM
        fraction of each core and of each rim forms a compartment of its own, carved out of the
        cerebral WM before the MS masks (cores, then rims).

    Returns
    -------
    Compartments
        Empty compartments are left out.
    """
    brain = np.asarray(brain_mask, bool)
    gm = np.where(brain, gm_prob, 0).astype(np.float32)
    wm = np.where(brain, wm_prob, 0).astype(np.float32)
    csf = np.where(brain, csf_prob, 0).astype(np.float32)
    cerebellum, vermis = atlas.cerebellum & brain, atlas.vermis & brain
    thalamus, deepgm = atlas.thalamus & brain & ~cerebellum, atlas.deepgm & brain & ~cerebellum
    cerebral = brain & ~(cerebellum | vermis | thalamus | deepgm)

    unassigned_wm = cerebral.copy()
    wm_zones: dict[str, NDArray[np.bool_]] = {}
    if lesion_rims is not None:
        for part, labels in (("core", lesion_rims.core_labels), ("rim", lesion_rims.rim_labels)):
            for lesion_id in lesion_rims.lesion_ids:
                zone = (labels == lesion_id) & unassigned_wm
                wm_zones[lesion_compartment_name(lesion_id, part)] = zone
                unassigned_wm &= ~zone
    for name in WM_COMPARTMENTS[:-1]:
        mask = np.asarray((ms_masks or {}).get(name, np.zeros_like(brain)), bool) & unassigned_wm
        wm_zones[name] = mask
        unassigned_wm &= ~mask
    wm_zones["nawm"] = unassigned_wm

    maps: dict[str, NDArray[np.float32]] = {
        "cortexgm": gm * cerebral,
        REFERENCE_REGION: gm * cerebellum,
        "thalamus": (gm + wm) * thalamus,
        "deepgm": (gm + wm) * deepgm,
        **{name: wm * zone for name, zone in wm_zones.items()},
        "othertissue": wm * cerebellum + (gm + wm) * vermis,
        CSF_COMPARTMENT: csf,
    }
    kept = [(name, m.astype(np.float32)) for name, m in maps.items() if float(m.sum()) > 0]
    return Compartments(tuple(n for n, _ in kept), tuple(m for _, m in kept))


def _observation_counts(labels: NDArray[np.int64], names: tuple[str, ...]) -> NDArray[np.float64]:
    counts = np.bincount(labels, minlength=len(names) + 1)[1:].astype(float)
    if np.any(counts == 0):
        empty = [names[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"observation regions without voxels: {', '.join(empty)}")
    return counts


def _matrix_from_spread(
    spread: tuple[NDArray, ...], labels: NDArray[np.int64], counts: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``G[i, j]`` = mean of compartment j's spread function over observation region i."""
    n = counts.size
    matrix = np.empty((n, n))
    for j, rsf in enumerate(spread):
        matrix[:, j] = np.bincount(labels, weights=np.asarray(rsf, float).ravel(), minlength=n + 1)[1:] / counts
    return matrix


def compartment_gtm_matrix(
    compartments: Compartments,
    observation_labels: NDArray[np.int32],
    forward: Callable[[NDArray[np.float32]], NDArray[np.floating]],
) -> NDArray[np.float64]:
    """GTM matrix ``G[i, j]``: mean of ``forward(fraction_j)`` over observation region ``i``.

    Parameters
    ----------
    compartments : Compartments
    observation_labels : ndarray of int
        Observation regions (1..N; 0 ignored), N = number of compartments.
    forward : callable
        Maps a T1w-grid image to what the pipeline measures on the T1w grid (PSF blur, PET
        voxelisation, resampling back), e.g. ``PetGridModel.to_t1w_grid(model.to_pet_grid(x))``.
    """
    labels = np.asarray(observation_labels).ravel()
    counts = _observation_counts(labels, compartments.names)
    return _matrix_from_spread(tuple(forward(f) for f in compartments.fractions), labels, counts)


def region_weights(
    region_masks: Mapping[str, NDArray],
    compartments: Compartments,
) -> dict[str, NDArray[np.float64]]:
    """Weights that turn compartment activities into each region's corrected activity.

    A region reports the compartments of its tissue (:data:`REGION_COMPARTMENTS`), each weighted
    by its fraction summed over the region's voxels; CSF never counts. Regions not in the table
    report all tissue compartments inside them.

    Returns
    -------
    dict of str to ndarray, shape (n_compartments,)
        Weights summing to 1 (all zero if the region holds none of its compartments).
    """
    weights = {}
    for region, mask in region_masks.items():
        mask = np.asarray(mask, bool)
        wanted = REGION_COMPARTMENTS.get(region)
        w = np.zeros(len(compartments.names))
        for j, (name, fraction) in enumerate(zip(compartments.names, compartments.fractions)):
            if name == CSF_COMPARTMENT or (wanted is not None and parent_compartment(name) not in wanted):
                continue
            w[j] = float(fraction[mask].sum())
        total = w.sum()
        weights[region] = w / total if total > 0 else w
    return weights


@dataclass(frozen=True, eq=False)
class CompartmentGTM:
    """Tissue-compartment GTM of one PET series.

    Attributes
    ----------
    activities : ndarray, shape (n_compartments, n_frames)
        Corrected activity of every compartment (the series' unit).
    matrix : ndarray, shape (n_compartments, n_compartments)
        The geometric transfer matrix.
    condition_number : float
    spread : tuple of ndarray
        Each compartment's spread function on the T1w grid (``forward(fraction)``), kept for RBV.
    """

    activities: NDArray[np.float64]
    matrix: NDArray[np.float64]
    condition_number: float
    spread: tuple[NDArray[np.float32], ...]


def compartment_gtm(
    series: NDArray,
    compartments: Compartments,
    brain_mask: NDArray,
    forward: Callable[[NDArray[np.float32]], NDArray[np.floating]],
) -> CompartmentGTM:
    """Correct a T1w-grid PET series (X, Y, Z, frames) for partial volumes, every frame at once.

    One linear solve for all frames: ``observed = G @ activities``, observed being the series'
    means over the observation regions (where each compartment dominates).
    """
    from tspo_bids.pvc.gtm import gtm_correct

    flat_labels = compartments.dominant_labels(np.asarray(brain_mask, bool)).ravel()
    n = len(compartments.names)
    counts = _observation_counts(flat_labels, compartments.names)
    spread = tuple(np.asarray(forward(f), np.float32) for f in compartments.fractions)
    matrix = _matrix_from_spread(spread, flat_labels, counts)
    frames = np.asarray(series, np.float32).reshape(-1, series.shape[-1])
    inside = flat_labels > 0
    observed = np.stack([np.bincount(flat_labels[inside], weights=frames[inside, t], minlength=n + 1)[1:]
                         for t in range(frames.shape[1])], axis=1) / counts[:, None]
    return CompartmentGTM(gtm_correct(observed, matrix), matrix, float(np.linalg.cond(matrix)), spread)


def compartment_rbv(
    series: NDArray,
    compartments: Compartments,
    gtm: CompartmentGTM,
    brain_mask: NDArray,
    numerator: str = "dominant",
    eps: float = 1e-3,
) -> NDArray[np.float32]:
    """Region-based voxelwise correction (Thomas et al. 2011) with tissue compartments.

    ``corrected(x, t) = PET(x, t) * N(x, t) / (forward S)(x, t)``, ``S = sum_j fraction_j *
    activity_j(t)`` the synthetic image. Forward projection is linear, so ``forward S =
    sum_j activity_j(t) * spread_j`` needs no further blurring.

    ``numerator="mixture"`` is classical RBV (``N = S``): spill-over is removed but each voxel
    keeps its own tissue mixture (a cortical voxel stays part GM, part CSF/WM).
    ``numerator="dominant"`` (default) uses the activity of the voxel's dominant compartment
    (``N = activity_dom(x)``), as Müller-Gärtner et al. (1992) correct GM voxels to pure GM: every
    voxel then estimates the activity of its own tissue, the quantity the compartment GTM reports,
    so maps and GTM agree region by region.

    Outside the brain, or where ``forward S`` is below ``eps`` times its maximum, the voxel is 0.

    Returns
    -------
    ndarray, shape (X, Y, Z, n_frames), float32
    """
    if numerator not in ("dominant", "mixture"):
        raise ValueError(f"numerator must be 'dominant' or 'mixture', got {numerator!r}")
    brain = np.asarray(brain_mask, bool)
    corrected = np.zeros(series.shape, np.float32)
    fractions = np.stack([f[brain] for f in compartments.fractions])  # (n_comp, n_voxels)
    spread = np.stack([s[brain] for s in gtm.spread])
    own = compartments.dominant_labels(brain)[brain] - 1
    for t in range(series.shape[-1]):
        activity = gtm.activities[:, t]
        wanted = activity[own] if numerator == "dominant" else activity @ fractions
        blurred = activity @ spread
        pet = np.asarray(series[..., t], np.float32)[brain]
        valid = np.abs(blurred) > eps * max(float(np.max(np.abs(blurred))), 1e-30)
        frame = np.zeros(brain.shape, np.float32)
        frame[brain] = np.where(valid, pet * wanted / np.where(valid, blurred, 1.0), 0.0)
        corrected[..., t] = frame
    return corrected
