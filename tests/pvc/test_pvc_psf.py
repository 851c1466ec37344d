"""PSF option validation and the Gaussian blur against closed forms."""

import math

import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.pvc.psf import FWHM_PER_SIGMA, fwhm_to_sigma_vox, gaussian_psf_blur, validate_psf


@pytest.mark.parametrize(
    ("given", "expected"),
    [(5, (5.0, 5.0, 5.0)), ("4.5", (4.5, 4.5, 4.5)), ([4, 5, 6], (4.0, 5.0, 6.0)),
     ("4 5 6", (4.0, 5.0, 6.0)), ("4,5,6", (4.0, 5.0, 6.0)), ([20.0], (20.0, 20.0, 20.0))],
)
def test_validate_psf_accepts_one_or_three_values(given, expected):
    assert validate_psf(given) == expected


@pytest.mark.parametrize(
    ("given", "problem"),
    [(0, "> 0"), (-1.0, "> 0"), (20.5, "<= 20"), ([5, 5, 0], "> 0"), ([5, 5, 25], "<= 20"),
     (float("nan"), "> 0"), ([5, 5], "one FWHM or three"), ([5, 5, 5, 5], "one FWHM or three"),
     ([], "one FWHM or three"), ("", "one FWHM or three"), ("five", "not a number"), (True, "not a FWHM")],
)
def test_validate_psf_rejects_with_one_line_naming_the_option(given, problem):
    with pytest.raises(InputError) as caught:
        validate_psf(given)
    message = str(caught.value)
    assert message.startswith("--pvc-psf") and problem in message and "\n" not in message


def test_fwhm_to_sigma_vox_closed_form():
    assert FWHM_PER_SIGMA == pytest.approx(2.3548200450309493, rel=1e-15)
    sigma = fwhm_to_sigma_vox([4.0, 5.0, 6.0], [2.0, 1.0, 3.0])
    np.testing.assert_allclose(sigma, [2.0 / FWHM_PER_SIGMA, 5.0 / FWHM_PER_SIGMA, 2.0 / FWHM_PER_SIGMA], rtol=1e-15)
    assert fwhm_to_sigma_vox(5.0, 2.0) == pytest.approx((5.0 / 2.0 / FWHM_PER_SIGMA,) * 3)
    with pytest.raises(ValueError):
        fwhm_to_sigma_vox(5.0, [1.0, 0.0, 1.0])


def test_blur_of_a_point_has_the_requested_fwhm_and_unit_mass():
    volume = np.zeros((41, 41, 41))
    volume[20, 20, 20] = 1.0
    fwhm_mm, voxel_mm = (6.0, 4.0, 8.0), (1.0, 1.0, 2.0)
    blurred = gaussian_psf_blur(volume, fwhm_mm, voxel_mm)
    assert blurred.sum() == pytest.approx(1.0, rel=1e-9)
    offsets = np.arange(41) - 20
    for axis, (fwhm, voxel) in enumerate(zip(fwhm_mm, voxel_mm)):
        profile = blurred.sum(axis=tuple(a for a in range(3) if a != axis))
        variance_mm2 = float((profile * (offsets * voxel) ** 2).sum())
        # second moment of the sampled Gaussian equals sigma^2 to within truncation/sampling error
        assert math.sqrt(variance_mm2) * FWHM_PER_SIGMA == pytest.approx(fwhm, rel=0.01)


def test_blur_4d_blurs_frames_independently_and_keeps_float32():
    rng = np.random.default_rng(3)
    series = rng.random((12, 10, 8, 3)).astype(np.float32)
    blurred = gaussian_psf_blur(series, 5.0, 2.0)
    assert blurred.dtype == np.float32 and blurred.shape == series.shape
    for frame in range(3):
        np.testing.assert_allclose(blurred[..., frame], gaussian_psf_blur(series[..., frame].astype(float), 5.0, 2.0),
                                   rtol=1e-5, atol=1e-6)
    # zero outside the field of view: mass leaks out at the edges
    assert blurred.sum() < series.sum()
