"""Fixtures shared by the infrastructure tests (tests/container, tests/slurm, tests/concurrency).

Their helpers live in tests/container/shared_runs.py, loaded once under the module name that
tests/e2e/e2e_support.py uses too, so the e2e tests and these share one reference run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SHARED_RUNS_MODULE = "tspo_bids_shared_runs"


def _shared():
    if SHARED_RUNS_MODULE not in sys.modules:
        path = Path(__file__).parent / "container" / "shared_runs.py"
        spec = importlib.util.spec_from_file_location(SHARED_RUNS_MODULE, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[SHARED_RUNS_MODULE] = module
        spec.loader.exec_module(module)
    return sys.modules[SHARED_RUNS_MODULE]


@pytest.fixture(scope="session")
def shared():
    """tests/container/shared_runs.py (helpers shared with tests/slurm, tests/concurrency and tests/e2e)."""
    return _shared()


@pytest.fixture(scope="session")
def image(shared) -> str:
    """Tag of the image built from the Dockerfile for this session."""
    return shared.build_image()
