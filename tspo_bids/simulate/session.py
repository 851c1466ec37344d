"""One simulated participant/session: anatomy on its grids, MR images, PET, and the truth.

:func:`simulate_session` is pure computation (no files): it returns a
:class:`SessionPhantom` that :mod:`tspo_bids.simulate.dataset` writes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tspo_bids.anat.ms_regions import define_ms_regions
from tspo_bids.anat.regions import REFERENCE_REGION, define_regions
from tspo_bids.anat.template import Template
from tspo_bids.kinetics.frames import FrameTiming
from tspo_bids.kinetics.simulation import SrtmParams
from tspo_bids.simulate.anatomy import (
    FLAIR_CONTRAST,
    PROBABILITY_LEVELS,
    T1W_CONTRAST,
    Deformation,
    Lesion,
    TissueMaps,
    add_lesions,
    place_lesions,
    sample_tissues,
    synthesize_mr,
    template_brain_points,
)
from tspo_bids.simulate.geometry import Grid, apply_matrix, random_rigid
from tspo_bids.simulate.measure import perfect_kinpar, perfect_regional_tacs
from tspo_bids.simulate.pet import (
    PetSimulation,
    compartment_dvr,
    compartment_fractions,
    compartment_tacs,
    head_motion,
    pet_grid_for,
    simulate_pet,
)
from tspo_bids.simulate.phenotypes import (
    LesionPhenotype,
    draw_phenotypes,
    lesion_rims,
    rim_compartment,
    rim_wm_mask,
    true_dvr,
)
from tspo_bids.simulate.protocols import TissueKinetics, TracerProtocol

#: How the stored PET is decay-corrected, cycled over sessions.
DECAY_MODES = ("injection", "uncorrected", "scanstart")


@dataclass(frozen=True)
class PhantomOptions:
    """Knobs of the phantom (defaults: realistic; tests use coarse grids).

    Attributes
    ----------
    template_resolution_mm : int
        Template grid (1 or 2 mm).
    t1w_voxel_mm : tuple of float
        Isotropic T1w voxel sizes to choose from per session, mm.
    flair_voxel_mm : tuple of (float, float, float)
        FLAIR voxel sizes to choose from, mm.
    pet_voxel_mm : tuple of float
        Isotropic PET voxel sizes to choose from, mm.
    psf_fwhm_mm : float
        PET point-spread function FWHM, mm (0: no blur).
    voxel_cov : (float, float)
        Range of the late-frame median voxel COV of PET noise (0, 0: noise-free).
    displacement_rms_mm : float
        RMS of the non-linear displacement, mm.
    pet_misalignment, flair_misalignment, session_pose : (float, float)
        Maximum rotation (degrees) and translation (mm) of the rigid T1w -> PET and
        T1w -> FLAIR mappings and of the head between sessions.
    t1w_margin_mm : float
        Field of view of the T1w around the brain, mm.
    psf_margin_mm : float
        Extra margin of the working grid on which the PSF is applied, mm.
    t1w_noise, flair_noise : float
        Rician noise SD relative to white-matter (T1w) / grey-matter (FLAIR) signal.
    bias_amplitude : float
        Log-amplitude of the T1w bias field (FLAIR gets half).
    with_flair : bool
        Simulate the FLAIR.
    motion_mm : float
        Inter-frame PET head motion: drift reaching this translation (mm) by the end of
        the scan, from 10 min on (0: none). The perfect-pipeline truth assumes perfect
        motion correction (it uses the reference, motion-free frame position).
    """

    template_resolution_mm: int = 1
    t1w_voxel_mm: tuple[float, ...] = (1.3, 1.4, 1.5)
    flair_voxel_mm: tuple[tuple[float, float, float], ...] = ((1.0, 1.0, 3.0), (1.5, 1.5, 1.5))
    pet_voxel_mm: tuple[float, ...] = (2.5, 3.0, 3.5, 4.0)
    psf_fwhm_mm: float = 5.0
    voxel_cov: tuple[float, float] = (0.15, 0.25)
    displacement_rms_mm: float = 2.0
    pet_misalignment: tuple[float, float] = (6.0, 12.0)
    flair_misalignment: tuple[float, float] = (3.0, 5.0)
    session_pose: tuple[float, float] = (4.0, 6.0)
    t1w_margin_mm: float = 4.0
    psf_margin_mm: float = 14.0
    t1w_noise: float = 0.025
    flair_noise: float = 0.03
    bias_amplitude: float = 0.15
    with_flair: bool = True
    motion_mm: float = 0.0


@dataclass
class MrImage:
    """A synthetic MR image and its true tissues."""

    grid: Grid
    data: np.ndarray
    tissues: TissueMaps


@dataclass
class SessionPhantom:
    """Everything simulated for one participant/session.

    Transforms map world points (mm): ``t1w_to_pet`` T1w -> PET, ``t1w_to_flair``
    T1w -> FLAIR, ``t1w_to_anatomy`` T1w -> the participant's anatomical space (the
    first session's T1w world).

    ``regions`` holds the regions of :func:`tspo_bids.anat.regions.define_regions` and
    ``nawm`` (everyone), and in patients ``lesion``, ``perilesion03`` and ``perilesion36``
    (:func:`tspo_bids.anat.ms_regions.define_ms_regions` on the true maps and lesion mask,
    true atlas groups). ``rim_labels`` (T1w grid) are the lesions' 2 mm rims,
    ``truth_dvr`` the true DVR image on the T1w grid (:func:`tspo_bids.simulate.phenotypes.true_dvr`)
    and ``t1w_fractions`` the compartment fractions on the T1w grid.
    """

    t1w: MrImage
    flair: MrImage | None
    pet: PetSimulation
    timing: FrameTiming
    work_tissues: TissueMaps
    t1w_to_pet: np.ndarray
    t1w_to_flair: np.ndarray
    t1w_to_anatomy: np.ndarray
    regions: dict[str, np.ndarray]
    lesions: list[Lesion]
    lesion_params: list[SrtmParams]
    kinetics: TissueKinetics
    perfect_tacs: dict[str, np.ndarray]
    perfect_rows: list[dict[str, Any]]
    phenotypes: list[LesionPhenotype] | None = None
    rim_labels: np.ndarray | None = None
    truth_dvr: np.ndarray | None = None
    t1w_fractions: dict[str, np.ndarray] | None = None
    compartment_dvr: dict[str, float] | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _choice(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _brain_box(tissues: TissueMaps, margin_vox: int) -> tuple[np.ndarray, np.ndarray]:
    inside = np.argwhere((tissues.gm + tissues.wm + tissues.csf) > 0.01)
    lower = np.maximum(inside.min(0) - margin_vox, 0)
    upper = np.minimum(inside.max(0) + 1 + margin_vox, np.asarray(tissues.grid.shape))
    return lower, upper


def brain_points(tissues: TissueMaps, step: int = 2) -> np.ndarray:
    """World coordinates of (every ``step``-th) brain voxel of a tissue grid, mm."""
    ijk = np.argwhere(tissues.brain_mask[::step, ::step, ::step]) * step
    return apply_matrix(tissues.grid.affine, ijk.astype(float))


def session_tissues(template: Template, deformation: Deformation, t1w_to_anatomy: np.ndarray,
                    voxel_mm: float, options: PhantomOptions) -> tuple[TissueMaps, np.ndarray, np.ndarray]:
    """True tissues on a generous grid in this session's T1w world, and the T1w / working boxes.

    Returns
    -------
    tissues : TissueMaps
        On a grid covering the brain plus the T1w and PSF margins.
    t1w_box, work_box : (lower, upper) index arrays into that grid
    """
    anatomy_points = apply_matrix(np.linalg.inv(deformation.pose), template_brain_points(template, step=4))
    points = apply_matrix(np.linalg.inv(t1w_to_anatomy), anatomy_points)
    reach = options.t1w_margin_mm + options.psf_margin_mm + 4 * options.displacement_rms_mm + 4
    big = Grid.covering(points.min(0) - reach, points.max(0) + reach, voxel_mm)
    tissues = sample_tissues(template, deformation, big, image_to_subject=t1w_to_anatomy)
    t1w_box = _brain_box(tissues, int(np.ceil(options.t1w_margin_mm / voxel_mm)))
    work_box = _brain_box(tissues, int(np.ceil((options.t1w_margin_mm + options.psf_margin_mm) / voxel_mm)))
    return tissues, t1w_box, work_box


def simulate_session(
    template: Template,
    deformation: Deformation,
    kinetics: TissueKinetics,
    protocol: TracerProtocol,
    timing: FrameTiming,
    rng: np.random.Generator,
    noise_rng: np.random.Generator,
    *,
    options: PhantomOptions = PhantomOptions(),
    t1w_to_anatomy: np.ndarray | None = None,
    lesions: list[Lesion] | None = None,
    lesion_volumes_mm3: Sequence[float] = (),
    lesion_params: Sequence[SrtmParams] | None = None,
    lesion_phenotypes: Sequence[LesionPhenotype] | None = None,
    phenotype_binding: float = 1.0,
    t1w_voxel_mm: float | None = None,
    pet_voxel_mm: float | None = None,
) -> SessionPhantom:
    """Simulate one session of a participant.

    Parameters
    ----------
    template : Template
    deformation : Deformation
        The participant's anatomy (anatomical space -> template).
    kinetics : TissueKinetics
        True tissue kinetics of this session.
    protocol : TracerProtocol
    timing : FrameTiming
        Frame schedule (minutes from injection) and the decay correction of the stored image.
    rng : numpy.random.Generator
        Geometry, grids and MR noise of this session.
    noise_rng : numpy.random.Generator
        PET noise only (so the same PET noise can be drawn with other decay settings).
    options : PhantomOptions
    t1w_to_anatomy : ndarray, shape (4, 4), optional
        This session's T1w world -> anatomical space (identity for the first session).
    lesions : list of Lesion, optional
        Lesions in anatomical space (from an earlier session); when None, lesions of
        ``lesion_volumes_mm3`` are placed in cerebral white matter.
    lesion_params : sequence of SrtmParams, optional
        Per-lesion core kinetics without phenotypes (no rims, no perilesional gradient).
    lesion_phenotypes : sequence of LesionPhenotype, optional
        Per-lesion phenotype (core and rim kinetics); by default (and when
        ``lesion_params`` is not given) drawn with ``rng`` by
        :func:`tspo_bids.simulate.phenotypes.draw_phenotypes`.
    phenotype_binding : float
        Genotype factor of the drawn phenotype BPNDs.
    t1w_voxel_mm, pet_voxel_mm : float, optional
        Voxel sizes (default: drawn from ``options``).
    """
    t1w_to_anatomy = np.eye(4) if t1w_to_anatomy is None else np.asarray(t1w_to_anatomy, float)
    t1w_voxel = float(_choice(rng, options.t1w_voxel_mm) if t1w_voxel_mm is None else t1w_voxel_mm)
    big, t1w_box, work_box = session_tissues(template, deformation, t1w_to_anatomy, t1w_voxel, options)

    if lesions is None:
        lesions = []
        if lesion_volumes_mm3:
            cerebral_wm = define_regions(big.gm, big.wm, big.atlas_groups(), voxel_size_mm=big.grid.voxel_size_mm)["wm"]
            placed = place_lesions(rng, big, list(lesion_volumes_mm3), cerebral_wm)
            # stored in anatomical space
            lesions = [Lesion(center_mm=apply_matrix(t1w_to_anatomy, l.center_mm[None])[0],
                              semi_axes_mm=l.semi_axes_mm, rotation=t1w_to_anatomy[:3, :3] @ l.rotation)
                       for l in placed]
    if lesions:
        add_lesions(big, lesions, image_to_subject=t1w_to_anatomy)
    phenotypes: list[LesionPhenotype] | None = None
    if lesion_phenotypes is not None:
        phenotypes = list(lesion_phenotypes)
        if len(phenotypes) != len(lesions):
            raise ValueError(f"{len(phenotypes)} lesion phenotypes for {len(lesions)} lesions")
    elif lesions and lesion_params is None:
        phenotypes = draw_phenotypes(rng, [l.volume_mm3 for l in lesions], kinetics, phenotype_binding)
    if phenotypes is not None:
        lesion_params = [p.core for p in phenotypes]
    elif lesion_params is None:
        lesion_params = [kinetics.tissues["lesion"]] * len(lesions) if lesions else []
    lesion_params = list(lesion_params)

    t1w_tissues = big.cropped(*t1w_box)
    work_tissues = big.cropped(*work_box)
    del big
    wm_intensity = float(rng.uniform(110, 150))
    t1w_data = synthesize_mr(t1w_tissues, T1W_CONTRAST, rng, wm_intensity=wm_intensity,
                             noise_sd_fraction=options.t1w_noise, bias_amplitude=options.bias_amplitude)
    t1w = MrImage(grid=t1w_tissues.grid, data=t1w_data, tissues=t1w_tissues)
    points = brain_points(t1w_tissues)
    center = points.mean(axis=0)

    # FLAIR: own grid, own rigid misalignment from the T1w
    t1w_to_flair = random_rigid(rng, *options.flair_misalignment, center_mm=center)
    flair = None
    if options.with_flair:
        flair_voxel = np.asarray(_choice(rng, options.flair_voxel_mm), float)
        flair_points = apply_matrix(t1w_to_flair, points)
        flair_grid = Grid.covering(flair_points.min(0) - options.t1w_margin_mm,
                                   flair_points.max(0) + options.t1w_margin_mm, flair_voxel)
        flair_to_anatomy = t1w_to_anatomy @ np.linalg.inv(t1w_to_flair)
        flair_tissues = sample_tissues(template, deformation, flair_grid, image_to_subject=flair_to_anatomy)
        if lesions:
            add_lesions(flair_tissues, lesions, image_to_subject=flair_to_anatomy)
        flair_data = synthesize_mr(flair_tissues, FLAIR_CONTRAST, rng, wm_intensity=float(rng.uniform(110, 150)),
                                   noise_sd_fraction=options.flair_noise, bias_amplitude=options.bias_amplitude / 2)
        flair = MrImage(grid=flair_grid, data=flair_data, tissues=flair_tissues)

    # PET
    t1w_to_pet = random_rigid(rng, *options.pet_misalignment, center_mm=center)
    pet_voxel = float(_choice(rng, options.pet_voxel_mm) if pet_voxel_mm is None else pet_voxel_mm)
    pet_grid = pet_grid_for(points, t1w_to_pet, pet_voxel)
    fractions = compartment_fractions(work_tissues, n_lesions=len(lesions), phenotypes=phenotypes)
    tacs = compartment_tacs(timing, kinetics, lesion_params, phenotypes)
    voxel_cov = float(rng.uniform(*options.voxel_cov)) if max(options.voxel_cov) > 0 else 0.0
    motions = (head_motion(rng, timing, options.motion_mm, apply_matrix(t1w_to_pet, center[None])[0])
               if options.motion_mm > 0 else None)
    pet = simulate_pet(fractions, work_tissues.grid, pet_grid, t1w_to_pet, tacs, timing,
                       psf_fwhm_mm=options.psf_fwhm_mm, voxel_cov=voxel_cov, rng=noise_rng, motions=motions)

    # truth: the pipeline's regions on the true maps, measured as the pipeline measures
    atlas = t1w_tissues.atlas_groups()
    voxel = t1w_tissues.grid.voxel_size_mm
    regions = define_regions(t1w_tissues.gm, t1w_tissues.wm, atlas, voxel_size_mm=voxel)
    lesion_map = t1w_tissues.lesion_index_map()
    # exact multiples of 1/PROBABILITY_LEVELS in float64 (float32 0.9 < 0.9): what a reader of the truth files
    # gets after rounding, so the MS regions can be reproduced from them
    wm_prob, gm_prob = (np.round(p.astype(np.float64) * PROBABILITY_LEVELS) / PROBABILITY_LEVELS
                        for p in (t1w_tissues.wm, t1w_tissues.gm))
    ms_regions = define_ms_regions(wm_prob, gm_prob, lesion_map, voxel, atlas=atlas)
    regions["nawm"] = ms_regions["nawm"]
    if lesions:
        for name in ("lesion", "perilesion03", "perilesion36"):
            regions[name] = ms_regions[name]
    cerebral = ~(atlas.cerebellum | atlas.vermis | atlas.thalamus | atlas.deepgm)
    rim_labels = lesion_rims(lesion_map, voxel, rim_wm_mask(wm_prob, cerebral))
    masks = dict(regions)
    for index in range(1, len(lesions) + 1):
        masks[f"lesion{index:02d}"] = lesion_map == index
        masks[rim_compartment(index)] = rim_labels == index
    perfect = perfect_regional_tacs(pet.fractions, tacs, pet_grid.affine, t1w_tissues.grid, t1w_to_pet, masks)
    rows = perfect_kinpar(perfect, timing)
    # true DVR image: the work-grid compartment fractions cropped to the T1w grid (same voxel lattice)
    offset = [int(round(v)) for v in apply_matrix(np.linalg.inv(work_tissues.grid.affine),
                                                  t1w_tissues.grid.affine[:3, 3][None])[0]]
    box = tuple(slice(o, o + n) for o, n in zip(offset, t1w_tissues.grid.shape))
    t1w_fractions = {name: f[box] for name, f in fractions.items()}
    dvr_by_compartment = compartment_dvr(kinetics, lesion_params, phenotypes)
    dvr_image = true_dvr(t1w_fractions, dvr_by_compartment)
    details = {
        "t1w_voxel_mm": t1w_voxel,
        "pet_voxel_mm": pet_voxel,
        "voxel_cov": voxel_cov,
        "psf_fwhm_mm": options.psf_fwhm_mm,
        "t1w_wm_intensity": wm_intensity,
    }
    return SessionPhantom(t1w=t1w, flair=flair, pet=pet, timing=timing, work_tissues=work_tissues,
                          t1w_to_pet=t1w_to_pet, t1w_to_flair=t1w_to_flair, t1w_to_anatomy=t1w_to_anatomy,
                          regions=regions, lesions=list(lesions), lesion_params=lesion_params, kinetics=kinetics,
                          perfect_tacs=perfect, perfect_rows=rows, phenotypes=phenotypes, rim_labels=rim_labels,
                          truth_dvr=dvr_image, t1w_fractions=t1w_fractions, compartment_dvr=dvr_by_compartment,
                          details=details)


def tissue_row(region: str, kinetics: TissueKinetics, lesion_params: Sequence[SrtmParams]) -> dict[str, Any]:
    """True tissue parameters of the tissue a region is meant to hold (NaN for mixed regions)."""
    params: SrtmParams | None
    if region == REFERENCE_REGION:
        params = kinetics.reference_as_srtm()
    elif region == "lesion":
        unique = {(p.r1, p.k2, p.bp_nd) for p in lesion_params}
        params = lesion_params[0] if len(unique) == 1 else None
    elif region.startswith("lesion") and region[6:].isdigit():
        params = lesion_params[int(region[6:]) - 1]
    elif region == "nawm":  # normal-appearing WM: farther than 6 mm from any lesion
        params = kinetics.tissues.get("wm")
    else:
        params = kinetics.tissues.get(region)
    if params is None:
        return {"BPND_tissue": np.nan, "R1_tissue": np.nan, "k2_tissue": np.nan}
    return {"BPND_tissue": params.bp_nd, "R1_tissue": params.r1, "k2_tissue": params.k2}

