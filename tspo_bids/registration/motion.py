"""Frame-wise rigid motion correction of a dynamic PET series.

Frames that start late enough to hold anatomy (default: at or after 2 min) are
registered rigidly (Mattes mutual information) to a reference, the duration-weighted
mean of the later frames (default: those starting in the second half of the scan).
A second pass rebuilds the reference from the corrected later frames and registers
again, so motion inside the reference window does not blur the final reference.
Earlier frames (mostly blood pool, too little anatomy to register) take the
transform of the registered frame nearest in time.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
from scipy import ndimage

from tspo_bids.errors import InputError
from tspo_bids.registration.coregister import rigid_register
from tspo_bids.registration.transforms import (
    DEFAULT_RANDOM_SEED,
    as_nifti,
    mask_points_world,
    mean_displacement_mm,
    resample_to,
    set_ants_threads,
)

#: Fraction of the reference's robust maximum above which a voxel counts as head.
HEAD_THRESHOLD_FRACTION = 0.15

#: Frame-to-reference registration schedule (PET voxels are already 2-4 mm).
FRAME_REGISTRATION: dict = {
    "shrink_factors": (2, 1),
    "smoothing_sigmas_vox": (1.0, 0.0),
    "iterations": (200, 50),
    "sampling_rate": 0.2,
    "convergence_threshold": 1e-5,
}


def motion_correct(
    pet_4d: nib.spatialimages.SpatialImage | str,
    frame_mid_min: Sequence[float],
    frame_duration_min: Sequence[float],
    min_frame_start_min: float = 2.0,
    reference_start_min: float | None = None,
    n_passes: int = 2,
    metric: str = "mattes",
    n_threads: int = 1,
    random_seed: int | None = DEFAULT_RANDOM_SEED,
    registration_options: dict | None = None,
) -> tuple[nib.Nifti1Image, list[np.ndarray], nib.Nifti1Image]:
    """Rigidly realign the frames of a 4D PET series to a common reference.

    Parameters
    ----------
    pet_4d : nibabel image or path, shape (X, Y, Z, T)
        Dynamic PET (any unit, e.g. kBq/mL).
    frame_mid_min, frame_duration_min : sequences of T floats
        Frame mid-times and durations, minutes.
    min_frame_start_min : float
        Frames starting at or after this time (minutes) are registered.
    reference_start_min : float, optional
        Frames starting at or after this time (minutes) form the reference
        (default: half the scan's end time; at least the last registered frame).
    n_passes : int
        Registration passes (the reference is rebuilt from corrected frames between
        passes).
    metric : str
        Similarity metric for :func:`~tspo_bids.registration.coregister.rigid_register`.
    n_threads : int
        ITK threads.
    random_seed : int or None
        Seed of the metric sampling (deterministic by default).
    registration_options : dict, optional
        Overrides of the frame-to-reference schedule (keyword arguments of
        :func:`~tspo_bids.registration.coregister.rigid_register`; defaults in
        :data:`FRAME_REGISTRATION`).

    Returns
    -------
    corrected : nibabel.Nifti1Image, shape (X, Y, Z, T), float32
        Every frame resampled (trilinear) onto the PET grid in the reference position.
    frame_matrices : list of T ndarrays, shape (4, 4)
        Per frame, the reference-to-frame world matrix (RAS+ mm): the frame's value
        at ``A @ x`` belongs at reference point ``x``. Identity means no motion.
    reference : nibabel.Nifti1Image, 3D float32
        Duration-weighted mean of the corrected reference frames (PET grid): the
        image to register to the T1w.

    See Also
    --------
    frame_displacement_mm : per-frame displacement (mm) of these matrices.
    """
    set_ants_threads(n_threads)
    pet = as_nifti(pet_4d)
    mid = np.asarray(frame_mid_min, dtype=float)
    duration = np.asarray(frame_duration_min, dtype=float)
    _check_timing(pet, mid, duration)
    start = mid - duration / 2.0
    data = np.asarray(pet.dataobj, dtype=np.float32)
    n_frames = data.shape[3]

    registered = np.flatnonzero(start >= min_frame_start_min - 1e-9)
    if registered.size == 0:
        raise InputError(
            f"no PET frame starts at or after {min_frame_start_min:g} min: "
            "lower min_frame_start_min to motion-correct this series"
        )
    if reference_start_min is None:
        reference_start_min = float(start[-1] + duration[-1]) / 2.0
    in_reference = registered[start[registered] >= reference_start_min - 1e-9]
    if in_reference.size == 0:
        in_reference = registered[-1:]
    weights = duration[in_reference] / duration[in_reference].sum()

    options = {**FRAME_REGISTRATION, **(registration_options or {})}
    grid = nib.Nifti1Image(np.zeros(data.shape[:3], np.float32), pet.affine)
    frames = [nib.Nifti1Image(data[..., k], pet.affine) for k in range(n_frames)]
    matrices: dict[int, np.ndarray] = {int(k): np.eye(4) for k in registered}

    def _reference() -> nib.Nifti1Image:
        total = np.zeros(data.shape[:3], np.float32)
        for k, w in zip(in_reference, weights):
            total += w * resample_to(frames[k], grid, matrices[int(k)]).get_fdata(dtype=np.float32)
        return nib.Nifti1Image(total, pet.affine)

    for _ in range(max(1, int(n_passes))):
        reference = _reference()
        head = head_mask(reference)
        for k in registered:
            matrices[int(k)] = rigid_register(
                reference,
                frames[k],
                metric=metric,
                fixed_mask=head,
                initial_matrix=matrices[int(k)],
                n_threads=n_threads,
                random_seed=random_seed,
                **options,
            )
    reference = _reference()

    frame_matrices = []
    for k in range(n_frames):
        nearest = int(registered[np.argmin(np.abs(mid[registered] - mid[k]))])
        frame_matrices.append(matrices[nearest].copy())
    corrected = np.stack(
        [resample_to(frames[k], grid, frame_matrices[k]).get_fdata(dtype=np.float32)
         for k in range(n_frames)],
        axis=-1,
    )
    corrected_img = nib.Nifti1Image(corrected, pet.affine, pet.header)
    corrected_img.set_data_dtype(np.float32)
    reference_img = nib.Nifti1Image(reference.get_fdata(dtype=np.float32), pet.affine)
    reference_img.header.set_xyzt_units("mm")
    return corrected_img, frame_matrices, reference_img


def head_mask(image: nib.spatialimages.SpatialImage) -> nib.Nifti1Image:
    """Head mask of a PET image: above 15 % of the 99th percentile, holes filled.

    Parameters
    ----------
    image : nibabel image, 3D

    Returns
    -------
    nibabel.Nifti1Image (uint8)
    """
    values = np.asarray(image.dataobj, dtype=np.float32)
    level = HEAD_THRESHOLD_FRACTION * np.percentile(values[values > 0], 99) if np.any(values > 0) else 0
    mask = ndimage.binary_fill_holes(ndimage.binary_dilation(values > level, iterations=1))
    return nib.Nifti1Image(mask.astype(np.uint8), image.affine)


def frame_displacement_mm(
    frame_matrices: Sequence[np.ndarray], reference: nib.spatialimages.SpatialImage
) -> np.ndarray:
    """Mean displacement (mm) of the head voxels under each frame's matrix.

    Parameters
    ----------
    frame_matrices : sequence of (4, 4) arrays
        Reference-to-frame world matrices from :func:`motion_correct`.
    reference : nibabel image
        The motion reference (its head mask supplies the points).

    Returns
    -------
    ndarray, shape (T,)
        Mean distance (mm) each head point moves from the reference position.
    """
    points = mask_points_world(head_mask(reference))
    return np.array([mean_displacement_mm(m, np.eye(4), points) for m in frame_matrices])


def _check_timing(pet: nib.spatialimages.SpatialImage, mid: np.ndarray, duration: np.ndarray) -> None:
    if pet.ndim != 4:
        raise InputError(f"PET image must be 4D for motion correction, got shape {pet.shape}")
    n_frames = pet.shape[3]
    if mid.shape != (n_frames,) or duration.shape != (n_frames,):
        raise InputError(
            f"PET has {n_frames} frames but {mid.size} mid-times and {duration.size} durations"
        )
    if not (np.all(np.isfinite(mid)) and np.all(np.isfinite(duration)) and np.all(duration > 0)):
        raise InputError("PET frame times must be finite with positive durations")
