"""Measurement model with the PET voxelisation: PSF blur -> PET grid -> back to the T1w grid.

The pipeline measures regional TACs on the T1w grid from a PET series that the scanner recorded
on its own, coarser grid and that the pipeline resampled (trilinear) into T1w space. Modelling
only the PSF blur on the T1w grid ignores that voxelisation, which biases thin regions by several
per cent (see tests/pvc). :class:`PetGridModel` is the full linear model, usable as the
``forward`` of :func:`tspo_bids.pvc.gtm.gtm_matrix` and :func:`tspo_bids.pvc.rbv.rbv_correct`:

1. blur the T1w-grid image with the Gaussian PSF (``mode="constant"``);
2. sample it at the PET voxel centres (through the T1w -> PET world transform) with a spline of
   order ``sample_order`` (3: point samples of the smooth blurred image, as the digital phantom
   of :mod:`tspo_bids.simulate` builds PET; 1: trilinear);
3. resample the PET-grid image back onto the T1w grid, trilinear, zero outside the PET field of
   view (scipy ``mode="constant"``), as the pipeline does.

:func:`gtm_matrix_pet_grid` computes the same ``G`` as ``gtm_matrix(labels, ..., forward=model)``
much faster: each mask is blurred and sampled only inside its own neighbourhood, and step 3
followed by the regional averaging is one sparse "pull" matrix built once for all regions.
:meth:`PetGridModel.project_box` applies the whole model to an image that is zero outside a box
(a lesion's fraction map) in that neighbourhood only, and returns the result in its own box.

Affines follow nibabel: ``*_affine`` maps voxel indices to world mm; ``t1w_to_pet`` maps a T1w
world point to the PET world point it is seen at (the pipeline's PET <-> T1w registration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage, sparse

from tspo_bids.pvc.gtm import _expanded_boxes, _region_counts, as_label_image
from tspo_bids.pvc.psf import DEFAULT_TRUNCATE, fwhm_to_sigma_vox, kernel_radius_vox, validate_psf

__all__ = ["PetGridModel", "gtm_matrix_pet_grid", "Box", "support_box"]

#: A box of a 3D grid: one ``slice(start, stop)`` (step 1) per axis.
Box = tuple[slice, slice, slice]

#: Extra voxels around a cropped blurred mask: the blurred values at the crop edge are then exactly
#: zero (order 1), and the spline prefilter's exponential tails (pole -0.268) have decayed below
#: 1e-7 of the peak (order 3).
_SPLINE_MARGIN = 14

#: T1w voxels per block when building the pull matrix (bounds temporary memory).
_VOXEL_BLOCK = 1 << 20

#: Largest dense accumulator (entries, float64) when building the pull matrix: 256 MiB.
_DENSE_LIMIT = 1 << 25


def _matrix(values: ArrayLike | None) -> NDArray[np.float64]:
    matrix = np.eye(4) if values is None else np.asarray(values, dtype=float)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"expected a finite 4x4 affine, got {np.shape(values)}")
    return matrix


@dataclass(frozen=True, eq=False)
class PetGridModel:
    """PSF blur, PET voxelisation and trilinear resampling back to the T1w grid (a linear map).

    Attributes
    ----------
    fwhm_mm
        PSF FWHM ``(x, y, z)`` mm along the T1w grid axes (validated as ``--pvc-psf``).
    t1w_shape, t1w_affine
        T1w grid: shape and voxel -> world affine (mm).
    pet_shape, pet_affine
        PET grid: shape and voxel -> world affine (mm).
    t1w_to_pet
        T1w world point -> PET world point, ``(4, 4)``; identity by default.
    sample_order
        Spline order of the sampling at the PET voxel centres (1 or 3).
    truncate
        Gaussian kernel cut-off in standard deviations.
    """

    fwhm_mm: tuple[float, float, float]
    t1w_shape: tuple[int, int, int]
    t1w_affine: NDArray[np.float64]
    pet_shape: tuple[int, int, int]
    pet_affine: NDArray[np.float64]
    t1w_to_pet: NDArray[np.float64] = field(default_factory=lambda: np.eye(4))
    sample_order: int = 3
    truncate: float = DEFAULT_TRUNCATE

    def __post_init__(self) -> None:
        object.__setattr__(self, "fwhm_mm", validate_psf(self.fwhm_mm))
        for name in ("t1w_affine", "pet_affine", "t1w_to_pet"):
            object.__setattr__(self, name, _matrix(getattr(self, name)))
        for name in ("t1w_shape", "pet_shape"):
            shape = tuple(int(n) for n in getattr(self, name))
            if len(shape) != 3 or min(shape) < 2:
                raise ValueError(f"{name} must be three sizes >= 2, got {getattr(self, name)}")
            object.__setattr__(self, name, shape)
        if self.sample_order not in (1, 3):
            raise ValueError(f"sample_order must be 1 or 3, got {self.sample_order}")

    @property
    def t1w_voxel_size_mm(self) -> tuple[float, float, float]:
        """T1w voxel size along the grid axes, mm (column norms of the affine)."""
        size = np.linalg.norm(self.t1w_affine[:3, :3], axis=0)
        return (float(size[0]), float(size[1]), float(size[2]))

    @property
    def pet_voxel_in_t1w_voxel(self) -> NDArray[np.float64]:
        """``(4, 4)``: PET voxel index -> T1w voxel index."""
        return np.linalg.inv(self.t1w_affine) @ np.linalg.inv(self.t1w_to_pet) @ self.pet_affine

    @property
    def t1w_voxel_in_pet_voxel(self) -> NDArray[np.float64]:
        """``(4, 4)``: T1w voxel index -> PET voxel index."""
        return np.linalg.inv(self.pet_affine) @ self.t1w_to_pet @ self.t1w_affine

    def blur(self, image: NDArray[np.floating]) -> NDArray[np.floating]:
        """Step 1: PSF blur on the T1w grid."""
        sigma = fwhm_to_sigma_vox(self.fwhm_mm, self.t1w_voxel_size_mm)
        dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.float64
        return ndimage.gaussian_filter(image.astype(dtype, copy=False), sigma, mode="constant",
                                       truncate=self.truncate, output=dtype)

    def to_pet_grid(self, image: NDArray[np.floating]) -> NDArray[np.floating]:
        """Steps 1-2: blur a T1w-grid image and sample it at the PET voxel centres."""
        image = np.asarray(image)
        if image.shape != self.t1w_shape:
            raise ValueError(f"image shape {image.shape} is not the T1w grid {self.t1w_shape}")
        blurred = self.blur(image)
        if self.sample_order > 1:
            blurred = ndimage.spline_filter(blurred, order=self.sample_order, mode="constant",
                                            output=blurred.dtype)
        return ndimage.affine_transform(blurred, self.pet_voxel_in_t1w_voxel, output_shape=self.pet_shape,
                                        order=self.sample_order, mode="constant", cval=0.0, prefilter=False)

    def to_t1w_grid(self, pet_image: NDArray[np.floating]) -> NDArray[np.floating]:
        """Step 3: trilinear resampling of a PET-grid image onto the T1w grid (0 outside the PET FOV)."""
        return ndimage.affine_transform(np.asarray(pet_image), self.t1w_voxel_in_pet_voxel,
                                        output_shape=self.t1w_shape, order=1, mode="constant", cval=0.0)

    def __call__(self, image: NDArray[np.floating]) -> NDArray[np.floating]:
        """The whole model on a T1w-grid image (a :data:`tspo_bids.pvc.gtm.ForwardModel`)."""
        return self.to_t1w_grid(self.to_pet_grid(image))

    def forward_margin_vox(self) -> tuple[int, int, int]:
        """T1w voxels around an image's support that steps 1-2 need (kernel radius + spline/trilinear margin)."""
        radius = kernel_radius_vox(self.fwhm_mm, self.t1w_voxel_size_mm, self.truncate)
        extra = _SPLINE_MARGIN if self.sample_order > 1 else 1
        return (radius[0] + extra, radius[1] + extra, radius[2] + extra)

    def project_box(self, values: NDArray[np.floating], box: Box) -> tuple[NDArray[np.floating], Box]:
        """The whole model on a T1w-grid image that is zero outside ``box``, computed near it only.

        Steps 1-2 run on ``box`` grown by :meth:`forward_margin_vox` (the blur's kernel radius plus
        the spline prefilter's decay length), sampling only the PET voxel centres inside that crop;
        step 3 runs on the T1w voxels whose trilinear footprint touches a non-zero PET sample. This
        equals ``self(image)`` exactly for ``sample_order=1`` and to ~1e-8 of the result's maximum
        for ``sample_order=3`` (PET samples of the spline's decayed tail outside the crop are left
        out), at a cost that scales with the box, not the grid.

        Parameters
        ----------
        values
            The image inside ``box`` (any unit), shape of the box; floating (else float64).
        box
            Its place on the T1w grid, three ``slice(start, stop)``.

        Returns
        -------
        values, box
            The model's result (same unit and floating type) inside its own T1w-grid box; zero
            outside. The box is empty (``stop == start``) when nothing reaches the PET field of view.
        """
        values = np.asarray(values)
        dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.dtype(np.float64)
        start = np.array([s.start for s in box], dtype=int)
        stop = np.array([s.stop for s in box], dtype=int)
        t1w_shape = np.array(self.t1w_shape)
        if values.shape != tuple(stop - start) or np.any(start < 0) or np.any(stop > t1w_shape):
            raise ValueError(f"values of shape {values.shape} do not fit box {box} of the T1w grid {self.t1w_shape}")
        margin = np.array(self.forward_margin_vox())
        lower = np.maximum(start - margin, 0)
        upper = np.minimum(stop + margin, t1w_shape) - 1  # inclusive
        crop = np.zeros(tuple(upper - lower + 1), dtype)
        crop[tuple(slice(a, b) for a, b in zip(start - lower, stop - lower))] = values
        sigma = fwhm_to_sigma_vox(self.fwhm_mm, self.t1w_voxel_size_mm)
        blurred = ndimage.gaussian_filter(crop, sigma, mode="constant", truncate=self.truncate, output=dtype)
        del crop
        if self.sample_order > 1:
            blurred = ndimage.spline_filter(blurred, order=self.sample_order, mode="constant", output=dtype)

        # step 2: the PET voxels whose centres can lie in the crop, then those that do
        pet_shape = np.array(self.pet_shape)
        pet_lo, pet_hi = _mapped_box(self.t1w_voxel_in_pet_voxel, lower, upper, pet_shape)
        if np.any(pet_hi < pet_lo):
            return _empty_result(dtype)
        pet_ijk = np.stack(np.meshgrid(*(np.arange(a, b + 1, dtype=float) for a, b in zip(pet_lo, pet_hi)),
                                       indexing="ij")).reshape(3, -1)
        pet_in_t1w = self.pet_voxel_in_t1w_voxel
        centres = pet_in_t1w[:3, :3] @ pet_ijk + pet_in_t1w[:3, 3:4]
        selected = np.flatnonzero(np.all((centres >= lower[:, None]) & (centres <= upper[:, None]), axis=0))
        samples = np.zeros(int(np.prod(pet_hi - pet_lo + 1)), dtype)
        samples[selected] = ndimage.map_coordinates(blurred, centres[:, selected] - lower[:, None],
                                                    order=self.sample_order, mode="constant", cval=0.0,
                                                    prefilter=False)
        del blurred, centres, pet_ijk
        samples = samples.reshape(tuple(pet_hi - pet_lo + 1))
        support = support_box(samples)
        if support is None:
            return _empty_result(dtype)
        nz_lo = np.array([b.start for b in support]) + pet_lo
        nz_hi = np.array([b.stop - 1 for b in support]) + pet_lo

        # step 3: a PET crop with one zero voxel (inside the PET grid) around the non-zero samples,
        # so that scipy's "0 outside [0, n - 1]" rule acts only where the full grid's would
        crop_lo = np.maximum(nz_lo - 1, 0)
        crop_hi = np.minimum(nz_hi + 1, pet_shape - 1)
        pet_crop = np.zeros(tuple(crop_hi - crop_lo + 1), dtype)
        pet_crop[tuple(slice(a, b + 1) for a, b in zip(nz_lo - crop_lo, nz_hi - crop_lo))] = samples[
            tuple(slice(a, b + 1) for a, b in zip(nz_lo - pet_lo, nz_hi - pet_lo))]
        # T1w voxels whose PET coordinate p has nz_lo - 1 < p < nz_hi + 1 on every axis (else exactly 0)
        out_lo, out_hi = _mapped_box(self.pet_voxel_in_t1w_voxel, nz_lo - 1, nz_hi + 1, t1w_shape)
        if np.any(out_hi < out_lo):
            return _empty_result(dtype)
        mapping = self.t1w_voxel_in_pet_voxel
        offset = mapping[:3, :3] @ out_lo + mapping[:3, 3] - crop_lo
        result = ndimage.affine_transform(pet_crop, mapping[:3, :3], offset=offset,
                                          output_shape=tuple(out_hi - out_lo + 1), order=1, mode="constant",
                                          cval=0.0)
        out_box = tuple(slice(int(a), int(b) + 1) for a, b in zip(out_lo, out_hi))
        return result, out_box  # type: ignore[return-value]

    def gtm_matrix(self, regions: ArrayLike | Sequence[ArrayLike], *,
                   dtype: type[np.floating] = np.float32) -> NDArray[np.float64]:
        """``G`` through this model (:func:`gtm_matrix_pet_grid`); used by ``gtm_matrix(..., forward=self)``."""
        return gtm_matrix_pet_grid(regions, self, dtype=dtype)


