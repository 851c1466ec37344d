"""Basis-function SRTM/SRTM2 maps: truth, noise bias, flags, chunking, input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.kinetics import FrameTiming, srtm2_bfm, srtm_bfm
from tspo_bids.kinetics.simulation import OneTissueParams, SrtmParams, TwoTissueParams, add_noise, scale_for_cov, simulate_tacs

from .conftest import truth_targets


@pytest.mark.parametrize("schedule_name", ["seed_timing", "pbr28_timing"])
@pytest.mark.parametrize("reference", [TwoTissueParams(), OneTissueParams(K1=0.5, k2=0.2, vB=0.05)], ids=["2TCM", "1TCM"])
def test_noise_free_basis_functions_recover_truth(schedule_name: str, reference, request) -> None:
    """Acceptance: |BPND error| <= 0.005 for the default 200-function grid; SRTM2 given the true k2' too."""
    timing: FrameTiming = request.getfixturevalue(schedule_name)
    targets = truth_targets()
    tacs = simulate_tacs(timing, targets, reference)
    names = list(targets)
    matrix = np.column_stack([tacs[name] for name in names])
    truth_bp = np.array([targets[name].bp_nd for name in names])
    result = srtm_bfm(matrix, tacs["reference"], timing.start_min, timing.end_min)
    assert np.max(np.abs(result.bp_nd - truth_bp)) <= 0.005
    np.testing.assert_allclose(result.r1, [targets[n].r1 for n in names], atol=0.01)
    np.testing.assert_allclose(result.dvr, truth_bp + 1, atol=0.005)
    assert not result.edge_of_grid.any() and not result.failed.any() and not result.background.any()
    for k2_ref in sorted({targets[name].k2_ref for name in names}):
        same = [name for name in names if targets[name].k2_ref == k2_ref]
        fit2 = srtm2_bfm(np.column_stack([tacs[n] for n in same]), tacs["reference"], timing.start_min,
                         timing.end_min, k2_ref)
        np.testing.assert_allclose(fit2.bp_nd, [targets[n].bp_nd for n in same], atol=0.005)
        assert fit2.k2_ref == k2_ref


def test_grid_only_is_coarser_than_refined(seed_timing: FrameTiming) -> None:
    targets = truth_targets()
    tacs = simulate_tacs(seed_timing, targets)
    matrix = np.column_stack([tacs[n] for n in targets])
    truth_bp = np.array([p.bp_nd for p in targets.values()])
    coarse = srtm_bfm(matrix, tacs["reference"], seed_timing.start_min, seed_timing.end_min, refine=False)
    fine = srtm_bfm(matrix, tacs["reference"], seed_timing.start_min, seed_timing.end_min)
    assert np.max(np.abs(fine.bp_nd - truth_bp)) < np.max(np.abs(coarse.bp_nd - truth_bp))
    np.testing.assert_array_equal(coarse.k2a, coarse.k2a_grid[coarse.basis_index])


def test_noisy_voxels_median_bias(seed_timing: FrameTiming) -> None:
    """Acceptance: 100 000 voxels with 10 % noise (median frame COV), median BPND bias <= 0.01 per truth."""
    rng = np.random.default_rng(20240611)
    groups = {"wm": SrtmParams(0.7, 0.07, 0.2), "gm": SrtmParams(1.0, 0.1, 0.4), "lesion": SrtmParams(0.9, 0.1, 1.0),
              "zero": SrtmParams(0.95, 0.095, 0.0)}
    tacs = simulate_tacs(seed_timing, groups)
    per_group = 25_000
    columns, truth = [], []
    for name, params in groups.items():
        scale = scale_for_cov(tacs[name], seed_timing, 0.10)
        columns.append(add_noise(np.repeat(tacs[name][:, None], per_group, axis=1), seed_timing, scale, rng))
        truth.append(np.full(per_group, params.bp_nd))
    voxels = np.concatenate(columns, axis=1)
    true_bp = np.concatenate(truth)
    result = srtm_bfm(voxels, tacs["reference"], seed_timing.start_min, seed_timing.end_min)
    assert voxels.shape == (22, 100_000)
    for index, name in enumerate(groups):
        part = slice(index * per_group, (index + 1) * per_group)
        bias = np.median(result.bp_nd[part]) - true_bp[part][0]
        assert abs(bias) <= 0.01, (name, bias)
    assert not result.failed.any()


