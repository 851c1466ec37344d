"""Parametric-maps workflow: voxelwise models on the native PET grid, then resampled to T1w."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from tspo_bids.interfaces.kinetics import ComputeParametricMaps
from tspo_bids.interfaces.pet import ResampleToReference


def init_parametric_maps_wf(
    metadata: dict,
    reference_region: str,
    t_star_min: float | None,
    suvr_window_min: tuple[float, float] | None,
    name: str = "maps_wf",
) -> pe.Workflow:
    """Build the voxelwise parametric-maps workflow.

    Parameters
    ----------
    metadata : dict
        PET JSON sidecar (frame timing).
    reference_region : str
        Column of the reference TAC in the regional TACs.
    t_star_min, suvr_window_min
        Logan t* and SUVR window (minutes); None skips that map.

    Inputs
    ------
    pet_mc, pet_ref
        Decay- and motion-corrected PET series and its reference image (native grid).
    tacs_file
        Regional TACs (the reference TAC drives every voxel fit).
    brain_mask, t1w_preproc
        T1w brain mask and T1w (the T1w grid).
    pet_to_t1w_matrix
        JSON world matrix, T1w point -> PET point.

    Outputs
    -------
    map_files, map_files_t1w
        One map per (model, meas): on the PET grid and resampled (trilinear) to T1w.
    models, measures
        The ``model-``/``meas-`` labels of each map.
    k2prime
        Data-derived k2' (1/min) used by SRTM2 and Logan.
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["pet_mc", "pet_ref", "tacs_file", "brain_mask", "t1w_preproc",
                                                  "pet_to_t1w_matrix"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["map_files", "map_files_t1w", "models", "measures", "k2prime",
                                                   "brain_mask_pet"]), name="outputnode")
    mask_to_pet = pe.Node(ResampleToReference(invert=True, order=1, threshold=0.5), name="brain_mask_to_pet")
    maps = pe.Node(ComputeParametricMaps(metadata=metadata, reference_region=reference_region),
                   name="parametric_maps", mem_gb=3.0)
    if t_star_min is not None:
        maps.inputs.t_star_min = float(t_star_min)
    if suvr_window_min is not None:
        maps.inputs.suvr_window_min = tuple(suvr_window_min)
    to_t1w = pe.MapNode(ResampleToReference(order=1), iterfield=["in_file"], name="maps_to_t1w")

    workflow.connect([
        (inputnode, mask_to_pet, [("brain_mask", "in_file"), ("pet_ref", "reference_file"),
                                  ("pet_to_t1w_matrix", "matrix_file")]),
        (inputnode, maps, [("pet_mc", "pet_file"), ("tacs_file", "tacs_file")]),
        (mask_to_pet, maps, [("out_file", "brain_mask")]),
        (maps, to_t1w, [("map_files", "in_file")]),
        (inputnode, to_t1w, [("t1w_preproc", "reference_file"), ("pet_to_t1w_matrix", "matrix_file")]),
        (maps, outputnode, [("map_files", "map_files"), ("models", "models"), ("measures", "measures"),
                            ("k2prime", "k2prime")]),
        (to_t1w, outputnode, [("out_file", "map_files_t1w")]),
        (mask_to_pet, outputnode, [("out_file", "brain_mask_pet")]),
    ])
    return workflow
