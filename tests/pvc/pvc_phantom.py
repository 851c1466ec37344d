"""A small piecewise-constant head phantom with known regional TACs (48^3 voxels of 2 mm).

Shared by the tests of tspo_bids.pvc (uniquely named so it cannot clash with other test folders)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tspo_bids.pvc import gaussian_psf_blur, partition_regions, synthetic_image

VOXEL_MM = 2.0
PSF_FWHM_MM = 5.0
REGION_NAMES = ("thalamus", "csf", "cortex", "wm", "remaining")

#: True activity per region (rows, REGION_NAMES order) and frame (columns), kBq/mL.
TRUE_VALUES = np.array(
    [
        [1.0, 3.0, 5.0, 4.0, 3.2],  # thalamus-like blob, 6 mm radius
        [0.2, 0.3, 0.4, 0.3, 0.25],  # CSF: ventricle + outer shell
        [2.0, 4.0, 3.0, 2.5, 2.1],  # cortex-like shell, 4 mm thick
        [1.0, 1.8, 2.0, 1.6, 1.4],  # WM core
        [0.5, 0.8, 0.7, 0.6, 0.55],  # remaining tissue of the head (scalp, skull, ...)
    ]
)


@dataclass(frozen=True)
class Phantom:
    """Region masks, partition labels and the true piecewise-constant series."""

    masks: dict[str, np.ndarray]
    labels: np.ndarray  # 1..5 in REGION_NAMES order
    truth: np.ndarray  # (n_regions, n_frames)
    true_series: np.ndarray  # (x, y, z, frames), piecewise constant
    blurred_series: np.ndarray  # true series blurred with the PSF (float64)
    coordinates_mm: tuple[np.ndarray, np.ndarray, np.ndarray]


def make_phantom(n_voxels: int = 48, voxel_mm: float = VOXEL_MM, fwhm_mm: float = PSF_FWHM_MM) -> Phantom:
    centres = (np.arange(n_voxels) + 0.5) * voxel_mm - n_voxels * voxel_mm / 2
    x, y, z = np.meshgrid(centres, centres, centres, indexing="ij")
    radius = np.sqrt(x**2 + (y / 1.15) ** 2 + (z / 0.9) ** 2)  # ellipsoidal "head", mm
    head = radius < 42.0
    brain = radius < 36.0
    ventricle = (x / 10.0) ** 2 + ((y - 4.0) / 14.0) ** 2 + ((z - 4.0) / 6.0) ** 2 < 1.0
    masks = {
        "thalamus": (x - 10.0) ** 2 + (y + 6.0) ** 2 + (z + 4.0) ** 2 < 6.0**2,
        "csf": ventricle | (brain & (radius >= 34.0)),
        "cortex": (radius >= 30.0) & (radius < 34.0),
        "wm": radius < 30.0,
        "remaining": head,
    }
    labels = partition_regions([masks[name] for name in REGION_NAMES])
    true_series = synthetic_image(labels, TRUE_VALUES)
    blurred = gaussian_psf_blur(true_series, fwhm_mm, voxel_mm)
    return Phantom(masks, labels, TRUE_VALUES.copy(), true_series, blurred, (x, y, z))
