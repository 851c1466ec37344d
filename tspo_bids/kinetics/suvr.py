"""SUVR: ratio of the time-averaged target and reference activity over a late window (methods.md section 2).

SUVR is biased relative to DVR when the tissue is not at equilibrium: report it as SUVR, never as DVR.
Tracer windows of methods.md: PK11195 40-60 min; PBR28, GE-180, PBR06 60-90 min.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tspo_bids.errors import InputError
from tspo_bids.kinetics._inputs import check_frames, check_tac

__all__ = ["suvr", "window_weights"]

_TOLERANCE_MIN = 1e-6


def window_outside_scan(window: tuple[float, float], first_start: float, scan_end: float) -> str | None:
    """Why ``window`` (start_min, end_min) is not usable on a scan spanning ``first_start``-``scan_end``
    minutes from injection, or None when the scan covers it."""
    low, high = window
    if low < first_start - _TOLERANCE_MIN or high > scan_end + _TOLERANCE_MIN:
        return f"is not covered by the scan ({first_start:g}-{scan_end:g} min)"
    return None


def window_weights(
    frame_start: NDArray[np.float64], frame_end: NDArray[np.float64], window: tuple[float, float], model: str = "SUVR"
) -> NDArray[np.float64]:
    """Minutes of each frame inside ``window`` = (start_min, end_min); raises when the window is unusable."""
    try:
        low, high = (float(value) for value in window)
    except (TypeError, ValueError):
        raise InputError(f"{model}: window must be (start_min, end_min), got {window!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InputError(f"{model}: window must be (start_min, end_min) with start < end, got {window!r}")
    outside = window_outside_scan((low, high), float(frame_start[0]), float(frame_end[-1]))
    if outside:
        raise InputError(f"{model}: window {low:g}-{high:g} min {outside}; choose a window inside it")
    overlap = np.clip(np.minimum(frame_end, high) - np.maximum(frame_start, low), 0.0, None)
    overlap[overlap < _TOLERANCE_MIN] = 0.0
    return overlap


def suvr(
    target: ArrayLike,
    reference: ArrayLike,
    frame_start: ArrayLike,
    frame_end: ArrayLike,
    window: tuple[float, float],
) -> float | NDArray[np.float64]:
    """Standardised uptake value ratio over ``window`` (minutes from injection).

    Each frame counts by the minutes it overlaps the window (a frame straddling a window edge counts
    partly), i.e. the ratio of the window integrals of the two step-wise TACs.

    Parameters
    ----------
    target
        ``(n_frames,)`` or ``(n_frames, n_voxels)`` frame averages.
    reference
        ``(n_frames,)`` reference TAC, same unit.
    frame_start, frame_end
        Minutes from injection.
    window
        ``(start_min, end_min)``, inside the scan.

    Returns
    -------
    float or ndarray
        A float for one TAC, an array ``(n_voxels,)`` for several.
    """
    model = "SUVR"
    start, end = check_frames(frame_start, frame_end, model)
    target_tac = check_tac(target, start.size, "target", model, allow_2d=True)
    reference_tac = check_tac(reference, start.size, "reference", model)
    overlap = window_weights(start, end, window, model)
    reference_area = float(overlap @ reference_tac)
    if not reference_area > 0:
        raise InputError(f"{model}: the reference activity in the window {window} is not positive")
    ratio = (overlap @ target_tac) / reference_area
    return float(ratio) if target_tac.ndim == 1 else ratio
