"""Subject anatomy: the MNI152 template deformed into a subject, white-matter lesions, MR images.

The template (:func:`tspo_bids.anat.template.load_template`) is brain-only (no skull,
scalp or neck), so every synthetic image is brain-only too: background is zero
activity / pure MR noise.

A subject is a mapping from its scanner world (T1w session, RAS mm) to the template
world: ``m = pose @ x + u(x)``, with ``pose`` an anisotropic scaling times a rigid
transform and ``u`` a smooth random displacement field (Gaussian-smoothed white
noise, a few mm). True tissue probabilities on any grid are the template's
probability maps sampled (trilinear) at the mapped voxel centres; atlas labels are
sampled by nearest neighbour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from tspo_bids.anat.regions import AtlasGroups
from tspo_bids.anat.template import AAL_LABEL_GROUPS, Template
from tspo_bids.simulate.geometry import Grid, apply_matrix, rigid_matrix


@dataclass(frozen=True)
class Deformation:
    """Subject world -> template world mapping ``m = pose @ x + u(x)``.

    Attributes
    ----------
    pose : ndarray, shape (4, 4)
        Affine part (scaling times rigid), subject world -> template world, mm.
    displacement_mm : ndarray, shape (3, X, Y, Z)
        Displacement ``u`` sampled on a coarse grid in subject world, mm.
    displacement_affine : ndarray, shape (4, 4)
        Voxel -> subject world affine of that coarse grid.
    """

    pose: np.ndarray
    displacement_mm: np.ndarray
    displacement_affine: np.ndarray

    def template_voxels(self, grid: Grid, template_affine: np.ndarray,
                        image_to_subject: np.ndarray | None = None) -> np.ndarray:
        """Template voxel coordinates of every voxel of a grid, shape (3, X, Y, Z), float32.

        Parameters
        ----------
        grid : Grid
            A grid in some image's world.
        template_affine : ndarray, shape (4, 4)
            Template voxel -> template world.
        image_to_subject : ndarray, shape (4, 4), optional
            That image's world -> subject world (identity by default).
        """
        to_subject = np.eye(4) if image_to_subject is None else np.asarray(image_to_subject, float)
        inv_template = np.linalg.inv(template_affine)
        coords = grid.mapped_indices(inv_template @ self.pose @ to_subject)
        # displacement (subject world, mm) resampled onto the grid: linear is ample for a field this smooth
        grid_to_field = np.linalg.inv(self.displacement_affine) @ to_subject @ grid.affine
        for component in range(3):
            shift = ndimage.affine_transform(self.displacement_mm[component], grid_to_field, output_shape=grid.shape,
                                             order=1, mode="nearest")
            for axis in range(3):
                coords[axis] += inv_template[axis, component] * shift
        return coords

    def to_template(self, points_mm: np.ndarray) -> np.ndarray:
        """Template-world positions of subject-world points, shape (N, 3), mm."""
        ijk = apply_matrix(np.linalg.inv(self.displacement_affine), points_mm).T
        out = apply_matrix(self.pose, points_mm)
        for axis in range(3):
            # linear interpolation (as in template_voxels); constant outside
            out[:, axis] += ndimage.map_coordinates(self.displacement_mm[axis], ijk, order=1,
                                                    mode="nearest")
        return out


def template_brain_points(template: Template, step: int = 3) -> np.ndarray:
    """World coordinates of (a subsample of) the template's brain voxels, mm."""
    mask = np.asarray(template.brain_mask.dataobj) > 0
    ijk = np.argwhere(mask[::step, ::step, ::step]) * step
    return apply_matrix(template.brain_mask.affine, ijk.astype(float))


