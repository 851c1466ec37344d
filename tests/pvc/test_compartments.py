"""Compartment GTM: fractional tissue maps, exact recovery of each tissue's activity."""

import numpy as np
import pytest
from scipy import ndimage

from tspo_bids.anat.regions import AtlasGroups
from tspo_bids.pvc import gtm_correct
from tspo_bids.pvc.compartments import compartment_gtm_matrix, region_weights, tissue_compartments

SHAPE = (40, 40, 40)
VOXEL_MM = 2.0


def _head():
    """A layered head: WM core, GM shell (partial volumes), CSF rim; a thalamus and a 'cerebellum'."""
    z, y, x = np.indices(SHAPE) - 19.5
    radius = np.sqrt(x**2 + y**2 + z**2)
    wm = np.clip(13.0 - radius, 0, 1)  # fractional edges
    gm = np.clip(16.0 - radius, 0, 1) - wm
    brain = radius < 18.0
    csf = np.where(brain, 1.0 - gm - wm, 0.0)
    empty = np.zeros(SHAPE, bool)
    thalamus = (radius < 4.0)
    cerebellum = (z < -9) & brain
    atlas = AtlasGroups(cerebellum=cerebellum, vermis=empty, thalamus=thalamus, deepgm=empty)
    lesion = (np.abs(x - 7) < 2) & (np.abs(y) < 2) & (np.abs(z) < 2)
    return gm, wm, csf, brain, atlas, {"lesion": lesion}


def _blur(image):
    return ndimage.gaussian_filter(np.asarray(image, float), 5.0 / 2.355 / VOXEL_MM, mode="constant")


def test_gtm_recovers_every_compartment_exactly():
    gm, wm, csf, brain, atlas, ms = _head()
    comp = tissue_compartments(gm, wm, csf, brain, atlas, ms)
    assert comp.names[-1] == "csf" and {"cortexgm", "cerebellumgm", "thalamus", "lesion"} <= set(comp.names)
    np.testing.assert_allclose(sum(comp.fractions)[brain], 1.0, atol=1e-6)

    rng = np.random.default_rng(0)
    activity = rng.uniform(1.0, 5.0, size=(len(comp.names), 6))  # 6 frames
    activity[-1] = 0.05  # CSF
    truth_image = np.tensordot(np.stack(comp.fractions), activity, axes=(0, 0))  # X, Y, Z, frames
    measured = np.stack([_blur(truth_image[..., t]) for t in range(6)], axis=-1)

    labels = comp.dominant_labels(brain)
    matrix = compartment_gtm_matrix(comp, labels, _blur)
    observed = np.stack([np.bincount(labels.ravel(), weights=measured[..., t].ravel())[1:]
                         / np.bincount(labels.ravel())[1:] for t in range(6)], axis=1)
    corrected = gtm_correct(observed, matrix)
    np.testing.assert_allclose(corrected, activity, rtol=1e-6)

    # region reports: GM regions their GM compartment only; WM its WM compartments; CSF never
    regions = {"cortexgm": (gm >= 0.5) & ~atlas.cerebellum, "wm": wm >= 0.5, "wholebrain": gm + wm >= 0.5}
    weights = region_weights(regions, comp)
    index = {name: i for i, name in enumerate(comp.names)}
    assert weights["cortexgm"][index["cortexgm"]] == pytest.approx(1.0)
    assert weights["wm"][index["lesion"]] > 0 and weights["wm"][index["cortexgm"]] == 0
    assert weights["wholebrain"][index["csf"]] == 0 and weights["wholebrain"].sum() == pytest.approx(1.0)


