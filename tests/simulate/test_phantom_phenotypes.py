"""Lesion phenotypes, rims, perilesional gradient and the true DVR image (noise-free, PSF-free phantom)."""

from __future__ import annotations

import numpy as np
import pytest

from tspo_bids.anat.ms_regions import lesion_distance_mm
from tspo_bids.anat.template import load_template
from tspo_bids.kinetics.simulation import SrtmParams
from tspo_bids.pet.phenotypes import PHENOTYPES, lesion_core_and_rim
from tspo_bids.simulate import PhantomOptions, simulate_session
from tspo_bids.simulate.anatomy import lesion_volumes, random_deformation
from tspo_bids.simulate.dataset import frame_schedule
from tspo_bids.simulate.phenotypes import (
    LARGE_LESION_MM3,
    PHENOTYPE_BPND,
    draw_phenotypes,
    perilesion_weight,
    rim_wm_mask,
    true_dvr,
)
from tspo_bids.simulate.protocols import PERILESION_INCREASE, draw_kinetics, get_protocol

PK = get_protocol("pk11195")


def _session(seed: int):
    template = load_template(2)
    rng = np.random.default_rng(seed)
    deformation = random_deformation(rng, template)
    kinetics = draw_kinetics(rng, PK, "SPMS", "HAB")
    volumes = lesion_volumes(rng, 3, 6)
    timing = frame_schedule(PK, "injection")[1]
    # 1.8 mm T1w: the 2 mm rim holds voxels; PSF 0 and no noise
    options = PhantomOptions(template_resolution_mm=2, t1w_voxel_mm=(1.8,), pet_voxel_mm=(4.0,), psf_fwhm_mm=0.0,
                             voxel_cov=(0.0, 0.0), with_flair=False)
    return simulate_session(template, deformation, kinetics, PK, timing, np.random.default_rng(seed + 1),
                            np.random.default_rng(seed + 2), options=options, lesion_volumes_mm3=volumes)


@pytest.fixture(scope="module")
def phantom():
    return _session(5)


def _pure_normal_wm(phantom) -> np.ndarray:
    """T1w voxels whose tissue is only non-lesional cerebral WM (no GM, no lesion tissue)."""
    tissues = phantom.t1w.tissues
    return (tissues.wm > 0) & (tissues.gm == 0) & (tissues.lesion == 0) & phantom.regions["wm"]


def test_draw_phenotypes_ranges_and_mix():
    kinetics = draw_kinetics(np.random.default_rng(0), PK, "RRMS", "HAB")
    volumes = [1500.0, 900.0, 600.0, 300.0, 200.0, 100.0, 60.0, 40.0]
    phenotypes = draw_phenotypes(np.random.default_rng(1), volumes, kinetics)
    large = [p.name for v, p in zip(volumes, phenotypes) if v >= LARGE_LESION_MM3]
    small = [p.name for v, p in zip(volumes, phenotypes) if v < LARGE_LESION_MM3]
    assert sorted(large) == sorted(PHENOTYPES)  # three large lesions: one of each phenotype
    assert set(small) == set(PHENOTYPES)
    k2_ref = kinetics.reference_efflux_per_min
    wm = kinetics.tissues["wm"]
    for p in phenotypes:
        core_range, rim_range = PHENOTYPE_BPND[p.name]
        assert core_range[0] <= p.core.bp_nd <= core_range[1]
        assert np.isclose(p.core.k2, p.core.r1 * k2_ref)
        if p.name == "rim-active":
            assert 0.3 <= p.rim.bp_nd <= 0.5 and p.core.bp_nd <= 0.15
            assert (p.rim.r1, p.rim.k2) == (wm.r1, wm.k2)
        else:
            assert p.rim is None
        if p.name == "overall-active":
            assert 0.5 <= p.core.bp_nd <= 1.0
        if p.name == "inactive":
            assert 0.0 <= p.core.bp_nd <= 0.15


def test_true_dvr_closed_form():
    fractions = {"a": np.array([1.0, 0.5, 0.25, 0.0]), "b": np.array([0.0, 0.5, 0.25, 0.0])}
    dvr = true_dvr(fractions, {"a": 1.2, "b": 1.8})
    np.testing.assert_allclose(dvr[:3], [1.2, 1.5, 1.5], rtol=1e-6)  # CSF (the missing half) does not dilute
    assert np.isnan(dvr[3])


