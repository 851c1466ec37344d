"""Frame timing, decay correction and weights against closed-form values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.integrate import quad

from tspo_bids.errors import InputError
from tspo_bids.kinetics import HALF_LIFE_MIN, FrameTiming, bids_timing_problems, frame_weights, normalise_radionuclide

from .conftest import validation_path

GOOD_SIDECAR = {
    "FrameTimesStart": [10, 20, 40, 100],
    "FrameDuration": [10, 20, 60, 120],
    "InjectionStart": 10,
    "ImageDecayCorrected": True,
    "ImageDecayCorrectionTime": 70,
    "TracerRadionuclide": "[11C]",
}


@pytest.mark.parametrize("spelling", ["C11", "11C", "[11C]", "C-11", "c11", "11-C", " C 11 "])
def test_radionuclide_spellings_share_one_key(spelling: str) -> None:
    assert normalise_radionuclide(spelling) == "C11"
    assert HALF_LIFE_MIN[spelling] == 20.334
    assert spelling in HALF_LIFE_MIN


def test_fluorine_and_unknown_radionuclides() -> None:
    assert HALF_LIFE_MIN["18F"] == HALF_LIFE_MIN["F-18"] == 109.77
    with pytest.raises(InputError, match="Xx99"):
        normalise_radionuclide("Xx99")
    assert "Xx99" not in HALF_LIFE_MIN


def test_from_bids_converts_seconds_to_minutes_from_injection() -> None:
    timing = FrameTiming.from_bids(GOOD_SIDECAR, n_volumes=4)
    np.testing.assert_allclose(timing.start_min, [0, 10 / 60, 30 / 60, 90 / 60])
    np.testing.assert_allclose(timing.end_min, [10 / 60, 30 / 60, 90 / 60, 210 / 60])
    np.testing.assert_allclose(timing.mid_min, (timing.start_min + timing.end_min) / 2)
    np.testing.assert_allclose(timing.duration_min, [10 / 60, 20 / 60, 1, 2])
    assert timing.n_frames == 4 and timing.radionuclide == "C11"
    assert timing.decay_correction_time_min == pytest.approx(1.0)
    assert timing.decay_constant_per_min == pytest.approx(math.log(2) / 20.334)
    with pytest.raises(ValueError):
        timing.start_min[0] = 5.0  # read-only
    with pytest.raises(AttributeError):
        timing.radionuclide = "F18"  # type: ignore[misc]


def test_every_sidecar_problem_is_reported_together() -> None:
    sidecar = {
        "FrameTimesStart": [0, 10, 20, 25, 40],
        "FrameDuration": [10, 0, 10, 5],
        "ImageDecayCorrected": "yes",
        "TracerRadionuclide": "Xx99",
    }
    problems = bids_timing_problems(sidecar, n_volumes=6)
    assert "FrameTimesStart has 5 values but FrameDuration has 4" in problems
    assert "FrameTimesStart has 5 values but the image has 6 volumes" in problems
    assert "InjectionStart missing" in problems
    assert any("ImageDecayCorrected must be true or false" in p for p in problems)
    assert "unknown TracerRadionuclide 'Xx99'" in problems

    durations = {**GOOD_SIDECAR, "FrameTimesStart": [0, 10, 20, 25], "FrameDuration": [10, 0, 10, 5]}
    problems = bids_timing_problems(durations, n_volumes=4)
    assert "frame 2 has zero duration" in problems
    assert "frames 3 and 4 overlap" in problems
    assert bids_timing_problems({"FrameTimesStart": [0]}) == [
        "FrameDuration missing",
        "InjectionStart missing",
        "ImageDecayCorrected missing",
        "TracerRadionuclide missing",
    ]
    assert bids_timing_problems(GOOD_SIDECAR, 4) == []


def test_schedule_problems_known_from_the_sidecar_alone() -> None:
    """Frames before injection, and a schedule in milliseconds, are said at discovery, not by a model later."""
    early = {**GOOD_SIDECAR, "InjectionStart": 25}
    assert bids_timing_problems(early, 4) == [
        "frame 1 starts 15 s before InjectionStart; the models start at injection: drop the pre-injection frames "
        "from the image and the sidecar"]
    milliseconds = {**GOOD_SIDECAR, "FrameTimesStart": [10_000, 20_000, 40_000, 100_000],
                    "FrameDuration": [10_000, 20_000, 60_000, 3_500_000], "InjectionStart": 10_000}
    (problem,) = bids_timing_problems(milliseconds, 4)
    # 3590 s * 1000 = 997 h, beyond 20 half-lives of C-11 (6.8 h)
    assert problem.startswith("the last frame ends 997 h after injection, more than 20 half-lives")
    # the same 6.8 h is a plausible F-18 schedule (20 half-lives: 36.6 h)
    late_f18 = {**GOOD_SIDECAR, "FrameTimesStart": [10, 20, 40, 100], "FrameDuration": [10, 20, 60, 25_000],
                "TracerRadionuclide": "F18"}
    assert bids_timing_problems(late_f18, 4) == []
    assert any("more than 20 half-lives" in p for p in bids_timing_problems({**late_f18, "TracerRadionuclide": "C11"}, 4))


def test_from_bids_raises_one_line_naming_the_source() -> None:
    bad = {**GOOD_SIDECAR, "FrameDuration": [10, 20, 60]}
    with pytest.raises(InputError, match=r"^sub-01_pet.json: FrameTimesStart has 4 values but FrameDuration has 3"):
        FrameTiming.from_bids(bad, source="sub-01_pet.json")
    with pytest.raises(InputError, match="image has 5 volumes"):
        FrameTiming.from_bids(GOOD_SIDECAR, n_volumes=5)


def test_decay_correction_factor_matches_numerical_integral() -> None:
    timing = FrameTiming([0.0, 5.0, 30.0], [0.25, 15.0, 90.0], radionuclide="C11")
    lam = timing.decay_constant_per_min
    for i, (start, end) in enumerate(zip(timing.start_min, timing.end_min, strict=True)):
        mean_surviving = quad(lambda t: math.exp(-lam * t), start, end)[0] / (end - start)
        assert timing.decay_correction_factors()[i] == pytest.approx(1 / mean_surviving, rel=1e-12)


def test_to_injection_decay_corrected_handles_every_sidecar_state() -> None:
    true = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    start, end = [0.0, 5.0, 30.0], [5.0, 30.0, 90.0]
    corrected = FrameTiming(start, end)
    np.testing.assert_allclose(corrected.to_injection_decay_corrected(true), true, rtol=1e-15)
    uncorrected = FrameTiming(start, end, decay_corrected=False)
    stored = true / uncorrected.decay_correction_factors()[:, None]
    np.testing.assert_allclose(uncorrected.to_injection_decay_corrected(stored), true, rtol=1e-13)
    later = FrameTiming(start, end, radionuclide="F18", decay_correction_time_min=12.0)
    stored_later = true * math.exp(-later.decay_constant_per_min * 12.0)
    np.testing.assert_allclose(later.to_injection_decay_corrected(stored_later), true, rtol=1e-13)
    np.testing.assert_allclose(
        later.to_injection_decay_corrected(stored_later.T, axis=1), true.T, rtol=1e-13
    )
    with pytest.raises(InputError, match="3 frames"):
        corrected.to_injection_decay_corrected(np.ones(4))


def test_half_life_override_is_used() -> None:
    timing = FrameTiming([0.0], [10.0], half_life_min=20.4)
    assert timing.half_life_min == 20.4
    assert timing.decay_constant_per_min == pytest.approx(math.log(2) / 20.4)


def test_frame_weights_are_poisson_weights() -> None:
    timing = FrameTiming([0.0, 1.0, 5.0, 20.0], [1.0, 5.0, 20.0, 60.0])
    tac = np.array([0.001, 10.0, 8.0, 4.0])
    expected = timing.duration_min / (np.maximum(tac, 0.1) * timing.decay_correction_factors())
    np.testing.assert_allclose(frame_weights(timing, tac), expected / expected.max(), rtol=1e-14)
    assert frame_weights(timing, tac).max() == 1.0
    np.testing.assert_allclose(frame_weights(timing, np.zeros(4)), timing.duration_min / 40.0)
    with pytest.raises(InputError, match="NaN"):
        frame_weights(timing, [1.0, np.nan, 1.0, 1.0])


def test_invalid_frames_raise_input_error() -> None:
    with pytest.raises(InputError, match="frame 2 has negative duration"):
        FrameTiming([0.0, 2.0], [1.0, 1.5])
    with pytest.raises(InputError, match="frames 1 and 2 overlap"):
        FrameTiming([0.0, 0.5], [1.0, 1.5])
    with pytest.raises(InputError, match="unknown TracerRadionuclide"):
        FrameTiming([0.0], [1.0], radionuclide="Q7")


@pytest.mark.validation
def test_bids_examples_sidecars() -> None:
    """pet002/pet005 are consistent; pet003's FrameDuration lists the next start, so its frames overlap."""
    fine = validation_path("bids-examples", "pet002", "sub-01", "ses-baseline", "pet", "sub-01_ses-baseline_pet.json")
    sidecar = json.loads(fine.read_text())
    assert bids_timing_problems(sidecar, n_volumes=len(sidecar["FrameTimesStart"])) == []
    timing = FrameTiming.from_bids(sidecar)
    assert timing.end_min[-1] == pytest.approx((2916 + 300) / 60)
    bad = json.loads(validation_path("bids-examples", "pet003", "sub-01", "ses-01", "pet", "sub-01_ses-01_pet.json").read_text())
    problems = bids_timing_problems(bad)
    assert "frames 2 and 3 overlap" in problems
    with pytest.raises(InputError, match="overlap"):
        FrameTiming.from_bids(bad, source="pet003")
