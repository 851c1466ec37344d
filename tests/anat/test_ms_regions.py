"""Known-truth tests of the MS regions: lesion, NAWM and perilesional shells (methods.md section 4)."""

from __future__ import annotations

import numpy as np
import pytest

from tspo_bids.anat.ms_regions import MS_REGIONS, define_ms_regions, lesion_distance_mm, region_volumes_mm3
from tspo_bids.anat.regions import AtlasGroups
from tspo_bids.errors import InputError

ANISOTROPIC_MM = np.array([0.8, 1.0, 1.3])


def sphere_on_grid(radius_mm: float, voxel_mm: np.ndarray, margin_mm: float = 10.0, seed: int = 0):
    """Grid points (mm), the sphere centre (off the lattice) and the centre distance of every voxel."""
    shape = np.ceil(2 * (radius_mm + margin_mm) / voxel_mm).astype(int)
    rng = np.random.default_rng(seed)
    centre = (shape - 1) / 2 * voxel_mm + rng.uniform(-0.5, 0.5, 3) * voxel_mm
    points = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, voxel_mm)], indexing="ij"), -1)
    return points, np.linalg.norm(points - centre, axis=-1)


def shell_volume(inner_mm: float, outer_mm: float) -> float:
    return 4.0 / 3.0 * np.pi * (outer_mm**3 - inner_mm**3)


