"""Point-spread function of the scanner: option validation and Gaussian blurring.

The PSF is an anisotropic 3D Gaussian given by its full width at half maximum (FWHM) along the
image axes x, y, z, in mm (the ``--pvc-psf`` option: one value for an isotropic PSF, or three).
Blurring uses :func:`scipy.ndimage.gaussian_filter` (separable) with ``mode="constant"``: the
world outside the image is empty, as it is for a PET field of view around the head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from tspo_bids.errors import InputError

__all__ = [
    "FWHM_PER_SIGMA",
    "MAX_PSF_FWHM_MM",
    "PSF_OPTION",
    "DEFAULT_TRUNCATE",
    "validate_psf",
    "fwhm_to_sigma_vox",
    "kernel_radius_vox",
    "gaussian_psf_blur",
]

#: FWHM of a Gaussian in units of its standard deviation, ``2 sqrt(2 ln 2)``.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Largest accepted PSF FWHM, mm (PET scanners are 2-8 mm; 20 mm catches unit mistakes).
MAX_PSF_FWHM_MM = 20.0

#: The command-line option every PSF error message names.
PSF_OPTION = "--pvc-psf"

#: Gaussian kernels are cut at this many standard deviations (scipy's default).
DEFAULT_TRUNCATE = 4.0


def validate_psf(fwhm: float | str | Sequence[float | str] | NDArray[np.floating]) -> tuple[float, float, float]:
    """Check a PSF FWHM given as one value or three (x, y, z), in mm.

    Parameters
    ----------
    fwhm
        One number (isotropic PSF) or three numbers (FWHM along the image x, y and z axes), mm.
        Strings are accepted as the command line gives them (``"5"``, ``"5 5 6"``, ``"5,5,6"``).

    Returns
    -------
    tuple of float
        ``(fwhm_x_mm, fwhm_y_mm, fwhm_z_mm)``.

    Raises
    ------
    InputError
        Wrong number of values, a value that is not a finite number, or a FWHM <= 0 mm or
        > :data:`MAX_PSF_FWHM_MM` mm; the one-line message names ``--pvc-psf``.
    """
    if isinstance(fwhm, str):
        items: list[object] = fwhm.replace(",", " ").split()
    elif np.ndim(fwhm) == 0:
        items = [fwhm]
    else:
        items = list(np.asarray(fwhm, dtype=object).ravel())
    if len(items) not in (1, 3):
        raise InputError(f"{PSF_OPTION}: give one FWHM or three (x y z) in mm, got {len(items)} values")
    values: list[float] = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise InputError(f"{PSF_OPTION}: {item!r} is not a FWHM in mm")
        try:
            value = float(item)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(f"{PSF_OPTION}: {item!r} is not a number (FWHM in mm)") from None
        if not math.isfinite(value) or value <= 0.0 or value > MAX_PSF_FWHM_MM:
            raise InputError(
                f"{PSF_OPTION}: FWHM must be > 0 and <= {MAX_PSF_FWHM_MM:g} mm, got {item!r}"
            )
        values.append(value)
    if len(values) == 1:
        values *= 3
    return (values[0], values[1], values[2])


def _three_positive(values: ArrayLike, what: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 1:
        array = np.repeat(array, 3)
    if array.size != 3 or not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{what} must be one or three positive finite values, got {values!r}")
    return array


def fwhm_to_sigma_vox(fwhm_mm: ArrayLike, voxel_size_mm: ArrayLike) -> tuple[float, float, float]:
    """Standard deviation of the Gaussian PSF along x, y, z, in voxels.

    Parameters
    ----------
    fwhm_mm
        FWHM, mm: one value or three (x, y, z).
    voxel_size_mm
        Voxel size, mm: one value or three (x, y, z), e.g. from the image header zooms.

    Returns
    -------
    tuple of float
        ``sigma_vox = fwhm_mm / (2 sqrt(2 ln 2)) / voxel_size_mm`` per axis.
    """
    fwhm = _three_positive(fwhm_mm, "fwhm_mm")
    voxel = _three_positive(voxel_size_mm, "voxel_size_mm")
    sigma = fwhm / FWHM_PER_SIGMA / voxel
    return (float(sigma[0]), float(sigma[1]), float(sigma[2]))


def kernel_radius_vox(
    fwhm_mm: ArrayLike, voxel_size_mm: ArrayLike, truncate: float = DEFAULT_TRUNCATE
) -> tuple[int, int, int]:
    """Half-width of the truncated Gaussian kernel per axis, voxels (as scipy computes it)."""
    sigma = fwhm_to_sigma_vox(fwhm_mm, voxel_size_mm)
    radius = tuple(int(truncate * s + 0.5) for s in sigma)
    return (radius[0], radius[1], radius[2])


def gaussian_psf_blur(
    volume: NDArray[np.number],
    fwhm_mm: ArrayLike,
    voxel_size_mm: ArrayLike,
    *,
    truncate: float = DEFAULT_TRUNCATE,
    dtype: type[np.floating] | np.dtype | None = None,
) -> NDArray[np.floating]:
    """Convolve an image with the Gaussian PSF (zero outside the image).

    Parameters
    ----------
    volume
        3D image ``(x, y, z)``, or 4D series ``(x, y, z, frames)`` whose frames are blurred
        independently (no blurring along the last axis). Any unit (e.g. kBq/mL); linear.
    fwhm_mm
        PSF FWHM, mm: one value or three (x, y, z).
    voxel_size_mm
        Voxel size, mm: one value or three.
    truncate
        Kernel cut-off in standard deviations.
    dtype
        Floating type of the result; default: the input's if it is floating, else float64.
        float32 halves memory and time for large grids.

    Returns
    -------
    ndarray
        Blurred image, same shape, same unit.
    """
    volume = np.asarray(volume)
    if volume.ndim not in (3, 4):
        raise ValueError(f"volume must be 3D or 4D, got shape {volume.shape}")
    if dtype is None:
        dtype = volume.dtype if np.issubdtype(volume.dtype, np.floating) else np.float64
    sigma: tuple[float, ...] = fwhm_to_sigma_vox(fwhm_mm, voxel_size_mm)
    if volume.ndim == 4:
        sigma = (*sigma, 0.0)
    return ndimage.gaussian_filter(
        volume.astype(dtype, copy=False), sigma, mode="constant", cval=0.0, truncate=truncate, output=dtype
    )
