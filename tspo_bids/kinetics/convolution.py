"""Fine time grid, exact convolution of piecewise-linear curves with exponentials, frame averaging.

The reference-tissue models compare *frame averages* of a model curve with measured frame averages
(methods.md section 2). The curve lives on a uniform grid from injection (t = 0) to the end of the
last frame with a step of at most ``max_step_min`` (default 1 s); between grid points it is linear.

* :func:`exp_convolve` convolves such a curve with ``exp(-theta t)`` exactly (recursive form).
* :attr:`ModelGrid.frame_average_matrix` integrates the piecewise-linear curve exactly over each
  frame, whatever the frame boundaries (they need not fall on grid points), and divides by the
  frame duration: ``frame_averages = A @ values_on_grid``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

__all__ = ["DEFAULT_MAX_STEP_MIN", "ModelGrid", "model_grid", "exp_convolve", "recursion_coefficients"]

#: Largest grid step, minutes (1 s, methods.md section 2).
DEFAULT_MAX_STEP_MIN = 1.0 / 60.0


@dataclass(frozen=True, eq=False)
class ModelGrid:
    """A uniform grid from 0 to the last frame end, with the frame-averaging operator.

    Attributes
    ----------
    times_min
        Grid times, minutes from injection, ``(n_points,)``; ``times_min[-1]`` is the last frame end.
    step_min
        Grid step, minutes.
    frame_mid_min
        Frame mid-times, minutes, the knots used to interpolate frame averages onto the grid.
    frame_average_matrix
        ``(n_frames, n_points)``: row i integrates the piecewise-linear curve over frame i and divides
        by its duration.
    """

    times_min: NDArray[np.float64]
    step_min: float
    frame_mid_min: NDArray[np.float64]
    frame_average_matrix: NDArray[np.float64]

    @property
    def n_points(self) -> int:
        """Number of grid points."""
        return int(self.times_min.size)

    def interpolate(self, frame_values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Piecewise-linear curve through (0, 0) and (mid-time, frame value), on the grid.

        After the last mid-time the last segment is extended linearly to the end of the last frame.

        Parameters
        ----------
        frame_values
            ``(n_frames,)`` or ``(n_frames, k)`` frame averages.

        Returns
        -------
        ndarray
            ``(n_points,)`` or ``(n_points, k)``.
        """
        knot_times = np.concatenate(([0.0], self.frame_mid_min))
        values = np.asarray(frame_values, dtype=float)
        knot_values = np.concatenate((np.zeros((1,) + values.shape[1:]), values), axis=0)
        segment = np.searchsorted(knot_times, self.times_min, side="right") - 1
        segment = np.clip(segment, 0, knot_times.size - 2)
        left_time = knot_times[segment]
        fraction = (self.times_min - left_time) / (knot_times[segment + 1] - left_time)
        if values.ndim == 2:
            fraction = fraction[:, None]
        return (1.0 - fraction) * knot_values[segment] + fraction * knot_values[segment + 1]

    def frame_average(self, values_on_grid: NDArray[np.float64]) -> NDArray[np.float64]:
        """Exact frame averages of the piecewise-linear curve(s) given on the grid (grid along axis 0)."""
        return self.frame_average_matrix @ values_on_grid


def _frame_average_matrix(
    times_min: NDArray[np.float64], step_min: float, start_min: NDArray[np.float64], end_min: NDArray[np.float64]
) -> NDArray[np.float64]:
    n_cells = times_min.size - 1
    matrix = np.zeros((start_min.size, times_min.size))
    for row, (start, end) in enumerate(zip(start_min, end_min, strict=True)):
        first = min(max(int(math.floor(start / step_min)), 0), n_cells - 1)
        last = min(max(int(math.ceil(end / step_min)) - 1, first), n_cells - 1)
        cells = np.arange(first, last + 1)
        cell_start = times_min[cells]
        low = np.clip((start - cell_start) / step_min, 0.0, 1.0)
        high = np.clip((end - cell_start) / step_min, 0.0, 1.0)
        half_square = (high**2 - low**2) / 2.0
        matrix[row, cells] += step_min * ((high - low) - half_square)
        matrix[row, cells + 1] += step_min * half_square
        matrix[row] /= end - start
    return matrix


