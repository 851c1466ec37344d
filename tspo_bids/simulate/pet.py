"""Dynamic PET from true tissue maps: kinetic compartments, PSF, PET grid, noise, decay.

The PET image is linear in the tissue fractions, so it is built as

    PET(y, t) = sum_k  [S B f_k](y) * TAC_k(t)

with ``f_k`` the volume fraction of kinetic compartment ``k`` on the (padded) T1w
grid, ``B`` the Gaussian PSF (applied on that fine grid), ``S`` point sampling at the
PET voxel centres through the rigid T1w <-> PET misalignment (cubic spline of the
smooth blurred map, so sampling adds no blur of its own), and ``TAC_k`` the noise-free
frame averages of the compartment from :mod:`tspo_bids.kinetics.simulation`.
Blurring K fraction maps instead of every frame is exact and much faster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tspo_bids.anat.ms_regions import lesion_distance_mm
from tspo_bids.kinetics.frames import FrameTiming
from tspo_bids.kinetics.simulation import SrtmParams, add_noise, noise_sd, simulate_tacs
from tspo_bids.simulate.anatomy import TissueMaps
from tspo_bids.simulate.geometry import Grid, apply_matrix
from tspo_bids.simulate.phenotypes import (
    LesionPhenotype,
    lesion_rims,
    perilesion_weight,
    rim_compartment,
    rim_wm_mask,
)
from tspo_bids.simulate.protocols import TissueKinetics

#: Compartment whose TAC is the reference (2TCM) TAC: cerebellar hemisphere grey matter.
REFERENCE_COMPARTMENT = "cerebellumgm"

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def lesion_compartment(index: int) -> str:
    """Compartment name of lesion ``index`` (1-based)."""
    return f"lesion{index:02d}"


def compartment_fractions(tissues: TissueMaps, n_lesions: int = 0,
                          phenotypes: Sequence[LesionPhenotype] | None = None) -> dict[str, np.ndarray]:
    """Volume fraction of every kinetic compartment (CSF, which holds no tracer, left out).

    =================  =========================================================
    compartment        fraction
    =================  =========================================================
    cortexgm           GM outside cerebellar hemispheres, thalamus, deep GM
                       (vermis GM binds like cortical GM)
    cerebellumgm       GM in the cerebellar hemispheres: the reference tissue
    wm                 non-lesional WM outside thalamus and deep GM; with
                       phenotypes: all of it in the 2 mm rims of inactive and
                       overall-active lesions, none in rim-active rims, and
                       times ``1 - w(d)`` outside every rim
    perilesion         with phenotypes: outside every 2 mm rim, that WM times
                       ``w(d)``, the perilesional weight at distance ``d`` from
                       the lesions (0 inside the rims: the increase starts at
                       ``w(2 mm) ~ 0.67`` just outside a rim, a step)
    thalamus           GM + non-lesional WM in the atlas thalamus
    deepgm             GM + non-lesional WM in atlas caudate, putamen, pallidum
    lesionNN           lesion tissue of lesion NN
    rimNN              with phenotypes, rim-active lesion NN: the non-lesional WM
                       of its 2 mm rim
    =================  =========================================================

    The fractions sum to ``gm + wm`` in every voxel.

    Parameters
    ----------
    tissues : TissueMaps
    n_lesions : int
        Number of lesions (labels 1..n in ``tissues.lesion_labels``).
    phenotypes : sequence of LesionPhenotype, optional
        One per lesion: adds the rims and the perilesional gradient
        (:mod:`tspo_bids.simulate.phenotypes`). Without, lesions only replace WM.
    """
    cerebellum = tissues.atlas_group("cerebellum")
    thalamus = tissues.atlas_group("thalamus")
    deepgm = tissues.atlas_group("deepgm")
    special = thalamus | deepgm
    normal_wm = tissues.wm - tissues.lesion
    white = np.where(special, 0.0, normal_wm)
    fractions = {
        "cortexgm": np.where(cerebellum | special, 0.0, tissues.gm),
        REFERENCE_COMPARTMENT: np.where(cerebellum & ~special, tissues.gm, 0.0),
        "wm": white,
        "thalamus": np.where(thalamus, tissues.gm + normal_wm, 0.0),
        "deepgm": np.where(deepgm & ~thalamus, tissues.gm + normal_wm, 0.0),
    }
    for index in range(1, n_lesions + 1):
        fractions[lesion_compartment(index)] = np.where(tissues.lesion_labels == index, tissues.lesion, 0.0)
    if phenotypes is not None and n_lesions:
        if len(phenotypes) != n_lesions:
            raise ValueError(f"{len(phenotypes)} phenotypes for {n_lesions} lesions")
        labels = tissues.lesion_index_map()
        voxel = tissues.grid.voxel_size_mm
        cerebral = ~(cerebellum | tissues.atlas_group("vermis") | special)
        rims = lesion_rims(labels, voxel, rim_wm_mask(tissues.wm, cerebral))
        in_active_rim = np.zeros(labels.shape, bool)
        for index, phenotype in enumerate(phenotypes, start=1):
            if phenotype.rim is not None:
                rim = rims == index
                fractions[rim_compartment(index)] = np.where(rim, white, 0.0)
                in_active_rim |= rim
        # the gradient lies outside every lesion's 2 mm rim: the rims of inactive and
        # overall-active lesions are plain (normal-appearing) white matter
        in_other_rim = (rims > 0) & ~in_active_rim
        outside = np.where(rims > 0, 0.0, white)
        weight = perilesion_weight(lesion_distance_mm(labels > 0, voxel))
        fractions["wm"] = outside * (1.0 - weight) + np.where(in_other_rim, white, 0.0)
        fractions["perilesion"] = outside * weight
    return {name: f.astype(np.float32) for name, f in fractions.items()}


def compartment_params(kinetics: TissueKinetics, lesion_params: Sequence[SrtmParams] = (),
                       phenotypes: Sequence[LesionPhenotype] | None = None) -> dict[str, SrtmParams]:
    """SRTM parameters of every target compartment (the reference compartment excluded).

    ``lesion_params`` gives the lesion cores; with ``phenotypes`` the cores and rims come
    from them instead.
    """
    params = {name: p for name, p in kinetics.tissues.items() if name != "lesion"}
    if phenotypes is not None:
        lesion_params = [p.core for p in phenotypes]
    for index, p in enumerate(lesion_params, start=1):
        params[lesion_compartment(index)] = p
    for index, phenotype in enumerate(phenotypes or (), start=1):
        if phenotype.rim is not None:
            params[rim_compartment(index)] = phenotype.rim
    return params


def compartment_tacs(timing: FrameTiming, kinetics: TissueKinetics,
                     lesion_params: Sequence[SrtmParams] = (),
                     phenotypes: Sequence[LesionPhenotype] | None = None) -> dict[str, np.ndarray]:
    """Noise-free frame-average TAC of every compartment, decay-corrected to injection, kBq/mL.

    Keys: :data:`REFERENCE_COMPARTMENT` (the 2TCM reference) and the targets of
    :func:`compartment_params`.
    """
    targets = compartment_params(kinetics, lesion_params, phenotypes)
    tacs = simulate_tacs(timing, targets, reference=kinetics.reference)
    out = {REFERENCE_COMPARTMENT: tacs.pop("reference")}
    out.update(tacs)
    return out


def compartment_dvr(kinetics: TissueKinetics, lesion_params: Sequence[SrtmParams] = (),
                    phenotypes: Sequence[LesionPhenotype] | None = None) -> dict[str, float]:
    """True DVR (= 1 + BPND) of every compartment; the reference compartment has 1."""
    dvr = {name: 1.0 + p.bp_nd for name, p in compartment_params(kinetics, lesion_params, phenotypes).items()}
    dvr[REFERENCE_COMPARTMENT] = 1.0
    return dvr


def gaussian_psf(volume: np.ndarray, voxel_size_mm: Sequence[float], fwhm_mm: float) -> np.ndarray:
    """Blur a volume with an isotropic Gaussian PSF of the given FWHM (mm); zero outside.

    ``fwhm_mm = 0`` returns a copy.
    """
    if fwhm_mm <= 0:
        return np.array(volume, dtype=np.float32, copy=True)
    sigma_vox = fwhm_mm * FWHM_TO_SIGMA / np.asarray(voxel_size_mm, float)
    return ndimage.gaussian_filter(np.asarray(volume, np.float32), sigma_vox, mode="constant",
                                   cval=0.0, truncate=4.0)


def sample_on_grid(volume: np.ndarray, source: Grid, target: Grid, target_to_source: np.ndarray,
                   order: int = 3) -> np.ndarray:
    """Point-sample a smooth volume at the voxel centres of another grid.

    Parameters
    ----------
    volume : ndarray, shape source.shape
    source, target : Grid
    target_to_source : ndarray, shape (4, 4)
        Target world point -> source world point.
    order : int
        Spline order (3: exact enough for PSF-blurred maps that sampling adds no blur).
    """
    voxel_map = np.linalg.inv(source.affine) @ target_to_source @ target.affine
    coeffs = ndimage.spline_filter(volume, order=order, mode="constant") if order > 1 else volume
    return ndimage.affine_transform(coeffs, voxel_map, output_shape=target.shape, order=order,
                                    mode="constant", cval=0.0, prefilter=False).astype(np.float32)


def fractions_on_pet_grid(fractions: Mapping[str, np.ndarray], work_grid: Grid, pet_grid: Grid,
                          t1w_to_pet: np.ndarray, psf_fwhm_mm: float) -> dict[str, np.ndarray]:
    """PSF-blurred compartment fractions sampled on the PET grid.

    Parameters
    ----------
    fractions : mapping of str to ndarray, shape work_grid.shape
        Compartment fractions on a grid in T1w world.
    work_grid : Grid
        Their grid (T1w world; must extend well beyond the brain so the PSF has room).
    pet_grid : Grid
        PET voxel grid (PET world).
    t1w_to_pet : ndarray, shape (4, 4)
        T1w world point -> PET world point.
    psf_fwhm_mm : float
        Isotropic Gaussian PSF FWHM, mm.
    """
    pet_to_t1w = np.linalg.inv(t1w_to_pet)
    out = {}
    for name, fraction in fractions.items():
        blurred = gaussian_psf(fraction, work_grid.voxel_size_mm, psf_fwhm_mm)
        out[name] = np.clip(sample_on_grid(blurred, work_grid, pet_grid, pet_to_t1w), 0.0, None)
    return out


def mix(fractions: Mapping[str, np.ndarray], tacs: Mapping[str, np.ndarray]) -> np.ndarray:
    """``sum_k fractions[k] * tacs[k]``: a 4D series of shape fractions' shape + (n_frames,).

    Compartments without a TAC (none expected) are an error; CSF is simply absent.
    """
    names = list(fractions)
    stack = np.stack([fractions[n] for n in names], axis=-1)
    tac_matrix = np.stack([np.asarray(tacs[n], float) for n in names])  # (K, T)
    return np.tensordot(stack, tac_matrix, axes=([-1], [0])).astype(np.float32)


def late_frames(timing: FrameTiming) -> np.ndarray:
    """Boolean mask of the late frames (mid-time in the second half of the scan)."""
    return timing.mid_min >= 0.5 * float(timing.end_min.max())


def noise_scale_for_voxel_cov(clean: np.ndarray, timing: FrameTiming, brain: np.ndarray, cov: float) -> float:
    """Noise scale ``a`` giving brain voxels a median COV of ``cov`` over the late frames.

    Parameters
    ----------
    clean : ndarray, shape (X, Y, Z, T)
        Noise-free PET decay-corrected to injection, kBq/mL.
    timing : FrameTiming
    brain : ndarray of bool, shape (X, Y, Z)
        Voxels over which the median is taken.
    cov : float
        Target coefficient of variation (e.g. 0.2).
    """
    late = late_frames(timing)
    tacs = clean[brain][:, late].T  # (late frames, voxels)
    sub_timing = FrameTiming(timing.start_min[late], timing.end_min[late], radionuclide=timing.radionuclide,
                             half_life_min=timing.half_life_min)
    positive = tacs > 0
    unit_cov = noise_sd(tacs, sub_timing, 1.0)[positive] / tacs[positive]
    return float((cov / np.median(unit_cov)) ** 2)


def add_frame_noise(clean: np.ndarray, timing: FrameTiming, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of variance ``scale * C_i * DCF_i / dur_i`` added to a 4D series (frames last)."""
    frames_first = np.moveaxis(clean, -1, 0).reshape(timing.n_frames, -1)
    noisy = add_noise(frames_first, timing, scale, rng)
    return np.moveaxis(noisy.reshape((timing.n_frames,) + clean.shape[:-1]), 0, -1).astype(np.float32)


