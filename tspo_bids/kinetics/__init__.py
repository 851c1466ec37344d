"""Kinetic modelling core: frame timing and decay, reference-tissue models, TAC simulation.

Pure numpy/scipy: arrays in, frozen dataclasses out. Times are minutes from injection, rate
constants 1/min, activities in the dataset's unit, decay-corrected to injection.
"""

from tspo_bids.kinetics.frames import (
    HALF_LIFE_MIN,
    FrameTiming,
    bids_timing_problems,
    frame_weights,
    normalise_radionuclide,
)

__all__ = [
    "HALF_LIFE_MIN",
    "FrameTiming",
    "bids_timing_problems",
    "frame_weights",
    "normalise_radionuclide",
]
