"""SVCA workflow: this session's kinetic class curves and, with ``--ref-region svca``, the SVCA reference."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from tspo_bids.interfaces.svca import SvcaClassCurves, SvcaReference


def has_svca_class_frames(metadata: dict) -> bool:
    """Whether the frame schedule can give this session's SVCA class curves (a frame ending by 1.5 min,
    for the blood class). Without one, the participant level writes no class curves and says why."""
    from tspo_bids.kinetics import FrameTiming
    from tspo_bids.pet.svca import blood_window_frames

    return bool(blood_window_frames(FrameTiming.from_bids(metadata).end_min).any())


def init_svca_wf(metadata: dict, classes_file: Path | None, name: str = "svca_wf") -> pe.Workflow:
    """Build the SVCA workflow (methods: README "SVCA reference region").

    Parameters
    ----------
    metadata : dict
        PET JSON sidecar (frame timing).
    classes_file : Path or None
        Class table (TSV) of the healthy controls; None computes only this session's class curves
        (what the group level averages over the controls).

    Inputs
    ------
    pet_t1w
        PET in T1w space, decay-corrected to injection (kBq/mL).
    brain_mask, gm_prob, wm_prob, atlas_labels
        T1w brain mask, tissue probabilities and AAL labels.
    gm_class_mask
        Where the GM class is taken from: the reference tissue assumed non-binding (cerebellar GM).
    mask_files, region_names
        Region masks (T1w) and names.

    Outputs
    -------
    class_table
        This session's class curves (TSV; only when a frame ends by 1.5 min, :func:`has_svca_class_frames`).
    gm_fraction, reference_mask
        Kinetic GM fraction map and SVCA reference mask (T1w; only with ``classes_file``).
    mask_files, region_names
        The regions with the ``svca`` mask appended (only with ``classes_file``).
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["pet_t1w", "brain_mask", "gm_prob", "wm_prob", "atlas_labels",
                                                  "gm_class_mask", "mask_files", "region_names"]),
                        name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["class_table", "gm_fraction", "reference_mask", "mask_files",
                                                   "region_names"]), name="outputnode")
    if has_svca_class_frames(metadata):
        curves = pe.Node(SvcaClassCurves(metadata=metadata), name="svca_class_curves", mem_gb=2.0)
        workflow.connect([
            (inputnode, curves, [("pet_t1w", "pet_file"), ("brain_mask", "brain_mask"), ("gm_prob", "gm_prob"),
                                 ("wm_prob", "wm_prob"), ("gm_class_mask", "gm_class_mask"),
                                 ("atlas_labels", "atlas_labels")]),
            (curves, outputnode, [("out_file", "class_table")]),
        ])
    else:
        workflow.add_nodes([inputnode, outputnode])
    if classes_file is not None:
        reference = pe.Node(SvcaReference(metadata=metadata, classes_file=str(classes_file)),
                            name="svca_reference", mem_gb=2.0)
        workflow.connect([
            (inputnode, reference, [("pet_t1w", "pet_file"), ("brain_mask", "brain_mask"), ("gm_prob", "gm_prob"),
                                    ("mask_files", "mask_files"), ("region_names", "region_names")]),
            (reference, outputnode, [("gm_fraction", "gm_fraction"), ("reference_mask", "reference_mask"),
                                     ("mask_files", "mask_files"), ("region_names", "region_names")]),
        ])
    return workflow