def random_deformation(rng: np.random.Generator, template: Template, *,
                       displacement_rms_mm: float = 2.0, smoothness_mm: float = 15.0,
                       max_rotation_deg: float = 8.0, max_translation_mm: float = 10.0,
                       scale_range: tuple[float, float] = (0.94, 1.06)) -> Deformation:
    """Draw a subject: random pose (scaling + rigid) and smooth displacement field.

    Parameters
    ----------
    rng : numpy.random.Generator
    template : Template
    displacement_rms_mm : float
        Root-mean-square of each displacement component inside the brain, mm.
    smoothness_mm : float
        Standard deviation of the Gaussian that smooths the white noise, mm.
    max_rotation_deg, max_translation_mm : float
        Bounds of the subject's head pose in the scanner.
    scale_range : (float, float)
        Bounds of the per-axis template/subject size ratio.
    """
    brain_center = template_brain_points(template).mean(axis=0)
    scaling = np.diag(np.append(rng.uniform(*scale_range, 3), 1.0))
    # subject -> template: rotate/translate the head, then scale it to template size;
    # the subject's head sits near the scanner origin.
    rigid = rigid_matrix(rng.uniform(-max_rotation_deg, max_rotation_deg, 3),
                         rng.uniform(-max_translation_mm, max_translation_mm, 3))
    to_center = np.eye(4)
    to_center[:3, 3] = brain_center
    pose = to_center @ scaling @ rigid

    subject_points = apply_matrix(np.linalg.inv(pose), template_brain_points(template, step=6))
    spacing_mm = 4.0
    coarse = Grid.covering(subject_points.min(0) - 30, subject_points.max(0) + 30, spacing_mm)
    noise = rng.standard_normal((3,) + coarse.shape)
    # periodic boundaries keep the smoothed noise stationary up to the edges of the field
    field = np.stack([ndimage.gaussian_filter(n, smoothness_mm / spacing_mm, mode="wrap")
                      for n in noise])
    inner = tuple(slice(int(30 / spacing_mm), -int(30 / spacing_mm)) for _ in range(3))
    rms = np.sqrt((field[(slice(None),) + inner] ** 2).mean())
    field *= displacement_rms_mm / rms
    return Deformation(pose=pose, displacement_mm=field.astype(np.float32),
                       displacement_affine=coarse.affine)


