"""World (RAS+) rigid/affine matrices: ANTs/ITK conversion, files, resampling, errors.

Convention used throughout :mod:`tspo_bids.registration`
-------------------------------------------------------
A *world matrix* ``A`` (4x4, mm) maps points of the **fixed/reference** space to
points of the **moving** space, in scanner RAS+ world coordinates (nibabel's
convention). It is a pull-back: the moving image resampled onto the reference grid
takes, at reference world point ``x``, the value of the moving image at ``A @ x``.
This is also what an ITK/ANTs transform file means (``antsApplyTransforms -r FIXED
-i MOVING -t file``), except that ITK works in LPS+ coordinates::

    A_ras = F @ A_lps @ F,    F = diag(-1, -1, 1, 1)

and stores an affine transform as ``T(x) = M (x - c) + c + t`` (parameters: the 9
entries of ``M`` row by row, then ``t``; fixed parameters: the centre ``c``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

#: RAS+ <-> LPS+ flip (its own inverse).
LPS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Default random seed of every ANTs call in this package (deterministic sampling).
DEFAULT_RANDOM_SEED = 20240601

_ITK_AFFINE_TYPES = (
    "AffineTransform",
    "MatrixOffsetTransformBase",
    "Euler3DTransform",
    "VersorRigid3DTransform",
    "Rigid3DTransform",
)


# ----------------------------------------------------------------- ANTs runtime
def set_ants_threads(n_threads: int) -> None:
    """Ask ITK/ANTs to use ``n_threads`` threads.

    ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once, when the process first
    uses an ITK filter; later changes have no effect in that process. The Nipype
    interfaces run each node in its own process, so calling this at the start of a
    node (every public function here does) fixes the thread count of that node.
    With one thread, results are bit-reproducible.

    Parameters
    ----------
    n_threads : int
        Number of threads, >= 1.
    """
    if int(n_threads) < 1:
        raise ValueError("n_threads must be >= 1")
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(int(n_threads))


@contextlib.contextmanager
def ants_random_seed(seed: int | None) -> Iterator[None]:
    """Run ANTs calls with a fixed ``--random-seed`` (restored afterwards).

    antspyx only reads the seed from its module-level configuration.
    """
    import ants

    previous = ants.config._random_seed
    ants.config._random_seed = None if seed is None else int(seed)
    try:
        yield
    finally:
        ants.config._random_seed = previous


@contextlib.contextmanager
def private_tempdir(prefix: str = "tspo_ants_") -> Iterator[Path]:
    """Point :mod:`tempfile` at a fresh directory for the duration, then delete it.

    Some antspyx functions write their results to ``tempfile.mktemp()`` names and never
    remove them (``ants.atropos`` leaves one ``antsr*prob*.nii.gz`` per class, a few MB
    each, in ``$TMPDIR``: gigabytes over a cohort on a shared HPC ``/tmp``). Inside this
    context such names fall in a private directory that is removed on exit, also when the
    call fails (a process killed by a signal leaves it behind, as it left the files before).
    Not thread-safe: it sets the module-level ``tempfile.tempdir``; a Nipype process runs one
    node at a time.

    Yields
    ------
    pathlib.Path
        The private directory.
    """
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix=prefix) as private:
        tempfile.tempdir = private
        try:
            yield Path(private)
        finally:
            tempfile.tempdir = previous


# ------------------------------------------------------------ image conversion
def as_nifti(img: nib.spatialimages.SpatialImage | str | os.PathLike) -> nib.Nifti1Image:
    """Return ``img`` as a nibabel image (loading it when given a path)."""
    if isinstance(img, (str, os.PathLike)):
        return nib.load(os.fspath(img))
    return img


def nifti_to_ants(img: nib.spatialimages.SpatialImage, data: np.ndarray | None = None):
    """Convert a 3D nibabel image (or ``data`` on its grid) to an ANTs image.

    The voxel-to-world affine is carried exactly: ITK origin, spacing and direction
    are taken from the LPS+ version of the affine (shear is not representable and
    is refused).

    Parameters
    ----------
    img : nibabel image
        Supplies the grid (first three axes).
    data : ndarray, shape img.shape[:3], optional
        Voxel values to use instead of ``img``'s own.

    Returns
    -------
    ants.ANTsImage (float32)
    """
    import ants

    values = np.asarray(img.dataobj if data is None else data, dtype=np.float32)
    if values.ndim != 3:
        raise ValueError(f"expected a 3D image, got shape {values.shape}")
    origin, spacing, direction = _itk_geometry(img.affine)
    return ants.from_numpy(
        np.ascontiguousarray(values), origin=origin, spacing=spacing, direction=direction
    )


def ants_to_nifti(
    image, dtype: type = np.float32, like: nib.spatialimages.SpatialImage | None = None
) -> nib.Nifti1Image:
    """Convert a 3D ANTs image to a nibabel image (RAS+ affine from its LPS geometry).

    Parameters
    ----------
    image : ants.ANTsImage
    dtype : numpy dtype
        Data type of the output array.
    like : nibabel image, optional
        When given, its affine is used (the grids must agree; checked to 1e-4 mm).
    """
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = np.asarray(image.direction) @ np.diag(image.spacing)
    affine_lps[:3, 3] = image.origin
    affine = LPS_FLIP @ affine_lps
    if like is not None:
        if not np.allclose(affine, like.affine, atol=1e-4) or like.shape[:3] != image.shape:
            raise ValueError("ANTs image grid differs from the reference nibabel grid")
        affine = like.affine
    out = nib.Nifti1Image(np.asarray(image.numpy(), dtype=dtype), affine)
    out.header.set_xyzt_units("mm")
    return out


def _itk_geometry(affine_ras: np.ndarray) -> tuple[list[float], list[float], np.ndarray]:
    """ITK (origin, spacing, direction) of a voxel-to-RAS affine."""
    affine_lps = LPS_FLIP @ np.asarray(affine_ras, dtype=float)
    linear = affine_lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    direction = linear / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-5):
        raise ValueError("image affine has shear; ANTs/ITK grids cannot represent it")
    return affine_lps[:3, 3].tolist(), spacing.tolist(), direction


# -------------------------------------------------------- ITK <-> world matrix
def itk_to_world_matrix(
    parameters: Sequence[float], fixed_parameters: Sequence[float]
) -> np.ndarray:
    """World (RAS+) matrix of an ITK 3D affine transform's parameters.

    Parameters
    ----------
    parameters : 12 floats
        ``M`` (row-major, 9 values) then translation ``t`` (3 values), LPS+ mm.
    fixed_parameters : 3 floats
        Centre of rotation ``c`` (LPS+ mm).

    Returns
    -------
    ndarray, shape (4, 4)
        Fixed-to-moving world matrix in RAS+ mm.
    """
    params = np.asarray(parameters, dtype=float)
    centre = np.asarray(fixed_parameters, dtype=float)
    if params.size != 12 or centre.size != 3:
        raise ValueError("expected 12 affine parameters and a 3-vector centre")
    linear = params[:9].reshape(3, 3)
    matrix_lps = np.eye(4)
    matrix_lps[:3, :3] = linear
    matrix_lps[:3, 3] = params[9:] + centre - linear @ centre
    return LPS_FLIP @ matrix_lps @ LPS_FLIP


def world_to_itk_parameters(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ITK affine (parameters, fixed_parameters) of a world (RAS+) matrix, centre 0."""
    matrix = _check_matrix(matrix)
    matrix_lps = LPS_FLIP @ matrix @ LPS_FLIP
    params = np.concatenate([matrix_lps[:3, :3].ravel(), matrix_lps[:3, 3]])
    return params, np.zeros(3)


