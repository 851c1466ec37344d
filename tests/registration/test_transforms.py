"""World-matrix <-> ITK/ANTs conversion, transform files, resampling: exact cases."""

from __future__ import annotations

import ants
import nibabel as nib
import numpy as np
import pytest

from tspo_bids.registration import transforms as T


def _oblique_image(shape=(20, 24, 18)) -> nib.Nifti1Image:
    rotation = T.rigid_matrix((10.0, -20.0, 30.0))[:3, :3]
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.5, 2.0, 2.5])
    affine[:3, 3] = [-30.0, 12.0, -7.5]
    data = np.random.default_rng(1).random(shape).astype(np.float32)
    return nib.Nifti1Image(data, affine)


def test_itk_parameters_to_world_matrix_match_hand_computation():
    # ITK: T(x) = M (x - c) + c + t in LPS; RAS matrix = F T F with F = diag(-1,-1,1)
    linear = T.rigid_matrix((5.0, -7.0, 11.0))[:3, :3]
    translation = np.array([1.0, -2.0, 3.5])
    centre = np.array([10.0, -20.0, 30.0])
    params = np.concatenate([linear.ravel(), translation])
    expected_lps = np.eye(4)
    expected_lps[:3, :3] = linear
    expected_lps[:3, 3] = linear @ -centre + centre + translation
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    got = T.itk_to_world_matrix(params, centre)
    np.testing.assert_allclose(got, flip @ expected_lps @ flip, atol=1e-12)


def test_world_matrix_agrees_with_ants_point_transform():
    matrix = T.rigid_matrix((3.0, 8.0, -12.0), (4.0, -5.0, 6.0), (10.0, 20.0, -5.0))
    transform = T.world_matrix_to_ants_transform(matrix)
    points_ras = np.random.default_rng(0).uniform(-80, 80, size=(25, 3))
    for p in points_ras:
        lps = np.array([-p[0], -p[1], p[2]])
        mapped_lps = np.array(transform.apply_to_point(tuple(lps)))
        mapped_ras = np.array([-mapped_lps[0], -mapped_lps[1], mapped_lps[2]])
        np.testing.assert_allclose(mapped_ras, nib.affines.apply_affine(matrix, p), atol=1e-6)
    np.testing.assert_allclose(T.ants_transform_to_world_matrix(transform), matrix, atol=1e-12)


@pytest.mark.parametrize("suffix", [".txt", ".mat"])
def test_transform_file_round_trip(tmp_path, suffix):
    matrix = T.rigid_matrix((-4.0, 2.5, 9.0), (1.25, -3.0, 7.0), (5.0, -10.0, 15.0))
    path = T.save_itk_transform(matrix, tmp_path / f"xfm{suffix}")
    np.testing.assert_allclose(T.load_itk_transform(path), matrix, atol=1e-6)
    # ANTs itself reads the file to the same transform
    np.testing.assert_allclose(T.ants_transform_to_world_matrix(ants.read_transform(str(path))), matrix, atol=1e-5)


def test_saved_transform_resamples_like_resample_to(tmp_path):
    """antsApplyTransforms with the saved file == resample_to with the matrix."""
    moving = _oblique_image()
    centre = nib.affines.apply_affine(moving.affine, np.array(moving.shape) / 2.0)
    reference = nib.Nifti1Image(
        np.zeros((16, 15, 14), np.float32), nib.affines.from_matvec(np.eye(3) * 2.0, centre - 15.0)
    )
    matrix = T.rigid_matrix((6.0, -4.0, 3.0), (2.0, 1.0, -3.0), centre)
    path = T.save_itk_transform(matrix, tmp_path / "xfm.txt")
    ours = T.resample_to(moving, reference, matrix, order=1).get_fdata()
    theirs = ants.apply_transforms(
        fixed=T.nifti_to_ants(reference), moving=T.nifti_to_ants(moving),
        transformlist=[str(path)], interpolator="linear",
    ).numpy()
    inside = (ours != 0) & (theirs != 0)
    assert inside.sum() > 1000
    np.testing.assert_allclose(ours[inside], theirs[inside], atol=1e-4)


def test_nifti_ants_round_trip_keeps_oblique_geometry():
    image = _oblique_image()
    converted = T.nifti_to_ants(image)
    index = (3, 5, 7)
    lps = np.array(ants.transform_index_to_physical_point(converted, index))
    ras = nib.affines.apply_affine(image.affine, index)
    np.testing.assert_allclose(lps * [-1, -1, 1], ras, atol=1e-4)
    back = T.ants_to_nifti(converted)
    np.testing.assert_allclose(back.affine, image.affine, atol=1e-5)
    np.testing.assert_array_equal(back.get_fdata(), image.get_fdata())


def test_sheared_affine_refused():
    affine = np.eye(4)
    affine[0, 1] = 0.3
    with pytest.raises(ValueError, match="shear"):
        T.nifti_to_ants(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), affine))


def test_mean_displacement_closed_form():
    points = np.random.default_rng(2).uniform(-50, 50, (100, 3))
    shift = nib.affines.from_matvec(np.eye(3), [3.0, 4.0, 0.0])
    assert T.mean_displacement_mm(shift, np.eye(4), points) == pytest.approx(5.0, abs=1e-12)
    # rotation by theta about the z axis through the origin moves a point at radius r by 2 r sin(theta/2)
    ring = np.array([[10.0 * np.cos(a), 10.0 * np.sin(a), 5.0] for a in np.linspace(0, 6, 50)])
    rotation = T.rigid_matrix((0.0, 0.0, 10.0))
    assert T.mean_displacement_mm(rotation, np.eye(4), ring) == pytest.approx(20.0 * np.sin(np.deg2rad(5.0)), rel=1e-12)


def test_resample_to_integer_shift_and_4d():
    data = np.random.default_rng(3).random((10, 12, 14, 3)).astype(np.float32)
    image = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    shift = nib.affines.from_matvec(np.eye(3), [4.0, 0.0, -2.0])  # +2 voxels in i, -1 in k
    out = T.resample_to(image, image, shift, order=1).get_fdata()
    assert out.shape == data.shape
    np.testing.assert_allclose(out[:-2, :, 1:], data[2:, :, :-1], atol=1e-6)
    assert np.all(out[-2:] == 0)
    labels = nib.Nifti1Image((data[..., 0] * 5).astype(np.int16), image.affine)
    nearest = T.resample_to(labels, labels, shift, order=0)
    assert nearest.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(nearest.dataobj)[:-2, :, 1:], np.asarray(labels.dataobj)[2:, :, :-1])
    np.testing.assert_allclose(T.resample_to(image, image).get_fdata(), data, atol=1e-6)


def test_rigid_matrix_keeps_centre_fixed():
    centre = np.array([12.0, -7.0, 30.0])
    matrix = T.rigid_matrix((20.0, -10.0, 5.0), (0.0, 0.0, 0.0), centre)
    np.testing.assert_allclose(nib.affines.apply_affine(matrix, centre), centre, atol=1e-12)
    np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-12)
