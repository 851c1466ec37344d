"""Kinetic modelling core: frame timing and decay, reference-tissue models, TAC simulation.

Pure numpy/scipy: arrays in, frozen dataclasses out. Times are minutes from injection, rate
constants 1/min, activities in the dataset's unit, frame averages decay-corrected to injection.
Frames are axis 0 everywhere (TACs are ``(n_frames,)`` or ``(n_frames, n_voxels)``).
"""

from tspo_bids.kinetics.bfm import srtm2_bfm, srtm_bfm
from tspo_bids.kinetics.frames import (
    HALF_LIFE_MIN,
    FrameTiming,
    bids_timing_problems,
    frame_weights,
    normalise_radionuclide,
)
from tspo_bids.kinetics.linear import fit_logan_ref, fit_mrtm, fit_mrtm2, logan_ref_map
from tspo_bids.kinetics.results import (
    BasisMapResult,
    LoganMapResult,
    LoganResult,
    Mrtm2Result,
    MrtmResult,
    Srtm2Result,
    SrtmResult,
)
from tspo_bids.kinetics.srtm import TSPO_BOUNDS, SrtmBounds, fit_srtm, fit_srtm2
from tspo_bids.kinetics.suvr import suvr

__all__ = [
    "HALF_LIFE_MIN",
    "FrameTiming",
    "bids_timing_problems",
    "frame_weights",
    "normalise_radionuclide",
    "fit_srtm",
    "fit_srtm2",
    "fit_mrtm",
    "fit_mrtm2",
    "fit_logan_ref",
    "logan_ref_map",
    "suvr",
    "srtm_bfm",
    "srtm2_bfm",
    "SrtmBounds",
    "TSPO_BOUNDS",
    "SrtmResult",
    "Srtm2Result",
    "MrtmResult",
    "Mrtm2Result",
    "LoganResult",
    "LoganMapResult",
    "BasisMapResult",
]