def ants_transform_to_world_matrix(transform) -> np.ndarray:
    """World (RAS+) matrix of an ANTs linear transform (object or file path)."""
    import ants

    if isinstance(transform, (str, os.PathLike)):
        transform = ants.read_transform(os.fspath(transform))
    kind = transform.transform_type
    if not kind.startswith(_ITK_AFFINE_TYPES):
        raise ValueError(f"not a linear ITK transform: {kind}")
    if kind.startswith(("AffineTransform", "MatrixOffsetTransformBase")):
        return itk_to_world_matrix(transform.parameters, transform.fixed_parameters)
    # Other linear types: probe with points (exact for affine maps up to precision).
    probes = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float) * 100.0
    mapped = np.array([transform.apply_to_point(tuple(p)) for p in probes])
    matrix_lps = np.eye(4)
    matrix_lps[:3, :3] = ((mapped[1:] - mapped[0]) / 100.0).T
    matrix_lps[:3, 3] = mapped[0]
    return LPS_FLIP @ matrix_lps @ LPS_FLIP


def world_matrix_to_ants_transform(matrix: np.ndarray):
    """ANTs ``AffineTransform`` (double) equivalent to a world (RAS+) matrix."""
    import ants

    params, centre = world_to_itk_parameters(matrix)
    transform = ants.create_ants_transform(
        transform_type="AffineTransform", precision="double", dimension=3
    )
    transform.set_parameters(params)
    transform.set_fixed_parameters(centre)
    return transform


