"""Lesion phenotypes at 5 mm PSF on a simulated cohort (tests/pvc/lesion_cohort.py), with and without
the per-lesion partial-volume correction.

Acceptance (issue 4): >= 90 % of lesions >= 500 mm^3 classified as simulated. Asserted against the
simulated labels; the definition applied to the true DVR image (no PSF, no noise) with the same control
threshold is printed beside it, and the phantom is checked to agree with its own labels there.

Cohort: 8 controls (the active-voxel threshold) and 6 patients with three lesions >= 500 mm^3 each (sizes in a
random order per patient, so every phenotype meets every size). The
phantom's WM BPND varies between participants (0.15-0.25, patients' NAWM +3-10 %, methods.md section 6):
with only 3 controls the 95th percentile fell below some patients' whole NAWM, so the definition called
every lesion of those patients rim-active, whatever its rim; 8 controls sample that spread. (Real studies
have 10-20 controls.) The perilesional gradient lies outside the 2 mm rims (tspo_bids.simulate.phenotypes).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

import lesion_cohort as cohort
from tspo_bids.pet.phenotypes import active_threshold, classify_lesions, lesion_statistics

N_CONTROLS = 8
N_PATIENTS = 6
LARGE_MM3 = 500.0
ACCEPTANCE = 0.90
SIZE_BINS_MM3 = (27, 100, 500, np.inf)


def _threshold(controls, correct: bool) -> float:
    values = []
    for control in controls:
        dvr = cohort.dvr_map(control, correct)
        values.append(dvr[ndimage.binary_erosion(control.brain)])  # NAWM-like: WM eroded one voxel
    return active_threshold(values)


@functools.lru_cache(maxsize=1)
def control_thresholds() -> dict[bool, float]:
    """Active-voxel threshold from the controls' uncorrected (False) and corrected (True) maps."""
    rng = np.random.default_rng(2024)
    controls = [cohort.simulate_participant(rng, patient=False) for _ in range(N_CONTROLS)]
    return {correct: _threshold(controls, correct) for correct in (False, True)}


@functools.lru_cache(maxsize=3)
def classified_cohort(gradient_in_rims: bool = False, true_image_only: bool = False) -> pd.DataFrame:
    """One row per patient lesion: volume, simulated phenotype, and the class from the true image,
    the uncorrected 5 mm PET and the RBV-corrected 5 mm PET (``true_image_only``: the first only).

    ``gradient_in_rims``: the phantom variant with the perilesional increase inside the rims of
    inactive and overall-active lesions (:func:`lesion_cohort.simulate_participant`).
    """
    thresholds = control_thresholds()
    rows = []
    for index in range(N_PATIENTS):
        seed = 100 + index
        true = cohort.simulate_participant(np.random.default_rng(seed), patient=True, psf_fwhm_mm=0.0, noise=False,
                                           gradient_in_rims=gradient_in_rims)
        observed = true if true_image_only else cohort.simulate_participant(
            np.random.default_rng(seed), patient=True, gradient_in_rims=gradient_in_rims)
        assert true.phenotypes == observed.phenotypes
        classes = {}
        # (name, participant, correct the PET?, threshold from corrected or uncorrected controls): the true
        # image needs no correction and is judged with the threshold the corrected analysis uses
        analyses = (("true_image", true, False, True), ("uncorrected", observed, False, False),
                    ("corrected", observed, True, True))
        for name, participant, correct, corrected_threshold in analyses[:1] if true_image_only else analyses:
            threshold = thresholds[corrected_threshold]
            stats = lesion_statistics(participant.lesion_labels, cohort.dvr_map(participant, correct),
                                      (cohort.VOXEL_MM,) * 3, wm_mask=participant.brain, threshold=threshold)
            classes[name] = classify_lesions(stats, threshold)
        for lesion, (volume, simulated) in enumerate(zip(observed.volumes_mm3, observed.phenotypes)):
            rows.append({"patient": index, "volume_mm3": volume, "simulated": simulated,
                         **{name: found[lesion] for name, found in classes.items()}})
    table = pd.DataFrame(rows)
    table["size"] = pd.cut(table["volume_mm3"], SIZE_BINS_MM3, right=False)
    return table


def _agreement(table: pd.DataFrame, column: str, reference: str) -> pd.Series:
    return (table[column] == table[reference]).groupby(table["size"], observed=True).mean()


def test_corrected_phenotypes_of_large_lesions_match_the_simulated_phenotypes() -> None:
    """The acceptance bound, against the simulated labels (figures by size printed: ``pytest -s``)."""
    table = classified_cohort()
    print(table.to_string(index=False))
    for column in ("uncorrected", "corrected"):
        print(f"\n{column} vs true image, by size (mm^3):\n{_agreement(table, column, 'true_image').round(2)}")
        print(f"{column} vs simulated label, by size (mm^3):\n{_agreement(table, column, 'simulated').round(2)}")
    print("\ntrue image vs simulated label (phantom ambiguity):\n"
          f"{_agreement(table, 'true_image', 'simulated').round(2)}")
    large = table[table["volume_mm3"] >= LARGE_MM3]
    assert len(large) >= 15
    assert (large["corrected"] == large["simulated"]).mean() >= ACCEPTANCE
    assert (large["corrected"] == large["true_image"]).mean() >= ACCEPTANCE


def test_phantom_phenotypes_follow_the_definition_on_the_true_image() -> None:
    """The labels mean what the definition measures: on the true image (no PSF, no noise) every lesion of
    at least 100 mm^3 gets its simulated phenotype."""
    table = classified_cohort()
    sizable = table[table["volume_mm3"] >= 100.0]
    assert (sizable["true_image"] == sizable["simulated"]).all(), sizable.to_string()


def test_large_rim_active_lesions_need_the_correction() -> None:
    """Without correction a 2 mm rim is measured at a fraction of its contrast: the correction finds large
    rim-active lesions that the uncorrected maps miss (counts printed; the 90 % bound is the aggregate one,
    asserted above: on this cohort 5 of the 6 large rim-active lesions are found corrected, 3 uncorrected)."""
    table = classified_cohort()
    rim = table[(table["volume_mm3"] >= LARGE_MM3) & (table["simulated"] == "rim-active")]
    found = {column: int((rim[column] == "rim-active").sum()) for column in ("uncorrected", "corrected")}
    print(f"large rim-active lesions found: {found} of {len(rim)}")
    assert len(rim) >= 5
    assert found["corrected"] > found["uncorrected"]


@pytest.mark.parametrize("phenotype", ["overall-active", "inactive"])
def test_large_lesions_without_rim_keep_their_simulated_phenotype_when_corrected(phenotype: str) -> None:
    table = classified_cohort()
    large = table[(table["volume_mm3"] >= LARGE_MM3) & (table["simulated"] == phenotype)]
    assert len(large) >= 5
    assert (large["corrected"] == phenotype).mean() >= ACCEPTANCE


def test_a_gradient_inside_the_rims_contradicts_the_labels() -> None:
    """Why the phantom keeps its perilesional increase out of the rims: with the increase inside the rim of
    a lesion simulated "inactive", the definition applied to the true image calls some of them rim-active.
    (How the corrected 5 mm PET fares on that variant: benchmarks/phenotype_cohort.py.)"""
    table = classified_cohort(gradient_in_rims=True, true_image_only=True)
    large_inactive = table[(table["volume_mm3"] >= LARGE_MM3) & (table["simulated"] == "inactive")]
    print(large_inactive.to_string(index=False))
    assert (large_inactive["true_image"] == "rim-active").any()
