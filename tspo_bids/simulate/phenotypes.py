"""Lesion phenotypes of the phantom: known core and rim binding, perilesional gradient, true DVR image.

Every patient lesion gets a phenotype (names of :data:`tspo_bids.pet.phenotypes.PHENOTYPES`,
Polvinen et al. 2023; methods.md sections 4 and 6) with known SRTM kinetics:

==============  =================================  ============================================
phenotype       core (the lesion's own tissue)     rim (normal WM within 2 mm outside the lesion)
==============  =================================  ============================================
inactive        BPND 0-0.15                        none: the rim is normal-appearing WM
rim-active      BPND 0.05-0.15 (~0.1)              BPND 0.3-0.5, R1 of the participant's WM
overall-active  BPND 0.5-1.0 (homogeneous)         none: the rim is normal-appearing WM
==============  =================================  ============================================

Core R1 is drawn from the ``lesion`` range of :data:`tspo_bids.simulate.protocols.TISSUE_RANGES`;
every ``k2 = R1 k2'`` (exactly SRTM against the reference). BPND values are multiplied by the
tracer's genotype factor.

The rim geometry is that of :func:`tspo_bids.pet.phenotypes.lesion_core_and_rim` (``rim_mm`` 2)
applied to the true lesion labels (``TissueMaps.lesion_index_map``: voxels at least half lesion)
with the white matter of :func:`rim_wm_mask` (cerebral WM, ``p_WM >= 0.5``): a rim voxel is
assigned to its nearest lesion, and its normal white matter binds as that lesion's rim.

Perilesional gradient: outside the 2 mm rims of all lesions, the normal white matter at
distance ``d`` (mm, centre to centre, to the nearest true lesion voxel) is a mixture of the
``wm`` tissue and the ``perilesion`` tissue (``wm`` BPND plus the increase) with weight
:func:`perilesion_weight` ``w(d) = max(0, 1 - d / 6 mm)`` for ``d > 0``; the voxel therefore
holds a DVR ``DVR_wm + w(d) * increase``, decaying linearly to 0 at 6 mm from the lesion edge.
Two compartments give a continuous gradient because the PET is linear in the fractions.
Inside the 2 mm rims the gradient is absent for every phenotype: a rim-active rim binds as its
phenotype says, and the rim of an inactive or overall-active lesion is normal-appearing WM. The
profile therefore steps from the rim's value to ``DVR_wm + w(2 mm) * increase`` (``w ~ 0.67``) just
outside the rim, then decays; a smooth decay from the lesion edge is not what is simulated.
Otherwise the rims of lesions simulated "inactive" would bind up to ``NAWM + 0.1`` BPND, within
the rim-active range, and the phenotype definition (rim above the controls' threshold) would
call them rim-active on the true image: the labels would contradict the simulated binding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tspo_bids.anat.regions import TISSUE_THRESHOLD
from tspo_bids.kinetics.simulation import SrtmParams
from tspo_bids.pet.phenotypes import PHENOTYPES, lesion_core_and_rim
from tspo_bids.simulate.protocols import PERILESION_EXTENT_MM, TISSUE_RANGES, TissueKinetics

#: Rim thickness of the phenotypes, mm (as the pipeline's default).
RIM_MM = 2.0

#: Lesions at least this large (nominal, mm^3) cycle through the phenotypes separately from smaller ones.
LARGE_LESION_MM3 = 500.0

#: BPND ranges (uniform) of each phenotype: core, and rim (None: no rim binding).
PHENOTYPE_BPND: dict[str, tuple[tuple[float, float], tuple[float, float] | None]] = {
    "inactive": ((0.00, 0.15), None),
    "rim-active": ((0.05, 0.15), (0.30, 0.50)),
    "overall-active": ((0.50, 1.00), None),
}

#: Order in which phenotypes are assigned (cycled over large lesions, then over small ones).
PHENOTYPE_CYCLE: tuple[str, ...] = ("rim-active", "overall-active", "inactive")


def rim_compartment(index: int) -> str:
    """Compartment name of the rim of lesion ``index`` (1-based)."""
    return f"rim{index:02d}"


@dataclass(frozen=True)
class LesionPhenotype:
    """True binding of one lesion.

    Attributes
    ----------
    name : str
        ``rim-active``, ``overall-active`` or ``inactive``.
    core : SrtmParams
        Kinetics of the lesion tissue.
    rim : SrtmParams or None
        Kinetics of the normal white matter in the lesion's 2 mm rim (None: the rim is
        ordinary (perilesional) white matter).
    """

    name: str
    core: SrtmParams
    rim: SrtmParams | None = None


def draw_phenotypes(rng: np.random.Generator, volumes_mm3: Sequence[float], kinetics: TissueKinetics,
                    binding: float = 1.0) -> list[LesionPhenotype]:
    """Phenotype and kinetics of every lesion.

    Lesions of at least :data:`LARGE_LESION_MM3` cycle through :data:`PHENOTYPE_CYCLE` in
    their order, and so do the smaller ones (starting where a random offset says), so
    three large lesions get one phenotype each.

    Parameters
    ----------
    rng : numpy.random.Generator
    volumes_mm3 : sequence of float
        Nominal lesion volumes, mm^3, in lesion order.
    kinetics : TissueKinetics
        The participant's kinetics (``wm`` gives the rim R1; ``k2' `` the reference efflux).
    binding : float
        Genotype factor multiplying every drawn BPND (1 for PK11195).
    """
    k2_ref = kinetics.reference_efflux_per_min
    r1_range = TISSUE_RANGES["lesion"][1]
    wm = kinetics.tissues["wm"]
    counters = {True: 0, False: int(rng.integers(len(PHENOTYPE_CYCLE)))}
    out = []
    for volume in volumes_mm3:
        large = float(volume) >= LARGE_LESION_MM3
        name = PHENOTYPE_CYCLE[counters[large] % len(PHENOTYPE_CYCLE)]
        counters[large] += 1
        core_range, rim_range = PHENOTYPE_BPND[name]
        r1 = float(rng.uniform(*r1_range))
        core = SrtmParams(r1=r1, k2=float(r1 * k2_ref), bp_nd=float(rng.uniform(*core_range) * binding))
        rim = None
        if rim_range is not None:
            rim = SrtmParams(r1=wm.r1, k2=wm.k2, bp_nd=float(rng.uniform(*rim_range) * binding))
        out.append(LesionPhenotype(name=name, core=core, rim=rim))
    return out


def rim_wm_mask(wm_prob: np.ndarray, cerebral: np.ndarray) -> np.ndarray:
    """White matter that may hold a rim: ``p_WM >= 0.5`` inside ``cerebral`` (bool)."""
    return (np.asarray(wm_prob) >= TISSUE_THRESHOLD) & np.asarray(cerebral, bool)


def lesion_rims(lesion_labels: np.ndarray, voxel_size_mm: Sequence[float], wm_mask: np.ndarray) -> np.ndarray:
    """Rim labels (0 none, ``i`` rim of lesion ``i``) of the pipeline's 2 mm rim geometry."""
    return lesion_core_and_rim(lesion_labels, voxel_size_mm, rim_mm=RIM_MM, wm_mask=wm_mask).rim_labels