def test_background_and_edge_flags_without_warnings(seed_timing: FrameTiming) -> None:
    tacs = simulate_tacs(seed_timing, {"roi": SrtmParams(1.0, 0.1, 0.5), "slow": SrtmParams(1.0, 0.02, 4.0)})
    matrix = np.column_stack((tacs["roi"], np.zeros(22), 1e-9 * tacs["roi"], tacs["slow"], -tacs["roi"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = srtm_bfm(matrix, tacs["reference"], seed_timing.start_min, seed_timing.end_min)
    np.testing.assert_array_equal(result.background, [False, True, True, False, False])
    assert np.isnan(result.bp_nd[1]) and np.isnan(result.bp_nd[2]) and result.basis_index[1] == -1
    assert abs(result.bp_nd[0] - 0.5) <= 0.005 and not result.edge_of_grid[0]
    # true k2a = 0.004 /min lies below the grid's 0.01: optimum on the first basis function
    assert result.edge_of_grid[3] and result.basis_index[3] == 0
    # a negative TAC admits no R1 > 0 with any basis function
    assert result.failed[4] and np.isnan(result.bp_nd[4])
    assert not result.failed[:4].any()


def test_chunking_float32_and_one_column_give_identical_results(seed_timing: FrameTiming) -> None:
    rng = np.random.default_rng(3)
    tacs = simulate_tacs(seed_timing, {"roi": SrtmParams(0.9, 0.09, 0.7)})
    voxels = add_noise(np.repeat(tacs["roi"][:, None], 1000, axis=1), seed_timing, scale_for_cov(tacs["roi"], seed_timing, 0.2), rng)
    args = (tacs["reference"], seed_timing.start_min, seed_timing.end_min)
    whole = srtm_bfm(voxels, *args)
    chunked = srtm_bfm(voxels, *args, weights=None, chunk_size=77)
    np.testing.assert_allclose(whole.bp_nd, chunked.bp_nd, rtol=1e-12)  # BLAS blocking may differ
    single = srtm_bfm(voxels[:, 5], *args, weights=np.ones(22))
    assert single.bp_nd.shape == (1,)
    assert single.bp_nd[0] == pytest.approx(srtm_bfm(voxels, *args, weights=np.ones(22)).bp_nd[5], rel=1e-12)
    as_float32 = srtm_bfm(voxels.astype(np.float32), *args)
    np.testing.assert_allclose(as_float32.bp_nd, whole.bp_nd, atol=1e-3)


def test_input_errors(seed_timing: FrameTiming) -> None:
    reference = simulate_tacs(seed_timing, {})["reference"]
    voxels = np.ones((22, 10))
    voxels[3, 7] = np.nan
    args = (reference, seed_timing.start_min, seed_timing.end_min)
    with pytest.raises(InputError, match="frame 4, voxel 7"):
        srtm_bfm(voxels, *args, weights=np.ones(22))
    with pytest.raises(InputError, match="expected \\(n_frames, n_voxels\\)"):
        srtm_bfm(np.ones((21, 10)), *args)
    with pytest.raises(InputError, match="k2a_range"):
        srtm_bfm(np.ones((22, 2)), *args, k2a_range=(1.0, 0.1))
    with pytest.raises(InputError, match="n_basis"):
        srtm_bfm(np.ones((22, 2)), *args, n_basis=1)
    with pytest.raises(InputError, match="k2_ref"):
        srtm2_bfm(np.ones((22, 2)), *args, k2_ref=-0.1)