def stored_values(corrected: np.ndarray, timing: FrameTiming) -> np.ndarray:
    """What the image file holds for data decay-corrected to injection (frames last).

    ``timing.decay_corrected`` False: divide by each frame's DCF (no decay correction);
    True: decay-corrected to ``timing.decay_correction_time_min`` (minutes from
    injection), i.e. multiplied by ``exp(-lambda * t_dc)``.
    """
    factor = 1.0 / np.asarray(timing.correction_to_injection(), float)
    return (corrected * factor).astype(np.float32)


@dataclass(frozen=True)
class PetSimulation:
    """A simulated PET series and what it was made of.

    Attributes
    ----------
    grid : Grid
        PET grid (PET world).
    fractions : dict of str to ndarray
        PSF-blurred compartment fractions on the PET grid.
    tacs : dict of str to ndarray
        Compartment TACs (decay-corrected to injection, kBq/mL).
    clean : ndarray, shape grid.shape + (T,)
        Noise-free PET, decay-corrected to injection, kBq/mL.
    noisy : ndarray
        ``clean`` plus noise, decay-corrected to injection, kBq/mL.
    stored : ndarray
        ``noisy`` with the decay correction the sidecar declares.
    noise_scale : float
        The noise scale ``a`` (kBq/mL x min).
    motions : list of ndarray or None
        Per-frame head motion (PET world -> PET world), None without motion.
    """

    grid: Grid
    fractions: dict[str, np.ndarray]
    tacs: dict[str, np.ndarray]
    clean: np.ndarray
    noisy: np.ndarray
    stored: np.ndarray
    noise_scale: float
    motions: list[np.ndarray] | None = None


