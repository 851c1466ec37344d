"""TAC simulator: Feng plasma input, 1-/2-tissue reference with blood volume, SRTM targets, noise.

Values of methods.md section 6. Times are minutes from injection, rate constants 1/min, activities
kBq/mL. The reference tissue is computed in closed form (the Feng input convolved analytically with
the tissue impulse response) on a fine grid; SRTM targets convolve that reference exactly as a
piecewise-linear curve on the same grid; every curve is then integrated exactly over each frame
(trapezoid of the fine grid, step <= 0.1 s), so the outputs are true frame averages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tspo_bids.errors import InputError
from tspo_bids.kinetics.convolution import exp_convolve, model_grid
from tspo_bids.kinetics.frames import FrameTiming

__all__ = [
    "FengInput",
    "TwoTissueParams",
    "OneTissueParams",
    "SrtmParams",
    "plasma_feng",
    "reference_tissue",
    "simulate_tacs",
    "noise_sd",
    "add_noise",
    "scale_for_cov",
    "decay_uncorrect",
    "SIMULATION_STEP_MIN",
]

#: Fine-grid step of the simulator, minutes (0.1 s).
SIMULATION_STEP_MIN = 0.1 / 60.0


@dataclass(frozen=True)
class FengInput:
    """Feng plasma input (methods.md section 6): ``t0`` min, ``a1`` kBq/mL/min, ``a2, a3`` kBq/mL, ``l*`` 1/min.

    ``Cp(t) = (a1*s - a2 - a3) exp(-l1 s) + a2 exp(-l2 s) + a3 exp(-l3 s)``, ``s = t - t0 >= 0``; 0 before t0.
    """

    t0: float = 0.51
    a1: float = 830.6
    a2: float = 22.87
    a3: float = 2.97
    l1: float = 4.00
    l2: float = 0.292
    l3: float = 0.0246


@dataclass(frozen=True)
class TwoTissueParams:
    """Two-tissue compartment model with blood volume (1/min; ``vB`` fraction). PK11195-like defaults."""

    K1: float = 0.06
    k2: float = 0.15
    k3: float = 0.04
    k4: float = 0.05
    vB: float = 0.05


@dataclass(frozen=True)
class OneTissueParams:
    """One-tissue compartment model with blood volume (1/min; ``vB`` fraction)."""

    K1: float = 0.06
    k2: float = 0.15
    vB: float = 0.05


@dataclass(frozen=True)
class SrtmParams:
    """SRTM parameters of a target region: ``r1`` (unitless), ``k2`` (1/min), ``bp_nd`` (unitless)."""

    r1: float
    k2: float
    bp_nd: float

    @property
    def k2a(self) -> float:
        """Apparent efflux ``k2 / (1 + BPND)``, 1/min."""
        return self.k2 / (1.0 + self.bp_nd)

    @property
    def k2_ref(self) -> float:
        """Reference efflux ``k2' = k2 / R1``, 1/min."""
        return self.k2 / self.r1


# ---------------------------------------------------------------------- plasma and reference
def plasma_feng(t_min: ArrayLike, params: FengInput = FengInput()) -> NDArray[np.float64]:
    """Feng plasma input at times ``t_min`` (minutes from injection), kBq/mL."""
    t = np.asarray(t_min, dtype=float)
    s = np.clip(t - params.t0, 0.0, None)
    value = (
        (params.a1 * s - params.a2 - params.a3) * np.exp(-params.l1 * s)
        + params.a2 * np.exp(-params.l2 * s)
        + params.a3 * np.exp(-params.l3 * s)
    )
    return np.where(t > params.t0, value, 0.0)


def _exp_difference(rate: float, decay: float, s: NDArray[np.float64]) -> NDArray[np.float64]:
    """``int_0^s exp(-decay u) exp(-rate (s - u)) du`` without overflow or cancellation."""
    delta = rate - decay
    x = delta * s
    small = np.abs(x) < 1e-4
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = (np.exp(-decay * s) - np.exp(-rate * s)) / (delta if delta != 0 else 1.0)
    series = np.exp(-rate * s) * s * (1 + x / 2 + x * x / 6 + x**3 / 24)
    return np.where(small, series, exact)


def _feng_conv_exp(t_min: NDArray[np.float64], params: FengInput, rate: float) -> NDArray[np.float64]:
    """Closed form of ``Cp conv exp(-rate t)`` (kBq/mL x min)."""
    s = np.clip(np.asarray(t_min, dtype=float) - params.t0, 0.0, None)
    total = np.zeros_like(s)
    for amplitude, decay in ((-params.a2 - params.a3, params.l1), (params.a2, params.l2), (params.a3, params.l3)):
        total += amplitude * _exp_difference(rate, decay, s)
    # int_0^s a1 u exp(-l1 u) exp(-rate (s - u)) du = a1 [(x - 1) exp(-l1 s) + exp(-rate s)] / d^2, x = d s
    d = rate - params.l1
    x = d * s
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = ((x - 1.0) * np.exp(-params.l1 * s) + np.exp(-rate * s)) / (d * d if d != 0 else 1.0)
    series = np.exp(-rate * s) * s * s * (0.5 + x / 3 + x * x / 8 + x**3 / 30)
    total += params.a1 * np.where(np.abs(x) < 1e-3, series, exact)
    return np.where(np.asarray(t_min) > params.t0, total, 0.0)


