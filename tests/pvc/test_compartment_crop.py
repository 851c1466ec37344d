"""Cropped compartments (lesion cores and rims in their boxes) give the full-grid computation's results.

The reference below is the full-grid code path written out: every fraction map and every spread
function ``model(fraction)`` on the whole T1w grid, ``G`` and RBV from stacks of them, dominant
labels by ``argmax``. The cropped path must match it to 1e-6 (relative) on a head with many small
lesions, a rotated and shifted PET grid with anisotropic voxels whose field of view cuts the head.
"""

import numpy as np
import pytest

from tspo_bids.anat.ms_regions import define_ms_regions
from tspo_bids.anat.regions import AtlasGroups
from tspo_bids.pet.phenotypes import lesion_core_and_rim
from tspo_bids.pvc import gtm_correct
from tspo_bids.pvc.compartments import (
    BoxedMap,
    Compartments,
    compartment_gtm,
    compartment_gtm_matrix,
    compartment_rbv,
    lesion_compartment_name,
    tissue_compartments,
)
from tspo_bids.pvc.forward import PetGridModel
from tspo_bids.simulate.geometry import rigid_matrix

SHAPE = (64, 72, 56)
T1W_VOXEL_MM = (1.2, 1.2, 1.4)
N_LESIONS = 24
RTOL = 1e-6


def _model(sample_order: int) -> PetGridModel:
    t1w_affine = np.diag([*T1W_VOXEL_MM, 1.0])
    t1w_affine[:3, 3] = -(np.array(SHAPE) - 1) * np.array(T1W_VOXEL_MM) / 2
    pet_voxel = np.array([2.1, 2.1, 3.27])  # anisotropic PET voxels
    pet_shape = (38, 42, 20)  # the axial field of view cuts the top and bottom of the head
    pet_affine = np.diag([*pet_voxel, 1.0])
    pet_affine[:3, 3] = -(np.array(pet_shape) - 1) * pet_voxel / 2
    t1w_to_pet = rigid_matrix(np.rad2deg([-0.07, 0.0, 0.12]), [1.3, -2.2, 0.9])  # about x, then z; then shifted
    return PetGridModel((5.0, 5.0, 5.5), SHAPE, t1w_affine, pet_shape, pet_affine, t1w_to_pet,
                        sample_order=sample_order)


@pytest.fixture(scope="module")
def head():
    return _make_head()


def _make_head():
    """Ellipsoidal head: WM core, GM shell with partial volumes, CSF; thalamus, cerebellum; 24 lesions
    (3-7 mm, some touching each other, one at the cortex) with cores and 2 mm WM rims."""
    rng = np.random.default_rng(11)
    idx = np.indices(SHAPE, dtype=float)
    centre = (np.array(SHAPE) - 1) / 2
    mm = [(idx[a] - centre[a]) * T1W_VOXEL_MM[a] for a in range(3)]
    radius = np.sqrt((mm[0] / 34) ** 2 + (mm[1] / 40) ** 2 + (mm[2] / 33) ** 2) * 33  # mm
    wm = np.clip(24.0 - radius, 0, 1).astype(np.float32)
    gm = (np.clip(29.0 - radius, 0, 1) - wm).astype(np.float32)
    brain = radius < 31.0
    csf = np.where(brain, 1.0 - gm - wm, 0.0).astype(np.float32)
    thalamus = np.sqrt(mm[0] ** 2 + (mm[1] + 4) ** 2 + mm[2] ** 2) < 6
    cerebellum = brain & (mm[2] < -20) & (mm[1] < -10)
    empty = np.zeros(SHAPE, bool)
    atlas = AtlasGroups(cerebellum=cerebellum, vermis=empty, thalamus=thalamus, deepgm=empty)
    labels = np.zeros(SHAPE, np.int32)
    for lesion in range(1, N_LESIONS + 1):
        while True:
            point = rng.uniform(-20, 20, 3)
            if np.linalg.norm(point / [34, 40, 33] * 33) < 21 and np.linalg.norm(point[[0, 2]] - [0, 0]) > 7:
                break
        if lesion == N_LESIONS:  # one lesion reaching into the cortex
            point = np.array([0.0, 22.5, 0.0])
        r_mm = rng.uniform(1.5, 3.5)
        ball = (mm[0] - point[0]) ** 2 + (mm[1] - point[1]) ** 2 + (mm[2] - point[2]) ** 2 <= r_mm**2
        labels[ball & (labels == 0)] = lesion
    assert len(np.unique(labels)) - 1 >= N_LESIONS - 2  # (a lesion swallowed by earlier ones is allowed)
    rims = lesion_core_and_rim(labels, T1W_VOXEL_MM, rim_mm=2.0, wm_mask=wm >= 0.5)
    ms = define_ms_regions(wm, gm, labels, T1W_VOXEL_MM, brain_mask=brain)
    comp = tissue_compartments(gm, wm, csf, brain, atlas, ms, lesion_rims=rims)
    return dict(gm=gm, wm=wm, csf=csf, brain=brain, atlas=atlas, ms=ms, rims=rims, labels=labels, comp=comp)


