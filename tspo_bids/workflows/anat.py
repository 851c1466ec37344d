"""Anatomical workflow: T1w N4 and brain mask, tissues, atlas labels, regions, FLAIR to T1w."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from tspo_bids.interfaces.anat import DefineRegions, PreprocessT1w, SegmentTissues, TemplateLabelsToT1w
from tspo_bids.interfaces.lesions import FillLesions, LesionMask
from tspo_bids.interfaces.pet import ResampleToReference, RigidCoregister
from tspo_bids.registration.transforms import DEFAULT_RANDOM_SEED


def init_anat_wf(
    has_flair: bool,
    lesion_mask: str | None = None,
    lesion_mask_space: str = "T1w",
    lesion_min_volume_mm3: float = 27.0,
    omp_nthreads: int = 1,
    random_seed: int = DEFAULT_RANDOM_SEED,
    name: str = "anat_wf",
) -> pe.Workflow:
    """Build the anatomical workflow.

    Parameters
    ----------
    has_flair : bool
        Whether a FLAIR is given (it is co-registered to the T1w when it is, and lesions are
        segmented from it unless a lesion mask is given).
    lesion_mask : str, optional
        User lesion mask (``-d lesions=PATH``), in ``lesion_mask_space`` ("T1w" or "FLAIR").
    lesion_min_volume_mm3 : float
        Smaller lesions are dropped.
    omp_nthreads : int
        Threads for ANTs.
    random_seed : int
        Seed of the ANTs registrations (non-zero: ANTs treats 0 as "seed from the clock").
        Seed for the template registration's sampling.
    name : str
        Workflow name.

    Inputs
    ------
    t1w_file, flair_file
        Raw T1w (and FLAIR) images.

    Outputs
    -------
    t1w_preproc, brain_mask, gm_prob, wm_prob, csf_prob, dseg, atlas_labels
        T1w-space images (tissues segmented after lesion filling).
    lesion_labels, lesion_source
        Lesion labels in T1w space (0 = none) and where they came from (user, automatic, none).
    mask_files, region_names, reference_mask, region_table
        Region masks (T1w space), their names, the reference mask and the volume table.
    flair_t1w, flair_xfm
        FLAIR resampled to T1w and its rigid transform (only with ``has_flair``).
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["t1w_file", "flair_file"]), name="inputnode")
    outputnode = pe.Node(
        IdentityInterface(fields=[
            "t1w_preproc", "brain_mask", "gm_prob", "wm_prob", "csf_prob", "dseg", "atlas_labels",
            "mask_files", "region_names", "reference_mask", "region_table", "flair_t1w", "flair_xfm",
            "lesion_labels", "lesion_source",
        ]),
        name="outputnode",
    )
    t1w_preproc = pe.Node(PreprocessT1w(num_threads=omp_nthreads, random_seed=random_seed),
                          name="t1w_preproc", n_procs=omp_nthreads)
    tissues_unfilled = pe.Node(SegmentTissues(num_threads=omp_nthreads), name="tissues_unfilled",
                               n_procs=omp_nthreads)
    lesions = pe.Node(LesionMask(min_volume_mm3=lesion_min_volume_mm3), name="lesions")
    if lesion_mask is not None:
        lesions.inputs.user_mask = str(lesion_mask)
        lesions.inputs.user_mask_space = lesion_mask_space
    fill = pe.Node(FillLesions(), name="fill_lesions")
    tissues = pe.Node(SegmentTissues(num_threads=omp_nthreads), name="tissues", n_procs=omp_nthreads)
    template_labels = pe.Node(TemplateLabelsToT1w(), name="template_labels")
    regions = pe.Node(DefineRegions(), name="regions")

    workflow.connect([
        (inputnode, t1w_preproc, [("t1w_file", "t1w_file")]),
        (t1w_preproc, tissues_unfilled, [("t1w_preproc", "t1w_preproc"), ("brain_mask", "brain_mask")]),
        (t1w_preproc, lesions, [("t1w_preproc", "t1w_preproc"), ("brain_mask", "brain_mask")]),
        (tissues_unfilled, lesions, [("gm_prob", "gm_prob"), ("wm_prob", "wm_prob")]),
        (template_labels, lesions, [("atlas_labels", "atlas_labels")]),
        (t1w_preproc, fill, [("t1w_preproc", "t1w_preproc")]),
        (lesions, fill, [("lesion_labels", "lesion_labels")]),
        (tissues_unfilled, fill, [("wm_prob", "wm_prob")]),
        (fill, tissues, [("out_file", "t1w_preproc")]),
        (t1w_preproc, tissues, [("brain_mask", "brain_mask")]),
        (lesions, regions, [("lesion_labels", "lesion_labels")]),
        (lesions, outputnode, [("lesion_labels", "lesion_labels"), ("source", "lesion_source")]),
        (t1w_preproc, template_labels, [("t1w_preproc", "t1w_preproc"), ("template_to_t1w", "template_to_t1w")]),
        (tissues, regions, [("gm_prob", "gm_prob"), ("wm_prob", "wm_prob")]),
        (template_labels, regions, [("atlas_labels", "atlas_labels")]),
        (t1w_preproc, regions, [("brain_mask", "brain_mask")]),
        (t1w_preproc, outputnode, [("t1w_preproc", "t1w_preproc"), ("brain_mask", "brain_mask")]),
        (tissues, outputnode, [("gm_prob", "gm_prob"), ("wm_prob", "wm_prob"),
                               ("csf_prob", "csf_prob"), ("dseg", "dseg")]),
        (template_labels, outputnode, [("atlas_labels", "atlas_labels")]),
        (regions, outputnode, [("mask_files", "mask_files"), ("region_names", "region_names"),
                               ("reference_mask", "reference_mask"), ("region_table", "region_table")]),
    ])

    if has_flair:
        flair_reg = pe.Node(RigidCoregister(num_threads=omp_nthreads), name="flair_reg", n_procs=omp_nthreads)
        flair_resample = pe.Node(ResampleToReference(), name="flair_resample")
        workflow.connect([
            (inputnode, flair_reg, [("flair_file", "moving_file")]),
            (t1w_preproc, flair_reg, [("t1w_preproc", "fixed_file"), ("brain_mask", "fixed_mask")]),
            (inputnode, flair_resample, [("flair_file", "in_file")]),
            (t1w_preproc, flair_resample, [("t1w_preproc", "reference_file")]),
            (flair_reg, flair_resample, [("matrix_file", "matrix_file")]),
            (flair_resample, outputnode, [("out_file", "flair_t1w")]),
            (flair_reg, outputnode, [("itk_file", "flair_xfm")]),
            (flair_resample, lesions, [("out_file", "flair_t1w")]),
            (inputnode, lesions, [("flair_file", "flair_file")]),
            (flair_reg, lesions, [("matrix_file", "flair_matrix")]),
        ])
    return workflow
