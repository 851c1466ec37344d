"""SUVR over a time window: closed-form values and window errors."""

from __future__ import annotations

import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.kinetics import suvr

START = np.array([0.0, 10.0, 20.0, 40.0, 50.0])
END = np.array([10.0, 20.0, 40.0, 50.0, 60.0])


def test_suvr_is_ratio_of_window_integrals() -> None:
    reference = np.array([1.0, 2.0, 2.0, 1.0, 0.5])
    target = np.array([1.0, 3.0, 4.0, 3.0, 2.0])
    assert suvr(target, reference, START, END, (40.0, 60.0)) == pytest.approx((3 + 2) / (1 + 0.5))
    # a frame straddling the window edge counts by its overlap: 30-50 min = 10 min of frame 3 + frame 4
    assert suvr(target, reference, START, END, (30.0, 50.0)) == pytest.approx((4 * 10 + 3 * 10) / (2 * 10 + 1 * 10))
    both = suvr(np.column_stack((target, 2 * target)), reference, START, END, (40.0, 60.0))
    np.testing.assert_allclose(both, [5 / 1.5, 10 / 1.5])


def test_bad_windows_raise() -> None:
    tac = np.ones(5)
    with pytest.raises(InputError, match="not covered by the scan"):
        suvr(tac, tac, START, END, (60.0, 90.0))
    with pytest.raises(InputError, match="start < end"):
        suvr(tac, tac, START, END, (50.0, 40.0))
    with pytest.raises(InputError, match="not positive"):
        suvr(tac, np.zeros(5), START, END, (40.0, 60.0))
    with pytest.raises(InputError, match="window must be"):
        suvr(tac, tac, START, END, "late")  # type: ignore[arg-type]