def save_itk_transform(matrix: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a world matrix as an ITK transform file that ANTs reads.

    ``.txt`` is written as ITK's text format (``AffineTransform_double_3_3``,
    full double precision); ``.mat`` uses ITK's binary MATLAB format via ANTs.
    The file maps fixed (reference) points to moving points in LPS+, i.e. it is
    the transform ``antsApplyTransforms -r FIXED -i MOVING -t FILE`` expects.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    params, centre = world_to_itk_parameters(matrix)
    if path.suffix == ".txt":
        lines = [
            "#Insight Transform File V1.0",
            "#Transform 0",
            "Transform: AffineTransform_double_3_3",
            "Parameters: " + " ".join(repr(float(v)) for v in params),
            "FixedParameters: " + " ".join(repr(float(v)) for v in centre),
            "",
        ]
        path.write_text("\n".join(lines))
    elif path.suffix == ".mat":
        import ants

        ants.write_transform(world_matrix_to_ants_transform(matrix), str(path))
    else:
        raise ValueError(f"transform file must end in .txt or .mat: {path}")
    return path


def load_itk_transform(path: str | os.PathLike) -> np.ndarray:
    """Read an ITK/ANTs linear transform file (.txt or .mat) as a world matrix."""
    path = Path(path)
    if path.suffix == ".txt":
        fields: dict[str, list[float]] = {}
        kind = ""
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Transform":
                if kind:
                    raise ValueError(f"{path}: composite transforms are not supported")
                kind = value.strip()
            elif key.strip() in ("Parameters", "FixedParameters"):
                fields[key.strip()] = [float(v) for v in value.split()]
        if kind.startswith(("AffineTransform", "MatrixOffsetTransformBase")):
            return itk_to_world_matrix(fields["Parameters"], fields["FixedParameters"])
    return ants_transform_to_world_matrix(path)


