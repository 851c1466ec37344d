"""PET synthesis: PSF, mixing, sampling, noise model, decay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tspo_bids.anat.regions import define_regions
from tspo_bids.anat.template import load_template
from tspo_bids.kinetics import FrameTiming
from tspo_bids.kinetics.frames import HALF_LIFE_MIN
from tspo_bids.simulate.anatomy import random_deformation, sample_tissues
from tspo_bids.simulate.dataset import frame_schedule
from tspo_bids.simulate.geometry import Grid, rigid_matrix
from tspo_bids.simulate.measure import perfect_regional_tacs, regional_tacs_in_t1w
from tspo_bids.simulate.pet import (
    add_frame_noise,
    compartment_fractions,
    compartment_tacs,
    fractions_on_pet_grid,
    head_motion,
    mix,
    noise_scale_for_voxel_cov,
    simulate_pet,
    stored_values,
)
from tspo_bids.simulate.protocols import draw_kinetics, get_protocol

PK = get_protocol("pk11195")


def _timing(protocol=PK, mode="injection") -> FrameTiming:
    return frame_schedule(protocol, mode)[1]


@pytest.fixture(scope="module")
def small_anatomy():
    """True tissues of a random subject on a 3 mm grid (template at 2 mm)."""
    template = load_template(2)
    rng = np.random.default_rng(11)
    deformation = random_deformation(rng, template)
    grid = Grid.covering([-95, -125, -80], [95, 100, 105], 3.0)
    tissues = sample_tissues(template, deformation, grid)
    kinetics = draw_kinetics(rng, PK, "HC", "HAB")
    return tissues, kinetics


@pytest.mark.parametrize("pet_voxel_mm", [2.0, 3.0])
def test_psf_fwhm_measured_on_a_point_source(pet_voxel_mm):
    requested = 5.0
    work = Grid.covering([-30, -30, -30], [30, 30, 30], 1.0)
    point = np.zeros(work.shape, np.float32)
    point[30, 30, 30] = 1.0  # world (0, 0, 0)
    pet_grid = Grid.covering([-25, -25, -25], [25, 25, 25], pet_voxel_mm)
    t1w_to_pet = rigid_matrix([5, -3, 8], [0.7, -0.3, 0.4])
    image = fractions_on_pet_grid({"point": point}, work, pet_grid, t1w_to_pet, requested)["point"]
    points = pet_grid.world_points()
    weights = image.ravel().astype(float)
    centroid = weights @ points / weights.sum()
    np.testing.assert_allclose(centroid, t1w_to_pet[:3, 3], atol=0.1)
    centred = points - centroid
    covariance = (centred.T * weights) @ centred / weights.sum()
    fwhm = 2 * math.sqrt(2 * math.log(2)) * np.sqrt(np.linalg.eigvalsh(covariance))
    # the source voxel itself (1 mm box) adds < 1 % to the width
    assert np.all(np.abs(fwhm - requested) <= 0.05 * requested), fwhm
    # total activity is kept (1 voxel of 1 mm^3 spread over voxels of pet_voxel_mm^3)
    assert np.isclose(image.sum() * pet_voxel_mm**3, 1.0, rtol=0.02)


def test_without_psf_regional_means_are_the_mixture_of_tissue_tacs(small_anatomy):
    tissues, kinetics = small_anatomy
    timing = _timing()
    fractions = compartment_fractions(tissues)
    tacs = compartment_tacs(timing, kinetics)
    sim = simulate_pet(fractions, tissues.grid, tissues.grid, np.eye(4), tacs, timing, psf_fwhm_mm=0.0,
                       voxel_cov=0.0, rng=np.random.default_rng(0))
    masks = define_regions(tissues.gm, tissues.wm, tissues.atlas_groups(), voxel_size_mm=tissues.grid.voxel_size_mm)
    measured = regional_tacs_in_t1w(sim.clean, tissues.grid.affine, tissues.grid, np.eye(4), masks)
    for region, mask in masks.items():
        expected = sum(fractions[k][mask].mean() * tacs[k] for k in fractions)
        np.testing.assert_allclose(measured[region], expected, rtol=1e-4, atol=1e-6)
    # the reference region holds cerebellar GM (and some WM): its TAC is close to the reference tissue's
    ref = measured["cerebellumgm"][-8:] / tacs["cerebellumgm"][-8:]
    assert np.all((ref > 0.75) & (ref <= 1.0))


def test_perfect_tacs_by_linearity_equal_resampling_every_frame(small_anatomy):
    tissues, kinetics = small_anatomy
    timing = _timing()
    fractions = compartment_fractions(tissues)
    tacs = compartment_tacs(timing, kinetics)
    t1w_to_pet = rigid_matrix([4, -2, 3], [5, -3, 7], center_mm=[0, -20, 10])
    pet_grid = Grid.covering([-100, -130, -85], [100, 105, 110], 4.0)
    on_pet = fractions_on_pet_grid(fractions, tissues.grid, pet_grid, t1w_to_pet, 5.0)
    masks = define_regions(tissues.gm, tissues.wm, tissues.atlas_groups(), voxel_size_mm=tissues.grid.voxel_size_mm)
    direct = regional_tacs_in_t1w(mix(on_pet, tacs), pet_grid.affine, tissues.grid, t1w_to_pet, masks)
    linear = perfect_regional_tacs(on_pet, tacs, pet_grid.affine, tissues.grid, t1w_to_pet, masks)
    for region in masks:
        np.testing.assert_allclose(linear[region], direct[region], rtol=1e-4)


def test_noise_variance_follows_the_frame_model():
    timing = _timing()
    tac = compartment_tacs(timing, draw_kinetics(np.random.default_rng(1), PK, "HC", "HAB"))["cortexgm"]
    clean = np.broadcast_to(tac, (25, 25, 25, timing.n_frames)).astype(np.float32)
    cov = 0.2
    scale = noise_scale_for_voxel_cov(clean, timing, np.ones(clean.shape[:3], bool), cov)
    noisy = add_frame_noise(clean, timing, scale, np.random.default_rng(2))
    # Var_i = a * C_i * DCF_i / dur_i, DCF computed here from its definition
    lam = math.log(2) / HALF_LIFE_MIN["C11"]
    ts, te = timing.start_min, timing.end_min
    dcf = lam * (te - ts) / (np.exp(-lam * ts) - np.exp(-lam * te))
    expected_sd = np.sqrt(scale * tac * dcf / (te - ts))
    measured_sd = (noisy - clean).reshape(-1, timing.n_frames).std(axis=0)
    informative = tac > 0.05 * tac.max()
    np.testing.assert_allclose(measured_sd[informative], expected_sd[informative], rtol=0.04)
    # late frames: the requested median voxel COV
    late = timing.mid_min >= 0.5 * timing.end_min.max()
    assert np.isclose(np.median(expected_sd[late] / tac[late]), cov, rtol=1e-6)
    assert 0.10 <= np.median(measured_sd[late] / tac[late]) <= 0.30


@pytest.mark.parametrize(("tracer", "mode"), [("pk11195", "uncorrected"), ("pbr28", "uncorrected"),
                                              ("pbr28", "scanstart"), ("pk11195", "injection")])
def test_stored_series_corrected_with_frame_timing_equals_the_corrected_one(tracer, mode):
    protocol = get_protocol(tracer)
    sidecar, timing = frame_schedule(protocol, mode)
    corrected = np.random.default_rng(4).uniform(1, 10, (6, 7, timing.n_frames)).astype(np.float32)
    stored = stored_values(corrected, timing)
    # what the sidecar says, independently of the phantom's own timing object
    lam = math.log(2) / HALF_LIFE_MIN["C11"]
    start_min = (np.asarray(sidecar["FrameTimesStart"]) - sidecar["InjectionStart"]) / 60
    end_min = start_min + np.asarray(sidecar["FrameDuration"]) / 60
    if mode == "uncorrected":
        dcf = lam * (end_min - start_min) / (np.exp(-lam * start_min) - np.exp(-lam * end_min))
        np.testing.assert_allclose(stored * dcf, corrected, rtol=1e-5)
    else:
        to_injection = math.exp(lam * (sidecar["ImageDecayCorrectionTime"] - sidecar["InjectionStart"]) / 60)
        np.testing.assert_allclose(stored * to_injection, corrected, rtol=1e-5)
    reread = FrameTiming.from_bids({**sidecar, "TracerRadionuclide": protocol.radionuclide})
    np.testing.assert_allclose(reread.to_injection_decay_corrected(stored, axis=-1), corrected, rtol=1e-5)


def test_same_noise_whatever_the_decay_correction(small_anatomy):
    tissues, kinetics = small_anatomy
    fractions = compartment_fractions(tissues)
    series = {}
    for mode in ("injection", "uncorrected"):
        timing = _timing(mode=mode)
        tacs = compartment_tacs(timing, kinetics)
        sim = simulate_pet(fractions, tissues.grid, Grid.covering([-60, -60, -40], [60, 60, 60], 4.0),
                           np.eye(4), tacs, timing, psf_fwhm_mm=5.0, voxel_cov=0.2,
                           rng=np.random.default_rng(9))
        series[mode] = timing.to_injection_decay_corrected(sim.stored, axis=-1)
    assert np.std(series["injection"]) > 0
    np.testing.assert_allclose(series["uncorrected"], series["injection"], rtol=1e-4, atol=1e-5)


def test_head_motion_moves_each_frame_by_its_true_transform(small_anatomy):
    tissues, kinetics = small_anatomy
    timing = _timing()
    fractions = compartment_fractions(tissues)
    tacs = compartment_tacs(timing, kinetics)
    pet_grid = Grid.covering([-100, -130, -85], [100, 105, 110], 4.0)
    motions = head_motion(np.random.default_rng(3), timing, 6.0, center_mm=[0, -20, 10])
    still = simulate_pet(fractions, tissues.grid, pet_grid, np.eye(4), tacs, timing, psf_fwhm_mm=5.0,
                         voxel_cov=0.0, rng=np.random.default_rng(0))
    moving = simulate_pet(fractions, tissues.grid, pet_grid, np.eye(4), tacs, timing, psf_fwhm_mm=5.0,
                          voxel_cov=0.0, rng=np.random.default_rng(0), motions=motions)
    early = timing.mid_min < 10
    np.testing.assert_allclose(moving.clean[..., early], still.clean[..., early], rtol=1e-4, atol=1e-6)
    points = pet_grid.world_points()

    def centroid(volume):
        weights = volume.ravel().astype(float)
        return weights @ points / weights.sum()

    last = timing.n_frames - 1
    moved = motions[last][:3, :3] @ centroid(still.clean[..., last]) + motions[last][:3, 3]
    assert np.linalg.norm(motions[last][:3, 3]) > 2.0
    np.testing.assert_allclose(centroid(moving.clean[..., last]), moved, atol=0.3)
