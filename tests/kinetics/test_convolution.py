"""Exact convolution, frame averaging and interpolation against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tspo_bids.kinetics.convolution import exp_convolve, model_grid, running_integral


@pytest.mark.parametrize("theta", [0.0, 1e-3, 0.05, 1.0, 30.0])
def test_exp_convolve_is_exact_for_a_piecewise_linear_input(theta: float) -> None:
    """C(t) = t up to 2 min, then 2: (C conv exp(-theta t)) has a closed form; the grid is coarse on purpose."""
    step = 0.25
    times = np.arange(0, 41) * step
    curve = np.minimum(times, 2.0)

    def exact(t: float) -> float:
        if theta == 0:
            return t * t / 2 if t <= 2 else 2 + 2 * (t - 2)
        ramp = lambda s: (s * theta - 1 + math.exp(-theta * s)) / theta**2  # noqa: E731 - int_0^s u e^{-theta(s-u)} du
        if t <= 2:
            return ramp(t)
        return ramp(2) * math.exp(-theta * (t - 2)) + 2 * (1 - math.exp(-theta * (t - 2))) / theta

    expected = np.array([exact(t) for t in times])
    np.testing.assert_allclose(exp_convolve(curve, theta, step), expected, rtol=1e-9, atol=1e-12)
    both = exp_convolve(np.column_stack((curve, 2 * curve)), theta, step)
    np.testing.assert_allclose(both[:, 1], 2 * expected, rtol=1e-9, atol=1e-12)


def test_exp_convolve_with_nonzero_start_value() -> None:
    step, theta = 0.1, 0.3
    times = np.arange(0, 101) * step
    expected = (1 - np.exp(-theta * times)) / theta  # constant input 1
    np.testing.assert_allclose(exp_convolve(np.ones_like(times), theta, step), expected, rtol=1e-12, atol=1e-14)


def test_frame_average_is_exact_for_boundaries_off_the_grid() -> None:
    start = np.array([0.0, 0.2345, 1.0, 7.777])
    end = np.array([0.2345, 0.9, 7.5, 12.345])
    grid = model_grid(start, end)
    assert grid.step_min <= 1 / 60 + 1e-15 and grid.times_min[-1] == pytest.approx(12.345)
    curve = np.sin(grid.times_min) + grid.times_min**2
    expected = []
    for low, high in zip(start, end, strict=True):  # independent: trapezoid of the interpolant on 2e5 points
        fine = np.linspace(low, high, 200_001)
        expected.append(np.trapezoid(np.interp(fine, grid.times_min, curve), fine) / (high - low))
    np.testing.assert_allclose(grid.observe(curve), expected, rtol=1e-9)
    linear = 3 * grid.times_min + 1
    np.testing.assert_allclose(grid.observe(linear), 3 * (start + end) / 2 + 1, rtol=1e-12)


def test_interpolation_reproduces_frame_averages() -> None:
    start = np.array([0.0, 0.5, 1.0, 3.0, 10.0, 30.0])
    end = np.array([0.5, 1.0, 3.0, 10.0, 30.0, 60.0])
    values = np.array([[1.0, 0.0], [5.0, 1.0], [4.0, 2.0], [3.0, 3.0], [2.0, 4.0], [1.5, 5.0]])
    grid = model_grid(start, end)
    np.testing.assert_allclose(grid.observe(grid.interpolate(values)), values, rtol=1e-12, atol=1e-12)
    mid_grid = model_grid(start, end, sampling="mid_time")
    curve = mid_grid.interpolate(values[:, 0])
    np.testing.assert_allclose(np.interp((start + end) / 2, mid_grid.times_min, curve), values[:, 0], rtol=1e-12)
    np.testing.assert_allclose(mid_grid.observe(curve), values[:, 0], rtol=1e-12)


def test_running_integral_of_linear_curve() -> None:
    times = np.linspace(0, 10, 101)
    np.testing.assert_allclose(running_integral(2 * times, 0.1), times**2, rtol=1e-12, atol=1e-12)
