"""Supervised cluster analysis (SVCA4) reference region for TSPO PET.

Turkheimer et al. 2007 J Nucl Med 48:158; Boellaard et al. 2008; Yaqub et al. 2012 JCBFM 32:1600
(methods.md section 3), implemented from the papers (the public MATLAB code has no licence):

1. :func:`normalise_tacs`: z-score every frame across the brain voxels (removes the global scale
   of each frame, so classes transfer between subjects and injected doses).
2. :func:`build_svca_classes`: four kinetic classes from healthy controls' normalised TACs:
   grey matter (``p_GM > 0.9``), white matter (``p_WM > 0.9``), high binding (thalamus) and blood
   (mean of the 40 hottest brain voxels over the frames ending before 1.5 min), averaged over the
   controls. :func:`interpolate_classes` maps them to a subject's frame mid-times.
3. :func:`gm_fraction`: per voxel, non-negative least squares of its normalised TAC onto the classes,
   solved exactly by enumerating every non-empty subset of classes (15 for four classes), vectorised
   over voxels, **with the coefficients constrained to sum to one** (default); ``GMfrac = b_GM / sum(b)``
   (= ``b_GM``).
4. :func:`svca_reference`: reference voxels have ``GMfrac > 0.9`` inside ``p_GM > 0.9``; the reference
   TAC is the mean of their *raw* TACs.

Decision: sum-to-one constraint (step 3)
----------------------------------------
The papers solve plain NNLS and then take the ratio ``b_GM / sum(b)`` (Turkheimer et al. 2007; the
ratio and the 0.9 threshold as in Boellaard et al. 2008 and Yaqub et al. 2012, who keep the per-frame
z-score "subtract the brain mean, divide by the brain SD" and the four classes of SVCA4 defined on
normalised control data). On z-scored data that ratio is ill-conditioned: every frame's z-scores sum
to zero over the brain, and the classes are group means of such z-scores, so a *positive* combination
of the four classes is almost zero (singular values ~19, 7, 2.7 and 0.01 for the PK11195 schedule).
Noise moves ``b`` along that near-null direction, which changes ``sum(b)`` and hence the ratio: with
10 % voxel noise only ~85 of ~1000 true reference voxels passed ``GMfrac > 0.9`` and the selection kept
the voxels whose noise happened to mimic the GM class (reference TAC 5 % low). The ratio itself says
what the coefficients mean: fractions of a partial-volume mixture. Because z-scoring is affine per
frame, a raw voxel that is a mixture of tissues with fractions summing to one is *exactly* the same
mixture of the normalised tissue curves, so ``sum(b) = 1`` is a property of the model, not a prior.
Imposing it (fully constrained least squares, the linear-unmixing model of Heinz & Chang 2001 IEEE
TGRS 39:529) removes the near-null direction and leaves everything else of SVCA4 unchanged. Measured on
simulated PK11195 brains (tests/pet/test_svca.py, benchmarks/validate_svca.py): ~960 of ~1200 true
reference voxels selected at 10 % voxel noise, purity 1.0, reference TAC within ~1-2 % after 2 min.
``sum_to_one=False`` gives the published unconstrained ratio. Each support's constrained solution
comes from the bordered KKT matrix, which stays regular where the class Gram matrix is singular.

Background class (recommended): with the fractions summing to one, a voxel diluted by CSF or lying at
the edge of the brain mask (tissue fractions summing to < 1) would be forced onto the tissue classes
and can pass as pure GM. Its missing fraction is exactly a zero-activity tissue, whose normalised curve
is ``-mean/sd`` of each frame (:func:`background_class`, from the subject's own data, no control
needed); passing it as ``gm_fraction(..., background=...)`` makes ``GMfrac`` the voxel's true GM
fraction. This plays the role of the extracerebral classes of SVCA6 (Turkheimer et al. 2007) that
SVCA4 drops by masking the brain (Boellaard et al. 2008). In a PSF-blurred spatial simulation
(5 mm, thick GM shell) it raised purity from ~0.44 to ~0.85 (benchmarks/validate_svca.py). Without
it, on blurred data with a brain edge, the sum-to-one solver is *worse* than the published ratio
(purity ~0.44 vs ~0.90): callers should always pass ``background=background_class(raw)``.

GM class of non-binding grey matter (pipeline choice)
----------------------------------------------------
The papers take the GM class from all of the controls' ``p_GM > 0.9`` voxels. For TSPO that is mostly
cortex, which binds (healthy cortical BPND > 0; in the phantom 0.15-0.25), so SVCA then selects
cortical voxels: on data/test_bids only 4-16 % of the selected voxels were the non-binding cerebellar
GM. The pipeline (:class:`tspo_bids.interfaces.svca.SvcaClassCurves`) therefore passes as ``gm_prob``
the GM probability *inside the cerebellar GM reference region* (zero elsewhere): the GM class has the
kinetics of the tissue the cerebellum method already assumes non-binding, and the search for reference
voxels still covers the whole brain. Purity on data/test_bids (5 mm PSF): 0.91-1.00.

Known gap (tests/e2e/test_svca_e2e.py, benchmarks/validate_svca.py): at 5 mm PSF the reference TAC is
10-16 % low on average after 2 min on data/test_bids, up to 17.5 % in a frame (acceptance 3 %). No voxel selection fixes this: the
oracle choice of the truly purest cerebellar GM voxels (true p_GM > 0.9, eroded twice) is itself 4-5 %
low on average and 8-9 % low at 2-5 min; the GM class is a *blurred* cerebellar GM curve. On the
benchmark's blurred brain (all-GM class): purity 0.85, error 7 % at 10 % noise.

Alternatives tried and rejected (same data): per-frame weights in the NNLS (Poisson weights
``dur / (C_wb DCF)`` rescaled to z-units by the frame SD, duration weights, or weights from the
residual variance) changed the TAC error by < 1 percentage point either way and did not cure the
ill-conditioning (the near-null combination is null in every frame, whatever the weights), so the
NNLS stays unweighted as published. A soft sum-to-one penalty row converges to the exact constraint.
At 20-30 % voxel noise the selection still favours voxels with low late-frame noise and the reference
TAC is biased low in late frames (measured ~5 % at 20 %, ~10 % at 30 %): see the benchmark.

Arrays are ``(n_frames, n_voxels)`` (voxels of the brain mask, flattened); times are minutes from
injection; activities keep the dataset's unit (kBq/mL). No file I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tspo_bids.errors import InputError

__all__ = [
    "SVCA_CLASSES",
    "SvcaControl",
    "normalise_tacs",
    "build_svca_classes",
    "interpolate_classes",
    "nnls_coefficients",
    "gm_fraction",
    "background_class",
    "svca_reference",
]

#: Kinetic class names, in column order (GM first: ``GMfrac`` is column 0 over the sum).
SVCA_CLASSES: tuple[str, ...] = ("gm", "wm", "highbinding", "blood")

#: Name of the SVCA reference region (TSV column, ``label-`` value of its mask).
SVCA_REGION = "svca"

#: Default number of voxels processed at once by the NNLS (bounds memory).
DEFAULT_CHUNK_VOXELS = 50_000

#: The blood class is judged on the frames ending by this time, minutes from injection.
BLOOD_WINDOW_END_MIN = 1.5


def blood_window_frames(frame_end_min: ArrayLike, window_end_min: float = BLOOD_WINDOW_END_MIN) -> NDArray[np.bool_]:
    """Frames that end by ``window_end_min`` (minutes from injection): those the blood class is judged on.
    None of them means no class curves can be built from this schedule."""
    return np.asarray(frame_end_min, dtype=float).ravel() <= window_end_min


@dataclass(frozen=True)
class SvcaControl:
    """One healthy control's input to :func:`build_svca_classes`.

    Attributes
    ----------
    normalised_tacs
        ``(n_frames, n_voxels)`` output of :func:`normalise_tacs` over the control's brain voxels.
    gm_prob, wm_prob
        ``(n_voxels,)`` grey- and white-matter probabilities of the same voxels.
    thalamus_mask
        ``(n_voxels,)`` boolean, thalamus voxels (the high-binding class).
    frame_end_min
        ``(n_frames,)`` frame end times, minutes from injection.
    """

    normalised_tacs: ArrayLike
    gm_prob: ArrayLike
    wm_prob: ArrayLike
    thalamus_mask: ArrayLike
    frame_end_min: ArrayLike


def _as_tacs(values: ArrayLike, name: str) -> NDArray[np.float64]:
    tacs = np.asarray(values, dtype=float)
    if tacs.ndim == 1:
        tacs = tacs[:, None]
    if tacs.ndim != 2:
        raise InputError(f"{name} must be (n_frames, n_voxels), got shape {tacs.shape}")
    if not np.all(np.isfinite(tacs)):
        raise InputError(f"{name} contains non-finite values; mask the brain and check the PET series")
    return tacs


def normalise_tacs(voxel_tacs: ArrayLike) -> NDArray[np.float64]:
    """Z-score each frame across voxels: ``(C[f, v] - mean_v C[f]) / sd_v C[f]``.

    Parameters
    ----------
    voxel_tacs
        ``(n_frames, n_voxels)`` voxel TACs of the brain mask (kBq/mL, any unit).

    Returns
    -------
    ndarray, shape (n_frames, n_voxels)
        Normalised TACs (unitless). A frame with no spread across voxels (e.g. before the tracer
        arrives) is set to 0 rather than NaN.

    Raises
    ------
    InputError
        Non-finite values, fewer than 2 voxels, or a wrong shape.
    """
    tacs = _as_tacs(voxel_tacs, "voxel TACs")
    if tacs.shape[1] < 2:
        raise InputError(f"SVCA normalisation needs at least 2 voxels, got {tacs.shape[1]}")
    mean = tacs.mean(axis=1, keepdims=True)
    sd = tacs.std(axis=1, keepdims=True)
    flat = sd <= 1e-12 * np.maximum(np.abs(mean), 1.0)
    return np.where(flat, 0.0, (tacs - mean) / np.where(flat, 1.0, sd))


def background_class(raw_voxel_tacs: ArrayLike) -> NDArray[np.float64]:
    """Normalised curve of a voxel without activity (CSF, outside the brain): ``-mean / sd`` per frame.

    Pass it as ``background`` to :func:`gm_fraction` so that voxels partly filled with CSF or lying at
    the edge of the brain mask (whose tissue fractions sum to less than one) are modelled exactly.

    Parameters
    ----------
    raw_voxel_tacs
        ``(n_frames, n_voxels)`` raw voxel TACs of the brain mask, the same voxels that
        :func:`normalise_tacs` normalised (kBq/mL).

    Returns
    -------
    ndarray, shape (n_frames,)
        Unitless; 0 in frames without spread across voxels (as :func:`normalise_tacs`).
    """
    tacs = _as_tacs(raw_voxel_tacs, "voxel TACs")
    if tacs.shape[1] < 2:
        raise InputError(f"SVCA normalisation needs at least 2 voxels, got {tacs.shape[1]}")
    mean = tacs.mean(axis=1)
    sd = tacs.std(axis=1)
    flat = sd <= 1e-12 * np.maximum(np.abs(mean), 1.0)
    return np.where(flat, 0.0, -mean / np.where(flat, 1.0, sd))


def _control_field(value: ArrayLike, n_voxels: int, index: int, name: str) -> NDArray:
    array = np.asarray(value).ravel()
    if array.size != n_voxels:
        raise InputError(f"SVCA control {index}: {name} has {array.size} voxels but its TACs have {n_voxels}")
    return array


def build_svca_classes(
    controls: Sequence[SvcaControl | tuple],
    *,
    gm_threshold: float = 0.9,
    wm_threshold: float = 0.9,
    n_blood_voxels: int = 40,
    blood_window_end_min: float = BLOOD_WINDOW_END_MIN,
    frame_tolerance_min: float = 1e-3,
) -> NDArray[np.float64]:
    """Kinetic classes GM, WM, high binding and blood, averaged over healthy controls.

    Parameters
    ----------
    controls
        One :class:`SvcaControl` (or a tuple of its five fields in order) per healthy control. All
        controls share one frame schedule.
    gm_threshold, wm_threshold
        GM class: voxels with ``gm_prob > gm_threshold``; WM class: ``wm_prob > wm_threshold``
        (defaults 0.9).
    n_blood_voxels
        The blood class is the mean of this many hottest voxels (default 40).
    blood_window_end_min
        "Hottest" is judged on the mean normalised activity of the frames ending at or before this
        time, minutes (default 1.5).
    frame_tolerance_min
        Frame ends of two controls that differ by more than this (minutes) are a mismatch.

    Returns
    -------
    ndarray, shape (n_frames, 4)
        Columns in :data:`SVCA_CLASSES` order (normalised, unitless).

    Raises
    ------
    InputError
        No controls, mismatched frames, or a control without voxels of a class.
    """
    if len(controls) == 0:
        raise InputError(
            "SVCA: no healthy control to build the kinetic classes from; mark controls in participants.tsv "
            "(group column) or pass --svca-classes FILE"
        )
    if n_blood_voxels < 1:
        raise InputError(f"SVCA: n_blood_voxels must be >= 1, got {n_blood_voxels}")
    per_control = []
    reference_end = None
    for index, raw in enumerate(controls, start=1):
        control = raw if isinstance(raw, SvcaControl) else SvcaControl(*raw)
        tacs = _as_tacs(control.normalised_tacs, f"SVCA control {index}: normalised TACs")
        n_frames, n_voxels = tacs.shape
        frame_end = np.asarray(control.frame_end_min, dtype=float).ravel()
        if frame_end.size != n_frames:
            raise InputError(f"SVCA control {index}: {frame_end.size} frame end times but TACs with {n_frames} frames")
        if reference_end is None:
            reference_end = frame_end
        elif frame_end.size != reference_end.size or not np.allclose(frame_end, reference_end,
                                                                       rtol=0, atol=frame_tolerance_min):
            raise InputError(
                f"SVCA control {index}: frame schedule ({frame_end.size} frames) differs from control 1 "
                f"({reference_end.size} frames); controls must share one frame schedule"
            )
        gm = _control_field(control.gm_prob, n_voxels, index, "GM probability").astype(float)
        wm = _control_field(control.wm_prob, n_voxels, index, "WM probability").astype(float)
        thalamus = _control_field(control.thalamus_mask, n_voxels, index, "thalamus mask") != 0
        early = blood_window_frames(frame_end, blood_window_end_min)
        if not early.any():
            raise InputError(
                f"SVCA control {index}: no frame ends before {blood_window_end_min} min, so the blood class "
                "cannot be built; the protocol needs early frames"
            )
        members = {"gm": gm > gm_threshold, "wm": wm > wm_threshold, "highbinding": thalamus}
        columns = []
        for name in SVCA_CLASSES[:3]:
            if not members[name].any():
                raise InputError(f"SVCA control {index}: no voxel in the {name} class; check its segmentation")
            columns.append(tacs[:, members[name]].mean(axis=1))
        hotness = tacs[early].mean(axis=0)
        n_hot = min(n_blood_voxels, n_voxels)
        hottest = np.argpartition(-hotness, n_hot - 1)[:n_hot]
        columns.append(tacs[:, hottest].mean(axis=1))
        per_control.append(np.stack(columns, axis=1))
    return np.mean(per_control, axis=0)


def interpolate_classes(
    classes: ArrayLike,
    class_mid_min: ArrayLike,
    subject_mid_min: ArrayLike,
    *,
    max_extrapolation_min: float = 5.0,
) -> NDArray[np.float64]:
    """Linear interpolation of the class curves to a subject's frame mid-times.

    Parameters
    ----------
    classes
        ``(n_class_frames, n_classes)`` class curves.
    class_mid_min
        ``(n_class_frames,)`` their frame mid-times, minutes, increasing.
    subject_mid_min
        ``(n_frames,)`` the subject's frame mid-times, minutes.
    max_extrapolation_min
        Subject frames up to this far outside the class time range take the nearest class value;
        farther ones are an error (default 5 minutes).

    Returns
    -------
    ndarray, shape (n_frames, n_classes)

    Raises
    ------
    InputError
        Shapes that do not match, non-increasing class times, or subject frames too far outside.
    """
    curves = np.asarray(classes, dtype=float)
    if curves.ndim != 2:
        raise InputError(f"SVCA classes must be (n_frames, n_classes), got shape {curves.shape}")
    class_mid = np.asarray(class_mid_min, dtype=float).ravel()
    subject_mid = np.asarray(subject_mid_min, dtype=float).ravel()
    if class_mid.size != curves.shape[0]:
        raise InputError(f"SVCA classes have {curves.shape[0]} frames but {class_mid.size} mid-times")
    if class_mid.size < 2 or not np.all(np.diff(class_mid) > 0):
        raise InputError("SVCA class mid-times must be at least two strictly increasing times")
    below = class_mid[0] - subject_mid.min()
    above = subject_mid.max() - class_mid[-1]
    if max(below, above) > max_extrapolation_min:
        raise InputError(
            f"SVCA classes cover {class_mid[0]:.2f}-{class_mid[-1]:.2f} min but the subject's frames reach "
            f"{subject_mid.min():.2f}-{subject_mid.max():.2f} min; build classes from controls with this protocol"
        )
    return np.stack([np.interp(subject_mid, class_mid, curves[:, k]) for k in range(curves.shape[1])], axis=1)


def _subset_solvers(basis: NDArray[np.float64]) -> list[tuple[NDArray[np.intp], NDArray[np.float64]]]:
    """For every non-empty column subset S: (S, inverse of the Gram matrix of S) (pseudo-inverse if singular)."""
    gram = basis.T @ basis
    solvers = []
    n_classes = basis.shape[1]
    for size in range(1, n_classes + 1):
        for subset in itertools.combinations(range(n_classes), size):
            columns = np.array(subset, dtype=np.intp)
            solvers.append((columns, np.linalg.pinv(gram[np.ix_(columns, columns)])))
    return solvers


def _bordered_inverse(gram: NDArray[np.float64], columns: NDArray[np.intp]) -> NDArray[np.float64]:
    """(Pseudo-)inverse of the KKT matrix ``[[G_S, 1], [1', 0]]`` of the sum-to-one least squares on S."""
    size = columns.size
    bordered = np.zeros((size + 1, size + 1))
    bordered[:size, :size] = gram[np.ix_(columns, columns)]
    bordered[:size, size] = 1.0
    bordered[size, :size] = 1.0
    return np.linalg.pinv(bordered)


def nnls_coefficients(
    normalised_voxel_tacs: ArrayLike,
    classes: ArrayLike,
    *,
    chunk_voxels: int = DEFAULT_CHUNK_VOXELS,
    sum_to_one: bool = False,
) -> NDArray[np.float64]:
    """Exact non-negative least squares of every voxel TAC onto the class curves.

    Minimises ``|y - A b|^2`` subject to ``b >= 0`` (and, with ``sum_to_one``, ``sum(b) = 1``) for
    each voxel ``y`` (a column), ``A`` the classes. The optimum is the least-squares solution on its
    own support (equality-constrained on that support when ``sum_to_one``), so it is found by solving
    every non-empty subset of columns (2^k - 1 of them; 15 for four classes), keeping the
    sign-feasible solutions and taking the one of least residual (plain NNLS: ``b = 0`` when none
    beats it). Vectorised over voxels, in chunks of ``chunk_voxels``.

    Parameters
    ----------
    normalised_voxel_tacs
        ``(n_frames, n_voxels)``.
    classes
        ``(n_frames, k)`` class curves, ``k`` <= 8.
    chunk_voxels
        Voxels per chunk (memory bound).
    sum_to_one
        Also require ``sum(b) = 1`` (fully constrained least squares, the linear-unmixing model of
        Heinz & Chang 2001 IEEE TGRS 39:529): a voxel is a partial-volume mixture of the classes
        whose fractions add up to one. Default ``False`` (plain NNLS, as Turkheimer et al. 2007).

    Returns
    -------
    ndarray, shape (k, n_voxels)
        Non-negative coefficients (summing to one per voxel with ``sum_to_one``).
    """
    tacs = _as_tacs(normalised_voxel_tacs, "normalised voxel TACs")
    basis = np.asarray(classes, dtype=float)
    if basis.ndim != 2 or basis.shape[0] != tacs.shape[0]:
        raise InputError(
            f"SVCA classes have shape {basis.shape} but the voxel TACs have {tacs.shape[0]} frames; "
            "interpolate the classes to the subject's frames"
        )
    if not 1 <= basis.shape[1] <= 8 or not np.all(np.isfinite(basis)):
        raise InputError(f"SVCA needs 1-8 finite class curves, got {basis.shape[1]}")
    if chunk_voxels < 1:
        raise InputError(f"chunk_voxels must be >= 1, got {chunk_voxels}")
    gram = basis.T @ basis
    solvers = _subset_solvers(basis)
    bordered_inverses = [_bordered_inverse(gram, columns) for columns, _ in solvers] if sum_to_one else []
    n_classes = basis.shape[1]
    coefficients = np.zeros((n_classes, tacs.shape[1]))
    for start in range(0, tacs.shape[1], chunk_voxels):
        block = tacs[:, start : start + chunk_voxels]
        projections = basis.T @ block  # (k, V): A^T y
        # gain = |y|^2 - RSS = 2 b.A^T y - b.G b; plain NNLS starts from b = 0 (gain 0), the
        # sum-to-one problem has no zero solution, so any feasible subset beats "none".
        best_gain = np.full(block.shape[1], -np.inf if sum_to_one else 0.0)
        best = np.zeros((n_classes, block.shape[1]))
        for index, (columns, inverse) in enumerate(solvers):
            if sum_to_one:
                # KKT system of min |y - A_S b|^2 s.t. sum(b) = 1: [[G, 1], [1', 0]] [b; mu] = [A_S'y; 1].
                # The bordered matrix stays regular when G itself is singular, which z-scored classes
                # nearly are (a positive combination of them is ~0), so no Lagrange step through G^-1.
                bordered = bordered_inverses[index]
                solution = bordered[:-1, :-1] @ projections[columns] + bordered[:-1, -1:]
                sub_gram = gram[np.ix_(columns, columns)]
                gain = 2.0 * np.einsum("kv,kv->v", projections[columns], solution) - np.einsum(
                    "kv,kv->v", solution, sub_gram @ solution
                )
                feasible = np.all(solution >= 0, axis=0) & (np.abs(solution.sum(axis=0) - 1.0) <= 1e-8)
            else:
                solution = inverse @ projections[columns]
                gain = np.einsum("kv,kv->v", projections[columns], solution)
                feasible = np.all(solution >= 0, axis=0)
            better = feasible & (gain > best_gain)
            if better.any():
                best_gain = np.where(better, gain, best_gain)
                best[:, better] = 0.0
                best[np.ix_(columns, np.flatnonzero(better))] = solution[:, better]
        coefficients[:, start : start + chunk_voxels] = best
    return coefficients


def gm_fraction(
    normalised_voxel_tacs: ArrayLike,
    classes: ArrayLike,
    *,
    chunk_voxels: int = DEFAULT_CHUNK_VOXELS,
    sum_to_one: bool = True,
    background: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Grey-matter fraction ``b_GM / sum(b)`` of every voxel from :func:`nnls_coefficients`.

    Parameters
    ----------
    normalised_voxel_tacs
        ``(n_frames, n_voxels)`` from :func:`normalise_tacs`.
    classes
        ``(n_frames, k)`` class curves on the same frames, GM in column 0 (:data:`SVCA_CLASSES`).
    chunk_voxels
        Voxels per chunk (memory bound).
    sum_to_one
        Solve with ``sum(b) = 1`` (default ``True``; see the module docstring for why). ``False``
        is the unconstrained NNLS followed by ``b_GM / sum(b)`` of the original papers, which is
        ill-conditioned on z-scored data.
    background
        ``(n_frames,)`` from :func:`background_class` (recommended): a zero-activity class added to the
        solve, so ``GMfrac = b_GM / (sum(b) + b_background)`` is the voxel's true GM fraction also where
        CSF or the mask edge dilutes it. ``None`` (default): the four tissue classes only.

    Returns
    -------
    ndarray, shape (n_voxels,)
        In [0, 1]; 0 where every coefficient is 0 (never NaN).
    """
    basis = np.asarray(classes, dtype=float)
    if background is not None:
        extra = np.asarray(background, dtype=float).ravel()
        if basis.ndim != 2 or extra.size != basis.shape[0]:
            raise InputError(
                f"SVCA background class has {extra.size} frames but the classes have shape {basis.shape}"
            )
        basis = np.column_stack([basis, extra])
    coefficients = nnls_coefficients(normalised_voxel_tacs, basis, chunk_voxels=chunk_voxels, sum_to_one=sum_to_one)
    total = coefficients.sum(axis=0)
    return np.where(total > 0, coefficients[0] / np.where(total > 0, total, 1.0), 0.0)


def svca_reference(
    raw_voxel_tacs: ArrayLike,
    gm_frac: ArrayLike,
    gm_prob: ArrayLike,
    *,
    gm_fraction_threshold: float = 0.9,
    gm_prob_threshold: float = 0.9,
    min_voxels: int = 10,
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """SVCA reference voxels and their mean raw TAC.

    Parameters
    ----------
    raw_voxel_tacs
        ``(n_frames, n_voxels)`` voxel TACs (kBq/mL), not normalised.
    gm_frac
        ``(n_voxels,)`` from :func:`gm_fraction`.
    gm_prob
        ``(n_voxels,)`` grey-matter probability of the same voxels.
    gm_fraction_threshold
        Reference voxels have ``gm_frac > gm_fraction_threshold`` (default 0.9) ...
    gm_prob_threshold
        ... and ``gm_prob > gm_prob_threshold`` (default 0.9).
    min_voxels
        Fewer selected voxels than this is an error (default 10).

    Returns
    -------
    mask : ndarray of bool, shape (n_voxels,)
    reference_tac : ndarray, shape (n_frames,)
        Mean raw TAC of the selected voxels, same unit as ``raw_voxel_tacs``.

    Raises
    ------
    InputError
        Mismatched sizes or too few reference voxels.
    """
    tacs = _as_tacs(raw_voxel_tacs, "raw voxel TACs")
    fraction = np.asarray(gm_frac, dtype=float).ravel()
    probability = np.asarray(gm_prob, dtype=float).ravel()
    if fraction.size != tacs.shape[1] or probability.size != tacs.shape[1]:
        raise InputError(
            f"SVCA reference: {tacs.shape[1]} voxel TACs but {fraction.size} GM fractions and "
            f"{probability.size} GM probabilities"
        )
    mask = (fraction > gm_fraction_threshold) & (probability > gm_prob_threshold)
    if int(mask.sum()) < min_voxels:
        raise InputError(
            f"SVCA reference: only {int(mask.sum())} voxels with GM fraction > {gm_fraction_threshold} and GM "
            f"probability > {gm_prob_threshold} (need {min_voxels}); check the classes or use --ref-region cerebellum"
        )
    return mask, tacs[:, mask].mean(axis=1)