def brute_force_distance(points: np.ndarray, mask: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Exact distance (mm) from the points selected by ``where`` to the nearest voxel centre in ``mask``."""
    targets = points[mask]
    queries = points[where]
    out = np.empty(len(queries))
    for start in range(0, len(queries), 2000):
        block = queries[start : start + 2000]
        out[start : start + 2000] = np.sqrt(((block[:, None, :] - targets[None]) ** 2).sum(-1)).min(1)
    return out


@pytest.mark.parametrize(("voxel_mm", "radius_mm"), [(ANISOTROPIC_MM, 8.0), (ANISOTROPIC_MM, 4.0),
                                                     (np.array([0.4, 0.5, 0.6]), 5.0)])
def test_shell_volumes_match_the_analytical_sphere_shells(voxel_mm: np.ndarray, radius_mm: float) -> None:
    """Spherical lesion of radius R in uniform white matter.

    Truth: the lesion is the ball r <= R, ``perilesion03`` the shell R < r <= R + 3, ``perilesion36``
    R + 3 < r <= R + 6. Tolerance: the voxel representation moves each bounding sphere by at most half
    the largest voxel size, so |measured - analytical| <= h_max / 2 x (inner + outer sphere area);
    on the fine grid the shells are also within 8 % of the analytical volumes.
    """
    _, radius = sphere_on_grid(radius_mm, voxel_mm)
    lesion = radius <= radius_mm
    regions = define_ms_regions(np.ones(lesion.shape), np.zeros(lesion.shape), lesion, voxel_mm)
    assert tuple(regions) == MS_REGIONS
    volumes = region_volumes_mm3(regions, voxel_mm)
    h_max = float(voxel_mm.max())
    for name, inner, outer in (("lesion", 0.0, radius_mm), ("perilesion03", radius_mm, radius_mm + 3),
                               ("perilesion36", radius_mm + 3, radius_mm + 6)):
        truth = shell_volume(inner, outer)
        bound = h_max / 2 * 4 * np.pi * (inner**2 + outer**2)
        print(f"{voxel_mm} R={radius_mm} {name}: {volumes[name]:.0f} vs {truth:.0f} mm^3 "
              f"({100 * (volumes[name] / truth - 1):+.1f} %)")
        assert abs(volumes[name] - truth) <= bound
        if h_max <= 0.6:
            assert volumes[name] == pytest.approx(truth, rel=0.08)
    # shells are disjoint and exclude the lesion
    assert not np.any(regions["perilesion03"] & regions["perilesion36"])
    assert not np.any((regions["perilesion03"] | regions["perilesion36"]) & lesion)


def test_distances_are_exact_euclidean_mm_on_an_anisotropic_grid() -> None:
    rng = np.random.default_rng(3)
    shape = (22, 18, 14)
    points = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, ANISOTROPIC_MM)], indexing="ij"), -1)
    lesion = np.zeros(shape, bool)
    lesion[tuple(rng.integers(0, np.array(shape)[:, None], size=(3, 6)))] = True  # six scattered voxels
    lesion[5:8, 4:6, 3:5] = True
    distance = lesion_distance_mm(lesion, ANISOTROPIC_MM)
    everywhere = np.ones(shape, bool)
    np.testing.assert_allclose(distance.ravel(), brute_force_distance(points, lesion, everywhere), atol=1e-9)
    regions = define_ms_regions(np.ones(shape), np.zeros(shape), lesion, ANISOTROPIC_MM)
    exact = brute_force_distance(points, lesion, everywhere).reshape(shape)
    np.testing.assert_array_equal(regions["perilesion03"], (exact > 0) & (exact <= 3.0))
    np.testing.assert_array_equal(regions["perilesion36"], (exact > 3.0) & (exact <= 6.0))


def test_nawm_is_eroded_confident_white_matter_outside_the_6mm_neighbourhood() -> None:
    voxel_mm = ANISOTROPIC_MM
    points, radius = sphere_on_grid(5.0, voxel_mm, margin_mm=14.0)
    lesion = radius <= 5.0
    # WM probability: 1 in a slab, 0.7 in a band (not confident), 0 elsewhere
    x = points[..., 0]
    wm_prob = np.where(x < 0.8 * x.max(), 1.0, 0.0)
    wm_prob[(x > 0.1 * x.max()) & (x < 0.2 * x.max())] = 0.7
    regions = define_ms_regions(wm_prob, 1.0 - wm_prob, lesion, voxel_mm)
    nawm = regions["nawm"]
    exact = brute_force_distance(points, lesion, np.ones(lesion.shape, bool)).reshape(lesion.shape)
    assert exact[nawm].min() > 6.0  # nothing within 6 mm of a lesion
    confident = wm_prob >= 0.9
    # one-voxel erosion (26-neighbourhood) of the confident WM, computed directly
    padded = np.pad(confident, 1)
    eroded = np.ones_like(confident)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                eroded &= padded[1 + dx : padded.shape[0] - 1 + dx, 1 + dy : padded.shape[1] - 1 + dy,
                                 1 + dz : padded.shape[2] - 1 + dz]
    np.testing.assert_array_equal(nawm, eroded & (exact > 6.0))
    assert nawm.sum() > 1000
    # the shells stay in white matter (p >= 0.5): they include the 0.7 band, never the non-WM side
    shells = regions["perilesion03"] | regions["perilesion36"]
    assert np.all(wm_prob[shells] >= 0.5)


def test_shells_restricted_to_white_matter_and_atlas_exclusions() -> None:
    voxel_mm = np.array([1.0, 1.0, 1.0])
    points, radius = sphere_on_grid(6.0, voxel_mm)
    lesion = radius <= 6.0
    centre_x = points[..., 0][lesion].mean()
    wm_prob = np.where(points[..., 0] <= centre_x, 1.0, 0.2)  # half the space is not WM
    full = define_ms_regions(np.ones(lesion.shape), np.zeros(lesion.shape), lesion, voxel_mm)
    half = define_ms_regions(wm_prob, 1.0 - wm_prob, lesion, voxel_mm)
    for name in ("perilesion03", "perilesion36"):
        assert half[name].sum() == pytest.approx(full[name].sum() / 2, rel=0.06)
        assert np.all(wm_prob[half[name]] >= 0.5)
    # a deep-GM atlas group next to the lesion is removed from every WM region
    deepgm = points[..., 1] < points[..., 1][lesion].mean()
    empty = np.zeros(lesion.shape, bool)
    atlas = AtlasGroups(cerebellum=empty, vermis=empty, thalamus=empty, deepgm=deepgm)
    masked = define_ms_regions(np.ones(lesion.shape), np.zeros(lesion.shape), lesion, voxel_mm, atlas=atlas)
    for name in ("nawm", "perilesion03", "perilesion36"):
        assert not np.any(masked[name] & deepgm)
        assert masked[name].sum() > 0


def test_no_lesion_gives_empty_lesion_regions_and_full_nawm() -> None:
    shape = (10, 10, 10)
    regions = define_ms_regions(np.ones(shape), np.zeros(shape), np.zeros(shape), 1.0)
    assert not regions["lesion"].any() and not regions["perilesion03"].any() and not regions["perilesion36"].any()
    assert regions["nawm"].sum() == 8**3  # eroded by one voxel at the image border
    assert np.isinf(lesion_distance_mm(np.zeros(shape), 1.0)).all()


def test_region_names_are_bids_labels_and_errors_are_input_errors() -> None:
    assert all(name.isalnum() for name in MS_REGIONS)
    shape = (6, 6, 6)
    with pytest.raises(InputError, match="lesion mask has shape"):
        define_ms_regions(np.ones(shape), np.zeros(shape), np.zeros((5, 6, 6)), 1.0)
    with pytest.raises(InputError, match="voxel size"):
        define_ms_regions(np.ones(shape), np.zeros(shape), np.zeros(shape), (1.0, -1.0, 1.0))
    with pytest.raises(InputError, match="shell edges"):
        define_ms_regions(np.ones(shape), np.zeros(shape), np.zeros(shape), 1.0, shell_edges_mm=(0, 6, 3))
    volumes = region_volumes_mm3({"a": np.ones(shape, bool)}, (0.5, 1.0, 2.0))
    assert volumes == {"a": 216.0}
