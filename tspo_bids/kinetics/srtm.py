"""SRTM (Lammertsma & Hume 1996) and SRTM2 (Wu & Carson 2002) for one TAC: weighted non-linear least squares.

Model (methods.md section 2), with ``k2a = k2/(1 + BPND)``::

    C_T = R1*C_R + (k2 - R1*k2a) * (C_R conv exp(-k2a t))        # SRTM
    C_T = R1*[C_R + (k2' - k2a) * (C_R conv exp(-k2a t))]         # SRTM2, k2' fixed

The convolution is exact for the piecewise-linear reference through (0, 0) and the frame mid-times on a
1-s grid, and it is **frame-averaged** before it is compared with the data; the ``R1*C_R`` term uses the
measured reference frame averages, which is exact.

For a fixed ``k2a`` both models are linear in the other parameters, so the weighted least-squares
problem is solved by variable projection: the box-constrained linear problem (R1, k2 within the TSPO
bounds, BPND within its bounds) is solved exactly for each ``k2a``, and the one-dimensional profile
is minimised globally: a log-spaced scan of ``k2a`` over everything the bounds allow, then a bounded
Brent refinement started from each of the best local minima (the "several starts"). This finds the
same optimum as multi-start Levenberg-Marquardt, cannot stall at a poor start, and is fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from tspo_bids.kinetics._inputs import (
    DEFAULT_WEIGHTS_HALF_LIFE_MIN,
    check_frames,
    check_tac,
    check_weights,
    require_frames,
)
from tspo_bids.errors import InputError
from tspo_bids.kinetics.convolution import ModelGrid, Sampling, exp_convolve, model_grid
from tspo_bids.kinetics.results import Srtm2Result, SrtmResult

__all__ = ["SrtmBounds", "TSPO_BOUNDS", "fit_srtm", "fit_srtm2"]

_PROFILE_POINTS = 48
_RELATIVE_BOUND_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SrtmBounds:
    """Parameter bounds: ``r1`` (unitless), ``k2`` (1/min), ``bp_nd`` (unitless; may be negative)."""

    r1: tuple[float, float] = (0.05, 3.0)
    k2: tuple[float, float] = (0.001, 1.0)
    bp_nd: tuple[float, float] = (-0.5, 5.0)

    def __post_init__(self) -> None:
        for name in ("r1", "k2", "bp_nd"):
            low, high = getattr(self, name)
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise InputError(f"SRTM bounds: {name} needs finite low < high, got {(low, high)}")
        if self.bp_nd[0] <= -1 or self.k2[0] <= 0 or self.r1[0] <= 0:
            raise InputError("SRTM bounds: need BPND > -1, k2 > 0 and R1 > 0 at the lower bounds")


#: TSPO bounds of methods.md section 2: the reference region binds too, so BPND < 0 is legitimate.
TSPO_BOUNDS = SrtmBounds()


@dataclass(frozen=True)
class _Problem:
    """One weighted fitting problem on its model grid."""

    target_w: NDArray[np.float64]  # sqrt(w) * C_T
    reference_w: NDArray[np.float64]  # sqrt(w) * C_R
    sqrt_w: NDArray[np.float64]
    reference_grid: NDArray[np.float64]
    grid: ModelGrid
    n_frames_used: int

    def basis(self, k2a: float) -> NDArray[np.float64]:
        """sqrt(w) * frame values (averages) of C_R conv exp(-k2a t)."""
        convolution = exp_convolve(self.reference_grid, k2a, self.grid.step_min)
        return self.sqrt_w * self.grid.observe(convolution)


def _prepare(
    target: ArrayLike,
    reference: ArrayLike,
    frame_start: ArrayLike,
    frame_end: ArrayLike,
    weights: ArrayLike | None,
    model: str,
    n_parameters: int,
    half_life_min: float | None,
    sampling: Sampling,
) -> _Problem:
    start, end = check_frames(frame_start, frame_end, model)
    target_tac = check_tac(target, start.size, "target", model)
    reference_tac = check_tac(reference, start.size, "reference", model)
    w = check_weights(weights, start, end, (target_tac + reference_tac) / 2, model, half_life_min)
    n_used = int(np.count_nonzero(w))
    require_frames(n_used, n_parameters, model)
    grid = model_grid(start, end, sampling=sampling)
    sqrt_w = np.sqrt(w)
    return _Problem(
        target_w=sqrt_w * target_tac,
        reference_w=sqrt_w * reference_tac,
        sqrt_w=sqrt_w,
        reference_grid=grid.interpolate(reference_tac),
        grid=grid,
        n_frames_used=n_used,
    )


def _box_least_squares_2(
    u: NDArray[np.float64], v: NDArray[np.float64], y: NDArray[np.float64], low: NDArray, high: NDArray
) -> tuple[NDArray[np.float64], float]:
    """min |y - a*u - b*v|^2 with low <= (a, b) <= high, exactly (convex quadratic in 2-D)."""
    gram = np.array([[u @ u, u @ v], [u @ v, v @ v]])
    rhs = np.array([u @ y, v @ y])
    yy = float(y @ y)

    def rss(x: NDArray[np.float64]) -> float:
        return yy - 2 * float(rhs @ x) + float(x @ gram @ x)

    det = gram[0, 0] * gram[1, 1] - gram[0, 1] ** 2
    if det > 1e-12 * gram[0, 0] * gram[1, 1]:
        free = np.array([gram[1, 1] * rhs[0] - gram[0, 1] * rhs[1], gram[0, 0] * rhs[1] - gram[0, 1] * rhs[0]]) / det
        if np.all(free >= low) and np.all(free <= high):
            return free, rss(free)
    best_x, best_rss = None, math.inf
    for fixed in (0, 1):
        other = 1 - fixed
        for value in (low[fixed], high[fixed]):
            x = np.empty(2)
            x[fixed] = value
            curvature = gram[other, other]
            unconstrained = (rhs[other] - gram[other, fixed] * value) / curvature if curvature > 0 else low[other]
            x[other] = min(max(unconstrained, low[other]), high[other])
            value_rss = rss(x)
            if value_rss < best_rss:
                best_x, best_rss = x, value_rss
    assert best_x is not None
    return best_x, best_rss


def _profile_minimum(
    objective: Callable[[float], float], k2a_low: float, k2a_high: float, n_starts: int
) -> tuple[float, float]:
    """Global minimum over log k2a: scan, then bounded Brent from the best ``n_starts`` local minima."""
    log_grid = np.linspace(math.log(k2a_low), math.log(k2a_high), _PROFILE_POINTS)
    values = np.array([objective(math.exp(x)) for x in log_grid])
    finite = np.where(np.isfinite(values), values, np.inf)
    left = np.concatenate(([np.inf], finite[:-1]))
    right = np.concatenate((finite[1:], [np.inf]))
    local = np.flatnonzero((finite <= left) & (finite <= right) & np.isfinite(finite))
    if local.size == 0:
        return math.nan, math.inf
    starts = local[np.argsort(finite[local])][:n_starts]
    best_k2a, best_value = math.exp(log_grid[starts[0]]), float(finite[starts[0]])
    for index in starts:
        low = log_grid[max(index - 1, 0)]
        high = log_grid[min(index + 1, log_grid.size - 1)]
        refined = minimize_scalar(
            lambda x: objective(math.exp(x)), bounds=(low, high), method="bounded", options={"xatol": 1e-8}
        )
        if refined.fun < best_value:
            best_k2a, best_value = math.exp(float(refined.x)), float(refined.fun)
    return best_k2a, best_value


def _on_bound(value: float, low: float, high: float) -> bool:
    tolerance = _RELATIVE_BOUND_TOLERANCE * max(abs(low), abs(high), 1e-12)
    return value <= low + tolerance or value >= high - tolerance


def fit_srtm(
    target: ArrayLike,
    reference: ArrayLike,
    frame_start: ArrayLike,
    frame_end: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    bounds: SrtmBounds = TSPO_BOUNDS,
    n_starts: int = 3,
    half_life_min: float | None = DEFAULT_WEIGHTS_HALF_LIFE_MIN,
    sampling: Sampling = "frame_average",
) -> SrtmResult:
    """Fit SRTM to one target TAC by weighted non-linear least squares.

    Parameters
    ----------
    target, reference
        ``(n_frames,)`` frame averages decay-corrected to injection (same activity unit).
    frame_start, frame_end
        Frame start and end, minutes from injection.
    weights
        Regression weights proportional to 1/variance (not sigma); ``None``: Poisson weights of
        methods.md section 1 from the mean of target and reference, with decay factors of
        ``half_life_min`` (default C-11; ``None`` for none).
    bounds
        Parameter bounds (default TSPO bounds: R1 [0.05, 3], k2 [0.001, 1] /min, BPND [-0.5, 5]).
    n_starts
        Number of local minima of the k2a profile refined.
    sampling
        ``"frame_average"`` (PET data, default) or ``"mid_time"`` (values are instantaneous samples at
        the mid-times, as in kinfitr-simulated data); see :mod:`tspo_bids.kinetics.convolution`.

    Returns
    -------
    SrtmResult
        ``bp_nd``, ``dvr``, ``r1``, ``k2``, ``k2a``, ``k2_ref`` and the fit flags.

    Raises
    ------
    InputError
        Non-finite values, mismatched lengths, bad frame times, fewer frames than 3 parameters.
    """
    model = "SRTM"
    problem = _prepare(target, reference, frame_start, frame_end, weights, model, 3, half_life_min, sampling)
    if not np.any(problem.target_w):
        return _failed_srtm(problem.n_frames_used, "target TAC is zero in every weighted frame")
    k2a_low = bounds.k2[0] / (1 + bounds.bp_nd[1])
    k2a_high = bounds.k2[1] / (1 + bounds.bp_nd[0])
    cache: dict[float, tuple[NDArray[np.float64], float]] = {}

    def solve(k2a: float) -> tuple[NDArray[np.float64], float]:
        if k2a not in cache:
            basis = problem.basis(k2a)
            low = np.array([bounds.r1[0], max(bounds.k2[0], k2a * (1 + bounds.bp_nd[0]))])
            high = np.array([bounds.r1[1], min(bounds.k2[1], k2a * (1 + bounds.bp_nd[1]))])
            if low[1] > high[1]:
                cache[k2a] = (np.full(2, np.nan), math.inf)
            else:
                # C_T = R1*(C_R - k2a*B) + k2*B: linear in (R1, k2) for fixed k2a
                cache[k2a] = _box_least_squares_2(
                    problem.reference_w - k2a * basis, basis, problem.target_w, low, high
                )
        return cache[k2a]

    k2a, rss = _profile_minimum(lambda value: solve(value)[1], k2a_low, k2a_high, n_starts)
    if not math.isfinite(rss):
        return _failed_srtm(problem.n_frames_used, "no admissible parameters within the bounds")
    (r1, k2), _ = solve(k2a)
    bp_nd = k2 / k2a - 1
    hit = tuple(
        name
        for name, value, (low, high) in (("r1", r1, bounds.r1), ("k2", k2, bounds.k2), ("bp_nd", bp_nd, bounds.bp_nd))
        if _on_bound(value, low, high)
    )
    return SrtmResult(
        bp_nd=float(bp_nd),
        r1=float(r1),
        k2=float(k2),
        k2a=float(k2a),
        k2_ref=float(k2 / r1),
        rss=float(rss),
        n_frames_used=problem.n_frames_used,
        bounds_hit=hit,
    )


def _failed_srtm(n_frames_used: int, message: str) -> SrtmResult:
    nan = math.nan
    return SrtmResult(nan, nan, nan, nan, nan, nan, n_frames_used, (), True, message)


def fit_srtm2(
    target: ArrayLike,
    reference: ArrayLike,
    frame_start: ArrayLike,
    frame_end: ArrayLike,
    k2_ref: float,
    weights: ArrayLike | None = None,
    *,
    bounds: SrtmBounds = TSPO_BOUNDS,
    n_starts: int = 3,
    half_life_min: float | None = DEFAULT_WEIGHTS_HALF_LIFE_MIN,
    sampling: Sampling = "frame_average",
) -> Srtm2Result:
    """Fit SRTM2 (fixed reference efflux ``k2_ref`` = k2', 1/min) to one target TAC.

    Same conventions as :func:`fit_srtm`. ``BPND = R1*k2'/k2a - 1``; the k2' used is recorded in the result.
    Use :func:`tspo_bids.kinetics.srtm2_bfm` for voxel maps.
    """
    model = "SRTM2"
    if not (isinstance(k2_ref, (int, float)) and math.isfinite(k2_ref) and k2_ref > 0):
        raise InputError(f"{model}: k2_ref (k2', 1/min) must be a positive number, got {k2_ref!r}")
    k2_ref = float(k2_ref)
    problem = _prepare(target, reference, frame_start, frame_end, weights, model, 2, half_life_min, sampling)
    nan = math.nan
    if not np.any(problem.target_w):
        return Srtm2Result(nan, nan, nan, nan, k2_ref, nan, problem.n_frames_used, (), True, "target TAC is zero")
    # R1 bounds, and k2 = R1*k2' within the k2 bounds
    r1_low = max(bounds.r1[0], bounds.k2[0] / k2_ref)
    r1_high = min(bounds.r1[1], bounds.k2[1] / k2_ref)
    if r1_low > r1_high:
        raise InputError(f"{model}: k2_ref={k2_ref:g} /min is incompatible with the R1 and k2 bounds")
    k2a_low = r1_low * k2_ref / (1 + bounds.bp_nd[1])
    k2a_high = r1_high * k2_ref / (1 + bounds.bp_nd[0])
    cache: dict[float, tuple[float, float]] = {}

    def solve(k2a: float) -> tuple[float, float]:
        if k2a not in cache:
            regressor = problem.reference_w + (k2_ref - k2a) * problem.basis(k2a)
            # BPND bounds: R1 = k2a*(1 + BPND)/k2'
            low = max(r1_low, k2a * (1 + bounds.bp_nd[0]) / k2_ref)
            high = min(r1_high, k2a * (1 + bounds.bp_nd[1]) / k2_ref)
            norm = float(regressor @ regressor)
            if low > high or norm <= 0:
                cache[k2a] = (nan, math.inf)
            else:
                r1 = min(max(float(regressor @ problem.target_w) / norm, low), high)
                residual = problem.target_w - r1 * regressor
                cache[k2a] = (r1, float(residual @ residual))
        return cache[k2a]

    k2a, rss = _profile_minimum(lambda value: solve(value)[1], k2a_low, k2a_high, n_starts)
    if not math.isfinite(rss):
        return Srtm2Result(nan, nan, nan, nan, k2_ref, nan, problem.n_frames_used, (), True, "no admissible fit")
    r1, _ = solve(k2a)
    bp_nd = r1 * k2_ref / k2a - 1
    hit = tuple(
        name
        for name, value, (low, high) in (("r1", r1, (r1_low, r1_high)), ("bp_nd", bp_nd, bounds.bp_nd))
        if _on_bound(value, low, high)
    )
    return Srtm2Result(
        bp_nd=float(bp_nd),
        r1=float(r1),
        k2=float(r1 * k2_ref),
        k2a=float(k2a),
        k2_ref=k2_ref,
        rss=float(rss),
        n_frames_used=problem.n_frames_used,
        bounds_hit=hit,
    )
