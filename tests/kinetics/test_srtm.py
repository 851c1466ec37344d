"""SRTM and SRTM2 (one TAC) against simulated truth; flags; input errors; decay invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.kinetics import FrameTiming, fit_srtm, fit_srtm2, frame_weights
from tspo_bids.kinetics.simulation import (
    OneTissueParams,
    SrtmParams,
    TwoTissueParams,
    add_noise,
    decay_uncorrect,
    scale_for_cov,
    simulate_tacs,
)

from .conftest import truth_targets

REFERENCES = [TwoTissueParams(), OneTissueParams(K1=0.5, k2=0.2, vB=0.05)]


@pytest.mark.parametrize("schedule_name", ["seed_timing", "pbr28_timing"])
@pytest.mark.parametrize("reference", REFERENCES, ids=["2TCM", "1TCM"])
def test_noise_free_srtm_and_srtm2_recover_truth(schedule_name: str, reference, request) -> None:
    """Acceptance: |BPND error| <= 0.005, BPND -0.2..2, seed and PBR28 (first frame at 29 s) schedules."""
    timing: FrameTiming = request.getfixturevalue(schedule_name)
    targets = truth_targets()
    tacs = simulate_tacs(timing, targets, reference)
    for name, truth in targets.items():
        fit = fit_srtm(tacs[name], tacs["reference"], timing.start_min, timing.end_min)
        assert abs(fit.bp_nd - truth.bp_nd) <= 0.005, (name, fit)
        assert abs(fit.r1 - truth.r1) <= 0.01 and abs(fit.dvr - (truth.bp_nd + 1)) <= 0.005
        assert not fit.failed and not fit.bound_hit and fit.n_frames_used == timing.n_frames
        fit2 = fit_srtm2(tacs[name], tacs["reference"], timing.start_min, timing.end_min, truth.k2_ref)
        assert abs(fit2.bp_nd - truth.bp_nd) <= 0.005, (name, fit2)
        assert fit2.k2_ref == truth.k2_ref and abs(fit2.r1 - truth.r1) <= 0.01


def test_srtm_reports_k2_and_derived_values(seed_timing: FrameTiming) -> None:
    truth = SrtmParams(r1=0.8, k2=0.096, bp_nd=0.4)
    tacs = simulate_tacs(seed_timing, {"roi": truth})
    fit = fit_srtm(tacs["roi"], tacs["reference"], seed_timing.start_min, seed_timing.end_min)
    assert fit.k2 == pytest.approx(truth.k2, rel=0.01)
    assert fit.k2a == pytest.approx(truth.k2a, rel=0.01)
    assert fit.k2_ref == pytest.approx(fit.k2 / fit.r1, rel=1e-12)
    assert fit.dvr == fit.bp_nd + 1
    assert fit.rss < 1e-6 * float(np.sum(tacs["roi"] ** 2))  # weights <= 1


def test_bound_hit_is_flagged(seed_timing: FrameTiming) -> None:
    """A true BPND of -0.7 lies below the TSPO bound -0.5: the fit lands on it and says so."""
    tacs = simulate_tacs(seed_timing, {"low": SrtmParams(r1=1.0, k2=0.1, bp_nd=-0.7)})
    fit = fit_srtm(tacs["low"], tacs["reference"], seed_timing.start_min, seed_timing.end_min)
    assert fit.bound_hit and "bp_nd" in fit.bounds_hit
    assert fit.bp_nd == pytest.approx(-0.5, abs=1e-6)


def test_negative_bpnd_within_bounds_is_not_flagged(seed_timing: FrameTiming) -> None:
    tacs = simulate_tacs(seed_timing, {"low": SrtmParams(r1=1.0, k2=0.1, bp_nd=-0.3)})
    fit = fit_srtm(tacs["low"], tacs["reference"], seed_timing.start_min, seed_timing.end_min)
    assert not fit.bound_hit and abs(fit.bp_nd + 0.3) <= 0.005


def test_zero_target_fails_cleanly(seed_timing: FrameTiming) -> None:
    reference = simulate_tacs(seed_timing, {})["reference"]
    fit = fit_srtm(np.zeros(22), reference, seed_timing.start_min, seed_timing.end_min)
    assert fit.failed and math.isnan(fit.bp_nd) and "zero" in fit.message


def test_decay_invariance(seed_timing: FrameTiming) -> None:
    """Acceptance: the same TACs stored decay-uncorrected, or corrected to a later time, give BPND within 1e-6."""
    rng = np.random.default_rng(7)
    tacs = simulate_tacs(seed_timing, {"roi": SrtmParams(0.9, 0.09, 0.6)})
    scale = scale_for_cov(tacs["roi"], seed_timing, 0.05)
    target = add_noise(tacs["roi"], seed_timing, scale, rng)
    reference = add_noise(tacs["reference"], seed_timing, scale / 4, rng)
    start, end = seed_timing.start_min, seed_timing.end_min
    weights = frame_weights(seed_timing, (target + reference) / 2)
    baseline = fit_srtm(target, reference, start, end, weights)

    raw = FrameTiming(start, end, decay_corrected=False)
    later = FrameTiming(start, end, decay_corrected=True, decay_correction_time_min=37.0)
    later_factor = math.exp(-later.decay_constant_per_min * 37.0)
    for timing, stored_target, stored_reference in (
        (raw, decay_uncorrect(target, raw), decay_uncorrect(reference, raw)),
        (later, target * later_factor, reference * later_factor),
    ):
        corrected_target = timing.to_injection_decay_corrected(stored_target)
        corrected_reference = timing.to_injection_decay_corrected(stored_reference)
        refit = fit_srtm(
            corrected_target,
            corrected_reference,
            start,
            end,
            frame_weights(timing, (corrected_target + corrected_reference) / 2),
        )
        assert abs(refit.bp_nd - baseline.bp_nd) <= 1e-6
        default = fit_srtm(corrected_target, corrected_reference, start, end)
        assert abs(default.bp_nd - fit_srtm(target, reference, start, end).bp_nd) <= 1e-6


def test_weights_are_weights_not_sigma(seed_timing: FrameTiming) -> None:
    """Down-weighting a corrupted frame to ~0 must remove its influence (a sigma-style bug would amplify it)."""
    truth = SrtmParams(0.9, 0.09, 0.8)
    tacs = simulate_tacs(seed_timing, {"roi": truth})
    corrupted = tacs["roi"].copy()
    corrupted[15] *= 1.5
    weights = np.ones(22)
    weights[15] = 1e-9
    fit = fit_srtm(corrupted, tacs["reference"], seed_timing.start_min, seed_timing.end_min, weights)
    assert abs(fit.bp_nd - truth.bp_nd) <= 0.005
    weights[15] = 0.0
    assert fit_srtm(corrupted, tacs["reference"], seed_timing.start_min, seed_timing.end_min, weights).n_frames_used == 21


def test_input_errors(seed_timing: FrameTiming) -> None:
    start, end = seed_timing.start_min, seed_timing.end_min
    good = np.linspace(1, 2, 22)
    bad = good.copy()
    bad[4] = np.nan
    with pytest.raises(InputError, match=r"SRTM: target contains NaN.*frame 5"):
        fit_srtm(bad, good, start, end)
    with pytest.raises(InputError, match="reference has shape"):
        fit_srtm(good, good[:-1], start, end)
    with pytest.raises(InputError, match="22 frame start times but 21"):
        fit_srtm(good, good, start, end[:-1])
    with pytest.raises(InputError, match="2 frames in the fit"):
        fit_srtm(good[:2], good[:2], start[:2], end[:2])
    with pytest.raises(InputError, match="weights must be >= 0"):
        fit_srtm(good, good, start, end, weights=-np.ones(22))
    with pytest.raises(InputError, match="before injection"):
        fit_srtm(good, good, start - 1.0, end - 1.0)
    with pytest.raises(InputError, match="k2_ref"):
        fit_srtm2(good, good, start, end, k2_ref=0.0)
    with pytest.raises(InputError, match="overlap"):
        fit_srtm(good[:3], good[:3], [0, 1, 1.5], [1.6, 2, 3])
