"""Voxelwise Logan reference plot: equals the one-TAC fit and recovers the true DVR."""

import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.kinetics import FrameTiming, fit_logan_ref, logan_ref_map
from tspo_bids.kinetics.simulation import SrtmParams, add_noise, scale_for_cov, simulate_tacs

SEED_DURATIONS_S = [15] * 4 + [30] * 4 + [60] * 3 + [120] * 2 + [300] * 8 + [600]
K2_REF = 0.1  # k2' of every target below: k2 / R1


@pytest.fixture(scope="module")
def voxels():
    start_s = np.concatenate([[0.0], np.cumsum(SEED_DURATIONS_S)[:-1]])
    timing = FrameTiming(start_s / 60.0, (start_s + SEED_DURATIONS_S) / 60.0)
    bpnd = np.linspace(-0.2, 2.0, 12)
    targets = {f"v{i}": SrtmParams(r1=0.8, k2=0.8 * K2_REF, bp_nd=b) for i, b in enumerate(bpnd)}
    tacs = simulate_tacs(timing, targets)
    matrix = np.column_stack([tacs[f"v{i}"] for i in range(bpnd.size)])
    return timing, tacs["reference"], matrix, bpnd


def test_map_equals_single_fits_and_truth(voxels):
    timing, reference, matrix, bpnd = voxels
    result = logan_ref_map(matrix, reference, timing.start_min, timing.end_min, t_star=20.0, k2_ref=K2_REF)
    single = [fit_logan_ref(matrix[:, i], reference, timing.start_min, timing.end_min, 20.0, K2_REF).dvr
              for i in range(bpnd.size)]
    np.testing.assert_allclose(result.dvr, single, rtol=1e-10)
    np.testing.assert_allclose(result.bp_nd, bpnd, atol=0.005)
    assert not result.background.any() and not result.failed.any()


@pytest.mark.parametrize("cov, low, high", [(0.05, -0.01, 0.01), (0.10, -0.04, 0.0)])
def test_background_and_noise(voxels, cov, low, high):
    """Noise biases Logan DVR down (Slifstein & Laruelle 2000): small at 5 %, negative at 10 % COV."""
    timing, reference, matrix, bpnd = voxels
    rng = np.random.default_rng(1)
    noisy = add_noise(np.repeat(matrix[:, 3:4], 5000, axis=1), timing,
                      scale_for_cov(matrix[:, 3], timing, cov), rng)
    with_background = np.column_stack([noisy, np.zeros(timing.n_frames)])
    result = logan_ref_map(with_background, reference, timing.start_min, timing.end_min, 20.0, K2_REF)
    assert result.background[-1] and np.isnan(result.dvr[-1])
    bias = np.nanmedian(result.bp_nd[:-1]) - bpnd[3]
    assert low <= bias <= high, bias  # measured -0.006 and -0.022


def test_bad_t_star(voxels):
    timing, reference, matrix, _ = voxels
    with pytest.raises(InputError, match="t_star"):
        logan_ref_map(matrix, reference, timing.start_min, timing.end_min, t_star=90.0)


def test_frame_integrals_are_linear(voxels):
    """The matrix form used for many voxels equals integrating each TAC on the fine grid."""
    from tspo_bids.kinetics.linear import frame_integrals

    timing, reference, matrix, _ = voxels
    direct = frame_integrals(matrix, timing.start_min, timing.end_min, "frame_average")
    operator = frame_integrals(np.eye(timing.n_frames), timing.start_min, timing.end_min, "frame_average")
    np.testing.assert_allclose(operator @ matrix, direct, rtol=1e-10)
