"""External known-answer data: DynamicPET's own simulated SRTM TACs (truth BPND 1.5, R1 1.2, k2' 0.3).

Tolerances are those of DynamicPET's tests (../shared/validation/dynamicpet/README.md): SRTM (NLLS) 2 %,
the linear SRTM (Zhou 2003; our analogue is MRTM) 0.7 %, LRTM (Logan, t* = 0, no k2') 2 %. Its frame values
are means of ODE grid points inside each frame, i.e. approximate frame averages.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tspo_bids.kinetics import fit_logan_ref, fit_mrtm, fit_mrtm2, fit_srtm, fit_srtm2, srtm_bfm, suvr

from .conftest import validation_path

pytestmark = pytest.mark.validation
BPND, R1, K2_REF = 1.5, 1.2, 0.3


@pytest.fixture(scope="module")
def dynamicpet_tacs() -> tuple:
    tacs = pd.read_csv(validation_path("dynamicpet", "dynamicpet_srtm_sim_tacs.csv"))
    truth = pd.read_csv(validation_path("dynamicpet", "dynamicpet_srtm_sim_truth.csv")).iloc[0]
    assert (truth["BPND_true"], truth["R1_true"], truth["k2prime_true"]) == (BPND, R1, K2_REF)
    return (tacs["Target"].to_numpy(), tacs["Reference"].to_numpy(), tacs["t_start_min"].to_numpy(),
            tacs["t_end_min"].to_numpy())


def test_nonlinear_and_basis_function_srtm(dynamicpet_tacs: tuple) -> None:
    fit = fit_srtm(*dynamicpet_tacs)
    assert fit.bp_nd == pytest.approx(BPND, rel=0.02) and fit.r1 == pytest.approx(R1, rel=0.02)
    assert fit.bp_nd == pytest.approx(BPND, rel=0.007) and fit.r1 == pytest.approx(R1, rel=0.007)
    assert fit.k2_ref == pytest.approx(K2_REF, rel=0.02)
    maps = srtm_bfm(*dynamicpet_tacs)
    assert maps.bp_nd[0] == pytest.approx(BPND, rel=0.007) and maps.r1[0] == pytest.approx(R1, rel=0.007)
    assert fit_srtm2(*dynamicpet_tacs, k2_ref=K2_REF).bp_nd == pytest.approx(BPND, rel=0.007)


def test_linear_methods(dynamicpet_tacs: tuple) -> None:
    mrtm = fit_mrtm(*dynamicpet_tacs)
    assert mrtm.bp_nd == pytest.approx(BPND, rel=0.007) and mrtm.r1 == pytest.approx(R1, rel=0.007)
    assert fit_mrtm2(*dynamicpet_tacs, k2_ref=K2_REF).bp_nd == pytest.approx(BPND, rel=0.007)
    assert fit_logan_ref(*dynamicpet_tacs, t_star=0.0).bp_nd == pytest.approx(BPND, rel=0.02)
    assert fit_logan_ref(*dynamicpet_tacs, t_star=10.0, k2_ref=K2_REF).bp_nd == pytest.approx(BPND, rel=0.007)


def test_suvr_matches_dynamicpet(dynamicpet_tacs: tuple) -> None:
    results = pd.read_csv(validation_path("dynamicpet", "dynamicpet_srtm_sim_dynamicpet_results.csv"))
    expected = results.loc[results["model"] == "SUVR", "SUVR"].iloc[0]
    assert suvr(*dynamicpet_tacs, window=(40.0, 70.0)) == pytest.approx(expected, rel=1e-9)