def head_motion(rng: np.random.Generator, timing: FrameTiming, max_translation_mm: float, center_mm,
                onset_min: float = 10.0) -> list[np.ndarray]:
    """Inter-frame head motion: a slow rigid drift after ``onset_min`` plus a little jitter.

    Returns, per frame, the rigid matrix ``D_i`` (PET world -> PET world) that moves
    the head from its reference position; frames starting before ``onset_min`` do not
    move. The drift reaches ``max_translation_mm`` (and ``max_translation_mm / 2``
    degrees) at the end of the scan.
    """
    from tspo_bids.simulate.geometry import rigid_matrix

    direction_t = rng.uniform(-1, 1, 3)
    direction_r = rng.uniform(-1, 1, 3)
    end = float(timing.end_min.max())
    motions = []
    for mid in timing.mid_min:
        if mid < onset_min:
            motions.append(np.eye(4))
            continue
        amount = (mid - onset_min) / max(end - onset_min, 1e-6)
        translation = amount * max_translation_mm * direction_t + rng.normal(0, 0.1 * max_translation_mm, 3)
        rotation = amount * max_translation_mm / 2 * direction_r + rng.normal(0, 0.05 * max_translation_mm, 3)
        motions.append(rigid_matrix(rotation, translation, center_mm))
    return motions


