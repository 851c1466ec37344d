"""PET workflow: decay correction, frame-wise motion correction, rigid co-registration to T1w."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from tspo_bids.interfaces.pet import DecayCorrect, MotionCorrect, ResampleToReference, RigidCoregister


def init_pet_wf(metadata: dict, omp_nthreads: int = 1, name: str = "pet_wf") -> pe.Workflow:
    """Build the PET preprocessing workflow.

    Parameters
    ----------
    metadata : dict
        The PET JSON sidecar (frame timing and decay fields).
    omp_nthreads : int
        Threads for ANTs.
    name : str
        Workflow name.

    Inputs
    ------
    pet_file
        Raw 4D PET series.
    t1w_preproc, brain_mask
        Bias-corrected T1w and its brain mask (the registration target).

    Outputs
    -------
    pet_mc
        Decay- and motion-corrected PET series, native PET space (kBq/mL).
    pet_t1w
        Motion-corrected PET, decay-corrected to injection, resampled to T1w (kBq/mL).
    pet_ref
        PET reference image (native space).
    pet_to_t1w_xfm, pet_to_t1w_matrix
        Rigid transform (ITK text file; JSON world matrix T1w point -> PET point).
    motion_file
        Per-frame displacement table (TSV).
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["pet_file", "t1w_preproc", "brain_mask"]), name="inputnode")
    outputnode = pe.Node(
        IdentityInterface(fields=["pet_t1w", "pet_mc", "pet_ref", "pet_to_t1w_xfm", "pet_to_t1w_matrix", "motion_file"]),
        name="outputnode",
    )
    decay = pe.Node(DecayCorrect(metadata=metadata), name="decay_correct")
    motion = pe.Node(MotionCorrect(metadata=metadata, num_threads=omp_nthreads), name="motion_correct",
                     n_procs=omp_nthreads)
    coreg = pe.Node(RigidCoregister(num_threads=omp_nthreads), name="pet_to_t1w", n_procs=omp_nthreads)
    resample = pe.Node(ResampleToReference(), name="pet_resample_t1w", mem_gb=2.0)

    workflow.connect([
        (inputnode, decay, [("pet_file", "pet_file")]),
        (decay, motion, [("out_file", "in_file")]),
        (motion, coreg, [("ref_file", "moving_file")]),
        (inputnode, coreg, [("t1w_preproc", "fixed_file"), ("brain_mask", "fixed_mask")]),
        (motion, resample, [("out_file", "in_file")]),
        (inputnode, resample, [("t1w_preproc", "reference_file")]),
        (coreg, resample, [("matrix_file", "matrix_file")]),
        (resample, outputnode, [("out_file", "pet_t1w")]),
        (motion, outputnode, [("out_file", "pet_mc"), ("ref_file", "pet_ref"), ("confounds_file", "motion_file")]),
        (coreg, outputnode, [("itk_file", "pet_to_t1w_xfm"), ("matrix_file", "pet_to_t1w_matrix")]),
    ])
    return workflow
