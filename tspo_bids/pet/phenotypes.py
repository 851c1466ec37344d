"""Lesion phenotypes from TSPO binding: rim-active, overall-active and inactive lesions.

Polvinen et al. 2023 Neurol Neuroimmunol Neuroinflamm; methods.md section 4. Per lesion, the *core* is
the lesion's voxels and the *rim* the voxels within 2 mm outside it (Euclidean, mm, not in any lesion;
optionally white matter only; a rim voxel between two lesions belongs to the nearer one). A voxel is
*active* when its DVR exceeds a threshold set from healthy controls' white-matter voxel DVRs (default
95th percentile). A region is active when its active-voxel fraction exceeds a cut-off (default 0.5):

- overall-active: the core is active (whatever the rim);
- rim-active: the core is not active and the rim is;
- inactive: neither.

Patient marker: more than 10 % rim-active lesions and at most 50 % inactive lesions.

Resolution limit: at PET resolution (4-6 mm FWHM) a 2 mm rim and a small core mix; the tests measure
where classification fails. No file I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from tspo_bids.anat.lesions import check_voxel_size
from tspo_bids.errors import InputError

__all__ = [
    "PHENOTYPES",
    "RIM_WIDTH_MM",
    "CoreRim",
    "PatientMarker",
    "lesion_core_and_rim",
    "lesion_statistics",
    "active_threshold",
    "classify_lesions",
    "patient_marker",
]

#: Rim width: the shell outside each lesion that forms its rim, mm (Polvinen et al. 2023).
RIM_WIDTH_MM = 2.0

#: Phenotype names.
PHENOTYPES: tuple[str, ...] = ("rim-active", "overall-active", "inactive")


@dataclass(frozen=True)
class CoreRim:
    """Lesion cores and rims as label images (0 = none, ``i`` = lesion ``i``)."""

    core_labels: NDArray[np.int32]
    rim_labels: NDArray[np.int32]

    @property
    def lesion_ids(self) -> NDArray[np.int32]:
        """Lesion numbers present in the core labels, increasing."""
        ids = np.unique(self.core_labels)
        return ids[ids > 0].astype(np.int32)

    def core(self, lesion_id: int) -> NDArray[np.bool_]:
        """Boolean core mask of one lesion."""
        return self.core_labels == lesion_id

    def rim(self, lesion_id: int) -> NDArray[np.bool_]:
        """Boolean rim mask of one lesion."""
        return self.rim_labels == lesion_id


def lesion_core_and_rim(
    labels: ArrayLike,
    voxel_size_mm: ArrayLike | float,
    rim_mm: float = RIM_WIDTH_MM,
    wm_mask: ArrayLike | None = None,
) -> CoreRim:
    """Core and rim of every lesion.

    Parameters
    ----------
    labels
        Lesion labels (0 = background, 1..n), shape (X, Y, Z).
    voxel_size_mm
        Voxel size along each axis, mm.
    rim_mm
        Rim thickness: voxels with ``0 < distance <= rim_mm`` from the lesion (centre to centre), mm
        (default 2).
    wm_mask
        When given, rims are restricted to it (non-zero = white matter).

    Returns
    -------
    CoreRim
        ``core_labels`` equals ``labels``; ``rim_labels`` assigns each rim voxel to its nearest lesion.
    """
    core = np.asarray(labels)
    if not np.issubdtype(core.dtype, np.integer):
        if not np.all(np.mod(core, 1) == 0):
            raise InputError("lesion labels must be integers (0 = background)")
    core = core.astype(np.int32)
    sizes = check_voxel_size(voxel_size_mm, core.ndim)
    if not (math.isfinite(rim_mm) and rim_mm > 0):
        raise InputError(f"rim thickness must be a positive number of mm, got {rim_mm!r}")
    if np.any(core < 0):
        raise InputError("lesion labels must be >= 0")
    rim = np.zeros(core.shape, dtype=np.int32)
    lesion = core > 0
    if lesion.any():
        distance, nearest = ndimage.distance_transform_edt(~lesion, sampling=sizes, return_indices=True)
        in_rim = (distance > 0) & (distance <= rim_mm)
        if wm_mask is not None:
            wm = np.asarray(wm_mask) != 0
            if wm.shape != core.shape:
                raise InputError(f"WM mask has shape {wm.shape} but the lesion labels have {core.shape}")
            in_rim &= wm
        owner = core[tuple(nearest)]
        rim[in_rim] = owner[in_rim]
    return CoreRim(core_labels=core, rim_labels=rim)


def _summary(values: NDArray[np.float64], threshold: float | None) -> tuple[float, float, float, float]:
    """(mean, median, active fraction, n) of finite values; NaN when there is none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan, math.nan, 0.0
    active = math.nan if threshold is None else float(np.mean(finite > threshold))
    return float(finite.mean()), float(np.median(finite)), active, float(finite.size)