def test_noise_free_psf_free_options(phantom):
    assert phantom.pet.noise_scale == 0.0
    np.testing.assert_array_equal(phantom.pet.noisy, phantom.pet.clean)
    assert phantom.details["psf_fwhm_mm"] == 0.0


def test_every_phenotype_among_large_and_small_lesions(phantom):
    names = [p.name for p in phantom.phenotypes]
    volumes = [lesion.volume_mm3 for lesion in phantom.lesions]
    assert {n for n, v in zip(names, volumes) if v >= 500} == set(PHENOTYPES)
    assert {n for n, v in zip(names, volumes) if v < 500} == set(PHENOTYPES)
    voxel_mm3 = float(np.prod(phantom.t1w.grid.voxel_size_mm))
    labels = phantom.t1w.tissues.lesion_index_map()
    measured = np.array([(labels == i).sum() * voxel_mm3 for i in range(1, len(names) + 1)])
    assert np.all(measured >= 27.0) and measured.min() < 500


def test_rims_are_the_pipeline_rims(phantom):
    tissues = phantom.t1w.tissues
    atlas = tissues.atlas_groups()
    wm = rim_wm_mask(tissues.wm, ~(atlas.cerebellum | atlas.vermis | atlas.thalamus | atlas.deepgm))
    expected = lesion_core_and_rim(tissues.lesion_index_map(), phantom.t1w.grid.voxel_size_mm, rim_mm=2.0,
                                   wm_mask=wm).rim_labels
    np.testing.assert_array_equal(phantom.rim_labels, expected)
    for index in range(1, len(phantom.lesions) + 1):
        assert (phantom.rim_labels == index).sum() > 0


def test_rims_and_cores_have_the_requested_binding_in_the_truth_image(phantom):
    dvr = phantom.truth_dvr
    tissues = phantom.t1w.tissues
    pure_wm = _pure_normal_wm(phantom)
    labels = tissues.lesion_index_map()
    wm_dvr = 1.0 + phantom.kinetics.tissues["wm"].bp_nd
    peri_dvr = 1.0 + phantom.kinetics.tissues["perilesion"].bp_nd
    for index, phenotype in enumerate(phantom.phenotypes, start=1):
        rim = (phantom.rim_labels == index) & pure_wm
        assert rim.sum() >= 3, index
        if phenotype.name == "rim-active":
            # rim voxels of pure normal WM hold exactly the rim tissue DVR (1.3-1.5)
            np.testing.assert_allclose(dvr[rim], 1.0 + phenotype.rim.bp_nd, atol=2e-6)
            assert np.all((dvr[rim] >= 1.3) & (dvr[rim] <= 1.5))
        else:
            # no rim binding: the rim is normal-appearing WM (the perilesional gradient starts outside it)
            np.testing.assert_allclose(dvr[rim], wm_dvr, atol=2e-6)
            assert wm_dvr < peri_dvr
            assert np.all(dvr[rim] < 1.3)
        core = (labels == index) & (tissues.lesion == 1.0) & (tissues.gm == 0)
        if core.any():
            np.testing.assert_allclose(dvr[core], 1.0 + phenotype.core.bp_nd, atol=2e-6)


def test_perilesional_gradient_is_monotone(phantom):
    tissues = phantom.t1w.tissues
    voxel = phantom.t1w.grid.voxel_size_mm
    distance = lesion_distance_mm(tissues.lesion_index_map() > 0, voxel)
    pure = _pure_normal_wm(phantom) & (phantom.rim_labels == 0) & (distance > 0)  # outside every 2 mm rim
    wm_dvr = 1.0 + phantom.kinetics.tissues["wm"].bp_nd
    increase = phantom.kinetics.tissues["perilesion"].bp_nd - phantom.kinetics.tissues["wm"].bp_nd
    assert PERILESION_INCREASE[0] <= increase <= PERILESION_INCREASE[1]
    # exact profile: DVR_wm + increase * max(0, 1 - d / 6 mm)
    expected = wm_dvr + increase * perilesion_weight(distance[pure])
    np.testing.assert_allclose(phantom.truth_dvr[pure], expected, atol=2e-6)
    # (voxels closer than ~1.5 mm to a lesion always hold some lesion tissue at 1.8 mm voxels)
    edges = np.arange(1.5, 10.0, 1.5)
    means = [phantom.truth_dvr[pure & (distance > a) & (distance <= b)].mean() for a, b in zip(edges, edges[1:])]
    assert np.all(np.diff(means[:3]) < -0.005), means  # strictly decreasing up to 6 mm
    np.testing.assert_allclose(means[3:], wm_dvr, atol=1e-6)  # flat beyond
    # the perfect pipeline (PSF-free) sees the gradient too
    perfect = {row["region"]: row["BPND"] for row in phantom.perfect_rows}
    assert perfect["perilesion03"] > perfect["perilesion36"] > perfect["nawm"]


