"""Linear reference-tissue methods: MRTM, MRTM2 (Ichise 2003) and the Logan reference plot (Logan 1996).

All three rest on the integrated SRTM equation ``C_T = R1*C_R + k2*int C_R - k2a*int C_T``, which holds
at every time. Frame values replace instantaneous ones, so both sides are taken as **frame averages**:
``int C`` is the running integral of the frame-consistent reference/target curve (see
:mod:`tspo_bids.kinetics.convolution`) averaged over each frame, i.e. the integral up to the frame
start plus the frame's own half, which is exact when the curve is linear within the frame. With
``sampling="mid_time"`` it is the trapezoid integral through (0, 0) and the values at the mid-times up
to each mid-time (kinfitr's default). With the true k2' the Logan reference plot is then exactly linear
from the first frame on (intercept ``-1/k2a``), so t* only guards against noise and model error.

Frames enter a regression when they start at or after ``t_star`` (minutes from injection) and have a
non-zero weight.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tspo_bids.errors import InputError
from tspo_bids.kinetics._inputs import (
    DEFAULT_WEIGHTS_HALF_LIFE_MIN,
    check_frames,
    check_tac,
    check_weights,
    require_frames,
)
from tspo_bids.kinetics.convolution import Sampling, model_grid, running_integral
from tspo_bids.kinetics.results import LoganMapResult, LoganResult, Mrtm2Result, MrtmResult

__all__ = ["fit_mrtm", "fit_mrtm2", "fit_logan_ref", "logan_ref_map", "frame_integrals"]

_START_TOLERANCE_MIN = 1e-6
_NO_WASHOUT = "g2 >= 0 (k2a <= 0): washout not identified; BPND = -(g1/g2 + 1) kept as the DVR-based estimate"


def frame_integrals(
    tacs: NDArray[np.float64], frame_start: NDArray[np.float64], frame_end: NDArray[np.float64], sampling: Sampling
) -> NDArray[np.float64]:
    """``int_0^t C`` as frame values, for ``(n_frames,)`` or ``(n_frames, k)`` TACs (activity x min)."""
    grid = model_grid(frame_start, frame_end, sampling=sampling)
    return grid.observe(running_integral(grid.interpolate(tacs), grid.step_min))


def t_star_outside_scan(t_star: float, last_start: float) -> str | None:
    """Why ``t_star`` (minutes from injection) leaves no frame to fit on a scan whose last frame starts at
    ``last_start``, or None when it is usable."""
    if t_star > last_start + _START_TOLERANCE_MIN:
        return f"is after the start of the last frame ({last_start:g} min)"
    return None


def _check_t_star(t_star: float, start: NDArray[np.float64], model: str) -> NDArray[np.bool_]:
    if isinstance(t_star, bool) or not isinstance(t_star, (int, float)) or not math.isfinite(t_star):
        raise InputError(f"{model}: t_star must be a number of minutes, got {t_star!r}")
    if t_star < 0:
        raise InputError(f"{model}: t_star must be >= 0 minutes, got {t_star:g}")
    outside = t_star_outside_scan(t_star, float(start[-1]))
    if outside:
        raise InputError(f"{model}: t_star = {t_star:g} min {outside}")
    return start >= t_star - _START_TOLERANCE_MIN


def _check_k2_ref(k2_ref: float, model: str) -> float:
    if isinstance(k2_ref, bool) or not isinstance(k2_ref, (int, float)) or not math.isfinite(k2_ref) or k2_ref <= 0:
        raise InputError(f"{model}: k2_ref (k2', 1/min) must be a positive number, got {k2_ref!r}")
    return float(k2_ref)


def _weighted_regression(
    design: NDArray[np.float64], response: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64] | None:
    sqrt_w = np.sqrt(weights)[:, None]
    scaled = design * sqrt_w
    if np.linalg.matrix_rank(scaled) < design.shape[1]:
        return None
    coefficients, *_ = np.linalg.lstsq(scaled, response * sqrt_w[:, 0], rcond=None)
    return coefficients


def _prepare(
    target: ArrayLike,
    reference: ArrayLike,
    frame_start: ArrayLike,
    frame_end: ArrayLike,
    weights: ArrayLike | None,
    t_star: float,
    model: str,
    n_parameters: int,
    half_life_min: float | None,
) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray, NDArray]:
    start, end = check_frames(frame_start, frame_end, model)
    target_tac = check_tac(target, start.size, "target", model)
    reference_tac = check_tac(reference, start.size, "reference", model)
    w = check_weights(weights, start, end, (target_tac + reference_tac) / 2, model, half_life_min)
    selected = _check_t_star(t_star, start, model) & (w > 0)
    require_frames(int(selected.sum()), n_parameters, model, f" (after t_star = {t_star:g} min)")
    return start, end, target_tac, reference_tac, w, selected


def fit_mrtm(
    target: ArrayLike,
    reference: ArrayLike,
    frame_start: ArrayLike,
    frame_end: ArrayLike,
    t_star: float = 0.0,
    weights: ArrayLike | None = None,
    *,
    half_life_min: float | None = DEFAULT_WEIGHTS_HALF_LIFE_MIN,
    sampling: Sampling = "frame_average",
) -> MrtmResult:
    """MRTM: weighted linear regression ``C_T = g1*int C_R + g2*int C_T + g3*C_R`` (3 parameters).

    Parameters
    ----------
    target, reference
        ``(n_frames,)`` frame averages decay-corrected to injection.
    frame_start, frame_end
        Minutes from injection.
    t_star
        Frames starting before ``t_star`` (minutes) are left out of the regression (0: all frames).
    weights
        Regression weights (1/variance); ``None``: Poisson weights from the mean of target and reference.
    sampling
        ``"frame_average"`` or ``"mid_time"`` (kinfitr's trapezoid integrals).

    Returns
    -------
    MrtmResult
        ``bp_nd = -(g1/g2 + 1)``, ``dvr``, ``r1 = g3``, ``k2_ref = g1/g3`` (k2', 1/min), ``k2a = -g2``.
    """
    model = "MRTM"
    start, end, target_tac, reference_tac, w, used = _prepare(
        target, reference, frame_start, frame_end, weights, t_star, model, 3, half_life_min
    )
    integrals = frame_integrals(np.stack((reference_tac, target_tac), axis=1), start, end, sampling)
    design = np.column_stack((integrals[:, 0], integrals[:, 1], reference_tac))[used]
    coefficients = _weighted_regression(design, target_tac[used], w[used])
    nan = math.nan
    n_used = int(used.sum())
    if coefficients is None:
        return MrtmResult(nan, nan, nan, nan, nan, (nan, nan, nan), float(t_star), n_used, True, "singular regression")
    g1, g2, g3 = (float(value) for value in coefficients)
    if g2 == 0:
        return MrtmResult(nan, g3, g1, -g2, nan, (g1, g2, g3), float(t_star), n_used, True, "g2 = 0: BPND undefined")
    k2_ref = g1 / g3 if g3 != 0 else nan
    return MrtmResult(
        message="" if g2 < 0 else _NO_WASHOUT,
        bp_nd=-(g1 / g2 + 1.0),
        r1=g3,
        k2=g1,
        k2a=-g2,
        k2_ref=k2_ref,
        coefficients=(g1, g2, g3),
        t_star=float(t_star),
        n_frames_used=n_used,
    )


def fit_mrtm2(
    target: ArrayLike,
    reference: ArrayLike,
    frame_start: ArrayLike,
    frame_end: ArrayLike,
    k2_ref: float,
    t_star: float = 0.0,
    weights: ArrayLike | None = None,
    *,
    half_life_min: float | None = DEFAULT_WEIGHTS_HALF_LIFE_MIN,
    sampling: Sampling = "frame_average",
) -> Mrtm2Result:
    """MRTM2: ``C_T = g1*(int C_R + C_R/k2') + g2*int C_T`` with fixed ``k2_ref`` = k2' (1/min).

    Same conventions as :func:`fit_mrtm`. ``bp_nd = -(g1/g2 + 1)``, ``k2 = g1``, ``r1 = g1/k2'``.
    """
    model = "MRTM2"
    k2_ref = _check_k2_ref(k2_ref, model)
    start, end, target_tac, reference_tac, w, used = _prepare(
        target, reference, frame_start, frame_end, weights, t_star, model, 2, half_life_min
    )
    integrals = frame_integrals(np.stack((reference_tac, target_tac), axis=1), start, end, sampling)
    design = np.column_stack((integrals[:, 0] + reference_tac / k2_ref, integrals[:, 1]))[used]
    coefficients = _weighted_regression(design, target_tac[used], w[used])
    nan = math.nan
    n_used = int(used.sum())
    if coefficients is None:
        return Mrtm2Result(nan, nan, nan, nan, k2_ref, (nan, nan), float(t_star), n_used, True, "singular regression")
    g1, g2 = (float(value) for value in coefficients)
    if g2 == 0:
        return Mrtm2Result(nan, g1 / k2_ref, g1, -g2, k2_ref, (g1, g2), float(t_star), n_used, True, "g2 = 0")
    return Mrtm2Result(
        message="" if g2 < 0 else _NO_WASHOUT,
        bp_nd=-(g1 / g2 + 1.0),
        r1=g1 / k2_ref,
        k2=g1,
        k2a=-g2,
        k2_ref=k2_ref,
        coefficients=(g1, g2),
        t_star=float(t_star),
        n_frames_used=n_used,
    )


def fit_logan_ref(
    target: ArrayLike,
    reference: ArrayLike,
    frame_start: ArrayLike,
    frame_end: ArrayLike,
    t_star: float,
    k2_ref: float | None = None,
    *,
    weights: ArrayLike | None = None,
    sampling: Sampling = "frame_average",
) -> LoganResult:
    """Logan reference plot: ``int C_T/C_T = DVR*(int C_R + C_R/k2')/C_T + b`` for frames from ``t_star``.

    Least squares weighted by frame duration by default (as DynamicPET; the transformed variables do
    not have Poisson variance, and long late frames are the least noisy); pass ``weights`` to override
    (``np.ones(n)`` for kinfitr's unweighted fit). ``k2_ref=None`` omits the ``C_R/k2'`` term (biased
    unless ``C_T/C_R`` is constant after t*). Methods.md uses t* = 20 min for 60-min scans.

    Returns
    -------
    LoganResult
        ``dvr`` (slope), ``bp_nd``, ``intercept`` (min), the ``k2_ref`` used and the frames used.
    """
    model = "Logan reference"
    k2_value = None if k2_ref is None else _check_k2_ref(k2_ref, model)
    if weights is None:
        start, end = check_frames(frame_start, frame_end, model)
        weights = end - start
    start, end, target_tac, reference_tac, w, used = _prepare(
        target, reference, frame_start, frame_end, weights, t_star, model, 2, None
    )
    n_used = int(used.sum())
    if np.any(target_tac[used] <= 0):
        raise InputError(f"{model}: the target TAC must be positive in every frame after t_star = {t_star:g} min")
    integrals = frame_integrals(np.stack((reference_tac, target_tac), axis=1), start, end, sampling)
    x_numerator = integrals[:, 0] + (0.0 if k2_value is None else reference_tac / k2_value)
    x = x_numerator[used] / target_tac[used]
    y = integrals[used, 1] / target_tac[used]
    coefficients = _weighted_regression(np.column_stack((x, np.ones_like(x))), y, w[used])
    if coefficients is None:
        return LoganResult(math.nan, math.nan, k2_value, float(t_star), n_used, True, "singular regression")
    slope, intercept = (float(value) for value in coefficients)
    return LoganResult(dvr=slope, intercept=intercept, k2_ref=k2_value, t_star=float(t_star), n_frames_used=n_used)


def logan_ref_map(
    targets: ArrayLike,
    reference: ArrayLike,
    frame_start: ArrayLike,
    frame_end: ArrayLike,
    t_star: float,
    k2_ref: float | None = None,
    *,
    sampling: Sampling = "frame_average",
    background_fraction: float = 1e-3,
) -> LoganMapResult:
    """Logan reference plot for every column of ``targets`` at once (voxel maps).

    The same plot as :func:`fit_logan_ref` (frame-duration weights, frames from ``t_star``),
    solved in closed form for all voxels: with ``x = (int C_R + C_R/k2')/C_T`` and
    ``y = int C_T/C_T``, the weighted slope is
    ``(Sw*Swxy - Swx*Swy) / (Sw*Swxx - Swx^2)``.

    Parameters
    ----------
    targets : array, shape (n_frames, n_voxels)
        Voxel TACs (frame averages, decay-corrected to injection).
    reference : array, shape (n_frames,)
        Reference TAC, same unit.
    frame_start, frame_end : array, shape (n_frames,)
        Minutes from injection.
    t_star : float
        First frame start used (minutes).
    k2_ref : float, optional
        Reference k2' (1/min); None omits the ``C_R/k2'`` term.
    background_fraction : float
        Voxels whose maximum is below this fraction of the reference maximum, or that are not
        positive in every frame after t*, are not fitted (NaN, flagged ``background``).

    Returns
    -------
    LoganMapResult
    """
    model = "Logan reference map"
    k2_value = None if k2_ref is None else _check_k2_ref(k2_ref, model)
    start, end = check_frames(frame_start, frame_end, model)
    target_tacs = check_tac(targets, start.size, "targets", model, allow_2d=True)
    if target_tacs.ndim == 1:
        target_tacs = target_tacs[:, None]
    reference_tac = check_tac(reference, start.size, "reference", model)
    used = _check_t_star(t_star, start, model)
    require_frames(int(used.sum()), 2, model, f" (after t_star = {t_star:g} min)")
    weights = (end - start)[used]

    reference_integral = frame_integrals(reference_tac, start, end, sampling)
    # The frame-average running integral is linear in the TAC: build its (n_frames x n_frames)
    # matrix once instead of interpolating every voxel on the fine grid (memory O(frames^2)).
    integral_matrix = frame_integrals(np.eye(start.size), start, end, sampling)
    target_integral = integral_matrix @ target_tacs
    numerator = reference_integral + (0.0 if k2_value is None else reference_tac / k2_value)
    late = target_tacs[used]
    background = (np.max(target_tacs, axis=0) < background_fraction * np.max(reference_tac)) | np.any(
        late <= 0, axis=0
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        x = numerator[used][:, None] / late
        y = target_integral[used] / late
        w = weights[:, None]
        sw = w.sum()
        swx, swy = (w * x).sum(axis=0), (w * y).sum(axis=0)
        swxx, swxy = (w * x * x).sum(axis=0), (w * x * y).sum(axis=0)
        determinant = sw * swxx - swx**2
        slope = (sw * swxy - swx * swy) / determinant
        intercept = (swy - slope * swx) / sw
    failed = ~background & ~(np.isfinite(slope) & (np.abs(determinant) > 0))
    invalid = background | failed
    return LoganMapResult(
        dvr=np.where(invalid, np.nan, slope),
        intercept=np.where(invalid, np.nan, intercept),
        background=background,
        failed=failed,
        k2_ref=k2_value,
        t_star=float(t_star),
        n_frames_used=int(used.sum()),
    )