def perilesion_weight(distance_mm: np.ndarray, extent_mm: float = PERILESION_EXTENT_MM) -> np.ndarray:
    """Weight of the perilesional tissue: ``1 - d / extent`` for ``0 < d < extent``, else 0."""
    d = np.asarray(distance_mm, float)
    return np.where(d > 0, np.clip(1.0 - d / extent_mm, 0.0, 1.0), 0.0).astype(np.float32)


def true_dvr(fractions: Mapping[str, np.ndarray], dvr: Mapping[str, float]) -> np.ndarray:
    """True DVR image: tissue-content-weighted mean of the compartments' DVR.

    ``DVR(x) = sum_k f_k(x) DVR_k / sum_k f_k(x)`` over the tracer-holding compartments
    (CSF, which holds no tracer, is not a compartment); NaN where ``sum_k f_k = 0``.

    Why: for compartments that are each exactly SRTM with ``k2 = R1 k2'``, the integral of
    a compartment's TAC over that of the reference is its DVR whatever its R1, so a voxel
    holding fractions ``f_k`` has the distribution-volume ratio ``sum_k f_k DVR_k``. That is
    what voxelwise SRTM (basis functions) or Logan recovers on noise-free, PSF-free PET
    (within 0.01 for two-compartment mixtures at 60 min PK11195), i.e. this image times the
    voxel's tissue content ``p_GM + p_WM``. Dividing by the tissue content removes the CSF
    dilution, so a voxel whose tissue is one compartment holds that compartment's DVR exactly
    (and a voxel of normal WM with some CSF holds the WM DVR).

    Parameters
    ----------
    fractions : mapping of str to ndarray
        Volume fraction of each compartment (same shape).
    dvr : mapping of str to float
        DVR (= 1 + BPND) of each compartment; the reference compartment has DVR 1.
    """
    names = list(fractions)
    total = np.zeros(np.shape(fractions[names[0]]), np.float64)
    weighted = np.zeros_like(total)
    for name in names:
        f = np.asarray(fractions[name], np.float64)
        total += f
        weighted += f * float(dvr[name])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / np.where(total > 0, total, 1.0), np.nan).astype(np.float32)
