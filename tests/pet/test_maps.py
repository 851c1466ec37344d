"""Voxelwise parametric maps recover the simulated parameters of every voxel."""

import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.kinetics import FrameTiming
from tspo_bids.kinetics.simulation import SrtmParams, simulate_tacs
from tspo_bids.pet.maps import data_derived_k2prime, parametric_maps

SEED_DURATIONS_S = [15] * 4 + [30] * 4 + [60] * 3 + [120] * 2 + [300] * 8 + [600]
K2PRIME = 0.1


def test_noise_free_maps_recover_truth():
    start_s = np.concatenate([[0.0], np.cumsum(SEED_DURATIONS_S)[:-1]])
    timing = FrameTiming(start_s / 60.0, (start_s + SEED_DURATIONS_S) / 60.0)
    bpnd = np.linspace(-0.1, 1.5, 80)
    r1 = np.linspace(0.6, 1.1, 80)
    tacs = simulate_tacs(timing, {f"v{i}": SrtmParams(r1[i], r1[i] * K2PRIME, bpnd[i]) for i in range(80)})
    voxels = np.column_stack([tacs[f"v{i}"] for i in range(80)] + [np.zeros(timing.n_frames)])
    result = parametric_maps(voxels, tacs["reference"], timing.start_min, timing.end_min, None, 20.0, (40.0, 60.0))
    assert result.k2prime == pytest.approx(K2PRIME, rel=0.01)
    for model in ("SRTM", "SRTM2"):
        np.testing.assert_allclose(result.maps[(model, "BPND")][:-1], bpnd, atol=0.005)
        np.testing.assert_allclose(result.maps[(model, "R1")][:-1], r1, atol=0.005)
    np.testing.assert_allclose(result.maps[("Logan", "DVR")][:-1], bpnd + 1, atol=0.005)
    # background voxel: no value, no warning
    assert all(np.isnan(m[-1]) or key == ("SUVR", "SUVR") for key, m in result.maps.items())
    late = (timing.start_min >= 40) & (timing.end_min <= 60)
    expected_suvr = (voxels[late].T @ timing.duration_min[late]) / (tacs["reference"][late] @ timing.duration_min[late])
    np.testing.assert_allclose(result.maps[("SUVR", "SUVR")], expected_suvr, rtol=1e-9)


def test_k2prime_needs_voxels():
    with pytest.raises(InputError, match="k2'"):
        data_derived_k2prime(np.ones(10), np.ones(10) * 0.1, np.ones(10, bool))
