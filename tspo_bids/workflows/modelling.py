"""Modelling workflow: regional TACs and reference-tissue model fits."""

from __future__ import annotations

from collections.abc import Sequence

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from tspo_bids.interfaces.kinetics import ExtractTacs, FitRegionalModels


def init_modelling_wf(
    metadata: dict,
    reference_region: str,
    models: Sequence[str],
    t_star_min: float | None,
    suvr_window_min: tuple[float, float] | None,
    name: str = "modelling_wf",
) -> pe.Workflow:
    """Build the regional modelling workflow.

    Parameters
    ----------
    metadata : dict
        PET JSON sidecar (frame timing).
    reference_region : str
        Name of the reference region among the region masks.
    models : sequence of str
        Models to fit (names of ``tspo_bids.pet.models.MODELS``).
    t_star_min : float or None
        Logan t* (minutes); None when no model needs it.
    suvr_window_min : (float, float) or None
        SUVR window (minutes from injection).

    Inputs
    ------
    pet_t1w
        PET in T1w space, decay-corrected to injection.
    mask_files, region_names
        Region masks in T1w space and their names.

    Outputs
    -------
    tacs_file
        Regional TACs (TSV).
    kinpar_files, model_names
        One parameter table per model.
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["pet_t1w", "mask_files", "region_names"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["tacs_file", "kinpar_files", "model_names"]), name="outputnode")
    tacs = pe.Node(ExtractTacs(metadata=metadata), name="regional_tacs", mem_gb=2.0)
    fit = pe.Node(
        FitRegionalModels(metadata=metadata, reference_region=reference_region, models=list(models)),
        name="regional_models",
    )
    if t_star_min is not None:
        fit.inputs.t_star_min = float(t_star_min)
    if suvr_window_min is not None:
        fit.inputs.suvr_window_min = tuple(suvr_window_min)

    workflow.connect([
        (inputnode, tacs, [("pet_t1w", "pet_file"), ("mask_files", "mask_files"),
                           ("region_names", "region_names")]),
        (tacs, fit, [("tacs_file", "tacs_file")]),
        (tacs, outputnode, [("tacs_file", "tacs_file")]),
        (fit, outputnode, [("kinpar_files", "kinpar_files"), ("model_names", "model_names")]),
    ])
    return workflow