def moving_mix(fractions: Mapping[str, np.ndarray], work_grid: Grid, pet_grid: Grid, t1w_to_pet: np.ndarray,
               tacs: Mapping[str, np.ndarray], motions: Sequence[np.ndarray], psf_fwhm_mm: float) -> np.ndarray:
    """Noise-free PET when the head moves between frames (frame i seen through ``motions[i] @ t1w_to_pet``)."""
    blurred = {name: gaussian_psf(f, work_grid.voxel_size_mm, psf_fwhm_mm) for name, f in fractions.items()}
    out = np.zeros(pet_grid.shape + (len(motions),), np.float32)
    for frame, motion in enumerate(motions):
        pet_to_t1w = np.linalg.inv(motion @ t1w_to_pet)
        for name, volume in blurred.items():
            sampled = np.clip(sample_on_grid(volume, work_grid, pet_grid, pet_to_t1w), 0.0, None)
            out[..., frame] += sampled * float(tacs[name][frame])
    return out


def simulate_pet(fractions: Mapping[str, np.ndarray], work_grid: Grid, pet_grid: Grid, t1w_to_pet: np.ndarray,
                 tacs: Mapping[str, np.ndarray], timing: FrameTiming, *, psf_fwhm_mm: float, voxel_cov: float,
                 rng: np.random.Generator, motions: Sequence[np.ndarray] | None = None) -> PetSimulation:
    """Simulate a dynamic PET series.

    Parameters
    ----------
    fractions : mapping
        Compartment fractions on ``work_grid`` (:func:`compartment_fractions`).
    work_grid, pet_grid : Grid
    t1w_to_pet : ndarray, shape (4, 4)
        T1w world point -> PET world point.
    tacs : mapping
        Compartment TACs (:func:`compartment_tacs`), kBq/mL.
    timing : FrameTiming
        Frame schedule and the decay correction the output should carry.
    psf_fwhm_mm : float
        Gaussian PSF FWHM, mm.
    voxel_cov : float
        Median voxel coefficient of variation in brain over the late frames; 0 for no noise.
    rng : numpy.random.Generator
        Noise stream.
    motions : sequence of ndarray, optional
        Per-frame head motion (:func:`head_motion`); ``fractions`` of the result are
        then those of the reference (motion-free) position.
    """
    on_pet = fractions_on_pet_grid(fractions, work_grid, pet_grid, t1w_to_pet, psf_fwhm_mm)
    if motions is None:
        clean = mix(on_pet, tacs)
    else:
        clean = moving_mix(fractions, work_grid, pet_grid, t1w_to_pet, tacs, motions, psf_fwhm_mm)
    if voxel_cov > 0:
        tissue = sum(on_pet.values())
        scale = noise_scale_for_voxel_cov(clean, timing, tissue >= 0.5, voxel_cov)
        noisy = add_frame_noise(clean, timing, scale, rng)
    else:
        scale, noisy = 0.0, clean.copy()
    return PetSimulation(grid=pet_grid, fractions=on_pet, tacs=dict(tacs), clean=clean, noisy=noisy,
                         stored=stored_values(noisy, timing), noise_scale=scale,
                         motions=None if motions is None else [np.asarray(m) for m in motions])


def pet_grid_for(brain_points_t1w_mm: np.ndarray, t1w_to_pet: np.ndarray, voxel_mm: float,
                 margin_mm: float = 12.0) -> Grid:
    """Axis-aligned PET grid covering the brain (mapped to PET world) plus a margin."""
    points = apply_matrix(t1w_to_pet, brain_points_t1w_mm)
    return Grid.covering(points.min(0) - margin_mm, points.max(0) + margin_mm, voxel_mm)
