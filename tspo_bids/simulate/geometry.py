"""Grids, rigid transforms and resampling in world (scanner RAS, mm) coordinates.

Transform convention (also written into the truth sidecars): a 4x4 matrix ``A``
``from-X_to-Y`` maps a point of X's world to the corresponding point of Y's world,
so the Y image value at X point ``x`` is ``Y(A @ x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Grid:
    """A voxel grid: array shape and voxel -> world (RAS mm) affine.

    Attributes
    ----------
    shape : tuple of int
        Number of voxels along i, j, k.
    affine : ndarray, shape (4, 4)
        Voxel index -> world coordinates, mm.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def voxel_size_mm(self) -> np.ndarray:
        """Voxel edge lengths, mm."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def n_voxels(self) -> int:
        """Number of voxels."""
        return int(np.prod(self.shape))

    @classmethod
    def covering(cls, lower_mm: np.ndarray, upper_mm: np.ndarray, voxel_size_mm) -> "Grid":
        """Axis-aligned grid whose voxel centres span the box ``[lower_mm, upper_mm]``.

        Parameters
        ----------
        lower_mm, upper_mm : array-like, shape (3,)
            Corners of the box in world coordinates, mm.
        voxel_size_mm : float or array-like, shape (3,)
            Voxel edge lengths, mm.
        """
        voxel = np.broadcast_to(np.asarray(voxel_size_mm, float), (3,))
        lower = np.asarray(lower_mm, float)
        extent = np.asarray(upper_mm, float) - lower
        shape = tuple(int(n) for n in np.ceil(extent / voxel).astype(int) + 1)
        affine = np.eye(4)
        affine[:3, :3] = np.diag(voxel)
        # centre the grid on the box so rounding is shared by both ends
        affine[:3, 3] = lower + (extent - (np.asarray(shape) - 1) * voxel) / 2
        return cls(shape, affine)

    def padded(self, n_voxels: int) -> "Grid":
        """The same grid extended by ``n_voxels`` on every side."""
        affine = self.affine.copy()
        affine[:3, 3] = self.affine[:3, :3] @ np.full(3, -float(n_voxels)) + self.affine[:3, 3]
        shape = tuple(int(s) + 2 * n_voxels for s in self.shape)
        return Grid(shape, affine)

    def mapped_indices(self, matrix: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """``matrix @ affine @ ijk`` for every voxel, shape (3, X, Y, Z), without an (N, 3) temporary.

        Parameters
        ----------
        matrix : ndarray, shape (4, 4)
            Any affine applied after this grid's voxel -> world affine.
        """
        full = np.asarray(matrix, float) @ self.affine
        i, j, k = (np.arange(n, dtype=dtype) for n in self.shape)
        out = np.empty((3,) + self.shape, dtype)
        for axis in range(3):
            out[axis] = (full[axis, 0] * i[:, None, None] + full[axis, 1] * j[None, :, None]
                         + full[axis, 2] * k[None, None, :] + full[axis, 3])
        return out

    def world_points(self) -> np.ndarray:
        """World coordinates of every voxel centre, shape (X*Y*Z, 3), C order, mm."""
        ijk = np.indices(self.shape, dtype=np.float32).reshape(3, -1)
        return (self.affine[:3, :3] @ ijk).T + self.affine[:3, 3]


def rigid_matrix(rotation_deg, translation_mm, center_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 rigid transform: rotation (x, then y, then z axes) about a centre, then translation.

    Parameters
    ----------
    rotation_deg : array-like, shape (3,)
        Rotation angles about the x, y and z axes, degrees.
    translation_mm : array-like, shape (3,)
        Translation, mm.
    center_mm : array-like, shape (3,)
        Point the rotation keeps fixed, mm.
    """
    ax, ay, az = np.deg2rad(np.asarray(rotation_deg, float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rotation = rz @ ry @ rx
    center = np.asarray(center_mm, float)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = center - rotation @ center + np.asarray(translation_mm, float)
    return matrix


def random_rigid(rng: np.random.Generator, max_rotation_deg: float, max_translation_mm: float,
                 center_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Rigid transform with rotations and translations drawn uniformly in +-max."""
    rotation = rng.uniform(-max_rotation_deg, max_rotation_deg, 3)
    translation = rng.uniform(-max_translation_mm, max_translation_mm, 3)
    return rigid_matrix(rotation, translation, center_mm)


def apply_matrix(matrix: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    """Apply a 4x4 matrix to points of shape (N, 3)."""
    points = np.asarray(points_mm)
    # (3,3) @ (3,N) is several times faster than (N,3) @ (3,3) for large N
    return (matrix[:3, :3].astype(points.dtype) @ points.T).T + matrix[:3, 3].astype(points.dtype)


def resample(volume: np.ndarray, source_affine: np.ndarray, target: Grid,
             target_to_source: np.ndarray | None = None, order: int = 1) -> np.ndarray:
    """Resample a 3D volume, or a stack of volumes on its last axis, onto a target grid.

    Parameters
    ----------
    volume : ndarray, shape (X, Y, Z) or (X, Y, Z, T)
        Source data.
    source_affine : ndarray, shape (4, 4)
        Source voxel -> source world affine.
    target : Grid
        Grid to fill.
    target_to_source : ndarray, shape (4, 4), optional
        Target world point -> source world point (identity by default).
    order : int
        Spline order (1 = trilinear, as the pipeline resamples PET).

    Returns
    -------
    ndarray, shape target.shape (+ (T,))
        Zero outside the source field of view.
    """
    matrix = np.eye(4) if target_to_source is None else np.asarray(target_to_source, float)
    voxel_map = np.linalg.inv(source_affine) @ matrix @ target.affine
    data = np.asarray(volume)
    if data.ndim == 3:
        return ndimage.affine_transform(data, voxel_map, output_shape=target.shape, order=order,
                                        mode="constant", cval=0.0, prefilter=False)
    out = np.empty(target.shape + data.shape[3:], dtype=np.result_type(data.dtype, np.float32))
    for index in np.ndindex(data.shape[3:]):
        out[(...,) + index] = ndimage.affine_transform(
            data[(...,) + index], voxel_map, output_shape=target.shape, order=order,
            mode="constant", cval=0.0, prefilter=False)
    return out


def mean_displacement_mm(matrix_a: np.ndarray, matrix_b: np.ndarray, points_mm: np.ndarray) -> float:
    """Mean distance between where two transforms send the same points, mm."""
    return float(np.linalg.norm(apply_matrix(matrix_a, points_mm) - apply_matrix(matrix_b, points_mm),
                                axis=1).mean())
