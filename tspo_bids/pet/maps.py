"""Voxelwise parametric maps: SRTM and SRTM2 basis functions, Logan reference plot, SUVR.

Pure numpy: voxel TACs in, named parameter maps out. The interfaces load and save images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tspo_bids.errors import InputError

#: Minimum number of well-fitted voxels for a data-derived k2'.
MIN_VOXELS_FOR_K2PRIME = 50


@dataclass(frozen=True)
class ParametricMaps:
    """Voxelwise parameter values (one per column of the input TACs).

    Attributes
    ----------
    maps : dict of (model, meas) to ndarray, shape (n_voxels,)
        e.g. ``("SRTM", "BPND")``, ``("SRTM2", "DVR")``, ``("Logan", "DVR")``, ``("SUVR", "SUVR")``;
        NaN where a voxel could not be fitted.
    k2prime : float
        Reference k2' (1/min) used by SRTM2 and Logan: the median k2/R1 of well-fitted SRTM voxels.
    n_k2prime_voxels : int
        Voxels that entered that median.
    """

    maps: dict[tuple[str, str], np.ndarray]
    k2prime: float
    n_k2prime_voxels: int


def data_derived_k2prime(r1: np.ndarray, k2: np.ndarray, usable: np.ndarray) -> tuple[float, int]:
    """Median k2' = k2/R1 (1/min) over usable voxels (methods §2, Wu & Carson 2002).

    Raises
    ------
    InputError
        When fewer than :data:`MIN_VOXELS_FOR_K2PRIME` voxels are usable.
    """
    ok = usable & np.isfinite(r1) & np.isfinite(k2) & (r1 > 0) & (k2 > 0)
    count = int(ok.sum())
    if count < MIN_VOXELS_FOR_K2PRIME:
        raise InputError(f"SRTM2: only {count} well-fitted voxels to estimate k2' (need {MIN_VOXELS_FOR_K2PRIME})")
    return float(np.median(k2[ok] / r1[ok])), count


def parametric_maps(
    voxel_tacs: np.ndarray,
    reference_tac: np.ndarray,
    frame_start_min: np.ndarray,
    frame_end_min: np.ndarray,
    weights: np.ndarray | None,
    t_star_min: float | None,
    suvr_window_min: tuple[float, float] | None,
) -> ParametricMaps:
    """Fit SRTM (basis functions), SRTM2 with a data-derived k2', Logan and SUVR to every voxel.

    Parameters
    ----------
    voxel_tacs : ndarray, shape (n_frames, n_voxels)
        Voxel TACs, frame averages decay-corrected to injection (kBq/mL).
    reference_tac : ndarray, shape (n_frames,)
        Reference-region TAC (kBq/mL).
    frame_start_min, frame_end_min : ndarray, shape (n_frames,)
        Minutes from injection.
    weights : ndarray or None
        Frame weights for the basis-function fits (None: the models' default).
    t_star_min : float or None
        Logan t* (minutes); None skips the Logan map.
    suvr_window_min : (float, float) or None
        SUVR window (minutes); None skips the SUVR map.

    Returns
    -------
    ParametricMaps
    """
    from tspo_bids.kinetics import logan_ref_map, srtm2_bfm, srtm_bfm, suvr

    srtm = srtm_bfm(voxel_tacs, reference_tac, frame_start_min, frame_end_min, weights=weights)
    usable = ~(srtm.edge_of_grid | srtm.failed | srtm.background)
    k2prime, n_used = data_derived_k2prime(srtm.r1, srtm.k2, usable)
    srtm2 = srtm2_bfm(voxel_tacs, reference_tac, frame_start_min, frame_end_min, k2prime, weights=weights)
    maps: dict[tuple[str, str], np.ndarray] = {
        ("SRTM", "BPND"): srtm.bp_nd, ("SRTM", "DVR"): srtm.dvr, ("SRTM", "R1"): srtm.r1, ("SRTM", "k2"): srtm.k2,
        ("SRTM2", "BPND"): srtm2.bp_nd, ("SRTM2", "DVR"): srtm2.dvr, ("SRTM2", "R1"): srtm2.r1,
    }
    if t_star_min is not None:
        logan = logan_ref_map(voxel_tacs, reference_tac, frame_start_min, frame_end_min, t_star_min, k2prime)
        maps[("Logan", "DVR")] = logan.dvr
    if suvr_window_min is not None:
        maps[("SUVR", "SUVR")] = np.asarray(
            suvr(voxel_tacs, reference_tac, frame_start_min, frame_end_min, tuple(suvr_window_min)), float
        )
    return ParametricMaps({key: np.asarray(value, float) for key, value in maps.items()}, k2prime, n_used)