@dataclass(frozen=True)
class Lesion:
    """An ellipsoidal white-matter lesion in subject (T1w) world.

    Attributes
    ----------
    center_mm : ndarray, shape (3,)
    semi_axes_mm : ndarray, shape (3,)
    rotation : ndarray, shape (3, 3)
        Columns are the ellipsoid axes in world coordinates.
    """

    center_mm: np.ndarray
    semi_axes_mm: np.ndarray
    rotation: np.ndarray

    @property
    def volume_mm3(self) -> float:
        """Nominal ellipsoid volume, mm^3."""
        return float(4.0 / 3.0 * np.pi * np.prod(self.semi_axes_mm))

    def fraction(self, points_mm: np.ndarray, voxel_mm: float) -> np.ndarray:
        """Partial-volume fraction of voxels (centres ``points_mm``) inside the ellipsoid.

        A linear ramp one voxel wide across the surface approximates the voxel
        average (its sum over a grid times the voxel volume is the ellipsoid volume
        to within a few per cent).
        """
        local = (np.asarray(points_mm) - self.center_mm) @ self.rotation / self.semi_axes_mm
        radius = np.sqrt((local ** 2).sum(axis=1))
        # distance to the surface along the ray, mm (exact on a sphere)
        depth_mm = (1.0 - radius) * float(np.min(self.semi_axes_mm))
        return np.clip(0.5 + depth_mm / voxel_mm, 0.0, 1.0).astype(np.float32)

    def bounding_box_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box containing the ellipsoid (plus one mm), mm."""
        half = np.abs(self.rotation) @ self.semi_axes_mm + 1.0
        return self.center_mm - half, self.center_mm + half


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def lesion_volumes(rng: np.random.Generator, n_large: int, n_small: int) -> list[float]:
    """Lesion volumes: ``n_large`` in [550, 2000] mm^3 and ``n_small`` in [30, 300] mm^3."""
    large = rng.uniform(550.0, 2000.0, n_large)
    small = np.exp(rng.uniform(np.log(30.0), np.log(300.0), n_small))
    return [float(v) for v in np.concatenate([large, small])]


@dataclass
class TissueMaps:
    """True tissue content of every voxel of a grid.

    Attributes
    ----------
    grid : Grid
    gm, wm, csf : ndarray of float32, shape grid.shape
        Probabilities (volume fractions) in [0, 1]; ``wm`` includes lesion tissue.
    lesion : ndarray of float32
        Volume fraction of lesion tissue (part of ``wm``).
    atlas_labels : ndarray of int16
        AAL labels (nearest neighbour).
    lesion_labels : ndarray of uint16
        Index (1-based) of the lesion holding most of each voxel's lesion tissue, 0
        where there is none (also voxels with a small lesion fraction).
    """

    grid: Grid
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    atlas_labels: np.ndarray
    lesion: np.ndarray = field(default=None)  # type: ignore[assignment]
    lesion_labels: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.lesion is None:
            self.lesion = np.zeros(self.grid.shape, np.float32)
        if self.lesion_labels is None:
            self.lesion_labels = np.zeros(self.grid.shape, np.uint16)

    def atlas_group(self, group: str) -> np.ndarray:
        """Boolean mask of an atlas label group (a key of ``AAL_LABEL_GROUPS``)."""
        return np.isin(self.atlas_labels, AAL_LABEL_GROUPS[group])

    def atlas_groups(self) -> AtlasGroups:
        """The atlas groups :func:`tspo_bids.anat.regions.define_regions` needs."""
        return AtlasGroups(*(self.atlas_group(g) for g in ("cerebellum", "vermis", "thalamus", "deepgm")))

    @property
    def brain_mask(self) -> np.ndarray:
        """Voxels at least half brain tissue or intracranial CSF."""
        return (self.gm + self.wm + self.csf) >= 0.5

    @property
    def lesion_mask(self) -> np.ndarray:
        """Voxels at least half lesion."""
        return self.lesion >= 0.5

    def lesion_index_map(self) -> np.ndarray:
        """Lesion index inside the lesion mask, 0 elsewhere (uint16)."""
        return np.where(self.lesion_mask, self.lesion_labels, 0).astype(np.uint16)

    def cropped(self, lower: Sequence[int], upper: Sequence[int]) -> "TissueMaps":
        """The maps on the sub-grid of voxels ``lower <= ijk < upper``."""
        box = tuple(slice(int(a), int(b)) for a, b in zip(lower, upper))
        affine = self.grid.affine.copy()
        affine[:3, 3] = apply_matrix(self.grid.affine, np.asarray(lower, float)[None])[0]
        grid = Grid(tuple(int(b) - int(a) for a, b in zip(lower, upper)), affine)
        return TissueMaps(grid=grid, gm=self.gm[box].copy(), wm=self.wm[box].copy(), csf=self.csf[box].copy(),
                          atlas_labels=self.atlas_labels[box].copy(), lesion=self.lesion[box].copy(),
                          lesion_labels=self.lesion_labels[box].copy())

    def dseg(self) -> np.ndarray:
        """Hard tissue labels: 0 background, 1 CSF, 2 GM, 3 WM (largest probability)."""
        stack = np.stack([self.csf, self.gm, self.wm])
        labels = (np.argmax(stack, axis=0) + 1).astype(np.uint8)
        labels[~self.brain_mask] = 0
        return labels


#: Probability maps are multiples of 1/PROBABILITY_LEVELS (stored as uint8).
PROBABILITY_LEVELS = 100


def quantize_probability(values: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to a multiple of 1/:data:`PROBABILITY_LEVELS` (float32)."""
    return (np.round(np.clip(values, 0, 1) * PROBABILITY_LEVELS) / PROBABILITY_LEVELS).astype(np.float32)


