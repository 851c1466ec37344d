"""Partial-volume fractions of CSF, GM and WM from a bias-corrected T1w.

A brain voxel at the T1w's resolution often holds two tissues. Classifiers such as
Atropos return posterior probabilities of belonging to one class, which are not tissue
fractions: with few pure-CSF voxels inside the brain, the "CSF" class centres on
CSF/GM mixtures and the GM/CSF boundary moves into grey matter. Region definitions that
threshold tissue content (``p_GM >= 0.5``) need fractions.

This module fits the mixel model of Santago & Gage (1993), used in this form by FSL FAST
(Zhang et al. 2001) and Tohka et al. (2004), to the intensity histogram inside the brain:
three pure classes ``N(mu_k, sigma^2)`` plus two mixture classes (CSF/GM and GM/WM) whose
intensity is ``a*mu_k + (1-a)*mu_l + noise`` with the fraction ``a`` uniform on [0, 1].
With the pure-class means known, each voxel's fractions follow by linear unmixing between
the two adjacent classes its intensity lies between.

Limitations: only adjacent classes mix (CSF|GM, GM|WM, the layering of cortex); where CSF
touches WM directly (ventricle walls) a half-and-half voxel reads as GM. Unmixing is voxelwise and unregularised, so noise in a pure voxel can only move
its fractions towards the neighbouring class; the rarest class (CSF inside the brain) is
under-counted by some percent at typical T1w noise. Thresholded masks (``>= 0.5``) are
affected least, and they are what the region definitions use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

#: Tissue order (T1w intensity increases CSF < GM < WM).
TISSUES: tuple[str, str, str] = ("csf", "gm", "wm")

_N_MIX_NODES = 24  # quadrature nodes for the uniform fraction of a mixed voxel


@dataclass(frozen=True)
class MixelModel:
    """Fitted mixel model of a T1w intensity histogram.

    Attributes
    ----------
    means : tuple of float
        Pure CSF, GM and WM intensities (image units).
    sigma : float
        Noise standard deviation (image units), shared by all classes.
    weights : tuple of float
        Proportions of pure CSF, GM, WM, then CSF/GM and GM/WM mixtures (sum 1).
    """

    means: tuple[float, float, float]
    sigma: float
    weights: tuple[float, float, float, float, float]


def _class_densities(x: np.ndarray, means: np.ndarray, sigma: float) -> np.ndarray:
    """Densities of the 5 classes at intensities ``x``: shape (5, len(x))."""
    pure = np.exp(-0.5 * ((x[None, :] - means[:, None]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    mixed = []
    for low, high in ((means[0], means[1]), (means[1], means[2])):
        # Uniform mixture convolved with Gaussian noise: closed form with erf.
        width = max(high - low, 1e-6)
        upper = special.erf((high - x) / (sigma * np.sqrt(2)))
        lower = special.erf((low - x) / (sigma * np.sqrt(2)))
        mixed.append(0.5 * (upper - lower) / width)
    return np.vstack([pure, np.asarray(mixed)])


def fit_mixel_model(
    intensities: np.ndarray,
    initial_means: tuple[float, float, float] | None = None,
    n_bins: int = 256,
) -> MixelModel:
    """Fit the three-tissue mixel model to brain intensities by maximum likelihood.

    The likelihood has local optima (pure GM can be rare, and a GM/WM mixture can pose as
    "GM"), so the fit starts from ``initial_means`` and from percentile-based means and keeps
    the solution with the highest likelihood.

    Parameters
    ----------
    intensities : ndarray
        T1w intensities of brain voxels (bias-corrected).
    initial_means : (float, float, float), optional
        An extra starting point for the CSF, GM, WM means (e.g. a classifier's class medians).
    n_bins : int
        Histogram bins used for the (binned) likelihood.

    Returns
    -------
    MixelModel
    """
    values = np.asarray(intensities, float).ravel()
    values = values[np.isfinite(values)]
    if values.size < 100:
        raise ValueError("too few brain voxels to fit tissue intensities")
    starts = [tuple(np.percentile(values, q)) for q in ((5, 40, 85), (2, 30, 80), (10, 50, 90))]
    if initial_means is not None:
        starts.insert(0, tuple(initial_means))
    fits = [_fit_from(values, start, n_bins) for start in starts]
    return min(fits, key=lambda fit: fit[1])[0]


def _fit_from(
    values: np.ndarray, initial_means: tuple[float, float, float], n_bins: int
) -> tuple[MixelModel, float]:
    """One maximum-likelihood fit from ``initial_means``: (model, negative log-likelihood)."""
    low, high = np.percentile(values, [0.1, 99.9])
    counts, edges = np.histogram(values, bins=n_bins, range=(low, high))
    centres = 0.5 * (edges[1:] + edges[:-1])
    span = high - low

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        # means as a cumulative sum of positive steps keeps CSF < GM < WM
        steps = np.exp(theta[1:3])
        means = np.array([theta[0], theta[0] + steps[0], theta[0] + steps[0] + steps[1]])
        sigma = np.exp(theta[3])
        weights = special.softmax(np.concatenate([[0.0], theta[4:8]]))
        return means, sigma, weights

    def negative_log_likelihood(theta: np.ndarray) -> float:
        means, sigma, weights = unpack(theta)
        density = weights @ _class_densities(centres, means, sigma)
        return -float(np.sum(counts * np.log(np.maximum(density, 1e-300))))

    m0 = np.sort(np.asarray(initial_means, float))
    theta0 = np.array([
        m0[0], np.log(max(m0[1] - m0[0], 1e-3 * span)), np.log(max(m0[2] - m0[1], 1e-3 * span)),
        np.log(0.05 * span), 0.0, 0.0, 0.0, 0.0,
    ])
    result = optimize.minimize(negative_log_likelihood, theta0, method="Nelder-Mead",
                               options={"maxiter": 8000, "maxfev": 8000, "xatol": 1e-6, "fatol": 1e-6})
    result = optimize.minimize(negative_log_likelihood, result.x, method="Powell",
                               options={"maxiter": 8000, "xtol": 1e-6, "ftol": 1e-9})
    means, sigma, weights = unpack(result.x)
    model = MixelModel(tuple(float(m) for m in means), float(sigma), tuple(float(w) for w in weights))
    return model, float(result.fun)


def partial_volume_fractions(
    t1w: np.ndarray, brain_mask: np.ndarray, model: MixelModel
) -> dict[str, np.ndarray]:
    """Tissue fractions of every brain voxel by unmixing between adjacent pure classes.

    A voxel whose intensity lies between the CSF and GM means is a CSF/GM mixture, one
    between the GM and WM means a GM/WM mixture; intensities beyond the extreme means are
    pure. Fractions sum to 1 inside the mask and are 0 outside.

    Parameters
    ----------
    t1w : ndarray, shape (X, Y, Z)
        Bias-corrected T1w.
    brain_mask : ndarray of bool, shape (X, Y, Z)
    model : MixelModel
        Pure-class means from :func:`fit_mixel_model`.

    Returns
    -------
    dict
        ``"csf"``, ``"gm"``, ``"wm"`` fraction maps (float32).
    """
    mu_csf, mu_gm, mu_wm = model.means
    intensity = np.asarray(t1w, np.float32)
    mask = np.asarray(brain_mask, bool)
    gm_over_csf = np.clip((intensity - mu_csf) / (mu_gm - mu_csf), 0.0, 1.0)
    wm_over_gm = np.clip((intensity - mu_gm) / (mu_wm - mu_gm), 0.0, 1.0)
    below_gm = intensity <= mu_gm
    csf = np.where(below_gm, 1.0 - gm_over_csf, 0.0)
    wm = np.where(below_gm, 0.0, wm_over_gm)
    gm = 1.0 - csf - wm
    return {name: np.where(mask, frac, 0.0).astype(np.float32)
            for name, frac in zip(TISSUES, (csf, gm, wm))}
