"""Frozen result types of the reference-tissue models (Innis 2007 nomenclature).

Rate constants are 1/min; ``bp_nd``, ``dvr`` and ``r1`` are unitless. ``dvr`` is always
``bp_nd + 1``. Map results (basis functions) hold one value per voxel in 1-D arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "SrtmResult",
    "Srtm2Result",
    "MrtmResult",
    "Mrtm2Result",
    "LoganResult",
    "BasisMapResult",
]


@dataclass(frozen=True)
class SrtmResult:
    """SRTM fit of one TAC.

    Attributes
    ----------
    bp_nd, r1, k2, k2a, k2_ref
        BPND; R1 = K1/K1'; k2 (1/min); k2a = k2/(1+BPND) (1/min); k2' = k2/R1 (1/min).
    rss
        Weighted residual sum of squares (activity^2).
    n_frames_used
        Frames with non-zero weight.
    bounds_hit
        Names of the parameters that ended on a bound (``"r1"``, ``"k2"``, ``"bp_nd"``).
    failed
        True when no fit could be made (``message`` says why); parameters are then NaN.
    """

    bp_nd: float
    r1: float
    k2: float
    k2a: float
    k2_ref: float
    rss: float
    n_frames_used: int
    bounds_hit: tuple[str, ...] = ()
    failed: bool = False
    message: str = ""

    @property
    def dvr(self) -> float:
        """Distribution volume ratio, BPND + 1."""
        return self.bp_nd + 1.0

    @property
    def bound_hit(self) -> bool:
        """True when any parameter ended on a bound."""
        return bool(self.bounds_hit)


@dataclass(frozen=True)
class Srtm2Result:
    """SRTM2 fit of one TAC with fixed ``k2_ref`` (k2', 1/min); ``k2 = r1 * k2_ref``."""

    bp_nd: float
    r1: float
    k2: float
    k2a: float
    k2_ref: float
    rss: float
    n_frames_used: int
    bounds_hit: tuple[str, ...] = ()
    failed: bool = False
    message: str = ""

    @property
    def dvr(self) -> float:
        """Distribution volume ratio, BPND + 1."""
        return self.bp_nd + 1.0

    @property
    def bound_hit(self) -> bool:
        """True when any parameter ended on a bound."""
        return bool(self.bounds_hit)


@dataclass(frozen=True)
class MrtmResult:
    """MRTM (Ichise 2003) linear fit: ``C_T = g1*int C_R + g2*int C_T + g3*C_R``.

    ``bp_nd = -(g1/g2 + 1)``, ``k2_ref = g1/g3`` (k2', 1/min), ``r1 = g3``, ``k2 = g1``, ``k2a = -g2``.
    ``failed`` is True when the regression is singular or ``g2 = 0``; ``message`` warns when
    ``g2 > 0`` (no washout identified: the DVR ``-g1/g2`` is still reported, as kinfitr does).
    """

    bp_nd: float
    r1: float
    k2: float
    k2a: float
    k2_ref: float
    coefficients: tuple[float, float, float]
    t_star: float
    n_frames_used: int
    failed: bool = False
    message: str = ""

    @property
    def dvr(self) -> float:
        """Distribution volume ratio, BPND + 1."""
        return self.bp_nd + 1.0


@dataclass(frozen=True)
class Mrtm2Result:
    """MRTM2 linear fit with fixed ``k2_ref``: ``C_T = g1*(int C_R + C_R/k2') + g2*int C_T``.

    ``bp_nd = -(g1/g2 + 1)``, ``k2 = g1``, ``k2a = -g2``, ``r1 = g1/k2_ref``.
    """

    bp_nd: float
    r1: float
    k2: float
    k2a: float
    k2_ref: float
    coefficients: tuple[float, float]
    t_star: float
    n_frames_used: int
    failed: bool = False
    message: str = ""

    @property
    def dvr(self) -> float:
        """Distribution volume ratio, BPND + 1."""
        return self.bp_nd + 1.0


@dataclass(frozen=True)
class LoganResult:
    """Logan reference plot: slope ``dvr`` of ``int C_T/C_T`` against ``(int C_R + C_R/k2')/C_T``.

    ``k2_ref`` is None when the ``C_R/k2'`` term was omitted.
    """

    dvr: float
    intercept: float
    k2_ref: float | None
    t_star: float
    n_frames_used: int
    failed: bool = False
    message: str = ""

    @property
    def bp_nd(self) -> float:
        """BPND = DVR - 1."""
        return self.dvr - 1.0


@dataclass(frozen=True, eq=False)
class LoganMapResult:
    """Logan reference plot of many TACs: one value per voxel (column of the input).

    ``dvr`` and ``intercept`` (min) are NaN where ``background`` (negligible or non-positive
    TAC after t*) or ``failed`` (singular regression).
    """

    dvr: NDArray[np.float64]
    intercept: NDArray[np.float64]
    background: NDArray[np.bool_]
    failed: NDArray[np.bool_]
    k2_ref: float | None
    t_star: float
    n_frames_used: int

    @property
    def bp_nd(self) -> NDArray[np.float64]:
        """BPND = DVR - 1."""
        return self.dvr - 1.0


@dataclass(frozen=True, eq=False)
class BasisMapResult:
    """Basis-function fit of many TACs (SRTM or SRTM2): one value per voxel (column of the input).

    Attributes
    ----------
    bp_nd, r1, k2, k2a
        Parameter maps (NaN where ``background`` or ``failed``).
    rss
        Weighted residual sum of squares per voxel.
    basis_index
        Index into ``k2a_grid`` of the chosen basis function (-1 where not fitted).
    edge_of_grid
        Optimum on the first or last basis function: the true k2a may lie outside the grid.
    background
        All-zero or negligible TAC (max below ``background_fraction`` x max of the reference): not fitted.
    failed
        Not background but no admissible basis function (R1 <= 0 for all).
    k2a_grid
        The basis-function rates, 1/min.
    k2_ref
        The fixed k2' (SRTM2), or None (SRTM).
    n_frames_used
        Frames with non-zero weight.
    """

    bp_nd: NDArray[np.float64]
    r1: NDArray[np.float64]
    k2: NDArray[np.float64]
    k2a: NDArray[np.float64]
    rss: NDArray[np.float64]
    basis_index: NDArray[np.int64]
    edge_of_grid: NDArray[np.bool_]
    background: NDArray[np.bool_]
    failed: NDArray[np.bool_]
    k2a_grid: NDArray[np.float64]
    n_frames_used: int
    k2_ref: float | None = None

    @property
    def dvr(self) -> NDArray[np.float64]:
        """Distribution volume ratio map, BPND + 1."""
        return self.bp_nd + 1.0

    @property
    def k2_ref_map(self) -> NDArray[np.float64]:
        """k2' = k2/R1 per voxel, 1/min (for choosing the SRTM2 k2')."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.k2 / self.r1
