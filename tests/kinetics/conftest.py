"""Shared frame schedules, simulated truth and the external validation folder for the kinetics tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tspo_bids.kinetics import FrameTiming
from tspo_bids.kinetics.simulation import SrtmParams

#: ../shared/validation beside the checkout (external known-answer data; never copied into the repo).
VALIDATION_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "validation"


def schedule(durations_s: list[float], first_start_s: float = 0.0, **kwargs: object) -> FrameTiming:
    """Contiguous frames of the given durations (seconds) starting at ``first_start_s``."""
    duration_min = np.asarray(durations_s, dtype=float) / 60.0
    start = first_start_s / 60.0 + np.concatenate(([0.0], np.cumsum(duration_min)[:-1]))
    return FrameTiming(start, start + duration_min, **kwargs)


#: Seed [11C]-(R)-PK11195 protocol, 22 frames, 60 min (methods.md section 6).
SEED_DURATIONS_S = [15] * 4 + [30] * 4 + [60] * 3 + [120] * 2 + [300] * 8 + [600]
#: Karolinska PBR28 protocol, 37 frames, 90 min.
PBR28_DURATIONS_S = [10] * 8 + [20] * 5 + [30] * 4 + [60] * 4 + [180] * 4 + [360] * 12


@pytest.fixture(scope="session")
def seed_timing() -> FrameTiming:
    return schedule(SEED_DURATIONS_S)


@pytest.fixture(scope="session")
def pbr28_timing() -> FrameTiming:
    """The 90-min PBR28 schedule whose first frame starts 29 s after injection."""
    return schedule(PBR28_DURATIONS_S, first_start_s=29.0)


def truth_targets() -> dict[str, SrtmParams]:
    """SRTM targets spanning BPND -0.2..2, R1 0.7..1.1, k2' 0.08..0.15 /min."""
    targets = {}
    for bp_nd in (-0.2, 0.0, 0.2, 0.5, 1.0, 1.5, 2.0):
        for r1, k2_ref in ((0.7, 0.08), (1.1, 0.15), (0.95, 0.11)):
            targets[f"bp{bp_nd}_r{r1}"] = SrtmParams(r1=r1, k2=r1 * k2_ref, bp_nd=bp_nd)
    return targets


def validation_path(*parts: str) -> Path:
    """A file in ../shared/validation, or skip saying why."""
    path = VALIDATION_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"external validation data not found at {path} (the ../shared/validation folder beside the checkout)")
    return path