def test_svca_region_reports_the_gm_inside_it():
    """The SVCA reference (voxels with non-binding GM kinetics) reports the activity of its GM compartments,
    each weighted by its GM content in the mask: here a mask over cerebellar cortex and its WM edge."""
    gm, wm, csf, brain, atlas, ms = _head()
    comp = tissue_compartments(gm, wm, csf, brain, atlas, ms)
    index = {name: i for i, name in enumerate(comp.names)}
    # cerebellar GM and its WM border, and 2 voxels beyond the cerebellum (cortex GM, cerebral WM)
    mask = ndimage.binary_dilation(atlas.cerebellum, iterations=2) & brain & (gm + wm > 0.3)
    weights = region_weights({"svca": mask}, comp)["svca"]
    gm_names = [name for name in comp.names if name in ("cortexgm", "cerebellumgm", "vermisgm")]
    expected = {name: comp.fractions[index[name]][mask].sum(dtype=np.float64) for name in gm_names}
    total = sum(expected.values())
    for name in comp.names:
        assert weights[index[name]] == pytest.approx(expected.get(name, 0.0) / total, abs=1e-6), name
    assert weights[index["cerebellumgm"]] > 0.5 and weights[index["cortexgm"]] > 0  # both GM tissues count
    assert all(comp.fractions[index[name]][mask].sum() > 0 for name in ("nawm", "csf"))  # present, weight 0


def test_empty_observation_region_is_an_error():
    gm, wm, csf, brain, atlas, ms = _head()
    comp = tissue_compartments(gm, wm, csf, brain, atlas, ms)
    labels = comp.dominant_labels(brain)
    labels[labels == 1] = 2
    with pytest.raises(ValueError, match="without voxels"):
        compartment_gtm_matrix(comp, labels, _blur)


def test_compartment_gtm_and_rbv_restore_the_truth():
    from tspo_bids.pvc.compartments import compartment_gtm, compartment_rbv

    gm, wm, csf, brain, atlas, ms = _head()
    comp = tissue_compartments(gm, wm, csf, brain, atlas, ms)
    rng = np.random.default_rng(3)
    activity = rng.uniform(1.0, 5.0, size=(len(comp.names), 4))
    activity[-1] = 0.0
    truth = np.tensordot(np.stack(comp.fractions), activity, axes=(0, 0))
    measured = np.stack([_blur(truth[..., t]) for t in range(4)], axis=-1)
    result = compartment_gtm(measured, comp, brain, _blur)
    np.testing.assert_allclose(result.activities, activity, rtol=1e-6, atol=1e-6)  # float32 images
    assert result.condition_number < 100
    classical = compartment_rbv(measured, comp, result, brain, numerator="mixture")
    np.testing.assert_allclose(classical[brain], truth[brain], rtol=1e-5, atol=1e-6)
    # tissue-pure: each voxel gets the activity of its dominant compartment
    pure = compartment_rbv(measured, comp, result, brain)
    own = comp.dominant_labels(brain)[brain] - 1
    np.testing.assert_allclose(pure[brain], activity[own], rtol=1e-5, atol=1e-6)