@lru_cache(maxsize=64)
def _cached_grid(
    start_min: tuple[float, ...], end_min: tuple[float, ...], max_step_min: float
) -> ModelGrid:
    start = np.array(start_min)
    end = np.array(end_min)
    total = float(end.max())
    n_cells = max(int(math.ceil(total / max_step_min - 1e-9)), 2)
    step = total / n_cells
    times = np.arange(n_cells + 1) * step
    times[-1] = total
    matrix = _frame_average_matrix(times, step, start, end)
    for array in (times, matrix):
        array.setflags(write=False)
    mid = start + (end - start) / 2
    mid.setflags(write=False)
    return ModelGrid(times_min=times, step_min=step, frame_mid_min=mid, frame_average_matrix=matrix)


def model_grid(
    frame_start_min: NDArray[np.float64],
    frame_end_min: NDArray[np.float64],
    max_step_min: float = DEFAULT_MAX_STEP_MIN,
) -> ModelGrid:
    """The (cached) model grid of a frame schedule.

    Parameters
    ----------
    frame_start_min, frame_end_min
        Frame start and end times, minutes from injection (validated by the caller).
    max_step_min
        Largest grid step, minutes.
    """
    return _cached_grid(
        tuple(float(t) for t in frame_start_min), tuple(float(t) for t in frame_end_min), float(max_step_min)
    )


def recursion_coefficients(theta_per_min: float, step_min: float) -> tuple[float, float, float]:
    """Coefficients ``(e, alpha, beta)`` of the exact recursion for a piecewise-linear input.

    ``y[k+1] = e*y[k] + alpha*C[k] + beta*(C[k+1] - C[k])`` with ``e = exp(-theta*h)``,
    ``alpha = (1 - e)/theta`` and ``beta = 1/theta - (1 - e)/(theta^2 h)``, evaluated by series for
    small ``theta*h`` (no cancellation; ``theta = 0`` gives the running integral).
    """
    x = theta_per_min * step_min
    e = math.exp(-x)
    if abs(x) < 1e-3:
        alpha = step_min * (1 - x / 2 + x * x / 6 - x**3 / 24)
        beta = step_min * (0.5 - x / 6 + x * x / 24 - x**3 / 120)
    else:
        one_minus_e = -math.expm1(-x)
        alpha = one_minus_e / theta_per_min
        beta = (1.0 - one_minus_e / x) / theta_per_min
    return e, alpha, beta


def exp_convolve(values_on_grid: NDArray[np.float64], theta_per_min: float, step_min: float) -> NDArray[np.float64]:
    """Exact ``C conv exp(-theta t)`` of a piecewise-linear curve sampled on a uniform grid from t = 0.

    Parameters
    ----------
    values_on_grid
        ``(n_points,)`` or ``(n_points, k)``, the curve at grid times ``0, h, 2h, ...`` (activity unit).
    theta_per_min
        Rate of the exponential, 1/min (>= 0).
    step_min
        Grid step ``h``, minutes.

    Returns
    -------
    ndarray
        Same shape; activity x minutes.
    """
    e, alpha, beta = recursion_coefficients(theta_per_min, step_min)
    values = np.asarray(values_on_grid, dtype=float)
    # y[n] = e*y[n-1] + beta*C[n] + (alpha - beta)*C[n-1]; y[0] = 0 needs C[0] = 0 (or its exact part)
    result = lfilter([beta, alpha - beta], [1.0, -e], values, axis=0)
    result[0] = 0.0
    # lfilter's first output is beta*C[0]; subtract its decayed echo when C[0] != 0
    if np.any(values[0] != 0):
        echo = beta * values[0] * e ** np.arange(values.shape[0], dtype=float).reshape((-1,) + (1,) * (values.ndim - 1))
        result[1:] -= echo[1:]
    return result
