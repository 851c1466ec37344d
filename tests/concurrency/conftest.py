"""Fixtures shared with tests/container (helpers in tests/container/shared_runs.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _shared():
    name = "tspo_bids_infra_shared"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "container" / "shared_runs.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_shared()  # loaded now: test modules read constants from it at import


@pytest.fixture(scope="session")
def shared():
    """tests/container/shared_runs.py (helpers shared with tests/slurm and tests/concurrency)."""
    return _shared()


@pytest.fixture(scope="session")
def image(shared) -> str:
    """Tag of the image built from the Dockerfile for this session."""
    return shared.build_image()
