"""Top-level participant workflow: one sub-workflow per PET run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nipype.pipeline import engine as pe

from tspo_bids.workflows.participant import init_participant_wf


def init_tspo_wf(runs: Sequence[Any], settings: Any, name: str = "tspo_bids_wf") -> pe.Workflow:
    """Build the participant-level workflow for every selected PET run.

    Parameters
    ----------
    runs : sequence of tspo_bids.bids.discovery.PetRun
        PET runs found by discovery.
    settings : tspo_bids.config.Settings
        Parsed options.
    name : str
        Workflow name; each run's sub-workflow (and so its work directory) is named
        after the run, so concurrent participant jobs never share a work folder.
    """
    workflow = pe.Workflow(name=name)
    workflow.add_nodes([init_participant_wf(run, settings) for run in runs])
    return workflow