def _mapped_box(mapping: NDArray[np.float64], lower: NDArray, upper: NDArray,
                shape: NDArray) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Inclusive index box of a grid of ``shape`` holding the image of the box ``[lower, upper]``
    (voxel coordinates) under the affine ``mapping`` (4 x 4); ``hi < lo`` on some axis if none."""
    corners = np.array(np.meshgrid(*zip(lower, upper), indexing="ij"), dtype=float).reshape(3, -1)
    mapped = mapping[:3, :3] @ corners + mapping[:3, 3:4]
    lo = np.maximum(np.floor(mapped.min(axis=1)).astype(np.int64) - 1, 0)
    hi = np.minimum(np.ceil(mapped.max(axis=1)).astype(np.int64) + 1, np.asarray(shape) - 1)
    return lo, hi


def support_box(image: NDArray) -> Box | None:
    """Bounding box of the non-zero voxels of a 3D image (None if it is all zero)."""
    nonzero = np.asarray(image) != 0
    box = []
    for axis in range(3):
        hits = np.flatnonzero(np.any(nonzero, axis=tuple(a for a in range(3) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)  # type: ignore[return-value]


def _empty_result(dtype: np.dtype) -> tuple[NDArray[np.floating], Box]:
    return np.zeros((0, 0, 0), dtype), (slice(0, 0), slice(0, 0), slice(0, 0))


def _pull_matrix(labels: NDArray[np.int32], model: PetGridModel, n_regions: int) -> sparse.csr_matrix:
    """Sparse ``(n_regions, n_pet_voxels)``: regional means of the trilinear PET -> T1w resampling.

    Row ``i`` holds, for every PET voxel, the summed trilinear weight it gives the T1w voxels of
    region ``i``, divided by the region's voxel count. Built with dense ``np.bincount`` over groups
    of regions (at most ``_DENSE_LIMIT`` accumulator entries at a time).
    """
    counts = _region_counts(labels, n_regions)
    mapping = model.t1w_voxel_in_pet_voxel
    pet_shape = np.asarray(model.pet_shape)
    n_pet = int(np.prod(pet_shape))
    strides = np.array([pet_shape[1] * pet_shape[2], pet_shape[2], 1])
    flat_labels = labels.ravel()
    labelled = np.flatnonzero(flat_labels)
    labelled = labelled[np.argsort(flat_labels[labelled], kind="stable")]  # grouped by region
    region_end = np.cumsum(counts[1:])
    group_size = max(1, _DENSE_LIMIT // n_pet)
    rows = []
    for first in range(1, n_regions + 1, group_size):
        last = min(first + group_size - 1, n_regions)
        start = 0 if first == 1 else int(region_end[first - 2])
        stop = int(region_end[last - 1])
        accumulator = np.zeros((last - first + 1) * n_pet)
        for block_start in range(start, stop, _VOXEL_BLOCK):
            flat_index = labelled[block_start : min(block_start + _VOXEL_BLOCK, stop)]
            ijk = np.stack(np.unravel_index(flat_index, labels.shape)).astype(float)
            pet_ijk = mapping[:3, :3] @ ijk + mapping[:3, 3:4]
            # scipy's mode="constant" at order 1: 0 for points outside [0, n - 1] on any axis
            inside = np.all((pet_ijk >= 0) & (pet_ijk <= (pet_shape - 1)[:, None]), axis=0)
            pet_ijk = pet_ijk[:, inside]
            region = flat_labels[flat_index[inside]]
            lower = np.minimum(np.floor(pet_ijk).astype(np.int64), (pet_shape - 2)[:, None])
            upper_weight = pet_ijk - lower
            axis_weights = ((1.0 - upper_weight[0], upper_weight[0]), (1.0 - upper_weight[1], upper_weight[1]),
                            (1.0 - upper_weight[2], upper_weight[2]))
            base = (region - first) * n_pet + strides @ lower
            scale = 1.0 / counts[region]
            for a, b, c in np.ndindex(2, 2, 2):
                weight = axis_weights[0][a] * axis_weights[1][b] * axis_weights[2][c] * scale
                offset = a * strides[0] + b * strides[1] + c
                accumulator += np.bincount(base + offset, weights=weight, minlength=accumulator.size)
        rows.append(sparse.csr_matrix(accumulator.reshape(last - first + 1, n_pet)))
    return sparse.vstack(rows, format="csr")


def gtm_matrix_pet_grid(
    regions: ArrayLike | Sequence[ArrayLike],
    model: PetGridModel,
    *,
    dtype: type[np.floating] = np.float32,
) -> NDArray[np.float64]:
    """``G`` of :func:`tspo_bids.pvc.gtm.gtm_matrix` with ``forward=model``, computed fast.

    Parameters
    ----------
    regions
        Label image on ``model.t1w_shape`` (labels ``1..n``) or list of disjoint masks.
    model
        The measurement model.
    dtype
        Floating type of the blurred masks.

    Returns
    -------
    ndarray
        ``(n, n)`` float64, ``G[i, j] = mean over region i of model(mask_j)``.
    """
    labels = as_label_image(regions)
    if labels.shape != model.t1w_shape:
        raise ValueError(f"labels shape {labels.shape} is not the model's T1w grid {model.t1w_shape}")
    n_regions = int(labels.max(initial=0))
    pull = _pull_matrix(labels, model, n_regions)
    sigma = fwhm_to_sigma_vox(model.fwhm_mm, model.t1w_voxel_size_mm)
    radius = kernel_radius_vox(model.fwhm_mm, model.t1w_voxel_size_mm, model.truncate)
    margin = tuple(r + (_SPLINE_MARGIN if model.sample_order > 1 else 1) for r in radius)
    boxes = _expanded_boxes(labels, n_regions, margin)  # type: ignore[arg-type]
    pet_in_t1w = model.pet_voxel_in_t1w_voxel
    pet_ijk = np.stack(np.meshgrid(*(np.arange(n, dtype=float) for n in model.pet_shape), indexing="ij"))
    centres = np.tensordot(pet_in_t1w[:3, :3], pet_ijk, axes=1) + pet_in_t1w[:3, 3].reshape(3, 1, 1, 1)
    centres = centres.reshape(3, -1)  # PET voxel centres in T1w voxel coordinates, C order
    matrix = np.empty((n_regions, n_regions))
    for column, box in enumerate(boxes):
        lower = np.array([s.start for s in box], dtype=float)[:, None]
        upper = np.array([s.stop - 1 for s in box], dtype=float)[:, None]
        # PET centres that see this crop; the crop edge is zero, so all others sample exactly 0
        selected = np.flatnonzero(np.all((centres >= lower) & (centres <= upper), axis=0))
        mask = (labels[box] == column + 1).astype(dtype)
        blurred = ndimage.gaussian_filter(mask, sigma, mode="constant", truncate=model.truncate, output=dtype)
        if model.sample_order > 1:
            blurred = ndimage.spline_filter(blurred, order=model.sample_order, mode="constant", output=dtype)
        on_pet = np.zeros(pull.shape[1])
        on_pet[selected] = ndimage.map_coordinates(blurred, centres[:, selected] - lower, order=model.sample_order,
                                                   mode="constant", cval=0.0, prefilter=False)
        matrix[:, column] = pull @ on_pet
    return matrix
