"""Digital phantom: synthetic BIDS datasets (T1w, FLAIR, dynamic TSPO PET) with known truth.

Public API
----------
make_dataset(out_dir, n_subjects, tracer, seed, ...)
    Write a complete BIDS dataset and ``derivatives/phantom-truth``.
simulate_session(...)
    One participant/session in memory (no files).
PhantomOptions
    Grids, PSF, noise and misalignment settings.
regional_tacs_in_t1w(...), perfect_kinpar(...)
    How a perfect pipeline measures regional TACs and SRTM parameters.
LesionPhenotype, draw_phenotypes(...), true_dvr(...)
    Lesion phenotypes (core/rim binding) and the true DVR image
    (:mod:`tspo_bids.simulate.phenotypes`).
"""

from tspo_bids.simulate.dataset import Participant, draw_participants, frame_schedule, make_dataset, pet_sidecar
from tspo_bids.simulate.measure import perfect_kinpar, perfect_regional_tacs, pet_in_t1w, regional_tacs_in_t1w
from tspo_bids.simulate.phenotypes import LesionPhenotype, draw_phenotypes, true_dvr
from tspo_bids.simulate.session import PhantomOptions, SessionPhantom, simulate_session

__all__ = [
    "LesionPhenotype",
    "Participant",
    "PhantomOptions",
    "SessionPhantom",
    "draw_participants",
    "draw_phenotypes",
    "frame_schedule",
    "make_dataset",
    "perfect_kinpar",
    "perfect_regional_tacs",
    "pet_in_t1w",
    "pet_sidecar",
    "regional_tacs_in_t1w",
    "simulate_session",
    "true_dvr",
]
