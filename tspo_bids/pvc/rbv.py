"""Voxelwise partial-volume correction: region-based voxelwise (RBV) and iterative Yang.

RBV (Thomas et al. 2011 EJNMMI): with the GTM-corrected regional values ``T_j(t)`` build the
piecewise-constant synthetic image ``S(x, t) = sum_j T_j(t) mask_j(x)`` and correct every voxel by
the ratio of the synthetic image to its blurred version,

    corrected(x, t) = PET(x, t) * S(x, t) / (PSF * S)(x, t).

Iterative Yang (Yang et al. 1996; Erlandsson et al. 2012 PMB) is the same voxelwise ratio with
``T_j`` taken as the regional means of the current estimate instead of from GTM, repeated from
``PET`` itself until the regional values settle; it needs no matrix solve.

Voxels outside the mask (default: outside every region) are set to 0. Where the blurred synthetic
image is below ``eps`` times the frame's largest ``|S|`` the ratio is not defined and the voxel is
left uncorrected (ratio 1). Arrays: ``(x, y, z)`` or ``(x, y, z, frames)`` on the label grid,
activity in the dataset's unit (e.g. kBq/mL).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from tspo_bids.pvc.gtm import ForwardModel, as_label_image, gtm_correct, gtm_matrix, regional_means
from tspo_bids.pvc.psf import DEFAULT_TRUNCATE, fwhm_to_sigma_vox, kernel_radius_vox, validate_psf

__all__ = ["DEFAULT_EPS", "synthetic_image", "rbv_correct", "iterative_yang"]

LOGGER = logging.getLogger(__name__)

#: Relative floor of the blurred synthetic image below which a voxel is left uncorrected.
DEFAULT_EPS = 1e-6


def synthetic_image(
    labels: ArrayLike, values: ArrayLike, dtype: type[np.floating] = np.float64
) -> NDArray[np.floating]:
    """Piecewise-constant image(s) ``S = sum_j values[j] mask_j``.

    Parameters
    ----------
    labels
        Label image ``0..n`` (0: zero activity).
    values
        ``(n,)`` for one image or ``(n, n_frames)`` for a series, activity unit.

    Returns
    -------
    ndarray
        ``(x, y, z)`` or ``(x, y, z, n_frames)``.
    """
    labels = as_label_image(labels)
    values = np.asarray(values, dtype=dtype)
    padded = np.concatenate([np.zeros((1, *values.shape[1:]), dtype=dtype), values], axis=0)
    if labels.max(initial=0) >= padded.shape[0]:
        raise ValueError(f"labels go up to {labels.max()} but only {values.shape[0]} values given")
    return padded[labels]


def _blur_box(labels: NDArray[np.int32], radius: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """Bounding box of all labelled voxels grown by the kernel radius (blur is zero beyond)."""
    box = ndimage.find_objects((labels > 0).astype(np.int8))[0]
    return tuple(  # type: ignore[return-value]
        slice(max(s.start - r, 0), min(s.stop + r, size)) for s, r, size in zip(box, radius, labels.shape)
    )


class _SyntheticBlur:
    """Blur of synthetic images with the PSF (cropped) or with a caller's forward model."""

    def __init__(self, labels: NDArray[np.int32], fwhm_mm: tuple[float, float, float],
                 voxel_size_mm: ArrayLike, forward: ForwardModel | None, dtype: type[np.floating],
                 truncate: float) -> None:
        self.forward = forward
        self.dtype = dtype
        self.truncate = truncate
        self.sigma = fwhm_to_sigma_vox(fwhm_mm, voxel_size_mm)
        if forward is None:
            self.box = _blur_box(labels, kernel_radius_vox(fwhm_mm, voxel_size_mm, truncate))
        else:
            self.box = (slice(None), slice(None), slice(None))

    def __call__(self, synthetic: NDArray[np.floating]) -> NDArray[np.floating]:
        if self.forward is not None:
            blurred = np.asarray(self.forward(synthetic), dtype=self.dtype)
            if blurred.shape != synthetic.shape:
                raise ValueError(f"forward returned shape {blurred.shape}, expected {synthetic.shape}")
            return blurred
        blurred = np.zeros_like(synthetic, dtype=self.dtype)
        blurred[self.box] = ndimage.gaussian_filter(
            synthetic[self.box], self.sigma, mode="constant", truncate=self.truncate, output=self.dtype
        )
        return blurred


def _apply_ratio(pet_frame: NDArray, synthetic: NDArray, blurred: NDArray, inside: NDArray[np.bool_],
                 eps: float, out: NDArray) -> None:
    """``out = pet * S / blurred S`` inside; 0 outside; ratio 1 where the blurred S is below the floor."""
    floor = eps * float(np.abs(synthetic).max(initial=0.0))
    defined = np.abs(blurred) > floor
    defined &= inside
    ratio = np.zeros_like(blurred)
    np.divide(synthetic, blurred, out=ratio, where=defined)
    if np.count_nonzero(defined) != np.count_nonzero(inside):
        ratio[inside & ~defined] = 1.0
    np.multiply(pet_frame, ratio, out=out)


def _prepare(pet: ArrayLike, labels: ArrayLike, mask: ArrayLike | None, dtype: type[np.floating]
             ) -> tuple[NDArray, NDArray[np.int32], NDArray[np.bool_], bool]:
    labels = as_label_image(labels)
    series = np.asarray(pet)
    was_3d = series.ndim == 3
    if was_3d:
        series = series[..., np.newaxis]
    if series.ndim != 4 or series.shape[:3] != labels.shape:
        raise ValueError(f"PET shape {np.shape(pet)} does not match labels {labels.shape}")
    if not np.all(np.isfinite(series)):
        raise ValueError("PET holds non-finite values")
    inside = labels > 0 if mask is None else np.asarray(mask, dtype=bool)
    if inside.shape != labels.shape:
        raise ValueError(f"mask shape {inside.shape} does not match labels {labels.shape}")
    return series, labels, inside, was_3d


