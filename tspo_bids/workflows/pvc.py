"""Partial-volume correction workflow: compartment GTM TACs and models, optional RBV maps."""

from __future__ import annotations

from collections.abc import Sequence

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from tspo_bids.interfaces.kinetics import ComputeParametricMaps, FitRegionalModels
from tspo_bids.interfaces.pvc import PartialVolumeCorrect


def init_pvc_wf(
    metadata: dict,
    method: str,
    fwhm_mm: tuple[float, float, float],
    reference_region: str,
    models: Sequence[str],
    t_star_min: float | None,
    suvr_window_min: tuple[float, float] | None,
    name: str = "pvc_wf",
) -> pe.Workflow:
    """Build the partial-volume correction workflow.

    Parameters
    ----------
    metadata : dict
        PET JSON sidecar.
    method : {"gtm", "rbv"}
        GTM: corrected regional TACs and models; RBV: also corrected images and parametric maps.
    fwhm_mm : (float, float, float)
        PET point-spread function FWHM (mm).
    reference_region, models, t_star_min, suvr_window_min
        As the uncorrected modelling workflow.

    Inputs
    ------
    pet_t1w, pet_ref, pet_to_t1w_matrix
        PET in T1w space, an image on the PET grid, the rigid matrix (T1w point -> PET point).
    gm_prob, wm_prob, csf_prob, brain_mask, atlas_labels
        T1w-space tissue fractions, brain mask and atlas labels.
    lesion_labels
        T1w-space lesion labels (0 background, 1..N): each lesion's core and 2 mm rim become
        compartments of their own (lesion phenotypes need them corrected).
    mask_files, region_names
        The regions.

    Outputs
    -------
    tacs_file, report_file, kinpar_files, model_names
        GTM-corrected TACs, the correction report, one model table per model.
    map_files, models, measures
        RBV parametric maps on the T1w grid (``method="rbv"`` only).
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=[
        "pet_t1w", "pet_ref", "pet_to_t1w_matrix", "gm_prob", "wm_prob", "csf_prob", "brain_mask",
        "atlas_labels", "lesion_labels", "mask_files", "region_names"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=[
        "tacs_file", "report_file", "kinpar_files", "model_names", "map_files", "models", "measures"]),
        name="outputnode")
    correct = pe.Node(PartialVolumeCorrect(metadata=metadata, method=method, fwhm_mm=tuple(fwhm_mm)),
                      name="partial_volume_correct", mem_gb=5.0)  # benchmarks/pvc_lesion_memory.py
    fit = pe.Node(FitRegionalModels(metadata=metadata, reference_region=reference_region, models=list(models)),
                  name="pvc_regional_models")
    if t_star_min is not None:
        fit.inputs.t_star_min = float(t_star_min)
    if suvr_window_min is not None:
        fit.inputs.suvr_window_min = tuple(suvr_window_min)
    workflow.connect([
        (inputnode, correct, [("pet_t1w", "pet_t1w"), ("pet_ref", "pet_ref"), ("pet_to_t1w_matrix", "matrix_file"),
                              ("gm_prob", "gm_prob"), ("wm_prob", "wm_prob"), ("csf_prob", "csf_prob"),
                              ("brain_mask", "brain_mask"), ("atlas_labels", "atlas_labels"),
                              ("lesion_labels", "lesion_labels"), ("mask_files", "mask_files"),
                              ("region_names", "region_names")]),
        (correct, fit, [("tacs_file", "tacs_file")]),
        (correct, outputnode, [("tacs_file", "tacs_file"), ("report_file", "report_file")]),
        (fit, outputnode, [("kinpar_files", "kinpar_files"), ("model_names", "model_names")]),
    ])
    if method == "rbv":
        maps = pe.Node(ComputeParametricMaps(metadata=metadata, reference_region=reference_region),
                       name="rbv_parametric_maps", mem_gb=4.0)
        if t_star_min is not None:
            maps.inputs.t_star_min = float(t_star_min)
        if suvr_window_min is not None:
            maps.inputs.suvr_window_min = tuple(suvr_window_min)
        workflow.connect([
            (correct, maps, [("rbv_file", "pet_file"), ("tacs_file", "tacs_file")]),
            (inputnode, maps, [("brain_mask", "brain_mask")]),
            (maps, outputnode, [("map_files", "map_files"), ("models", "models"), ("measures", "measures")]),
        ])
    return workflow
