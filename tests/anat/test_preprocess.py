"""T1w N4, template brain mask, segmentation and label warping against known truth.

The synthetic T1w (``synthetic_t1w.make_t1w``) is built from the template tissue maps
moved by a known rigid matrix, with a known bias field and noise: true WM, GM, brain
mask and atlas labels are the template's, moved the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthetic_t1w import make_t1w
from tspo_bids.anat import preprocess as P
from tspo_bids.anat.template import atlas_group_mask, load_template
from tspo_bids.registration.transforms import resample_to

#: Acceptance (issue 3): WM Dice against the true WM (p >= 0.5).
MIN_WM_DICE = 0.85


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b)))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    truth = make_t1w(voxel_mm=2.0)
    corrected = P.n4_bias_correct(truth.t1w)
    out_dir = tmp_path_factory.mktemp("xfm")
    mask, transforms = P.brain_mask_from_template(corrected, out_dir=out_dir)
    return truth, corrected, mask, transforms, out_dir


def test_n4_removes_the_bias_field(case):
    truth, corrected, *_ = case
    pure_wm = (truth.wm_true.get_fdata() > 0.97) & (truth.brain_true.get_fdata() > 0)
    before = truth.t1w.get_fdata()[pure_wm]
    after = corrected.get_fdata()[pure_wm]
    cv_before, cv_after = before.std() / before.mean(), after.std() / after.mean()
    assert cv_before > 0.1  # the bias dominates the noise in pure WM
    assert cv_after < 0.5 * cv_before, (cv_before, cv_after)


def test_brain_mask_matches_truth(case):
    truth, _, mask, transforms, out_dir = case
    assert dice(mask.get_fdata() > 0, truth.brain_true.get_fdata() > 0) > 0.95
    for path in transforms.template_to_t1w + transforms.t1w_to_template:
        assert Path(path).parent == out_dir and Path(path).is_file()


@pytest.mark.parametrize("with_priors", [False, True], ids=["kmeans", "priors"])
def test_segmentation_wm_dice(case, with_priors):
    truth, corrected, mask, transforms, _ = case
    priors = P.template_priors(corrected, transforms) if with_priors else None
    seg = P.segment_tissues(corrected, mask, priors=priors)
    wm_true = truth.wm_true.get_fdata() >= 0.5
    gm_true = truth.gm_true.get_fdata() >= 0.5
    dseg = np.asarray(seg["dseg"].dataobj)
    assert set(np.unique(dseg)) == {0, 1, 2, 3}
    assert dice(dseg == 3, wm_true) >= MIN_WM_DICE
    assert dice(seg["wm"].get_fdata() >= 0.5, wm_true) >= MIN_WM_DICE
    assert dice(dseg == 2, gm_true) >= 0.75
    total = sum(seg[k].get_fdata() for k in ("csf", "gm", "wm"))
    inside = mask.get_fdata() > 0
    np.testing.assert_allclose(total[inside], 1.0, atol=1e-3)
    assert np.all(total[~inside] == 0)


def test_atlas_labels_follow_the_anatomy(case):
    truth, corrected, _, transforms, _ = case
    template = load_template(2)
    labels = np.asarray(P.warp_labels_to_t1w(template.atlas, corrected, transforms).dataobj)
    assert labels.dtype == np.int16
    assert set(np.unique(labels)) <= set(np.unique(np.asarray(template.atlas.dataobj)))
    true_labels = np.asarray(resample_to(template.atlas, truth.t1w, truth.motion, order=0).dataobj)
    for group, minimum in (("cerebellum", 0.9), ("thalamus", 0.85), ("deepgm", 0.8)):
        got = dice(atlas_group_mask(labels, group), atlas_group_mask(true_labels, group))
        assert got >= minimum, (group, got)


def test_empty_mask_refused(case):
    truth, corrected, mask, *_ = case
    empty = mask.__class__(np.zeros(mask.shape, np.uint8), mask.affine)
    with pytest.raises(ValueError, match="empty"):
        P.segment_tissues(corrected, empty)