def sample_tissues(template: Template, deformation: Deformation, grid: Grid,
                   image_to_subject: np.ndarray | None = None) -> TissueMaps:
    """True tissue probabilities and atlas labels on a grid.

    Parameters
    ----------
    template : Template
    deformation : Deformation
    grid : Grid
        Target grid, in the world of some image of the subject.
    image_to_subject : ndarray, shape (4, 4), optional
        That image's world -> subject (T1w) world (identity for the T1w itself).
    """
    coords = deformation.template_voxels(grid, template.gm.affine, image_to_subject)

    def _sample(img, order):
        data = np.asarray(img.dataobj)
        if order:
            data = data.astype(np.float32)
        return ndimage.map_coordinates(data, coords, order=order, mode="constant", cval=0.0, prefilter=False)

    # quantised to 1/PROBABILITY_LEVELS so the truth written as uint8 is exactly what was simulated
    gm = quantize_probability(_sample(template.gm, 1))
    wm = quantize_probability(_sample(template.wm, 1))
    csf = quantize_probability(_sample(template.csf, 1))
    labels = _sample(template.atlas, 0).astype(np.int16)
    return TissueMaps(grid=grid, gm=gm, wm=wm, csf=csf, atlas_labels=labels)


def add_lesions(tissues: TissueMaps, lesions: list[Lesion],
                image_to_subject: np.ndarray | None = None) -> TissueMaps:
    """Turn white matter into lesion tissue inside the lesions (in place; returns ``tissues``).

    Lesion fraction = ellipsoid partial volume x white-matter probability, so lesions
    only ever replace white matter.
    """
    grid = tissues.grid
    voxel_mm = float(np.mean(grid.voxel_size_mm))
    inv_image = np.linalg.inv(image_to_subject) if image_to_subject is not None else np.eye(4)
    inv_grid = np.linalg.inv(grid.affine)
    best = np.zeros(grid.shape, np.float32)
    for index, lesion in enumerate(lesions, start=1):
        lower, upper = lesion.bounding_box_mm()
        corners = np.array([[a, b, c] for a in (lower[0], upper[0]) for b in (lower[1], upper[1])
                            for c in (lower[2], upper[2])])
        ijk = apply_matrix(inv_grid @ inv_image, corners)
        lo = np.clip(np.floor(ijk.min(0)).astype(int) - 1, 0, grid.shape)
        hi = np.clip(np.ceil(ijk.max(0)).astype(int) + 2, 0, grid.shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        sub_ijk = np.indices(hi - lo).reshape(3, -1).T + lo
        points = apply_matrix(grid.affine, sub_ijk.astype(float))
        if image_to_subject is not None:
            points = apply_matrix(image_to_subject, points)
        fraction = lesion.fraction(points, voxel_mm).reshape(tuple(hi - lo))
        content = fraction * tissues.wm[box]
        tissues.lesion[box] = np.maximum(tissues.lesion[box], content)
        take = content > best[box]
        tissues.lesion_labels[box][take & (content > 0)] = index
        best[box] = np.maximum(best[box], content)
    tissues.lesion = np.minimum(tissues.lesion, tissues.wm)
    return tissues


def place_lesions(rng: np.random.Generator, tissues: TissueMaps, volumes_mm3: list[float],
                  cerebral_wm: np.ndarray, *, gap_mm: float = 3.0,
                  max_tries: int = 400) -> list[Lesion]:
    """Place ellipsoidal lesions of the given volumes inside cerebral white matter.

    Each lesion is a randomly oriented ellipsoid (axis ratios 1 : 0.6-1 : 0.5-1); its
    centre is drawn among white-matter voxels (``p_WM >= 0.95`` inside
    ``cerebral_wm``) and kept when at least 85 % of it lies in such white matter and
    it stays ``gap_mm`` away from the other lesions.

    Parameters
    ----------
    rng : numpy.random.Generator
    tissues : TissueMaps
        True tissues on the T1w grid.
    volumes_mm3 : list of float
        Requested lesion volumes, largest first is best.
    cerebral_wm : ndarray of bool
        Where lesions may go (e.g. the ``wm`` region: cerebral white matter).

    Returns
    -------
    list of Lesion
        One per volume that could be placed.
    """
    grid = tissues.grid
    allowed = cerebral_wm & (tissues.wm >= 0.95)
    candidates = np.argwhere(ndimage.binary_erosion(allowed, iterations=2))
    if candidates.size == 0:
        return []
    placed: list[Lesion] = []
    for volume in sorted(volumes_mm3, reverse=True):
        for _ in range(max_tries):
            ratios = np.array([1.0, rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0)])
            major = (3.0 * volume / (4.0 * np.pi * np.prod(ratios))) ** (1.0 / 3.0)
            center = apply_matrix(grid.affine, candidates[rng.integers(len(candidates))][None].astype(float))[0]
            lesion = Lesion(center_mm=center, semi_axes_mm=major * ratios, rotation=random_rotation(rng))
            if any(np.linalg.norm(center - other.center_mm)
                   < lesion.semi_axes_mm.max() + other.semi_axes_mm.max() + gap_mm for other in placed):
                continue
            inside = _voxels_inside(lesion, grid)
            if inside.size == 0:
                continue
            in_wm = allowed[tuple(inside.T)].mean()
            if in_wm >= 0.85:
                placed.append(lesion)
                break
    return placed


