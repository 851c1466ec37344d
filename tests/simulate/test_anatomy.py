"""Anatomy: template deformation, lesions, MR contrast (on one coarse simulated session)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tspo_bids.anat.template import load_template
from tspo_bids.simulate.anatomy import (
    PROBABILITY_LEVELS,
    Deformation,
    Lesion,
    lesion_volumes,
    random_deformation,
    sample_tissues,
)
from tspo_bids.simulate.dataset import frame_schedule
from tspo_bids.simulate.geometry import Grid, resample
from tspo_bids.simulate.protocols import TISSUE_RANGES, draw_kinetics, get_protocol
from tspo_bids.simulate.session import simulate_session



@pytest.fixture(scope="module")
def patient_session(coarse_options):
    template = load_template(2)
    rng = np.random.default_rng(5)
    protocol = get_protocol("pk11195")
    deformation = random_deformation(rng, template)
    kinetics = draw_kinetics(rng, protocol, "SPMS", "HAB")
    volumes = lesion_volumes(rng, 3, 6)
    timing = frame_schedule(protocol, "injection")[1]
    return simulate_session(template, deformation, kinetics, protocol, timing, np.random.default_rng(6),
                            np.random.default_rng(7), options=coarse_options, lesion_volumes_mm3=volumes), volumes


def test_identity_deformation_reproduces_the_template():
    template = load_template(2)
    field_grid = Grid.covering([-120, -150, -100], [120, 120, 120], 10.0)
    identity = Deformation(pose=np.eye(4), displacement_mm=np.zeros((3,) + field_grid.shape, np.float32),
                           displacement_affine=field_grid.affine)
    grid = Grid(template.gm.shape, template.gm.affine)
    tissues = sample_tissues(template, identity, grid)
    expected = np.round(np.asarray(template.gm.dataobj) * PROBABILITY_LEVELS) / PROBABILITY_LEVELS
    np.testing.assert_allclose(tissues.gm, expected, atol=1e-6)
    np.testing.assert_array_equal(tissues.atlas_labels, np.asarray(template.atlas.dataobj))


def test_deformation_is_smooth_and_a_few_mm():
    template = load_template(2)
    deformation = random_deformation(np.random.default_rng(0), template, displacement_rms_mm=2.0)
    field = deformation.displacement_mm
    magnitude = np.sqrt((field ** 2).sum(axis=0))
    assert 1.0 < np.median(magnitude) < 6.0 and magnitude.max() < 15.0
    spacing = np.sqrt((deformation.displacement_affine[:3, :3] ** 2).sum(0))[0]
    # displacement gradient far below 1: the mapping is one-to-one
    gradient = max(np.abs(np.gradient(field[c], spacing, axis=a)).max() for c in range(3) for a in range(3))
    assert gradient < 0.5


def test_tissue_probabilities_are_fractions(patient_session):
    tissues = patient_session[0].t1w.tissues
    total = tissues.gm + tissues.wm + tissues.csf
    assert total.max() <= 1.0 + 2.0 / PROBABILITY_LEVELS
    assert np.all(tissues.lesion <= tissues.wm + 1e-6)
    brain = tissues.brain_mask
    assert np.median(total[brain]) > 0.99


def test_lesions_sizes_and_location(patient_session):
    session, volumes = patient_session
    tissues = session.t1w.tissues
    voxel_mm3 = float(np.prod(session.t1w.grid.voxel_size_mm))
    assert len(session.lesions) == len(volumes)
    nominal = np.array([lesion.volume_mm3 for lesion in session.lesions])
    assert (nominal >= 500).sum() >= 2 and (nominal < 300).sum() >= 2
    labels = tissues.lesion_index_map()
    for index, lesion in enumerate(session.lesions, start=1):
        if lesion.volume_mm3 >= 500:
            measured = (labels == index).sum() * voxel_mm3
            assert abs(measured - lesion.volume_mm3) <= 0.2 * lesion.volume_mm3
    # lesions sit in cerebral white matter
    cerebral_wm = session.regions["wm"]
    assert (cerebral_wm & tissues.lesion_mask).sum() >= 0.85 * tissues.lesion_mask.sum()
    # and do not touch each other
    n_components = ndimage.label(tissues.lesion_mask)[1]
    assert n_components >= (nominal >= 100).sum()


def test_t1w_and_flair_contrast(patient_session):
    session, _ = patient_session
    tissues = session.t1w.tissues
    dseg = tissues.dseg()
    lesion = tissues.lesion_mask
    t1w = session.t1w.data
    csf, gm, wm = (np.median(t1w[(dseg == k) & ~lesion]) for k in (1, 2, 3))
    assert wm > gm > csf
    assert np.median(t1w[lesion]) < 0.85 * wm
    # FLAIR brought to the T1w grid with the true transform (T1w point x -> FLAIR(A x))
    flair = resample(session.flair.data, session.flair.grid.affine, session.t1w.grid,
                     target_to_source=session.t1w_to_flair, order=1)
    f_csf, f_gm, f_wm = (np.median(flair[(dseg == k) & ~lesion]) for k in (1, 2, 3))
    assert f_gm > f_wm > f_csf
    assert np.median(flair[lesion]) > 1.3 * f_gm


def test_true_kinetics_in_the_simulation_ranges(patient_session):
    kinetics = patient_session[0].kinetics
    k2_ref = kinetics.reference_efflux_per_min
    assert set(kinetics.tissues) == {*TISSUE_RANGES, "perilesion"}
    for name, params in kinetics.tissues.items():
        if name == "perilesion":  # WM at a lesion's edge: NAWM + 0.05-0.10
            wm = kinetics.tissues["wm"]
            assert 0.05 <= params.bp_nd - wm.bp_nd <= 0.10 and params.r1 == wm.r1 and params.k2 == wm.k2
            continue
        (bp_low, bp_high), (r1_low, r1_high) = TISSUE_RANGES[name]
        if name == "wm":  # MS: normal-appearing WM +3-10 %
            bp_low, bp_high = bp_low * 1.03, bp_high * 1.10
        if name == "thalamus":  # MS: thalamus +0-10 %
            bp_high *= 1.10
        assert bp_low <= params.bp_nd <= bp_high, name
        assert r1_low <= params.r1 <= r1_high, name
        assert np.isclose(params.k2, params.r1 * k2_ref)


def test_lesion_fraction_integrates_to_the_ellipsoid_volume():
    lesion = Lesion(center_mm=np.array([0.3, -0.2, 0.1]), semi_axes_mm=np.array([6.0, 4.0, 3.0]),
                    rotation=np.eye(3))
    grid = Grid.covering([-10, -10, -10], [10, 10, 10], 1.0)
    fraction = lesion.fraction(grid.world_points(), 1.0)
    assert abs(fraction.sum() - lesion.volume_mm3) <= 0.05 * lesion.volume_mm3