def lesion_statistics(
    labels: ArrayLike,
    dvr_map: ArrayLike,
    voxel_size_mm: ArrayLike | float,
    *,
    rim_mm: float = RIM_WIDTH_MM,
    wm_mask: ArrayLike | None = None,
    threshold: float | None = None,
) -> list[dict[str, float]]:
    """Per-lesion volume and DVR statistics of core and rim (one table row per lesion).

    Parameters
    ----------
    labels
        Lesion labels (0 = background), shape (X, Y, Z).
    dvr_map
        DVR (unitless) on the same grid; non-finite voxels are ignored.
    voxel_size_mm
        Voxel size along each axis, mm.
    rim_mm, wm_mask
        See :func:`lesion_core_and_rim`.
    threshold
        Active-voxel DVR threshold (from :func:`active_threshold`); ``None`` leaves the active
        fractions NaN (the participant level does not know the threshold yet).

    Returns
    -------
    list of dict
        Keys ``lesion_id``, ``volume_mm3``, ``core_mean_dvr``, ``core_median_dvr``, ``rim_volume_mm3``,
        ``rim_mean_dvr``, ``rim_median_dvr``, ``core_active_fraction``, ``rim_active_fraction``,
        ``active_threshold`` (NaN when none). Statistics of an empty region are NaN.
    """
    dvr = np.asarray(dvr_map, dtype=float)
    regions = lesion_core_and_rim(labels, voxel_size_mm, rim_mm=rim_mm, wm_mask=wm_mask)
    if dvr.shape != regions.core_labels.shape:
        raise InputError(f"DVR map has shape {dvr.shape} but the lesion labels have {regions.core_labels.shape}")
    if threshold is not None and not math.isfinite(threshold):
        raise InputError(f"active threshold must be a finite DVR, got {threshold!r}")
    voxel_volume = float(np.prod(check_voxel_size(voxel_size_mm, dvr.ndim)))
    rows = []
    core_flat, rim_flat, dvr_flat = regions.core_labels.ravel(), regions.rim_labels.ravel(), dvr.ravel()
    core_order = np.argsort(core_flat, kind="stable")
    rim_order = np.argsort(rim_flat, kind="stable")
    for lesion_id in regions.lesion_ids:
        core_values = dvr_flat[_members(core_flat, core_order, lesion_id)]
        rim_values = dvr_flat[_members(rim_flat, rim_order, lesion_id)]
        core_mean, core_median, core_active, _ = _summary(core_values, threshold)
        rim_mean, rim_median, rim_active, _ = _summary(rim_values, threshold)
        rows.append({
            "lesion_id": int(lesion_id),
            "volume_mm3": core_values.size * voxel_volume,
            "core_mean_dvr": core_mean,
            "core_median_dvr": core_median,
            "rim_volume_mm3": rim_values.size * voxel_volume,
            "rim_mean_dvr": rim_mean,
            "rim_median_dvr": rim_median,
            "core_active_fraction": core_active,
            "rim_active_fraction": rim_active,
            "active_threshold": math.nan if threshold is None else float(threshold),
        })
    return rows


def _members(flat_labels: NDArray, order: NDArray, label: int) -> NDArray[np.intp]:
    """Indices of ``flat_labels == label`` using a precomputed stable argsort (one pass for all lesions)."""
    sorted_labels = flat_labels[order]
    start = np.searchsorted(sorted_labels, label, side="left")
    stop = np.searchsorted(sorted_labels, label, side="right")
    return order[start:stop]