def _reference_lesion_fractions(head) -> dict[str, np.ndarray]:
    """The lesion compartments as full-grid maps, carved out of the cerebral WM core by core, then rim by rim."""
    atlas, brain, rims = head["atlas"], head["brain"], head["rims"]
    cerebellum = atlas.cerebellum & brain
    unassigned = brain & ~(cerebellum | (atlas.vermis & brain) | (atlas.thalamus & brain & ~cerebellum)
                           | (atlas.deepgm & brain & ~cerebellum))
    maps = {}
    for part, labels in (("core", rims.core_labels), ("rim", rims.rim_labels)):
        for lesion_id in rims.lesion_ids:
            zone = (labels == lesion_id) & unassigned
            maps[lesion_compartment_name(lesion_id, part)] = head["wm"] * zone
            unassigned &= ~zone
    return maps


def test_lesion_compartments_are_stored_in_their_boxes_and_equal_the_full_grid_maps(head):
    comp = head["comp"]
    reference = _reference_lesion_fractions(head)
    kept = {name: m for name, m in reference.items() if m.sum() > 0}
    assert [n for n in comp.names if n.startswith("lesion-")] == list(kept)
    assert len(kept) >= 2 * (N_LESIONS - 4)
    grid_voxels = np.prod(SHAPE)
    for name, expected in kept.items():
        stored = comp.boxed[comp.names.index(name)]
        assert not stored.is_full_grid and stored.values.size < grid_voxels / 20, name
        np.testing.assert_array_equal(comp.fractions[comp.names.index(name)], expected)
    np.testing.assert_allclose(sum(comp.fractions)[head["brain"]], 1.0, atol=1e-6)
    # the thalamus is small too: cropped automatically; CSF (the whole brain's box) stays on the full
    # grid, so both kinds take part in the comparisons below
    assert not comp.boxed[comp.names.index("thalamus")].is_full_grid
    assert comp.boxed[comp.names.index("csf")].is_full_grid


def _reference_full_grid(comp, brain, model, series):
    """The full-grid code path: labels, spread functions, G, activities and dominant RBV."""
    fractions = np.stack(list(comp.fractions))
    labels = np.where(brain, np.argmax(fractions, axis=0) + 1, 0).ravel()
    n = len(comp.names)
    counts = np.bincount(labels, minlength=n + 1)[1:].astype(float)
    spread = np.stack([np.asarray(model(f), np.float32) for f in fractions])
    matrix = np.stack([np.bincount(labels, weights=s.astype(float).ravel(), minlength=n + 1)[1:] / counts
                       for s in spread], axis=1)
    frames = series.reshape(-1, series.shape[-1])
    inside = labels > 0
    observed = np.stack([np.bincount(labels[inside], weights=frames[inside, t], minlength=n + 1)[1:]
                         for t in range(series.shape[-1])], axis=1) / counts[:, None]
    activities = gtm_correct(observed, matrix)
    own = labels[brain.ravel()] - 1
    on_brain = spread[:, brain]
    rbv = {"dominant": np.zeros(series.shape, np.float32), "mixture": np.zeros(series.shape, np.float32)}
    for t in range(series.shape[-1]):
        blurred = activities[:, t] @ on_brain
        valid = np.abs(blurred) > 1e-3 * np.max(np.abs(blurred))
        for numerator, wanted in (("dominant", activities[own, t]), ("mixture", activities[:, t] @ fractions[:, brain])):
            frame = np.zeros(brain.shape, np.float32)
            frame[brain] = np.where(valid, series[..., t][brain] * wanted / np.where(valid, blurred, 1), 0)
            rbv[numerator][..., t] = frame
    return labels.reshape(brain.shape), matrix, activities, rbv, spread


