"""What a perfect pipeline (no partial-volume correction) measures on the phantom.

The pipeline resamples the PET series into T1w space (trilinear, through its estimated
PET <-> T1w transform), averages it inside T1w-space region masks and fits SRTM
against the reference region's TAC. A *perfect* pipeline does the same with the true
transform, the true region masks and noise-free PET: :func:`regional_tacs_in_t1w`
holds those two steps, and :func:`perfect_kinpar` adds the fit, through the
pipeline's own fitting code (:func:`tspo_bids.pet.models.fit_regions`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tspo_bids.anat.regions import REFERENCE_REGION
from tspo_bids.kinetics.frames import FrameTiming
from tspo_bids.pet.tacs import regional_tacs
from tspo_bids.simulate.geometry import Grid, resample


def pet_in_t1w(pet: np.ndarray, pet_affine: np.ndarray, t1w_grid: Grid, t1w_to_pet: np.ndarray) -> np.ndarray:
    """Resample PET (3D or 4D, frames last) onto the T1w grid, trilinear.

    Parameters
    ----------
    pet : ndarray, shape (X, Y, Z) or (X, Y, Z, T)
        PET data, kBq/mL.
    pet_affine : ndarray, shape (4, 4)
        PET voxel -> PET world.
    t1w_grid : Grid
    t1w_to_pet : ndarray, shape (4, 4)
        T1w world point -> PET world point (the PET value at T1w point x is PET(A @ x)).
    """
    return resample(pet, pet_affine, t1w_grid, target_to_source=t1w_to_pet, order=1)


def regional_tacs_in_t1w(pet: np.ndarray, pet_affine: np.ndarray, t1w_grid: Grid, t1w_to_pet: np.ndarray,
                         masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Regional mean TACs of a 4D PET series measured in T1w space.

    Resamples ``pet`` (frames last) into T1w space (:func:`pet_in_t1w`) and averages
    it inside each T1w-space mask (:func:`tspo_bids.pet.tacs.regional_tacs`). Both
    steps are linear, so any stack of volumes on the last axis may be passed (e.g.
    PET-grid compartment fractions instead of frames).

    Returns
    -------
    dict of str to ndarray, shape (T,)
    """
    data = np.asarray(pet, np.float32)
    if data.ndim == 3:
        data = data[..., None]
    return regional_tacs(pet_in_t1w(data, pet_affine, t1w_grid, t1w_to_pet), masks)


def perfect_regional_tacs(fractions_on_pet: Mapping[str, np.ndarray], tacs: Mapping[str, np.ndarray],
                          pet_affine: np.ndarray, t1w_grid: Grid, t1w_to_pet: np.ndarray,
                          masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Regional TACs of the noise-free PET measured in T1w space, via linearity.

    Equal to ``regional_tacs_in_t1w(mix(fractions_on_pet, tacs), ...)`` but resamples
    the K compartment maps instead of every frame.
    """
    names = list(fractions_on_pet)
    stack = np.stack([fractions_on_pet[n] for n in names], axis=-1)
    weights = regional_tacs_in_t1w(stack, pet_affine, t1w_grid, t1w_to_pet, masks)
    tac_matrix = np.stack([np.asarray(tacs[n], float) for n in names])  # (K, T)
    return {region: w @ tac_matrix for region, w in weights.items()}


def perfect_kinpar(regional: Mapping[str, np.ndarray], timing: FrameTiming,
                   reference: str = REFERENCE_REGION, weights_region: str | None = "wholebrain") -> list[dict]:
    """SRTM fit of every region against the reference, exactly as the pipeline fits.

    Parameters
    ----------
    regional : mapping of str to ndarray
        Regional TACs (decay-corrected to injection, kBq/mL).
    timing : FrameTiming
    reference : str
        Reference region key.
    weights_region : str or None
        Region whose TAC gives the frame weights (the pipeline's default: whole brain).

    Returns
    -------
    list of dict
        Rows of :func:`tspo_bids.pet.models.fit_regions` (``region``, ``BPND``, ``DVR``,
        ``R1``, ``k2`` and fit flags); the reference region itself is not a row.
    """
    from tspo_bids.pet.models import fit_regions

    return fit_regions("SRTM", regional, reference, timing, weights_region=weights_region)