def test_every_lesion_core_and_rim_is_a_compartment_recovered_exactly():
    """Two lesions with their own core and 2 mm rim activity (e.g. a rim-active beside an overall-active
    lesion): GTM recovers each, region weights report cores as 'lesion' and rims within 'perilesion03'."""
    from tspo_bids.anat.ms_regions import define_ms_regions
    from tspo_bids.pet.phenotypes import lesion_core_and_rim
    from tspo_bids.pvc.compartments import compartment_gtm, parent_compartment

    gm, wm, csf, brain, atlas, _ = _head()
    z, y, x = np.indices(SHAPE) - 19.5
    labels = np.zeros(SHAPE, np.int32)
    labels[(x - 6) ** 2 + y**2 + (z - 2) ** 2 <= 2.5**2] = 1
    labels[(x + 5) ** 2 + (y - 3) ** 2 + (z - 2) ** 2 <= 2.0**2] = 2
    rims = lesion_core_and_rim(labels, (VOXEL_MM,) * 3, rim_mm=2.0, wm_mask=wm >= 0.5)
    ms = define_ms_regions(wm, gm, labels, VOXEL_MM, brain_mask=brain)
    comp = tissue_compartments(gm, wm, csf, brain, atlas, ms, lesion_rims=rims)
    own = {"lesion-001-core", "lesion-001-rim", "lesion-002-core", "lesion-002-rim"}
    assert own <= set(comp.names) and "lesion" not in comp.names
    assert parent_compartment("lesion-002-rim") == "perilesion03" and parent_compartment("lesion-001-core") == "lesion"
    np.testing.assert_allclose(sum(comp.fractions)[brain], 1.0, atol=1e-6)

    rng = np.random.default_rng(5)
    activity = rng.uniform(1.0, 5.0, size=(len(comp.names), 3))
    activity[-1] = 0.0
    truth = np.tensordot(np.stack(comp.fractions), activity, axes=(0, 0))
    measured = np.stack([_blur(truth[..., t]) for t in range(3)], axis=-1)
    result = compartment_gtm(measured, comp, brain, _blur)
    np.testing.assert_allclose(result.activities, activity, rtol=1e-5, atol=1e-5)
    # an uncorrected rim mean is far from its activity at this resolution: the correction matters
    rim = rims.rim(1)
    index = comp.names.index("lesion-001-rim")
    assert np.max(np.abs(measured[rim].mean(axis=0) - activity[index]) / activity[index]) > 0.05

    weights = region_weights({"lesion": labels > 0, "perilesion03": ms["perilesion03"]}, comp)
    cores = [comp.names.index(n) for n in ("lesion-001-core", "lesion-002-core")]
    assert weights["lesion"][cores].sum() == pytest.approx(1.0)
    rim_weight = weights["perilesion03"][[comp.names.index(n) for n in ("lesion-001-rim", "lesion-002-rim")]]
    assert np.all(rim_weight > 0) and weights["perilesion03"].sum() == pytest.approx(1.0)


def test_dominant_labels_match_argmax():
    gm, wm, csf, brain, atlas, ms = _head()
    comp = tissue_compartments(gm, wm, csf, brain, atlas, ms)
    expected = np.where(brain, np.argmax(np.stack(comp.fractions), axis=0) + 1, 0)
    np.testing.assert_array_equal(comp.dominant_labels(brain), expected)


def _head_with_vermis():
    """The layered head with a midline vermis slab cut out of its 'cerebellum' (AtlasGroups.cerebellum
    then holds the hemispheres only, as the AAL groups do)."""
    gm, wm, csf, brain, atlas, _ = _head()
    x = np.indices(SHAPE)[2] - 19.5
    vermis = atlas.cerebellum & (np.abs(x) < 3.0)
    atlas = AtlasGroups(cerebellum=atlas.cerebellum & ~vermis, vermis=vermis, thalamus=atlas.thalamus,
                        deepgm=atlas.deepgm)
    return gm, wm, csf, brain, atlas


def test_cerebellar_wm_and_vermis_gm_are_lumped_when_one_dominates_no_voxel():
    """A vermis whose GM is nowhere its main tissue (here 30 % of the GM moved to WM) has no GTM
    observation region: the two compartments become one instead of stopping the correction."""
    from tspo_bids.pvc.compartments import compartment_gtm

    gm, wm, csf, brain, atlas = _head_with_vermis()
    gm, wm = np.where(atlas.vermis, 0.3 * gm, gm), np.where(atlas.vermis, wm + 0.7 * gm, wm)
    comp = tissue_compartments(gm, wm, csf, brain, atlas)
    assert "othertissue" in comp.names and not {"cerebellumwm", "vermisgm"} & set(comp.names)
    assert comp.names[-1] == "csf"
    np.testing.assert_allclose(sum(comp.fractions)[brain], 1.0, atol=1e-6)
    activity = np.linspace(1.0, 3.0, len(comp.names))[:, None] * np.ones((1, 2))
    truth = np.tensordot(np.stack(comp.fractions), activity, axes=(0, 0))
    measured = np.stack([_blur(truth[..., t]) for t in range(2)], axis=-1)
    np.testing.assert_allclose(compartment_gtm(measured, comp, brain, _blur).activities, activity, rtol=1e-5)