def _voxels_inside(lesion: Lesion, grid: Grid) -> np.ndarray:
    """Indices of the grid voxels whose centres lie inside the lesion, shape (N, 3)."""
    lower, upper = lesion.bounding_box_mm()
    inv = np.linalg.inv(grid.affine)
    ijk = apply_matrix(inv, np.array([lower, upper]))
    lo = np.clip(np.floor(ijk.min(0)).astype(int), 0, grid.shape)
    hi = np.clip(np.ceil(ijk.max(0)).astype(int) + 1, 0, grid.shape)
    if np.any(hi <= lo):
        return np.empty((0, 3), int)
    sub = np.indices(hi - lo).reshape(3, -1).T + lo
    points = apply_matrix(grid.affine, sub.astype(float))
    local = (points - lesion.center_mm) @ lesion.rotation / lesion.semi_axes_mm
    return sub[(local ** 2).sum(axis=1) <= 1.0]


def smooth_bias_field(rng: np.random.Generator, shape: tuple[int, int, int], amplitude: float) -> np.ndarray:
    """Smooth multiplicative field ``exp(amplitude * s)``, ``s`` a low-frequency field in [-1, 1]."""
    coarse = rng.standard_normal((4, 4, 4))
    smooth = ndimage.zoom(coarse, np.array(shape) / 4.0, order=3, mode="nearest", grid_mode=True)
    smooth = smooth[: shape[0], : shape[1], : shape[2]]
    smooth /= max(np.abs(smooth).max(), 1e-6)
    return np.exp(amplitude * smooth).astype(np.float32)


#: Relative MR signal of each tissue (white matter 1 for T1w).
T1W_CONTRAST = {"wm": 1.0, "gm": 0.62, "csf": 0.22, "lesion": 0.45}
FLAIR_CONTRAST = {"wm": 0.55, "gm": 0.78, "csf": 0.08, "lesion": 1.45}


def synthesize_mr(tissues: TissueMaps, contrast: dict[str, float], rng: np.random.Generator, *,
                  wm_intensity: float, noise_sd_fraction: float, bias_amplitude: float) -> np.ndarray:
    """MR image from tissue fractions: partial-volume mix x bias field + Rician noise.

    Parameters
    ----------
    tissues : TissueMaps
        True tissues on the image grid.
    contrast : dict
        Relative signal of ``wm``, ``gm``, ``csf`` and ``lesion``.
    rng : numpy.random.Generator
    wm_intensity : float
        Signal of pure white matter before bias (arbitrary units).
    noise_sd_fraction : float
        Noise standard deviation (each of the two quadrature channels) / ``wm_intensity``.
    bias_amplitude : float
        Log-amplitude of the smooth multiplicative bias field.

    Returns
    -------
    ndarray of float32
    """
    normal_wm = tissues.wm - tissues.lesion
    signal = (contrast["wm"] * normal_wm + contrast["gm"] * tissues.gm + contrast["csf"] * tissues.csf
              + contrast["lesion"] * tissues.lesion) * wm_intensity
    signal *= smooth_bias_field(rng, tissues.grid.shape, bias_amplitude)
    sd = noise_sd_fraction * wm_intensity
    real = signal + rng.normal(0.0, sd, signal.shape).astype(np.float32)
    imag = rng.normal(0.0, sd, signal.shape).astype(np.float32)
    return np.sqrt(real ** 2 + imag ** 2).astype(np.float32)