def active_threshold(control_wm_dvr_values: ArrayLike | Iterable[ArrayLike], percentile: float = 95.0) -> float:
    """Active-voxel DVR threshold: a percentile of healthy controls' white-matter voxel DVRs.

    Parameters
    ----------
    control_wm_dvr_values
        One array of voxel DVRs, or one array per control (pooled); non-finite values are ignored.
    percentile
        Percentile in (0, 100) (default 95).

    Raises
    ------
    InputError
        No finite control value, or a bad percentile.
    """
    if not 0 < percentile < 100:
        raise InputError(f"active-voxel percentile must lie in (0, 100), got {percentile!r}")
    if isinstance(control_wm_dvr_values, np.ndarray):
        pooled = control_wm_dvr_values.astype(float).ravel()
    else:
        parts = [np.asarray(part, dtype=float).ravel() for part in control_wm_dvr_values]
        pooled = np.concatenate(parts) if parts else np.zeros(0)
    pooled = pooled[np.isfinite(pooled)]
    if pooled.size == 0:
        raise InputError(
            "active-voxel threshold: no healthy-control white-matter DVR values; mark controls in "
            "participants.tsv (group column) or give the threshold explicitly"
        )
    return float(np.percentile(pooled, percentile))


def classify_lesions(
    rows: Sequence[Mapping[str, float]],
    threshold: float,
    active_fraction_cutoff: float = 0.5,
) -> list[str]:
    """Phenotype of every lesion row from :func:`lesion_statistics`.

    Parameters
    ----------
    rows
        Rows computed with ``threshold`` (their ``active_threshold`` must equal it, so fractions from
        another threshold are never mixed in).
    threshold
        The active-voxel DVR threshold.
    active_fraction_cutoff
        A core or rim is active when its active-voxel fraction exceeds this (default 0.5). An empty
        rim (NaN fraction) is not active.

    Returns
    -------
    list of str
        One of :data:`PHENOTYPES` per row.
    """
    if not 0 <= active_fraction_cutoff < 1:
        raise InputError(f"active-fraction cut-off must lie in [0, 1), got {active_fraction_cutoff!r}")
    phenotypes = []
    for row in rows:
        used = float(row.get("active_threshold", math.nan))
        if not (math.isfinite(used) and math.isclose(used, threshold, rel_tol=1e-9, abs_tol=1e-12)):
            raise InputError(
                f"lesion {row.get('lesion_id')}: statistics were computed with active threshold {used}, not "
                f"{threshold}; recompute them with lesion_statistics(..., threshold={threshold})"
            )
        core_active = float(row["core_active_fraction"]) > active_fraction_cutoff  # NaN -> False
        rim_active = float(row["rim_active_fraction"]) > active_fraction_cutoff
        if core_active:
            phenotypes.append("overall-active")
        elif rim_active:
            phenotypes.append("rim-active")
        else:
            phenotypes.append("inactive")
    return phenotypes


@dataclass(frozen=True)
class PatientMarker:
    """Patient-level lesion phenotype summary (proportions NaN and marker False without lesions)."""

    n_lesions: int
    rim_active_proportion: float
    overall_active_proportion: float
    inactive_proportion: float
    marker: bool


def patient_marker(
    phenotypes: Sequence[str], rim_fraction: float = 0.10, inactive_fraction: float = 0.50
) -> PatientMarker:
    """Proportions of each phenotype and the Polvinen 2023 progression marker.

    Parameters
    ----------
    phenotypes
        One :data:`PHENOTYPES` entry per lesion of the patient.
    rim_fraction
        Marker needs a rim-active proportion strictly above this (default 0.10) ...
    inactive_fraction
        ... and an inactive proportion at or below this (default 0.50).
    """
    unknown = sorted(set(phenotypes) - set(PHENOTYPES))
    if unknown:
        raise InputError(f"unknown lesion phenotype(s) {unknown}; expected one of {list(PHENOTYPES)}")
    n = len(phenotypes)
    if n == 0:
        return PatientMarker(0, math.nan, math.nan, math.nan, False)
    proportion = {name: sum(p == name for p in phenotypes) / n for name in PHENOTYPES}
    marker = proportion["rim-active"] > rim_fraction and proportion["inactive"] <= inactive_fraction
    return PatientMarker(
        n_lesions=n,
        rim_active_proportion=proportion["rim-active"],
        overall_active_proportion=proportion["overall-active"],
        inactive_proportion=proportion["inactive"],
        marker=bool(marker),
    )
