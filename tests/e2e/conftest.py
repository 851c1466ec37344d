"""Fixtures of the end-to-end tests (the shared pieces live in e2e_support.py)."""

from __future__ import annotations

import pytest
from e2e_support import shared_runs


@pytest.fixture(scope="session")
def e2e_run():
    """(output_dir, work_dir) of the participant + group run on data/test_bids, made once."""
    out = shared_runs().reference_run()
    return out, out.parent / "work"
