"""Fit a reference-tissue model to every target region: one row per region.

The model table :data:`MODELS` is the single place that maps a model name (as used on the
command line and in ``model-<MODEL>`` filenames) to its fitting function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tspo_bids.errors import InputError

_LEADING_COLUMNS = ("region", "BPND", "DVR", "R1", "k2")


def _srtm(target, reference, timing, weights, **_):
    from tspo_bids.kinetics import fit_srtm

    return fit_srtm(target, reference, timing.start_min, timing.end_min, weights=weights)


def _mrtm(target, reference, timing, weights, t_star_min, **_):
    from tspo_bids.kinetics import fit_mrtm

    return fit_mrtm(target, reference, timing.start_min, timing.end_min, t_star=0.0, weights=weights)


def _logan(target, reference, timing, weights, t_star_min, k2_ref, **_):
    from tspo_bids.kinetics import fit_logan_ref

    if t_star_min is None:
        raise InputError("Logan needs t*: give --t-star MINUTES (or a tracer with a preset)")
    return fit_logan_ref(target, reference, timing.start_min, timing.end_min, t_star=t_star_min, k2_ref=k2_ref)


def _suvr(target, reference, timing, weights, suvr_window_min, **_):
    from tspo_bids.kinetics import suvr

    if suvr_window_min is None:
        raise InputError("SUVR needs a time window: give --suvr-window START END (minutes)")
    return {"suvr": suvr(target, reference, timing.start_min, timing.end_min, suvr_window_min)}


#: Models whose equation needs the reference tissue's k2' (1/min).
NEEDS_K2_REF = frozenset({"Logan"})

#: Model name (as in ``model-<MODEL>`` filenames) -> fitting function(target, reference, timing, weights, **options).
MODELS: dict[str, Callable[..., Any]] = {"SRTM": _srtm, "MRTM": _mrtm, "Logan": _logan, "SUVR": _suvr}


def canonical_model_name(name: str) -> str:
    """The ``MODELS`` key for a model name in any case (``"srtm"`` -> ``"SRTM"``)."""
    for key in MODELS:
        if key.lower() == name.lower():
            return key
    raise InputError(f"--models {name}: not available at region level; choose from {', '.join(MODELS)}")


#: Result attribute -> kinpar column, in output order (BIDS-PET derivative names).
_RESULT_COLUMNS = (("bp_nd", "BPND"), ("dvr", "DVR"), ("r1", "R1"), ("k2", "k2"), ("k2_ref", "k2prime"),
                   ("suvr", "SUVR"), ("n_frames_used", "n_frames_used"), ("failed", "failed"),
                   ("bound_hit", "bound_hit"))


def _as_row(result: Any) -> dict[str, Any]:
    """The kinpar columns a model result provides (attributes or mapping keys)."""
    row: dict[str, Any] = {}
    for attribute, column in _RESULT_COLUMNS:
        value = result.get(attribute) if isinstance(result, Mapping) else getattr(result, attribute, None)
        if value is None:
            continue
        row[column] = bool(value) if isinstance(value, (bool, np.bool_)) else float(value)
    if row.get("bound_hit") and getattr(result, "bounds_hit", ()):
        row["bounds_hit"] = ",".join(result.bounds_hit)
    return row


def reference_k2prime(
    tacs: Mapping[str, np.ndarray],
    reference: str,
    timing: Any,
    weights: np.ndarray | None,
    region: str | None = "wholebrain",
) -> float:
    """The reference tissue's k2' (1/min) from MRTM on a large, low-noise region (Ichise 2003).

    MRTM estimates ``k2' = g1/g3`` without fixing anything; the whole-brain TAC gives the
    most stable value. Models that need k2' (Logan with its ``C_R/k2'`` term, SRTM2, MRTM2)
    then share this one value, which the kinpar table records in ``k2prime``.
    """
    from tspo_bids.kinetics import fit_mrtm

    source = region if region in tacs and np.all(np.isfinite(tacs[region])) else None
    if source is None:
        raise InputError(f"k2' needs the {region!r} region TAC, which is missing or empty")
    result = fit_mrtm(np.asarray(tacs[source], float), np.asarray(tacs[reference], float),
                      timing.start_min, timing.end_min, t_star=0.0, weights=weights)
    if result.failed or not np.isfinite(result.k2_ref) or result.k2_ref <= 0:
        raise InputError(f"k2' could not be estimated by MRTM on the {source!r} TAC ({result.message})")
    return float(result.k2_ref)


def fit_regions(
    model: str,
    tacs: Mapping[str, np.ndarray],
    reference: str,
    timing: Any,
    weights_region: str | None = "wholebrain",
    t_star_min: float | None = None,
    suvr_window_min: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """Fit ``model`` to every region's TAC against the reference TAC.

    Parameters
    ----------
    model : str
        A key of :data:`MODELS`.
    tacs : mapping of str to ndarray, shape (n_frames,)
        Regional TACs, frame averages decay-corrected to injection (kBq/mL).
    reference : str
        Key of the reference region in ``tacs``; it is not fitted.
    timing : tspo_bids.kinetics.FrameTiming
        Frame timing (minutes from injection).
    weights_region : str or None
        Region whose TAC gives the Poisson frame weights (methods §1); None for the
        model's default weighting.
    t_star_min : float or None
        Start of the linear phase for Logan (minutes); needed by Logan only.
    suvr_window_min : (float, float) or None
        SUVR averaging window (minutes from injection).

    Returns
    -------
    list of dict
        One row per target region: ``region``, ``BPND``, ``DVR``, ``R1``, ``k2`` (as the
        model provides them, 1/min for rates) then the model's fit flags.
    """
    from tspo_bids.kinetics import frame_weights

    model = canonical_model_name(model)
    if reference not in tacs:
        raise InputError(f"reference region {reference!r} has no TAC")
    reference_tac = np.asarray(tacs[reference], float)
    if not np.all(np.isfinite(reference_tac)):
        raise InputError(f"reference region {reference!r} is empty or has non-finite values")
    weights = None
    if weights_region and weights_region in tacs and np.all(np.isfinite(tacs[weights_region])):
        weights = frame_weights(timing, np.asarray(tacs[weights_region], float))

    k2_ref = None
    if model in NEEDS_K2_REF:
        k2_ref = reference_k2prime(tacs, reference, timing, weights, weights_region)
    rows = []
    for region, tac in tacs.items():
        if region == reference:
            continue
        tac = np.asarray(tac, float)
        row: dict[str, Any] = {"region": region}
        if not np.all(np.isfinite(tac)):
            row["failed"] = True
        else:
            row.update(_as_row(MODELS[model](
                tac, reference_tac, timing, weights,
                t_star_min=t_star_min, suvr_window_min=suvr_window_min, k2_ref=k2_ref,
            )))
            if k2_ref is not None:
                row["k2prime"] = k2_ref
        rows.append(row)
    columns = list(_LEADING_COLUMNS) + sorted({k for r in rows for k in r} - set(_LEADING_COLUMNS))
    return [{c: r.get(c, np.nan) for c in columns} for r in rows]
