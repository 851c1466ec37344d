"""The whole image-processing chain on a small digital-phantom participant.

Uses the same evaluation as ``benchmarks/bench_registration.py`` (loaded from the
checkout, one source of the measuring code) on a coarse phantom: 2 mm T1w, 4 mm PET,
non-linear anatomy, bias field, rigid PET and FLAIR misalignment, PSF and noise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tspo_bids.simulate import PhantomOptions, make_dataset

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_registration.py"


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("bench_registration", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    root = tmp_path_factory.mktemp("phantom") / "bids"
    options = PhantomOptions(template_resolution_mm=2, t1w_voxel_mm=(2.0,), pet_voxel_mm=(4.0,))
    make_dataset(root, 1, "pk11195", seed=5, sessions=(), groups=("RRMS",), options=options)
    return bench.run_phantom_participant(root, log=lambda *_: None)


def test_pet_and_flair_to_t1w_displacement(figures):
    assert figures["pet_to_t1w_error_mm"] < 1.5  # issue 3 acceptance
    assert figures["flair_to_t1w_error_mm"] < 1.5


def test_wm_dice_and_brain_mask(figures):
    assert figures["wm_dice_priors"] >= 0.85  # issue 3 acceptance
    assert figures["wm_dice_kmeans"] >= 0.85
    assert figures["brain_mask_dice"] >= 0.95


def test_atlas_labels_and_motion(figures):
    assert figures["cerebellum_label_dice"] >= 0.85
    # the phantom PET has no head motion: the correction must be a near no-op
    assert figures["max_frame_displacement_mm"] < 0.3
