"""Fixtures of the partial-volume-correction tests."""

import pytest
from pvc_phantom import Phantom, make_phantom


@pytest.fixture(scope="session")
def phantom() -> Phantom:
    """The 48^3, 2 mm phantom blurred with a 5 mm FWHM PSF."""
    return make_phantom()