def test_nawm_truth_is_the_wm_tissue(phantom):
    tissues = phantom.t1w.tissues
    wm_dvr = 1.0 + phantom.kinetics.tissues["wm"].bp_nd
    nawm = phantom.regions["nawm"]
    dvr = phantom.truth_dvr[nawm]
    only_wm = tissues.gm[nawm] == 0  # tissue is WM only (CSF does not count: it holds no tracer)
    assert only_wm.sum() > 1000
    np.testing.assert_allclose(dvr[only_wm], wm_dvr, atol=2e-6)
    # p_WM >= 0.9 with some GM: within 10 % of the WM-GM DVR difference
    gm_dvr = 1.0 + phantom.kinetics.tissues["cortexgm"].bp_nd
    assert np.all(np.abs(dvr - wm_dvr) <= 0.1 * abs(gm_dvr - wm_dvr) + 1e-5)


def test_voxel_srtm_recovers_the_truth_image_times_tissue_content(phantom):
    """PSF-free, noise-free voxel TACs on the T1w grid: SRTM basis functions recover the documented DVR."""
    from tspo_bids.kinetics.bfm import srtm_bfm
    from tspo_bids.simulate.pet import compartment_tacs

    tissues = phantom.t1w.tissues
    timing = phantom.timing
    tacs = compartment_tacs(timing, phantom.kinetics, phantom.lesion_params, phantom.phenotypes)
    rng = np.random.default_rng(0)
    brain = np.flatnonzero((tissues.gm + tissues.wm) > 0.3)
    voxels = rng.choice(brain, 3000, replace=False)
    names = list(phantom.t1w_fractions)
    weights = np.stack([phantom.t1w_fractions[n].ravel()[voxels] for n in names])  # (K, V)
    voxel_tacs = np.stack([tacs[n] for n in names], axis=1) @ weights  # (T, V)
    fit = srtm_bfm(voxel_tacs, tacs["cerebellumgm"], timing.start_min, timing.end_min)
    content = weights.sum(axis=0)
    expected = phantom.truth_dvr.ravel()[voxels] * content
    error = fit.dvr - expected
    assert np.median(np.abs(error)) <= 0.005
    assert np.percentile(np.abs(error), 99) <= 0.03


def test_same_seed_same_phantom(phantom):
    again = _session(5)
    np.testing.assert_array_equal(again.truth_dvr, phantom.truth_dvr)
    np.testing.assert_array_equal(again.rim_labels, phantom.rim_labels)
    assert again.phenotypes == phantom.phenotypes
    assert again.perfect_rows == phantom.perfect_rows


def test_explicit_lesion_params_keep_the_plain_lesion_model():
    """Passing lesion kinetics without phenotypes: no rims, no perilesional compartment."""
    from tspo_bids.simulate.pet import compartment_fractions, compartment_params
    from tspo_bids.simulate.anatomy import sample_tissues
    from tspo_bids.simulate.geometry import Grid

    kinetics = draw_kinetics(np.random.default_rng(2), PK, "RRMS", "HAB")
    params = compartment_params(kinetics, [SrtmParams(0.6, 0.05, 0.1)])
    assert "lesion01" in params and not any(name.startswith("rim") for name in params)
    template = load_template(2)
    tissues = sample_tissues(template, random_deformation(np.random.default_rng(3), template),
                             Grid.covering([-20, -20, -20], [20, 20, 20], 4.0))
    assert "perilesion" not in compartment_fractions(tissues)