@pytest.mark.parametrize("sample_order", [3, 1])
def test_cropped_gtm_and_rbv_equal_the_full_grid_computation(head, sample_order):
    comp, brain = head["comp"], head["brain"]
    model = _model(sample_order)
    rng = np.random.default_rng(sample_order)
    truth = rng.uniform(1.0, 5.0, size=(len(comp.names), 3))
    truth[-1] = 0.1
    spread_truth = [np.asarray(model(f), np.float32) for f in comp.fractions]
    series = np.stack([sum(a * s for a, s in zip(truth[:, t], spread_truth)) for t in range(3)], axis=-1)
    series = series.astype(np.float32)

    labels, matrix, activities, rbv, spread = _reference_full_grid(comp, brain, model, series)
    np.testing.assert_array_equal(comp.dominant_labels(brain), labels)

    result = compartment_gtm(series, comp, brain, model)
    scale = np.max(np.abs(matrix))
    np.testing.assert_allclose(result.matrix, matrix, rtol=RTOL, atol=RTOL * 1e-3 * scale)
    np.testing.assert_allclose(result.activities, activities, rtol=RTOL)
    np.testing.assert_allclose(result.activities, truth, rtol=1e-4)  # and both recover the truth
    np.testing.assert_allclose(compartment_gtm_matrix(comp, labels, model), matrix, rtol=RTOL,
                               atol=RTOL * 1e-3 * scale)
    # spread functions: lesion ones held in their fraction's box grown by the forward model's reach
    # (PSF kernel + spline margin on the T1w grid, then a PET voxel's trilinear footprint), equal to
    # the full-grid ones
    lesions = [j for j, n in enumerate(comp.names) if n.startswith("lesion-")]
    pet_voxel_in_t1w = np.abs(model.pet_voxel_in_t1w_voxel[:3, :3]).sum(axis=1)  # per T1w axis
    reach = np.array(model.forward_margin_vox()) + 2 * np.ceil(pet_voxel_in_t1w) + 2
    for j in lesions:
        fraction, rsf = comp.boxed[j], result.spread.boxed[j]
        for f, s, r in zip(fraction.box, rsf.box, reach):
            assert s.start >= f.start - r and s.stop <= f.stop + r
    for j in lesions[:6] + lesions[-6:]:
        np.testing.assert_allclose(result.spread[j], spread[j], rtol=0, atol=RTOL * np.max(spread[j]))
    for numerator in ("dominant", "mixture"):
        corrected = compartment_rbv(series, comp, result, brain, numerator=numerator)
        expected = rbv[numerator]
        np.testing.assert_allclose(corrected, expected, rtol=RTOL, atol=RTOL * 1e-3 * np.max(np.abs(expected)))


