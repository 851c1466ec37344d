"""Geometric transfer matrix (GTM) partial-volume correction (Rousset, Ma & Evans 1998 JNM).

Model: the brain and head are a partition into ``n`` regions, each with a uniform true activity
``T_j(t)``. The image the pipeline measures on the T1w grid is then
``PET(x, t) = sum_j T_j(t) RSF_j(x)``, where the regional spread function ``RSF_j`` is what the
scanner and the pipeline make of region ``j``'s indicator mask: the PSF blur, and optionally the
PET voxelisation and the resampling back to the T1w grid (the ``forward`` callable). The
observed regional means are ``t_i(t) = sum_j G[i, j] T_j(t)`` with
``G[i, j] = mean over region i of RSF_j``; one linear solve for all frames gives ``T = G^-1 t``.

Region set
----------
GTM assumes every voxel carrying activity belongs to exactly one region: give all ROIs *plus*
CSF and a "remaining tissue" region (the rest of the brain/head mask), else the activity of the
missing voxels is attributed to their neighbours. Voxels outside all regions (label 0) are assumed
to hold no activity.

Overlapping ROIs (NAWM inside WM, shells around lesions inside WM, ...) must first be made
disjoint: :func:`partition_regions` turns an ordered list of masks into one label image where the
first mask listed wins a voxel (list small/specific ROIs first and the head mask last: its leftover
voxels are the "remaining tissue" region). GTM then corrects each partition region, and
:func:`roi_partition_weights` gives the matrix that maps the corrected partition values back to
any original ROI as the volume-weighted mean of the parts it covers (``W @ corrected``).

Everything here is pure numerics on arrays; images are ``(x, y, z)`` and series
``(x, y, z, frames)`` on one grid (the T1w grid), in the dataset's activity unit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, sparse

from tspo_bids.errors import InputError
from tspo_bids.pvc.psf import DEFAULT_TRUNCATE, fwhm_to_sigma_vox, kernel_radius_vox, validate_psf

__all__ = [
    "ForwardModel",
    "CONDITION_WARNING",
    "partition_regions",
    "as_label_image",
    "roi_partition_weights",
    "regional_means",
    "gtm_matrix",
    "gtm_condition_number",
    "gtm_correct",
    "GTMResult",
    "gtm_regional",
]

LOGGER = logging.getLogger(__name__)

#: A measurement model: T1w-grid image ``(x, y, z)`` -> what the pipeline measures on the T1w grid.
ForwardModel = Callable[[NDArray[np.floating]], NDArray[np.floating]]

#: Condition number of G above which the correction is logged as unreliable (noise amplified
#: by up to this factor) and solved by least squares (minimum norm) instead of exactly.
CONDITION_WARNING = 1e6
_CONDITION_LSTSQ = 1e12

#: Voxels per block when summing series region by region (bounds the float64 work copy).
_VOXEL_BLOCK = 1 << 18


def partition_regions(masks: Sequence[ArrayLike]) -> NDArray[np.int32]:
    """Disjoint label image from an ordered list of possibly overlapping masks (first wins).

    Parameters
    ----------
    masks
        Boolean masks on one grid, in priority order: a voxel gets the label of the first mask
        that contains it. List specific ROIs before the tissues that contain them (lesions,
        shells, NAWM before WM) and the brain/head mask last, so its leftover voxels form the
        "remaining tissue" region.

    Returns
    -------
    ndarray of int32
        ``0`` outside every mask, ``k + 1`` where mask ``k`` wins. A mask may end up with no voxels
        (entirely covered by earlier ones); :func:`gtm_matrix` rejects empty labels, so check
        ``np.bincount`` and drop such masks first.
    """
    if len(masks) == 0:
        raise ValueError("partition_regions needs at least one mask")
    first = np.asarray(masks[0])
    labels = np.zeros(first.shape, dtype=np.int32)
    for index, mask in enumerate(masks):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != labels.shape:
            raise ValueError(f"mask {index} has shape {mask.shape}, expected {labels.shape}")
        labels[mask & (labels == 0)] = index + 1
    return labels


def as_label_image(regions: ArrayLike | Sequence[ArrayLike]) -> NDArray[np.int32]:
    """Label image ``0..n`` from a label image or from a list of *disjoint* boolean masks.

    Raises
    ------
    ValueError
        Masks that overlap (use :func:`partition_regions`), negative labels or a wrong dimension.
    """
    if isinstance(regions, (list, tuple)):
        masks = [np.asarray(mask, dtype=bool) for mask in regions]
        coverage = np.sum(masks, axis=0, dtype=np.int32) if masks else None
        if coverage is not None and coverage.max(initial=0) > 1:
            raise ValueError("region masks overlap: make them disjoint with partition_regions() (first wins)")
        return partition_regions(masks)
    labels = np.asarray(regions)
    if labels.ndim != 3:
        raise ValueError(f"a label image must be 3D, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError("a label image must hold integers")
    labels = labels.astype(np.int32, copy=False)
    if labels.min(initial=0) < 0:
        raise ValueError("a label image must not hold negative labels")
    return labels


def _region_counts(labels: NDArray[np.int32], n_regions: int | None = None) -> NDArray[np.int64]:
    if n_regions is None:
        n_regions = int(labels.max(initial=0))
    counts = np.bincount(labels.ravel(), minlength=n_regions + 1)[: n_regions + 1]
    empty = np.flatnonzero(counts[1:] == 0) + 1
    if n_regions == 0:
        raise InputError("--pvc: no region to correct (the label image is empty)")
    if empty.size:
        raise InputError(
            f"--pvc: region label(s) {empty.tolist()} have no voxels; drop them or fix their masks"
        )
    return counts


def roi_partition_weights(roi_masks: Sequence[ArrayLike], labels: ArrayLike) -> NDArray[np.float64]:
    """Weights that map per-partition values back to (possibly overlapping) ROIs.

    ``W[r, j]`` is the fraction of ROI ``r``'s voxels that lie in partition region ``j`` (label
    ``j + 1``), so ``W @ corrected`` (``corrected``: ``(n_regions, n_frames)`` from
    :func:`gtm_correct`) is each ROI's volume-weighted mean of corrected values. Voxels of an ROI
    outside every region (label 0) count as zero activity, as in the GTM model.

    Parameters
    ----------
    roi_masks
        Boolean masks of the ROIs to report, on the grid of ``labels``.
    labels
        Partition label image ``0..n`` (e.g. from :func:`partition_regions`).

    Returns
    -------
    ndarray
        ``(n_rois, n_regions)``; rows sum to 1 minus the ROI's fraction outside all regions.
    """
    labels = as_label_image(labels)
    n_regions = int(labels.max(initial=0))
    weights = np.zeros((len(roi_masks), n_regions))
    for row, mask in enumerate(roi_masks):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != labels.shape:
            raise ValueError(f"ROI mask {row} has shape {mask.shape}, expected {labels.shape}")
        n_voxels = int(mask.sum())
        if n_voxels == 0:
            raise InputError(f"--pvc: ROI {row} is empty; cannot map corrected values to it")
        counts = np.bincount(labels[mask], minlength=n_regions + 1)
        weights[row] = counts[1:] / n_voxels
    return weights


def regional_means(series: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """Mean of every labelled region, every frame.

    Parameters
    ----------
    series
        ``(x, y, z)`` image or ``(x, y, z, frames)`` series on the grid of ``labels``, C- or
        Fortran-ordered (nibabel's); never copied whole.
    labels
        Label image ``0..n`` (0 is ignored).

    Returns
    -------
    ndarray
        ``(n_regions, n_frames)`` means (``n_frames = 1`` for a 3D image), float64.

    Notes
    -----
    All frames at once: blocks of voxels (in memory order) are multiplied by a sparse one-hot
    region matrix, accumulating in float64.
    """
    labels = as_label_image(labels)
    series = np.asarray(series)
    if series.ndim == 3:
        series = series[..., np.newaxis]
    if series.shape[:3] != labels.shape:
        raise ValueError(f"series shape {series.shape} does not match labels {labels.shape}")
    n_regions = int(labels.max(initial=0))
    counts = _region_counts(labels, n_regions)
    n_frames = series.shape[3]
    order = "F" if series.flags.f_contiguous and not series.flags.c_contiguous else "C"
    flat_series = series.reshape(-1, n_frames, order=order)
    flat_labels = labels.reshape(-1, order=order)
    sums = np.zeros((n_regions + 1, n_frames))
    for start in range(0, flat_labels.size, _VOXEL_BLOCK):
        block_labels = flat_labels[start : start + _VOXEL_BLOCK]
        block = np.asarray(flat_series[start : start + _VOXEL_BLOCK], dtype=np.float64, order="C")
        one_hot = sparse.csr_matrix(
            (np.ones(block_labels.size), (block_labels, np.arange(block_labels.size))),
            shape=(n_regions + 1, block_labels.size),
        )
        sums += one_hot @ block
    return sums[1:] / counts[1:, np.newaxis]


def _expanded_boxes(
    labels: NDArray[np.int32], n_regions: int, radius: tuple[int, int, int]
) -> list[tuple[slice, slice, slice]]:
    """Bounding box of each label grown by the kernel radius, clipped to the image."""
    boxes = []
    for box in ndimage.find_objects(labels, max_label=n_regions):
        assert box is not None  # empty labels were rejected before
        boxes.append(
            tuple(
                slice(max(s.start - r, 0), min(s.stop + r, size))
                for s, r, size in zip(box, radius, labels.shape)
            )
        )
    return boxes  # type: ignore[return-value]


def gtm_matrix(
    regions: ArrayLike | Sequence[ArrayLike],
    fwhm_mm: float | Sequence[float],
    voxel_size_mm: float | Sequence[float],
    forward: ForwardModel | None = None,
    *,
    dtype: type[np.floating] = np.float32,
    truncate: float = DEFAULT_TRUNCATE,
) -> NDArray[np.float64]:
    """Geometric transfer matrix ``G[i, j] = mean over region i of RSF_j``.

    Parameters
    ----------
    regions
        Label image ``(x, y, z)`` with labels ``1..n`` (0: no activity), or a list of ``n``
        disjoint boolean masks (overlapping ROIs: see :func:`partition_regions`). Every label
        ``1..n`` must have voxels.
    fwhm_mm
        PSF FWHM, mm: one value or three (x, y, z); validated as ``--pvc-psf``.
    voxel_size_mm
        Voxel size of the label grid, mm: one value or three.
    forward
        Optional measurement model replacing the plain PSF blur: a callable mapping a
        T1w-grid image to what the pipeline would measure on the T1w grid (e.g. PSF blur ->
        sampling onto the PET grid -> resampling back), so the PET voxelisation is part of the
        model. It must be linear and *include* the PSF; ``fwhm_mm`` is then only validated.
        A forward with a ``gtm_matrix(labels, dtype=...)`` method (e.g.
        :class:`tspo_bids.pvc.forward.PetGridModel`) computes ``G`` itself, faster.
    dtype
        Floating type of the blurred masks (float32: half the memory and faster; G itself is
        accumulated in float64).
    truncate
        Gaussian kernel cut-off in standard deviations.

    Returns
    -------
    ndarray
        ``(n, n)`` float64; row ``i`` is what region ``i``'s mean gathers from each region's unit
        activity (rows sum to ~1 inside a head padded by empty space).

    Notes
    -----
    Without ``forward``, each mask is blurred only inside its bounding box grown by the kernel
    radius: with ``mode="constant"`` this equals the full-image blur exactly, and is much faster
    for small regions. ``G`` is accumulated with one ``np.bincount`` over the label image per region.
    """
    fwhm = validate_psf(fwhm_mm)
    labels = as_label_image(regions)
    fast_path = getattr(forward, "gtm_matrix", None)
    if fast_path is not None:
        if tuple(getattr(forward, "fwhm_mm")) != fwhm:
            raise ValueError(f"fwhm_mm {fwhm} differs from the forward model's {getattr(forward, 'fwhm_mm')}")
        return np.asarray(fast_path(labels, dtype=dtype), dtype=float)
    n_regions = int(labels.max(initial=0))
    counts = _region_counts(labels, n_regions)
    matrix = np.empty((n_regions, n_regions))
    if forward is None:
        sigma = fwhm_to_sigma_vox(fwhm, voxel_size_mm)
        boxes = _expanded_boxes(labels, n_regions, kernel_radius_vox(fwhm, voxel_size_mm, truncate))
        for column, box in enumerate(boxes):
            sub_labels = labels[box]
            mask = (sub_labels == column + 1).astype(dtype)
            spread = ndimage.gaussian_filter(mask, sigma, mode="constant", truncate=truncate, output=dtype)
            sums = np.bincount(sub_labels.ravel(), weights=spread.ravel(), minlength=n_regions + 1)
            matrix[:, column] = sums[1 : n_regions + 1] / counts[1:]
    else:
        flat_labels = labels.ravel()
        for column in range(n_regions):
            spread = np.asarray(forward((labels == column + 1).astype(dtype)))
            if spread.shape != labels.shape:
                raise ValueError(f"forward returned shape {spread.shape}, expected {labels.shape}")
            sums = np.bincount(flat_labels, weights=spread.ravel(), minlength=n_regions + 1)
            matrix[:, column] = sums[1 : n_regions + 1] / counts[1:]
    return matrix


def gtm_condition_number(matrix: ArrayLike) -> float:
    """2-norm condition number of G: the worst-case factor by which noise in the means grows."""
    return float(np.linalg.cond(np.asarray(matrix, dtype=float)))


def gtm_correct(region_means: ArrayLike, matrix: ArrayLike) -> NDArray[np.float64]:
    """Partial-volume-corrected regional values: solve ``G @ corrected = observed`` for all frames.

    Parameters
    ----------
    region_means
        Observed regional means ``(n_regions, n_frames)`` (or ``(n_regions,)``) in the region
        order of ``matrix``, any activity unit (e.g. kBq/mL).
    matrix
        ``G`` from :func:`gtm_matrix`, ``(n_regions, n_regions)``.

    Returns
    -------
    ndarray
        Corrected true regional activities, same shape and unit as ``region_means``.

    Notes
    -----
    One call of :func:`numpy.linalg.solve` with all frames as right-hand sides. The condition
    number of ``G`` is logged (INFO; WARNING above :data:`CONDITION_WARNING`); for a numerically
    singular ``G`` the minimum-norm least-squares solution is returned instead.
    """
    matrix = np.asarray(matrix, dtype=float)
    observed = np.asarray(region_means, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"G must be square, got shape {matrix.shape}")
    if observed.shape[0] != matrix.shape[0] or observed.ndim not in (1, 2):
        raise ValueError(f"region_means shape {observed.shape} does not match G {matrix.shape}")
    if not np.all(np.isfinite(observed)):
        raise ValueError("region_means hold non-finite values")
    condition = gtm_condition_number(matrix)
    if not np.isfinite(condition) or condition > CONDITION_WARNING:
        LOGGER.warning("GTM matrix condition number %.3g: corrected values are unreliable "
                       "(regions too small or too alike for this PSF)", condition)
    else:
        LOGGER.info("GTM matrix condition number %.3g", condition)
    if not np.isfinite(condition) or condition > _CONDITION_LSTSQ:
        corrected, *_ = np.linalg.lstsq(matrix, observed, rcond=None)
        return corrected
    return np.linalg.solve(matrix, observed)


@dataclass(frozen=True, eq=False)
class GTMResult:
    """GTM correction of one series: what the sidecars and reports need.

    Attributes
    ----------
    corrected
        Corrected regional activities ``(n_regions, n_frames)``, the series' unit; row ``j`` is
        label ``j + 1``.
    observed
        Uncorrected regional means ``(n_regions, n_frames)``, same unit.
    matrix
        The geometric transfer matrix ``G`` ``(n_regions, n_regions)``.
    condition_number
        2-norm condition number of ``G``.
    region_voxels
        Voxels per region ``(n_regions,)``.
    psf_fwhm_mm
        PSF FWHM used, ``(x, y, z)`` mm.
    """

    corrected: NDArray[np.float64]
    observed: NDArray[np.float64]
    matrix: NDArray[np.float64]
    condition_number: float
    region_voxels: NDArray[np.int64]
    psf_fwhm_mm: tuple[float, float, float]


def gtm_regional(
    series: ArrayLike,
    regions: ArrayLike | Sequence[ArrayLike],
    fwhm_mm: float | Sequence[float],
    voxel_size_mm: float | Sequence[float],
    forward: ForwardModel | None = None,
    *,
    dtype: type[np.floating] = np.float32,
) -> GTMResult:
    """Regional means, ``G`` and the corrected values of a series in one call.

    Parameters as for :func:`regional_means` and :func:`gtm_matrix`; ``series`` is
    ``(x, y, z, frames)`` (or 3D) on the grid of ``regions``.
    """
    fwhm = validate_psf(fwhm_mm)
    labels = as_label_image(regions)
    observed = regional_means(series, labels)
    matrix = gtm_matrix(labels, fwhm, voxel_size_mm, forward, dtype=dtype)
    return GTMResult(
        corrected=gtm_correct(observed, matrix),
        observed=observed,
        matrix=matrix,
        condition_number=gtm_condition_number(matrix),
        region_voxels=_region_counts(labels)[1:],
        psf_fwhm_mm=fwhm,
    )
