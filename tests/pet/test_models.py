"""Regional model dispatch recovers simulated truth, and flags what it cannot fit."""

import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.kinetics import FrameTiming
from tspo_bids.kinetics.simulation import SrtmParams, simulate_tacs
from tspo_bids.pet.models import canonical_model_name, fit_regions

SEED_DURATIONS_S = [15] * 4 + [30] * 4 + [60] * 3 + [120] * 2 + [300] * 8 + [600]


@pytest.fixture(scope="module")
def seed_tacs():
    start_s = np.concatenate([[0.0], np.cumsum(SEED_DURATIONS_S)[:-1]])
    timing = FrameTiming(start_s / 60.0, (start_s + SEED_DURATIONS_S) / 60.0)
    truth = {"wm": SrtmParams(r1=0.7, k2=0.07, bp_nd=0.2), "thalamus": SrtmParams(r1=0.95, k2=0.1, bp_nd=0.35)}
    tacs = simulate_tacs(timing, truth)
    tacs["cerebellumgm"] = tacs.pop("reference")
    tacs["wholebrain"] = 0.5 * (tacs["wm"] + tacs["thalamus"])
    return timing, tacs, truth


@pytest.mark.parametrize("model", ["srtm", "SRTM", "mrtm", "logan"])
def test_fit_regions_recovers_bpnd(seed_tacs, model):
    timing, tacs, truth = seed_tacs
    rows = {r["region"]: r for r in fit_regions(model, tacs, "cerebellumgm", timing, t_star_min=20.0)}
    assert "cerebellumgm" not in rows
    tolerance = 0.005  # noise-free: every model within the kinetics acceptance bound
    for region, params in truth.items():
        assert abs(rows[region]["BPND"] - params.bp_nd) <= tolerance, (model, region, rows[region])
        assert abs(rows[region]["DVR"] - (params.bp_nd + 1)) <= tolerance
    assert list(rows["wm"])[:5] == ["region", "BPND", "DVR", "R1", "k2"]
    if canonical_model_name(model) == "Logan":  # k2' from MRTM on the whole-brain TAC, recorded
        assert rows["wm"]["k2prime"] == pytest.approx(0.1, rel=0.02)


def test_suvr_uses_window(seed_tacs):
    timing, tacs, _ = seed_tacs
    rows = {r["region"]: r for r in fit_regions("suvr", tacs, "cerebellumgm", timing, suvr_window_min=(40, 60))}
    late = (timing.start_min >= 40) & (timing.end_min <= 60)
    expected = np.sum(tacs["wm"][late] * timing.duration_min[late]) / np.sum(
        tacs["cerebellumgm"][late] * timing.duration_min[late])
    assert rows["wm"]["SUVR"] == pytest.approx(expected, rel=1e-9)


def test_empty_region_is_flagged_not_fitted(seed_tacs):
    timing, tacs, _ = seed_tacs
    tacs = dict(tacs, lesion=np.full(timing.n_frames, np.nan))
    rows = {r["region"]: r for r in fit_regions("srtm", tacs, "cerebellumgm", timing)}
    assert rows["lesion"]["failed"] is True and np.isnan(rows["lesion"]["BPND"])


def test_bad_model_or_reference(seed_tacs):
    timing, tacs, _ = seed_tacs
    with pytest.raises(InputError, match="--models"):
        fit_regions("pmod", tacs, "cerebellumgm", timing)
    with pytest.raises(InputError, match="reference region 'nowhere'"):
        fit_regions("srtm", tacs, "nowhere", timing)
