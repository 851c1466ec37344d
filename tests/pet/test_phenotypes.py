"""Known-truth tests of lesion cores/rims, per-lesion statistics, phenotypes and the patient marker.

Synthetic DVR maps (1 mm voxels): white matter DVR 1.20; spherical lesions of each phenotype
(methods.md section 6: inactive core 1.08 with NAWM rim; rim-active core 1.10 with a 2 mm rim of 1.45;
overall-active core 1.70 with rim 1.35) over a range of sizes, plus white noise of SD 0.05. The
"blurred" maps apply a 5 mm FWHM Gaussian PSF to the true map before adding the noise. The active
threshold is the 95th percentile of a control white-matter map made the same way.

These maps are uncorrected: at 5 mm FWHM a 2 mm rim of DVR 1.45 reads ~1.27, below the controls'
threshold, so rim-active lesions are missed whatever their size (asserted below). The acceptance at
5 mm PSF is met with the per-lesion partial-volume correction: tests/pvc/test_lesion_phenotype_cohort.py
and tests/e2e/test_pvc.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from tspo_bids.errors import InputError
from tspo_bids.pet.phenotypes import (
    PHENOTYPES,
    active_threshold,
    classify_lesions,
    lesion_core_and_rim,
    lesion_statistics,
    patient_marker,
)

VOXEL_MM = np.array([1.0, 1.0, 1.0])
WM_DVR = 1.20
NOISE_SD = 0.05
#: (core DVR, rim DVR) per simulated phenotype.
TRUTH = {"inactive": (1.08, WM_DVR), "rim-active": (1.10, 1.45), "overall-active": (1.70, 1.35)}
RADII_MM = (1.5, 2.5, 3.5, 5.0, 7.0)
SPACING_MM = 26.0


def lesion_map(rng: np.random.Generator, copies: int = 2):
    """Labels, true DVR map, phenotype and nominal volume of every lesion (one per size x phenotype x copy)."""
    specs = [(r, p) for r in RADII_MM for p in PHENOTYPES for _ in range(copies)]
    per_row = 6
    n_rows = math.ceil(len(specs) / per_row)
    shape = (int(per_row * SPACING_MM), int(n_rows * SPACING_MM), int(SPACING_MM))
    grid = np.indices(shape).transpose(1, 2, 3, 0) * VOXEL_MM
    labels = np.zeros(shape, np.int32)
    truth = np.full(shape, WM_DVR)
    phenotypes, volumes = [], []
    for index, (radius, phenotype) in enumerate(specs, start=1):
        centre = (np.array([(index - 1) % per_row, (index - 1) // per_row, 0]) + 0.5) * SPACING_MM
        centre += rng.uniform(-0.5, 0.5, 3)
        distance = np.linalg.norm(grid - centre, axis=-1)
        core_dvr, rim_dvr = TRUTH[phenotype]
        labels[distance <= radius] = index
        truth[distance <= radius] = core_dvr
        truth[(distance > radius) & (distance <= radius + 2.0)] = rim_dvr
        phenotypes.append(phenotype)
        volumes.append(4 / 3 * np.pi * radius**3)
    return labels, truth, phenotypes, np.array(volumes)


def observe(truth: np.ndarray, rng: np.random.Generator, fwhm_mm: float) -> np.ndarray:
    blurred = truth if fwhm_mm == 0 else ndimage.gaussian_filter(truth, fwhm_mm / 2.3548 / VOXEL_MM, mode="nearest")
    return blurred + rng.normal(0.0, NOISE_SD, truth.shape)


def control_threshold(rng: np.random.Generator, fwhm_mm: float) -> float:
    controls = [observe(np.full((40, 40, 30), WM_DVR), rng, fwhm_mm) for _ in range(3)]
    return active_threshold(controls)


def classify_map(fwhm_mm: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels, truth, expected, volumes = lesion_map(rng)
    threshold = control_threshold(rng, fwhm_mm)
    rows = lesion_statistics(labels, observe(truth, rng, fwhm_mm), VOXEL_MM, threshold=threshold)
    return classify_lesions(rows, threshold), expected, volumes, rows


def accuracy_by_size(found, expected, volumes) -> dict[float, float]:
    out = {}
    for radius in RADII_MM:
        volume = 4 / 3 * np.pi * radius**3
        pick = np.isclose(volumes, volume)
        out[round(volume)] = float(np.mean([f == e for f, e, p in zip(found, expected, pick) if p]))
    return out


# ----------------------------------------------------------------------------- classification
def test_phenotypes_are_recovered_without_blurring() -> None:
    """No PSF: every lesion of 14 mm^3 and above gets its simulated phenotype."""
    found, expected, volumes, _ = classify_map(fwhm_mm=0.0)
    print("no PSF, accuracy by volume (mm^3):", accuracy_by_size(found, expected, volumes))
    assert found == expected


def test_phenotypes_at_5mm_psf_by_size() -> None:
    """Uncorrected at 5 mm FWHM: large (>= 500 mm^3) overall-active and inactive lesions keep their
    phenotype, large rim-active lesions are missed (their blurred rim is not active), and the smallest
    lesions (14 mm^3) are confused: a blurred rim turns a small core active."""
    found, expected, volumes, _ = classify_map(fwhm_mm=5.0)
    print("5 mm PSF, accuracy by volume (mm^3):", accuracy_by_size(found, expected, volumes))
    for f, e, v in zip(found, expected, volumes):
        if v >= 500 and e != "rim-active":
            assert f == e
        if v >= 500 and e == "rim-active":
            assert f != e
    smallest = [f for f, e, v in zip(found, expected, volumes) if v < 20 and e == "rim-active"]
    assert all(f == "overall-active" for f in smallest)


def test_lesion_statistics_values_on_a_noise_free_map() -> None:
    rng = np.random.default_rng(1)
    labels, truth, expected, volumes = lesion_map(rng, copies=1)
    rows = lesion_statistics(labels, truth, VOXEL_MM, threshold=1.3)
    assert [row["lesion_id"] for row in rows] == list(range(1, len(expected) + 1))
    for row, phenotype, volume in zip(rows, expected, volumes):
        core_dvr, rim_dvr = TRUTH[phenotype]
        assert row["core_mean_dvr"] == pytest.approx(core_dvr) and row["core_median_dvr"] == pytest.approx(core_dvr)
        # the 2 mm rim measured from the voxel lesion is inside the simulated 2 mm shell
        assert row["rim_mean_dvr"] == pytest.approx(rim_dvr)
        assert row["core_active_fraction"] == (1.0 if core_dvr > 1.3 else 0.0)
        assert row["volume_mm3"] == pytest.approx(volume, rel=0.35 if volume < 20 else 0.12)
        assert row["active_threshold"] == 1.3
    assert classify_lesions(rows, 1.3) == expected


# ----------------------------------------------------------------------------- core and rim
def test_rim_is_the_2mm_shell_outside_each_lesion_and_nearest_lesion_wins() -> None:
    shape = (30, 20, 20)
    labels = np.zeros(shape, np.int32)
    labels[5:8, 8:11, 8:11] = 1
    labels[12:15, 8:11, 8:11] = 2  # 4 voxels (4 mm) apart along x
    voxel_mm = (1.0, 1.5, 2.0)
    regions = lesion_core_and_rim(labels, voxel_mm, rim_mm=2.0)
    np.testing.assert_array_equal(regions.core_labels, labels)
    points = np.indices(shape).transpose(1, 2, 3, 0) * np.array(voxel_mm)
    for lesion_id in (1, 2):
        own = points[labels == lesion_id]
        other = points[(labels > 0) & (labels != lesion_id)]
        d_own = np.sqrt(((points[..., None, :] - own) ** 2).sum(-1)).min(-1)
        d_other = np.sqrt(((points[..., None, :] - other) ** 2).sum(-1)).min(-1)
        expected = (labels == 0) & (d_own <= 2.0) & (d_own < d_other)
        assert np.all(regions.rim(lesion_id)[expected])
        assert not np.any(regions.rim(lesion_id) & (labels > 0))
        assert not np.any(regions.rim(lesion_id) & (d_own > 2.0))
    # between the lesions (x = 8..11) rim voxels go to the nearer lesion; x = 10 is 2 from lesion 2
    assert regions.rim_labels[9, 9, 9] == 1 and regions.rim_labels[11, 9, 9] == 2
    # a WM mask restricts the rims
    wm = np.zeros(shape, bool)
    wm[:, :, 9:] = True
    restricted = lesion_core_and_rim(labels, voxel_mm, wm_mask=wm)
    assert np.all(wm[restricted.rim_labels > 0]) and (restricted.rim_labels > 0).sum() > 0


# ----------------------------------------------------------------------------- thresholds and marker
def test_active_threshold_is_the_control_percentile() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(1.2, 0.05, 200_000)
    assert active_threshold(values) == pytest.approx(1.2 + 1.6449 * 0.05, abs=0.002)
    assert active_threshold([values[:1000], values[1000:2000]], percentile=50) == pytest.approx(
        np.median(values[:2000]))
    with pytest.raises(InputError, match="no healthy-control"):
        active_threshold([np.array([np.nan])])
    with pytest.raises(InputError, match="percentile"):
        active_threshold(values, percentile=100)


def test_classify_rules_and_threshold_consistency() -> None:
    def row(core, rim, threshold=1.3):
        return {"lesion_id": 1, "core_active_fraction": core, "rim_active_fraction": rim,
                "active_threshold": threshold}
    rows = [row(0.6, 0.0), row(0.6, 0.9), row(0.2, 0.9), row(0.2, 0.5), row(0.0, math.nan)]
    assert classify_lesions(rows, 1.3) == ["overall-active", "overall-active", "rim-active", "inactive", "inactive"]
    assert classify_lesions([row(0.2, 0.45)], 1.3, active_fraction_cutoff=0.4) == ["rim-active"]
    with pytest.raises(InputError, match="recompute"):
        classify_lesions([row(0.2, 0.9, threshold=1.25)], 1.3)
    with pytest.raises(InputError, match="recompute"):
        classify_lesions([row(0.2, 0.9, threshold=math.nan)], 1.3)


def test_patient_marker() -> None:
    marker = patient_marker(["rim-active", "overall-active", "inactive", "inactive"])
    assert (marker.rim_active_proportion, marker.inactive_proportion) == (0.25, 0.5)
    assert marker.marker  # > 10 % rim-active and <= 50 % inactive
    assert not patient_marker(["rim-active", "inactive", "inactive"]).marker  # 67 % inactive
    ten_percent = ["rim-active"] + ["overall-active"] * 9
    assert not patient_marker(ten_percent).marker  # exactly 10 % is not > 10 %
    assert patient_marker(ten_percent, rim_fraction=0.05).marker
    empty = patient_marker([])
    assert empty.n_lesions == 0 and not empty.marker and math.isnan(empty.rim_active_proportion)
    with pytest.raises(InputError, match="unknown lesion phenotype"):
        patient_marker(["smouldering"])


def test_statistics_input_errors_and_empty_labels() -> None:
    with pytest.raises(InputError, match="DVR map has shape"):
        lesion_statistics(np.zeros((4, 4, 4), int), np.zeros((4, 4, 5)), 1.0)
    with pytest.raises(InputError, match="rim thickness"):
        lesion_core_and_rim(np.zeros((4, 4, 4), int), 1.0, rim_mm=0.0)
    assert lesion_statistics(np.zeros((4, 4, 4), int), np.ones((4, 4, 4)), 1.0) == []