def rbv_correct(
    pet: ArrayLike,
    labels: ArrayLike | Sequence[ArrayLike],
    fwhm_mm: float | Sequence[float],
    voxel_size_mm: float | Sequence[float],
    region_values: ArrayLike | None = None,
    *,
    forward: ForwardModel | None = None,
    mask: ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
    dtype: type[np.floating] = np.float32,
    truncate: float = DEFAULT_TRUNCATE,
) -> NDArray[np.floating]:
    """Region-based voxelwise correction (Thomas et al. 2011).

    Parameters
    ----------
    pet
        Measured series ``(x, y, z, frames)`` (or one ``(x, y, z)`` image) on the label grid.
    labels
        Partition label image ``0..n`` or list of disjoint masks (as for :func:`gtm_matrix`).
    fwhm_mm
        PSF FWHM, mm: one value or three (validated as ``--pvc-psf``).
    voxel_size_mm
        Voxel size of the grid, mm.
    region_values
        True regional values ``(n, frames)`` for the synthetic image, normally the GTM result;
        when omitted they are computed here (regional means -> :func:`gtm_matrix` -> :func:`gtm_correct`).
    forward
        Measurement model used instead of the PSF blur (see :func:`gtm_matrix`); use the same one
        as for GTM.
    mask
        Voxels to correct; others are set to 0. Default: all labelled voxels.
    eps
        Relative floor of the blurred synthetic image (see module notes).
    dtype
        Floating type of the work arrays and the result.
    truncate
        Gaussian kernel cut-off in standard deviations.

    Returns
    -------
    ndarray
        Corrected series, the shape of ``pet``, same unit; Fortran-ordered (frames contiguous).
    """
    fwhm = validate_psf(fwhm_mm)
    series, labels, inside, was_3d = _prepare(pet, labels, mask, dtype)
    if region_values is None:
        matrix = gtm_matrix(labels, fwhm, voxel_size_mm, forward, truncate=truncate)
        region_values = gtm_correct(regional_means(series, labels), matrix)
    values = np.asarray(region_values, dtype=float)
    if values.ndim == 1:
        values = values[:, np.newaxis]
    if values.shape != (int(labels.max()), series.shape[3]):
        raise ValueError(f"region_values shape {values.shape} should be (n_regions, n_frames) = "
                         f"{(int(labels.max()), series.shape[3])}")
    blur = _SyntheticBlur(labels, fwhm, voxel_size_mm, forward, dtype, truncate)
    corrected = np.empty(series.shape, dtype=dtype, order="F")  # frames contiguous
    for frame in range(series.shape[3]):
        synthetic = synthetic_image(labels, values[:, frame], dtype=dtype)
        _apply_ratio(series[..., frame], synthetic, blur(synthetic), inside, eps, corrected[..., frame])
    return corrected[..., 0] if was_3d else corrected


def iterative_yang(
    pet: ArrayLike,
    labels: ArrayLike | Sequence[ArrayLike],
    fwhm_mm: float | Sequence[float],
    voxel_size_mm: float | Sequence[float],
    *,
    n_iterations: int = 10,
    tolerance: float = 1e-4,
    forward: ForwardModel | None = None,
    mask: ArrayLike | None = None,
    eps: float = DEFAULT_EPS,
    dtype: type[np.floating] = np.float32,
    truncate: float = DEFAULT_TRUNCATE,
) -> NDArray[np.floating]:
    """Iterative Yang voxelwise correction (Erlandsson et al. 2012), no GTM solve.

    Starting from ``f0 = PET``, repeat ``f(k+1) = PET * S_k / (PSF * S_k)`` with ``S_k`` the
    synthetic image of the regional means of ``f(k)``, at most ``n_iterations`` times or until the
    largest relative change of any regional value is below ``tolerance``. Parameters as for
    :func:`rbv_correct`.

    Convergence is linear and slowest for small cold regions: on the 48^3 test phantom (5 mm PSF)
    the target regions are within 2 % of truth after 10 iterations (the default, as in PETPVC)
    but CSF is still 73 % off; after 100 iterations every region is within 0.02 %.

    Returns
    -------
    ndarray
        Corrected series, the shape of ``pet``, same unit.
    """
    if n_iterations < 1:
        raise ValueError("n_iterations must be >= 1")
    fwhm = validate_psf(fwhm_mm)
    series, labels, inside, was_3d = _prepare(pet, labels, mask, dtype)
    blur = _SyntheticBlur(labels, fwhm, voxel_size_mm, forward, dtype, truncate)
    values = regional_means(series, labels)
    corrected = np.empty(series.shape, dtype=dtype, order="F")  # frames contiguous
    for iteration in range(1, n_iterations + 1):
        for frame in range(series.shape[3]):
            synthetic = synthetic_image(labels, values[:, frame], dtype=dtype)
            _apply_ratio(series[..., frame], synthetic, blur(synthetic), inside, eps, corrected[..., frame])
        new_values = regional_means(corrected, labels)
        scale = np.maximum(np.abs(values), np.finfo(float).tiny)
        change = float(np.max(np.abs(new_values - values) / scale))
        values = new_values
        if change < tolerance:
            break
    LOGGER.info("iterative Yang: %d iteration(s), last relative change %.3g", iteration, change)
    return corrected[..., 0] if was_3d else corrected
