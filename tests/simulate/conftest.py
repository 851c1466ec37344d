"""Shared fixtures: coarse phantom settings and one coarse dataset for the whole area (a few seconds)."""

from __future__ import annotations

import pytest

from tspo_bids.simulate import PhantomOptions, make_dataset


@pytest.fixture(scope="session")
def coarse_options() -> PhantomOptions:
    """Fast settings: 2 mm template, 2.5 mm T1w, 4 mm PET."""
    return PhantomOptions(template_resolution_mm=2, t1w_voxel_mm=(2.5,), flair_voxel_mm=((2.5, 2.5, 3.0),),
                          pet_voxel_mm=(4.0,))


@pytest.fixture(scope="session")
def coarse_dataset(tmp_path_factory, coarse_options):
    """2 participants (RRMS with two sessions, HC with one): covers the three decay modes."""
    root = tmp_path_factory.mktemp("phantom") / "bids"
    participants = make_dataset(root, 2, "pk11195", seed=3, groups=("RRMS", "HC"), options=coarse_options)
    return root, participants