def reference_tissue(
    t_min: ArrayLike, reference: TwoTissueParams | OneTissueParams = TwoTissueParams(), plasma: FengInput = FengInput()
) -> NDArray[np.float64]:
    """Instantaneous reference-region activity (kBq/mL) at ``t_min``: ``(1 - vB) C_tissue + vB Cp``.

    Whole-blood activity is taken equal to the plasma input.
    """
    t = np.asarray(t_min, dtype=float)
    if isinstance(reference, OneTissueParams):
        tissue = reference.K1 * _feng_conv_exp(t, plasma, reference.k2)
    elif isinstance(reference, TwoTissueParams):
        k2, k3, k4 = reference.k2, reference.k3, reference.k4
        total = k2 + k3 + k4
        root = math.sqrt(max(total * total - 4 * k2 * k4, 0.0))
        slow, fast = (total - root) / 2, (total + root) / 2
        if fast - slow < 1e-9:
            raise InputError("two-tissue reference: k3 must be > 0 (use OneTissueParams for a 1-tissue model)")
        tissue = reference.K1 / (fast - slow) * (
            (k3 + k4 - slow) * _feng_conv_exp(t, plasma, slow) + (fast - k3 - k4) * _feng_conv_exp(t, plasma, fast)
        )
    else:
        raise InputError(f"reference model must be TwoTissueParams or OneTissueParams, got {type(reference).__name__}")
    return (1.0 - reference.vB) * tissue + reference.vB * plasma_feng(t, plasma)


# ---------------------------------------------------------------------- frame averages
def simulate_tacs(
    timing: FrameTiming,
    targets: Mapping[str, SrtmParams],
    reference: TwoTissueParams | OneTissueParams = TwoTissueParams(),
    plasma: FengInput = FengInput(),
) -> dict[str, NDArray[np.float64]]:
    """Noise-free frame-average TACs, decay-corrected to injection, kBq/mL.

    Parameters
    ----------
    timing
        Any frame schedule (frames before injection see zero activity).
    targets
        Region name -> SRTM parameters; each target is SRTM driven by the reference.
    reference
        Reference-region model (2-tissue or 1-tissue with blood volume) driven by the Feng input.
    plasma
        The plasma input.

    Returns
    -------
    dict
        ``"reference"`` plus one key per target, each ``(n_frames,)``.
    """
    if "reference" in targets:
        raise InputError("simulate_tacs: 'reference' is reserved for the reference region; rename that target")
    end = np.maximum(timing.end_min, 0.0)
    start = np.minimum(np.maximum(timing.start_min, 0.0), end)
    if float(end.max()) <= 0:
        raise InputError("simulate_tacs: every frame ends before injection")
    grid = model_grid(start, np.where(end > start, end, start + 1e-9), SIMULATION_STEP_MIN)
    reference_curve = reference_tissue(grid.times_min, reference, plasma)
    # A frame partly before injection averages zero activity over its pre-injection part.
    inside_fraction = (end - start) / timing.duration_min
    tacs = {"reference": grid.observe(reference_curve) * inside_fraction}
    for name, params in targets.items():
        if not (params.bp_nd > -1 and params.k2 >= 0 and math.isfinite(params.k2a)):
            raise InputError(f"simulate_tacs: target {name!r} needs k2 >= 0 and BPND > -1, got {params}")
        k2a = params.k2a
        convolution = exp_convolve(reference_curve, k2a, grid.step_min)
        curve = params.r1 * reference_curve + (params.k2 - params.r1 * k2a) * convolution
        tacs[name] = grid.observe(curve) * inside_fraction
    return tacs


# ---------------------------------------------------------------------- noise and decay
def _frame_column(values: NDArray[np.float64], ndim: int) -> NDArray[np.float64]:
    return values.reshape((-1,) + (1,) * (ndim - 1))


def noise_sd(tac: ArrayLike, timing: FrameTiming, scale: float) -> NDArray[np.float64]:
    """Noise SD per frame, ``sqrt(scale * C * DCF / dur)`` (methods.md section 6), C clipped at 0.

    Parameters
    ----------
    tac
        ``(n_frames,)`` or ``(n_frames, n)`` frame averages decay-corrected to injection, kBq/mL.
    timing
        Frame durations (minutes) and decay factors.
    scale
        Noise scale ``a`` (kBq/mL x min); see :func:`scale_for_cov`.
    """
    values = np.asarray(tac, dtype=float)
    if values.shape[0] != timing.n_frames:
        raise InputError(f"noise_sd: TAC has {values.shape[0]} frames but the timing has {timing.n_frames}")
    factor = timing.decay_correction_factors() / timing.duration_min
    return np.sqrt(scale * np.clip(values, 0.0, None) * _frame_column(factor, values.ndim))


def add_noise(tac: ArrayLike, timing: FrameTiming, scale: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """``tac`` plus Gaussian noise of SD :func:`noise_sd`; works on ``(n_frames,)`` and ``(n_frames, n)``."""
    values = np.asarray(tac, dtype=float)
    return values + rng.standard_normal(values.shape) * noise_sd(values, timing, scale)


def scale_for_cov(tac: ArrayLike, timing: FrameTiming, cov: float) -> float:
    """Noise scale ``a`` whose median coefficient of variation over the frames of ``tac`` is ``cov``.

    Frames where the TAC is not positive are ignored.
    """
    values = np.asarray(tac, dtype=float)
    positive = values > 0
    if not np.any(positive):
        raise InputError("scale_for_cov: the TAC has no positive frame")
    unit_cov = noise_sd(values, timing, 1.0)[positive] / values[positive]
    return float((cov / np.median(unit_cov)) ** 2)


def decay_uncorrect(tac: ArrayLike, timing: FrameTiming) -> NDArray[np.float64]:
    """What a scanner stores with ``ImageDecayCorrected = false``: ``tac / DCF`` per frame (axis 0)."""
    values = np.asarray(tac, dtype=float)
    if values.shape[0] != timing.n_frames:
        raise InputError(f"decay_uncorrect: TAC has {values.shape[0]} frames but the timing has {timing.n_frames}")
    return values / _frame_column(timing.decay_correction_factors(), values.ndim)
