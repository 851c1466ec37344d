"""Validation of model inputs at the door: every user-caused problem becomes one ``InputError``."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tspo_bids.errors import InputError
from tspo_bids.kinetics.frames import HALF_LIFE_MIN, _timing_problems_min, poisson_weights

#: Half-life used by the default weights of the model functions (minutes): C-11, the usual TSPO label.
DEFAULT_WEIGHTS_HALF_LIFE_MIN = HALF_LIFE_MIN["C11"]


def check_frames(frame_start: ArrayLike, frame_end: ArrayLike, model: str) -> tuple[NDArray, NDArray]:
    """Frame start/end (minutes from injection) as float arrays; raises on any inconsistency."""
    try:
        start = np.asarray(frame_start, dtype=float)
        end = np.asarray(frame_end, dtype=float)
    except (TypeError, ValueError) as error:
        raise InputError(f"{model}: frame times must be numbers (minutes): {error}") from None
    problems = _timing_problems_min(start, end)
    if not problems and start[0] < 0:
        problems.append(
            f"frame 1 starts {-start[0] * 60:g} s before injection; drop frames before injection first"
        )
    if problems:
        raise InputError(f"{model}: " + "; ".join(problems))
    return start, end


def check_tac(values: ArrayLike, n_frames: int, name: str, model: str, allow_2d: bool = False) -> NDArray:
    """A TAC of ``n_frames`` finite values (``(n_frames,)``, or ``(n_frames, n)`` when ``allow_2d``)."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise InputError(f"{model}: {name} must be numbers: {error}") from None
    shapes = "(n_frames,) or (n_frames, n_voxels)" if allow_2d else "(n_frames,)"
    if array.ndim not in ((1, 2) if allow_2d else (1,)) or array.shape[0] != n_frames:
        raise InputError(f"{model}: {name} has shape {array.shape}, expected {shapes} with n_frames={n_frames}")
    finite = np.isfinite(array)
    if not finite.all():
        first_bad = np.argwhere(~finite)[0]
        where = f"frame {first_bad[0] + 1}" + (f", column {first_bad[1]}" if array.ndim == 2 else "")
        raise InputError(f"{model}: {name} contains NaN or infinite values (first at {where})")
    return array


def check_weights(
    weights: ArrayLike | None,
    frame_start: NDArray,
    frame_end: NDArray,
    tac_for_default: NDArray,
    model: str,
    half_life_min: float | None,
) -> NDArray:
    """Regression weights (proportional to 1/variance), or the Poisson default of methods.md section 1.

    The default is ``dur / (C * DCF)`` with ``C = tac_for_default`` floored at 1 % of its maximum and
    ``DCF`` the decay factor of ``half_life_min`` (``None``: no decay factor), normalised to max 1.
    """
    n_frames = frame_start.size
    duration = frame_end - frame_start
    if weights is None:
        if half_life_min is None:
            dcf = np.ones(n_frames)
        else:
            lam = np.log(2.0) / half_life_min
            dcf = lam * duration * np.exp(lam * frame_start) / -np.expm1(-lam * duration)
        return poisson_weights(duration, tac_for_default, dcf)
    array = check_tac(weights, n_frames, "weights", model)
    if np.any(array < 0):
        raise InputError(f"{model}: weights must be >= 0 (they are 1/variance, not sigma)")
    if not np.any(array > 0):
        raise InputError(f"{model}: all weights are zero")
    return array


def require_frames(n_used: int, n_parameters: int, model: str, detail: str = "") -> None:
    """Raise unless at least ``n_parameters`` frames enter the fit."""
    if n_used < n_parameters:
        raise InputError(
            f"{model}: {n_used} frames in the fit{detail} but the model has {n_parameters} parameters; "
            "use more frames (longer scan, earlier t_star or non-zero weights)"
        )
