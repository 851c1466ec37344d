"""The TAC simulator against independent numerical integration and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from tspo_bids.errors import InputError
from tspo_bids.kinetics import FrameTiming
from tspo_bids.kinetics.simulation import (
    FengInput,
    OneTissueParams,
    SrtmParams,
    TwoTissueParams,
    add_noise,
    decay_uncorrect,
    noise_sd,
    plasma_feng,
    reference_tissue,
    scale_for_cov,
    simulate_tacs,
)


def test_feng_input_shape() -> None:
    p = FengInput()
    assert plasma_feng([0.0, 0.3, p.t0], p).tolist() == [0.0, 0.0, 0.0]
    peak_time = np.linspace(0.5, 2, 20001)[np.argmax(plasma_feng(np.linspace(0.5, 2, 20001)))]
    assert 0.6 < peak_time < 0.9
    s = 30.0 - p.t0
    expected = (p.a1 * s - p.a2 - p.a3) * np.exp(-p.l1 * s) + p.a2 * np.exp(-p.l2 * s) + p.a3 * np.exp(-p.l3 * s)
    assert plasma_feng(30.0) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("reference", [TwoTissueParams(), OneTissueParams(K1=0.5, k2=0.2, vB=0.05)])
def test_reference_closed_form_matches_ode(reference: TwoTissueParams | OneTissueParams) -> None:
    """The closed-form compartment solution equals an independent ODE integration."""
    plasma = FengInput()
    k3, k4 = (reference.k3, reference.k4) if isinstance(reference, TwoTissueParams) else (0.0, 0.0)

    def rhs(t: float, c: np.ndarray) -> list[float]:
        cp = float(plasma_feng(t, plasma))
        return [reference.K1 * cp - (reference.k2 + k3) * c[0] + k4 * c[1], k3 * c[0] - k4 * c[1]]

    times = np.array([1.0, 2.0, 5.0, 20.0, 60.0])
    ode = solve_ivp(rhs, (0, 60), [0.0, 0.0], t_eval=times, rtol=1e-10, atol=1e-12, max_step=0.01)
    expected = (1 - reference.vB) * ode.y.sum(axis=0) + reference.vB * plasma_feng(times, plasma)
    np.testing.assert_allclose(reference_tissue(times, reference, plasma), expected, rtol=1e-6)


def test_frame_averages_and_srtm_targets(seed_timing: FrameTiming) -> None:
    params = SrtmParams(r1=0.9, k2=0.09, bp_nd=0.7)
    tacs = simulate_tacs(seed_timing, {"roi": params, "same": SrtmParams(1.0, 0.1, 0.0)})
    for i in (0, 3, 12, 21):
        start, end = seed_timing.start_min[i], seed_timing.end_min[i]
        average = quad(lambda t: float(reference_tissue(t)), start, end, points=[0.51], limit=200)[0] / (end - start)
        assert tacs["reference"][i] == pytest.approx(average, rel=5e-6, abs=1e-12)  # 0.1-s trapezoid
    np.testing.assert_allclose(tacs["same"], tacs["reference"], rtol=1e-12)  # R1 = 1, BPND = 0: C_T = C_R

    # SRTM as an ODE driven by the reference: dC_T/dt = R1 dC_R/dt + k2 C_R - k2a C_T
    k2a = params.k2a
    sol = solve_ivp(
        lambda t, y: [params.k2 * float(reference_tissue(t)) - k2a * (y[0] + params.r1 * float(reference_tissue(t)))],
        (0, 60), [0.0], dense_output=True, rtol=1e-9, atol=1e-11, max_step=0.05,
    )
    for i in (5, 15, 21):
        start, end = seed_timing.start_min[i], seed_timing.end_min[i]
        target = lambda t: float(sol.sol(t)[0] + params.r1 * reference_tissue(t))  # noqa: E731
        assert tacs["roi"][i] == pytest.approx(quad(target, start, end, limit=200)[0] / (end - start), rel=1e-5)


def test_noise_model_and_decay(seed_timing: FrameTiming) -> None:
    tac = simulate_tacs(seed_timing, {})["reference"]
    dcf = seed_timing.decay_correction_factors()
    np.testing.assert_allclose(noise_sd(tac, seed_timing, 2.0), np.sqrt(2.0 * tac * dcf / seed_timing.duration_min))
    rng = np.random.default_rng(0)
    many = add_noise(np.repeat(tac[:, None], 20000, axis=1), seed_timing, 0.5, rng)
    assert many.shape == (22, 20000)
    expected_sd = noise_sd(tac, seed_timing, 0.5)
    np.testing.assert_allclose(many.std(axis=1)[2:], expected_sd[2:], rtol=0.03)
    np.testing.assert_allclose(many.mean(axis=1)[2:], tac[2:], atol=4 * expected_sd[2:].max() / np.sqrt(20000))
    assert add_noise(tac, seed_timing, 0.5, rng).shape == (22,)
    scale = scale_for_cov(tac, seed_timing, 0.1)
    positive = tac > 0
    assert np.median(noise_sd(tac, seed_timing, scale)[positive] / tac[positive]) == pytest.approx(0.1, rel=1e-12)
    raw = decay_uncorrect(tac, seed_timing)
    np.testing.assert_allclose(raw * dcf, tac, rtol=1e-14)
    stored = FrameTiming(seed_timing.start_min, seed_timing.end_min, decay_corrected=False)
    np.testing.assert_allclose(stored.to_injection_decay_corrected(raw), tac, rtol=1e-13)


def test_simulator_rejects_bad_targets(seed_timing: FrameTiming) -> None:
    with pytest.raises(InputError, match="reserved"):
        simulate_tacs(seed_timing, {"reference": SrtmParams(1, 0.1, 0)})
    with pytest.raises(InputError, match="BPND > -1"):
        simulate_tacs(seed_timing, {"x": SrtmParams(1, 0.1, -1.0)})