def test_generic_forward_keeps_spread_functions_in_their_support(head):
    """A forward without project_box (a plain Gaussian blur) runs on the full grid one map at a time;
    its results are stored in the boxes of their non-zero voxels, and G is unchanged."""
    from tspo_bids.pvc import gaussian_psf_blur

    comp, brain = head["comp"], head["brain"]

    def blur(image):
        return gaussian_psf_blur(image, 5.0, T1W_VOXEL_MM, dtype=np.float32)

    labels = comp.dominant_labels(brain)
    matrix = compartment_gtm_matrix(comp, labels, blur)
    flat = labels.ravel()
    counts = np.bincount(flat)[1:]
    reference = np.stack([np.bincount(flat, weights=blur(f).astype(float).ravel())[1:] / counts
                          for f in comp.fractions], axis=1)
    np.testing.assert_array_equal(matrix, reference)
    series = np.stack([blur(sum(comp.fractions))] * 2, axis=-1)
    result = compartment_gtm(series, comp, brain, blur)
    j = comp.names.index(lesion_compartment_name(1, "core"))
    assert result.spread.boxed[j].values.size < np.prod(SHAPE) / 20
    np.testing.assert_allclose(result.activities[:-1], 1.0, rtol=1e-4)  # uniform tissue activity


def test_dominant_labels_with_cropped_maps_first_and_negative_values_match_argmax():
    rng = np.random.default_rng(2)
    shape = (12, 10, 9)
    small = np.zeros(shape, np.float32)
    small[2:5, 3:6, 1:4] = rng.uniform(0, 1, (3, 3, 3))
    other = np.zeros(shape, np.float32)
    other[6:9, 0:2, 5:9] = rng.uniform(-0.5, 1, (3, 2, 4))  # negative values, cropped
    wide = rng.uniform(-0.2, 0.6, shape).astype(np.float32)  # full grid, partly negative
    wide[0] = 0.0
    maps = [small, other, wide, small * 0.5]
    comp = Compartments(("a", "b", "c", "d"), maps)
    assert [m.is_full_grid for m in comp.boxed] == [False, False, True, False]
    brain = np.ones(shape, bool)
    brain[0, 0, 0] = False
    expected = np.where(brain, np.argmax(np.stack(maps), axis=0) + 1, 0)
    np.testing.assert_array_equal(comp.dominant_labels(brain), expected)
    for given, stored in zip(maps, comp.fractions):
        np.testing.assert_array_equal(stored, given)


def test_boxed_map_validation():
    with pytest.raises(ValueError, match="do not fit"):
        BoxedMap(np.zeros((2, 2, 2)), (slice(0, 2), slice(0, 2), slice(0, 3)), (4, 4, 4))
    with pytest.raises(ValueError, match="do not fit"):
        BoxedMap(np.zeros((2, 2, 2)), (slice(3, 5), slice(0, 2), slice(0, 2)), (4, 4, 4))
    with pytest.raises(ValueError, match="names"):
        Compartments(("a",), [np.ones((3, 3, 3)), np.ones((3, 3, 3))])
    model = _model(1)
    with pytest.raises(ValueError, match="do not fit"):
        model.project_box(np.ones((2, 2, 2)), (slice(0, 2), slice(0, 2), slice(0, 3)))


@pytest.mark.parametrize("sample_order", [1, 3])
@pytest.mark.parametrize("where", ["grid corner", "axial field-of-view edge", "beyond the field of view"])
def test_project_box_equals_the_full_model_at_the_edges(sample_order, where):
    """A box touching the T1w grid's border, straddling the PET field of view's edge, or beyond it (the
    top T1w slices, outside the PET's axial field of view but within the PSF's reach of it)."""
    model = _model(sample_order)
    rng = np.random.default_rng(5)
    starts = {"grid corner": (0, 0, 0),
              "axial field-of-view edge": (26, 30, SHAPE[2] - 12),
              "beyond the field of view": (26, 30, SHAPE[2] - 4)}[where]
    box = tuple(slice(s, min(s + 8, n)) for s, n in zip(starts, SHAPE))
    values = rng.uniform(0.2, 1.0, tuple(b.stop - b.start for b in box))
    image = np.zeros(SHAPE)
    image[box] = values
    full = model(image)
    cropped, out_box = model.project_box(values, box)
    expanded = np.zeros(SHAPE)
    expanded[out_box] = cropped
    scale = max(float(np.abs(full).max()), 1e-30)
    np.testing.assert_allclose(expanded, full, rtol=0, atol=RTOL * scale)
    assert full.any()