def _check_matrix(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise ValueError("expected a 4x4 affine matrix with last row [0, 0, 0, 1]")
    return matrix


# ----------------------------------------------------------- building matrices
def rigid_matrix(
    rotation_deg: Sequence[float] = (0.0, 0.0, 0.0),
    translation_mm: Sequence[float] = (0.0, 0.0, 0.0),
    centre_mm: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Rigid world matrix: rotation about ``centre_mm`` then translation.

    Parameters
    ----------
    rotation_deg : 3 floats
        Rotations about the x, y and z axes (degrees), applied x then y then z.
    translation_mm : 3 floats
        Translation (mm).
    centre_mm : 3 floats
        Centre of rotation (world mm).

    Returns
    -------
    ndarray, shape (4, 4)
        ``x -> R (x - c) + c + t``.
    """
    ax, ay, az = np.deg2rad(np.asarray(rotation_deg, dtype=float))
    rot_x = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rot_y = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rot_z = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rotation = rot_z @ rot_y @ rot_x
    centre = np.asarray(centre_mm, dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre - rotation @ centre + np.asarray(translation_mm, dtype=float)
    return matrix


# ---------------------------------------------------------------- evaluation
def mask_points_world(mask_img: nib.spatialimages.SpatialImage) -> np.ndarray:
    """World (RAS+ mm) coordinates of the non-zero voxels of a mask, shape (N, 3)."""
    indices = np.argwhere(np.asarray(mask_img.dataobj) > 0)
    return nib.affines.apply_affine(mask_img.affine, indices)


def mean_displacement_mm(
    matrix_est: np.ndarray, matrix_true: np.ndarray, points_world: np.ndarray
) -> float:
    """Mean distance (mm) between where two world matrices send the same points.

    Parameters
    ----------
    matrix_est, matrix_true : ndarray, shape (4, 4)
        World matrices of the same direction (e.g. both fixed-to-moving).
    points_world : ndarray, shape (N, 3)
        World points (mm), typically the brain voxels of the fixed image.

    Returns
    -------
    float
        ``mean_i || A_est p_i - A_true p_i ||`` in mm.
    """
    points = np.asarray(points_world, dtype=float).reshape(-1, 3)
    diff = nib.affines.apply_affine(_check_matrix(matrix_est), points) - nib.affines.apply_affine(
        _check_matrix(matrix_true), points
    )
    return float(np.mean(np.linalg.norm(diff, axis=1)))


# ----------------------------------------------------------------- resampling
def resample_to(
    moving_img: nib.spatialimages.SpatialImage,
    reference_img: nib.spatialimages.SpatialImage,
    matrix: np.ndarray | None = None,
    order: int = 1,
    cval: float = 0.0,
) -> nib.Nifti1Image:
    """Resample a 3D or 4D image onto a reference grid through a world matrix.

    Parameters
    ----------
    moving_img : nibabel image, 3D or 4D
        Image to resample; a 4D image is resampled frame by frame.
    reference_img : nibabel image
        Supplies the output grid (first three axes) and affine.
    matrix : ndarray, shape (4, 4), optional
        Reference-to-moving world matrix (see the module docstring);
        identity when omitted (plain regridding).
    order : int
        Spline order: 0 nearest neighbour (labels; dtype kept), 1 trilinear, 3 cubic.
    cval : float
        Value outside the moving field of view.

    Returns
    -------
    nibabel.Nifti1Image
        On the reference grid; float32 unless ``order == 0``.
    """
    matrix = np.eye(4) if matrix is None else _check_matrix(matrix)
    vox_map = np.linalg.inv(moving_img.affine) @ matrix @ reference_img.affine
    shape = reference_img.shape[:3]
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    coords = (vox_map[:3, :3].astype(np.float32) @ grid) + vox_map[:3, 3:4].astype(np.float32)

    data = np.asarray(moving_img.dataobj)
    out_dtype = data.dtype if order == 0 else np.float32
    work = data if order == 0 else data.astype(np.float32)

    def _one(volume: np.ndarray) -> np.ndarray:
        values = ndimage.map_coordinates(
            volume, coords, order=order, mode="constant", cval=cval, prefilter=order > 1
        )
        return values.reshape(shape).astype(out_dtype, copy=False)

    if work.ndim == 3:
        out = _one(work)
    elif work.ndim == 4:
        out = np.stack([_one(work[..., k]) for k in range(work.shape[3])], axis=-1)
    else:
        raise ValueError(f"expected a 3D or 4D image, got shape {work.shape}")
    result = nib.Nifti1Image(out, reference_img.affine)
    result.header.set_xyzt_units("mm", "sec")
    if work.ndim == 4:
        zooms = tuple(reference_img.header.get_zooms()[:3]) + (moving_img.header.get_zooms()[3],)
        result.header.set_zooms(zooms)
    return result
