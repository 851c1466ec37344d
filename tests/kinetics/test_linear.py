"""MRTM, MRTM2 and the Logan reference plot against simulated truth."""

from __future__ import annotations

import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.kinetics import FrameTiming, fit_logan_ref, fit_mrtm, fit_mrtm2
from tspo_bids.kinetics.simulation import OneTissueParams, SrtmParams, TwoTissueParams, simulate_tacs

from .conftest import truth_targets


@pytest.mark.parametrize("schedule_name", ["seed_timing", "pbr28_timing"])
@pytest.mark.parametrize("reference", [TwoTissueParams(), OneTissueParams(K1=0.5, k2=0.2, vB=0.05)], ids=["2TCM", "1TCM"])
def test_noise_free_linear_methods_recover_truth(schedule_name: str, reference, request) -> None:
    """Acceptance: MRTM2 and Logan (t* = 20 min) given the true k2' within 0.005 of BPND; MRTM too."""
    timing: FrameTiming = request.getfixturevalue(schedule_name)
    targets = truth_targets()
    tacs = simulate_tacs(timing, targets, reference)
    start, end = timing.start_min, timing.end_min
    for name, truth in targets.items():
        mrtm2 = fit_mrtm2(tacs[name], tacs["reference"], start, end, truth.k2_ref)
        assert abs(mrtm2.bp_nd - truth.bp_nd) <= 0.005, (name, mrtm2)
        assert abs(mrtm2.r1 - truth.r1) <= 0.01
        logan = fit_logan_ref(tacs[name], tacs["reference"], start, end, t_star=20.0, k2_ref=truth.k2_ref)
        assert abs(logan.bp_nd - truth.bp_nd) <= 0.005, (name, logan)
        assert logan.intercept == pytest.approx(-1 / truth.k2a, rel=0.02)
        mrtm = fit_mrtm(tacs[name], tacs["reference"], start, end)
        assert abs(mrtm.bp_nd - truth.bp_nd) <= 0.005, (name, mrtm)
        assert abs(mrtm.k2_ref - truth.k2_ref) <= 0.005 and abs(mrtm.r1 - truth.r1) <= 0.01


def test_logan_without_k2_ref_is_biased_but_close_late(seed_timing: FrameTiming) -> None:
    truth = SrtmParams(r1=1.0, k2=0.1, bp_nd=1.0)
    tacs = simulate_tacs(seed_timing, {"roi": truth})
    plain = fit_logan_ref(tacs["roi"], tacs["reference"], seed_timing.start_min, seed_timing.end_min, t_star=20.0)
    assert plain.k2_ref is None and plain.n_frames_used == 7  # frames starting at 20, 25, ..., 50 min
    assert 0.005 < abs(plain.bp_nd - truth.bp_nd) < 0.2


def test_mrtm_t_star_and_degenerate_cases(seed_timing: FrameTiming) -> None:
    tacs = simulate_tacs(seed_timing, {"roi": SrtmParams(0.9, 0.1, 0.5), "same": SrtmParams(1.0, 0.1, 0.0)})
    start, end = seed_timing.start_min, seed_timing.end_min
    late = fit_mrtm(tacs["roi"], tacs["reference"], start, end, t_star=10.0)
    assert late.n_frames_used == 9 and late.t_star == 10.0
    assert abs(late.bp_nd - 0.5) <= 0.01
    same = fit_mrtm(tacs["same"], tacs["reference"], start, end)  # target == reference: collinear design
    assert same.failed and np.isnan(same.bp_nd)
    with pytest.raises(InputError, match="t_star = 58 min is after the start of the last frame"):
        fit_mrtm(tacs["roi"], tacs["reference"], start, end, t_star=58.0)
    with pytest.raises(InputError, match="1 frames in the fit"):
        fit_mrtm2(tacs["roi"], tacs["reference"], start, end, 0.1, t_star=50.0)
    with pytest.raises(InputError, match="t_star must be >= 0"):
        fit_logan_ref(tacs["roi"], tacs["reference"], start, end, t_star=-1.0)
    with pytest.raises(InputError, match="k2_ref"):
        fit_mrtm2(tacs["roi"], tacs["reference"], start, end, k2_ref=float("nan"))
    with pytest.raises(InputError, match="positive"):
        fit_logan_ref(np.zeros(22), tacs["reference"], start, end, t_star=20.0)
    with pytest.raises(InputError, match="NaN"):
        fit_mrtm(np.full(22, np.inf), tacs["reference"], start, end)