def test_wm_zone_dominating_no_voxel_is_corrected_as_nawm():
    """A perilesional shell lying in the cortex's GM (its WM fraction the main tissue nowhere, as the rim of a
    juxtacortical lesion) has no GTM observation region: its WM joins nawm instead of stopping the correction,
    and the GTM still recovers every compartment exactly (the zone's WM has NAWM's activity here)."""
    from tspo_bids.pvc.compartments import compartment_gtm

    gm, wm, csf, brain, atlas, _ = _head()
    z, y, x = np.indices(SHAPE) - 19.5
    radius = np.sqrt(x**2 + y**2 + z**2)
    shell = (radius > 12.55) & (radius < 13.0) & (x > 6) & ~atlas.cerebellum  # cerebral WM edge: GM dominates
    assert wm[shell].sum() > 0 and np.all(wm[shell] < gm[shell])
    lesion = (np.abs(x - 7) < 2) & (np.abs(y) < 2) & (np.abs(z) < 2)
    comp = tissue_compartments(gm, wm, csf, brain, atlas, {"lesion": lesion, "perilesion36": shell})
    assert "perilesion36" not in comp.names and {"lesion", "nawm"} <= set(comp.names)
    np.testing.assert_allclose(sum(comp.fractions)[brain], 1.0, atol=1e-6)
    nawm = comp.fractions[comp.names.index("nawm")]
    np.testing.assert_allclose(nawm[shell], wm[shell], atol=1e-6)
    activity = np.linspace(1.0, 3.0, len(comp.names))[:, None] * np.ones((1, 2))
    truth = np.tensordot(np.stack(comp.fractions), activity, axes=(0, 0))
    measured = np.stack([_blur(truth[..., t]) for t in range(2)], axis=-1)
    np.testing.assert_allclose(compartment_gtm(measured, comp, brain, _blur).activities, activity, rtol=1e-5)


def test_reference_is_exact_when_vermis_gm_and_cerebellar_wm_follow_other_tissues():
    """The brain as the phantom (and biology) makes it: cerebellar WM has WM kinetics, vermis GM
    cortical-GM kinetics. Truth is built from tissue fractions, not from the compartments, so a
    compartment that lumps tissues of different kinetics is a model error the test sees (the
    former single "othertissue" compartment put the reference up to 0.8 % off here, 2.6 % on the phantom)."""
    from tspo_bids.pvc.compartments import compartment_gtm

    gm, wm, csf, brain, atlas = _head_with_vermis()
    hemispheres = atlas.cerebellum
    comp = tissue_compartments(gm, wm, csf, brain, atlas)
    assert {"cerebellumwm", "vermisgm"} <= set(comp.names) and "othertissue" not in comp.names
    np.testing.assert_allclose(sum(comp.fractions)[brain], 1.0, atol=1e-6)

    frames = np.linspace(0.2, 1.0, 5)
    tac = {"reference": 3.0 - 2.0 * frames, "cortex": 2.0 + 0.5 * frames, "wm": 0.8 + 2.0 * frames,
           "thalamus": 2.5 + frames}
    thalamus = atlas.thalamus & brain & ~hemispheres
    cerebral_gm = gm * (brain & ~(hemispheres | thalamus))  # cortex kinetics, vermis GM included
    truth = (np.multiply.outer(gm * hemispheres, tac["reference"])
             + np.multiply.outer(cerebral_gm, tac["cortex"])
             + np.multiply.outer(wm * (brain & ~thalamus), tac["wm"])
             + np.multiply.outer((gm + wm) * thalamus, tac["thalamus"]))
    measured = np.stack([_blur(truth[..., t]) for t in range(frames.size)], axis=-1)
    result = compartment_gtm(measured, comp, brain, _blur)
    index = {name: i for i, name in enumerate(comp.names)}
    np.testing.assert_allclose(result.activities[index["cerebellumgm"]], tac["reference"], rtol=1e-5)
    np.testing.assert_allclose(result.activities[index["vermisgm"]], tac["cortex"], rtol=1e-5)
    np.testing.assert_allclose(result.activities[index["cerebellumwm"]], tac["wm"], rtol=1e-5)
