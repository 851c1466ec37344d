"""Grids, rigid transforms and resampling."""

from __future__ import annotations

import numpy as np

from tspo_bids.simulate.geometry import Grid, apply_matrix, mean_displacement_mm, resample, rigid_matrix


def test_rigid_matrix_is_a_rotation_about_its_centre():
    center = np.array([10.0, -5.0, 3.0])
    matrix = rigid_matrix([10, -20, 30], [0, 0, 0], center)
    rotation = matrix[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(rotation), 1.0)
    np.testing.assert_allclose(apply_matrix(matrix, center[None]), center[None], atol=1e-12)
    # a pure 90-degree rotation about z sends x to y
    quarter = rigid_matrix([0, 0, 90], [1, 2, 3])
    np.testing.assert_allclose(apply_matrix(quarter, np.array([[1.0, 0, 0]])), [[1, 3, 3]], atol=1e-12)


def test_grid_covering_and_mapped_indices_agree_with_world_points():
    grid = Grid.covering([-10, -20, -5], [10, 20, 5], 2.5)
    points = grid.world_points()
    assert points.min(0)[0] <= -10 + 1.25 and points.max(0)[0] >= 10 - 1.25
    matrix = rigid_matrix([3, 4, 5], [1, 2, 3])
    mapped = grid.mapped_indices(matrix).reshape(3, -1).T
    np.testing.assert_allclose(mapped, apply_matrix(matrix, points), atol=1e-4)
    padded = grid.padded(2)
    assert padded.shape == tuple(s + 4 for s in grid.shape)
    np.testing.assert_allclose(padded.world_points().reshape(padded.shape + (3,))[2, 2, 2], points[0], atol=1e-5)


def test_resample_through_a_translation_moves_the_image():
    grid = Grid((20, 20, 20), np.diag([2.0, 2.0, 2.0, 1.0]))
    volume = np.zeros(grid.shape, np.float32)
    volume[10, 10, 10] = 1.0
    shift = np.eye(4)
    shift[:3, 3] = [4.0, 0.0, 0.0]  # target point x shows the source at x + 4 mm
    out = resample(volume, grid.affine, grid, target_to_source=shift, order=1)
    assert out[8, 10, 10] == 1.0 and out.sum() == 1.0


def test_mean_displacement_of_a_translation():
    shift = np.eye(4)
    shift[:3, 3] = [3.0, 4.0, 0.0]
    points = np.random.default_rng(0).normal(size=(50, 3)) * 40
    assert np.isclose(mean_displacement_mm(shift, np.eye(4), points), 5.0)
