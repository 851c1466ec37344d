"""A simulated MS cohort for lesion phenotypes at PET resolution (dynamic PET, known truth).

Each participant is a slab of white matter (1 mm voxels, the T1w grid) holding spherical lesions
spaced 28 mm apart. Kinetics, phenotypes and the perilesional gradient come from the project's
phantom (:mod:`tspo_bids.simulate.protocols`, :mod:`tspo_bids.simulate.phenotypes`): [11C]-(R)-PK11195
seed protocol (22 frames, 60 min), WM BPND 0.15-0.25 (patients' NAWM +3-10 %), lesion cores and
2 mm rims per phenotype, perilesional increase +0.05-0.10 outside the 2 mm rims, decaying to 0 at 6 mm. Every voxel's TAC
is exactly SRTM against the 2TCM reference. The PET is blurred by a 5 mm FWHM Gaussian PSF, then
noise is added as the phantom does (``Var = a C DCF / dur``, late-frame voxel COV 15-25 %) on a
2 mm PET grid and resampled (trilinear) to the 1 mm grid, as the pipeline resamples PET to T1w.

Simplifications (said where they matter): the PET grid is aligned with the T1w grid and the
forward model is the PSF blur on the T1w grid (the pipeline models its PET voxelisation too); the
reference TAC is the true one (the pipeline measures it in cerebellar GM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tspo_bids.kinetics.frames import FrameTiming
from tspo_bids.kinetics.simulation import SrtmParams, noise_sd, scale_for_cov, simulate_tacs
from tspo_bids.pvc import gaussian_psf_blur
from tspo_bids.pvc.psf import kernel_radius_vox
from tspo_bids.simulate.phenotypes import draw_phenotypes, perilesion_weight
from tspo_bids.simulate.protocols import PERILESION_INCREASE, draw_kinetics, get_protocol

VOXEL_MM = 1.0
PSF_FWHM_MM = 5.0
SPACING_MM = 28
MARGIN_MM = 8
#: Lesion radii (mm) of every patient: three >= 500 mm^3 (523, 905, 1437), two 100-500, two < 100.
RADII_MM = (5.0, 6.0, 7.0, 3.5, 4.5, 2.0, 2.7)
PROTOCOL = get_protocol("pk11195")


@dataclass(frozen=True)
class Participant:
    """One simulated participant (T1w grid, 1 mm)."""

    brain: np.ndarray  # bool (X, Y, Z): white matter slab
    lesion_labels: np.ndarray  # int32, 0 background, 1..n
    phenotypes: list[str]  # per lesion (empty for controls)
    volumes_mm3: np.ndarray  # per lesion, voxel count x 1 mm^3
    observed: np.ndarray  # float32 (X, Y, Z, frames): blurred noisy PET, kBq/mL
    reference_tac: np.ndarray  # (frames,) true reference TAC, kBq/mL
    timing: FrameTiming


def frame_timing() -> FrameTiming:
    durations_min = np.asarray(PROTOCOL.frame_duration_s) / 60.0
    starts_min = np.concatenate([[0.0], np.cumsum(durations_min)[:-1]]) + PROTOCOL.scan_delay_s / 60.0
    return FrameTiming(starts_min, starts_min + durations_min, radionuclide=PROTOCOL.radionuclide)


def _layout(n_lesions: int) -> tuple[tuple[int, int, int], list[np.ndarray]]:
    per_row = 4
    rows = -(-n_lesions // per_row)
    shape = (per_row * SPACING_MM + 2 * MARGIN_MM, rows * SPACING_MM + 2 * MARGIN_MM, SPACING_MM + 2 * MARGIN_MM)
    centres = [np.array([MARGIN_MM + (i % per_row + 0.5) * SPACING_MM, MARGIN_MM + (i // per_row + 0.5) * SPACING_MM,
                         MARGIN_MM + 0.5 * SPACING_MM]) for i in range(n_lesions)]
    return shape, centres


def simulate_participant(rng: np.random.Generator, patient: bool, psf_fwhm_mm: float = PSF_FWHM_MM,
                         noise: bool = True, gradient_in_rims: bool = False) -> Participant:
    """Draw one participant's kinetics, lesions (patients) and noisy blurred PET.

    ``psf_fwhm_mm=0`` and ``noise=False`` give the true PET (the random draws are the same).
    Each patient's lesion sizes come in a random order, so every phenotype meets every size.
    ``gradient_in_rims=True`` extends the perilesional increase into the 2 mm rims of inactive and
    overall-active lesions (the phantom before the gradient was moved outside the rims: a rim that
    is not uniform, and whose label may disagree with the definition on the true image).
    """
    timing = frame_timing()
    kinetics = draw_kinetics(rng, PROTOCOL, "RRMS" if patient else "HC", "HAB")
    radii = rng.permutation(RADII_MM) if patient else RADII_MM
    shape, centres = _layout(len(RADII_MM))
    grid = (np.indices(shape).transpose(1, 2, 3, 0) + 0.5) * VOXEL_MM
    brain = np.zeros(shape, bool)
    brain[MARGIN_MM:-MARGIN_MM, MARGIN_MM:-MARGIN_MM, MARGIN_MM:-MARGIN_MM] = True
    labels = np.zeros(shape, np.int32)
    if patient:
        for index, (centre, radius) in enumerate(zip(centres, radii), start=1):
            jitter = rng.uniform(-0.5, 0.5, 3)
            labels[np.linalg.norm(grid - centre - jitter, axis=-1) <= radius] = index
    volumes = np.bincount(labels.ravel(), minlength=len(RADII_MM) + 1)[1:].astype(float) * VOXEL_MM**3
    if not patient:
        volumes = np.zeros(0)

    wm = kinetics.tissues["wm"]
    targets: dict[str, SrtmParams] = {"wm": wm}
    fractions: dict[str, np.ndarray] = {}
    phenotypes: list[str] = []
    if patient:
        from tspo_bids.pet.phenotypes import lesion_core_and_rim

        drawn = draw_phenotypes(rng, volumes, kinetics)
        phenotypes = [p.name for p in drawn]
        regions = lesion_core_and_rim(labels, (VOXEL_MM,) * 3, rim_mm=2.0, wm_mask=brain)
        distance = ndimage.distance_transform_edt(labels == 0, sampling=VOXEL_MM)
        weight = perilesion_weight(distance) * brain
        increase = float(rng.uniform(*PERILESION_INCREASE))
        targets["perilesion"] = SrtmParams(r1=wm.r1, k2=wm.k2, bp_nd=wm.bp_nd + increase)
        rim_tissue = np.zeros(shape, bool)
        for index, phenotype in enumerate(drawn, start=1):
            targets[f"core{index}"] = phenotype.core
            fractions[f"core{index}"] = (labels == index).astype(np.float32)
            if phenotype.rim is not None:
                rim = regions.rim_labels == index
                targets[f"rim{index}"] = phenotype.rim
                fractions[f"rim{index}"] = rim.astype(np.float32)
                rim_tissue |= rim
        # as the project's phantom: the gradient lies outside every lesion's 2 mm rim
        normal = brain & (labels == 0) & ~rim_tissue
        if not gradient_in_rims:
            weight = np.where(regions.rim_labels > 0, 0.0, weight)
        fractions["perilesion"] = np.where(normal, weight, 0).astype(np.float32)
        fractions["wm"] = np.where(normal, 1.0 - weight, 0).astype(np.float32)
    else:
        fractions["wm"] = brain.astype(np.float32)

    tacs = simulate_tacs(timing, targets, reference=kinetics.reference)
    true_series = np.zeros(shape + (timing.n_frames,), np.float32)
    for name, fraction in fractions.items():
        true_series += fraction[..., None] * tacs[name].astype(np.float32)
    blurred = (gaussian_psf_blur(true_series, psf_fwhm_mm, VOXEL_MM, dtype=np.float32) if psf_fwhm_mm > 0
               else true_series)
    cov = float(rng.uniform(0.15, 0.25))
    scale = scale_for_cov(tacs["wm"], timing, cov)
    coarse_shape = tuple(-(-s // 2) for s in shape)
    white = rng.standard_normal(coarse_shape + (timing.n_frames,)).astype(np.float32)
    noise_field = ndimage.zoom(white, (2, 2, 2, 1), order=1, grid_mode=True, mode="nearest")[: shape[0], : shape[1], : shape[2]]
    sd = noise_sd(np.moveaxis(blurred, -1, 0).reshape(timing.n_frames, -1), timing, scale)
    observed = blurred + float(noise) * noise_field * np.moveaxis(sd.reshape((timing.n_frames,) + shape), 0, -1).astype(np.float32)
    return Participant(brain, labels, phenotypes, volumes, observed.astype(np.float32), tacs["reference"], timing)


# ----------------------------------------------------------------------------- analysis
@dataclass(frozen=True)
class PsfBlur:
    """The cohort's forward model (Gaussian PSF on the 1 mm grid, zero outside), also on a box.

    ``project_box`` lets the compartment GTM blur a lesion's compartment near its support only:
    the box grown by the kernel radius holds every voxel the full-grid blur makes non-zero, and
    the blur there is the same sum (tests/pvc/test_compartment_crop.py checks the pipeline's
    model the same way).
    """

    fwhm_mm: float
    shape: tuple[int, int, int]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return gaussian_psf_blur(image, self.fwhm_mm, VOXEL_MM, dtype=np.float32)

    def project_box(self, values: np.ndarray, box: tuple[slice, ...]) -> tuple[np.ndarray, tuple[slice, ...]]:
        radius = kernel_radius_vox(self.fwhm_mm, VOXEL_MM)
        grown = tuple(slice(max(0, b.start - r), min(n, b.stop + r)) for b, r, n in zip(box, radius, self.shape))
        padded = np.zeros(tuple(g.stop - g.start for g in grown), np.float32)
        padded[tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown))] = values
        return self(padded), grown


def dvr_map(participant: Participant, correct: bool) -> np.ndarray:
    """SRTM2 DVR map (T1w grid, NaN outside the brain) of the uncorrected or RBV-corrected PET.

    The correction is the pipeline's: tissue compartments with every lesion's core and 2 mm rim
    as compartments of their own (:func:`tspo_bids.pvc.compartments.tissue_compartments`), GTM,
    then RBV with the voxel's own compartment as numerator.
    """
    from tspo_bids.anat.ms_regions import define_ms_regions
    from tspo_bids.anat.regions import AtlasGroups
    from tspo_bids.pet.maps import parametric_maps
    from tspo_bids.pet.phenotypes import lesion_core_and_rim
    from tspo_bids.pvc.compartments import compartment_gtm, compartment_rbv, tissue_compartments

    brain = participant.brain
    series = participant.observed
    if correct:
        none = np.zeros(brain.shape, bool)
        atlas = AtlasGroups(cerebellum=none, vermis=none, thalamus=none, deepgm=none)
        rims = (lesion_core_and_rim(participant.lesion_labels, (VOXEL_MM,) * 3, rim_mm=2.0, wm_mask=brain)
                if participant.lesion_labels.any() else None)
        ms_masks = None
        if rims is not None:  # lesion and perilesional shells, as the pipeline defines them
            ms_masks = define_ms_regions(brain.astype(np.float32), np.zeros(brain.shape, np.float32),
                                         participant.lesion_labels, VOXEL_MM, brain_mask=brain)
        compartments = tissue_compartments(np.zeros(brain.shape, np.float32), brain.astype(np.float32),
                                           np.zeros(brain.shape, np.float32), brain, atlas, ms_masks,
                                           lesion_rims=rims)
        gtm = compartment_gtm(series, compartments, brain,
                              PsfBlur(PSF_FWHM_MM, brain.shape))
        series = compartment_rbv(series, compartments, gtm, brain)
    timing = participant.timing
    maps = parametric_maps(series[brain].T.astype(float), participant.reference_tac, timing.start_min,
                           timing.end_min, None, None, None)
    out = np.full(brain.shape, np.nan, np.float32)
    out[brain] = maps.maps[("SRTM2", "DVR")]
    return out
