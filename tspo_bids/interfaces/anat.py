"""Nipype interfaces for the anatomical stream: N4, brain mask, tissues, template labels, regions."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from tspo_bids.interfaces._io import save_like
from tspo_bids.registration.transforms import DEFAULT_RANDOM_SEED

LOGGER = logging.getLogger("tspo_bids.interfaces")  # tspo-bids console: warnings reach the user


class _PreprocessT1wInputSpec(BaseInterfaceInputSpec):
    t1w_file = File(exists=True, mandatory=True)
    template_resolution_mm = traits.Int(2, usedefault=True)
    num_threads = traits.Int(1, usedefault=True)
    random_seed = traits.Int(DEFAULT_RANDOM_SEED, usedefault=True, desc="ANTs seed (non-zero)")


class _PreprocessT1wOutputSpec(TraitedSpec):
    t1w_preproc = File(exists=True, desc="N4 bias-corrected T1w")
    brain_mask = File(exists=True, desc="brain mask in T1w space")
    template_to_t1w = OutputMultiObject(File(exists=True), desc="ANTs transforms template -> T1w (warp, affine)")


class PreprocessT1w(SimpleInterface):
    """N4 bias-field correction, then the template registered to the T1w gives the brain mask."""

    input_spec = _PreprocessT1wInputSpec
    output_spec = _PreprocessT1wOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.anat.preprocess import brain_mask_from_template, n4_bias_correct
        from tspo_bids.anat.template import load_template

        threads = self.inputs.num_threads
        t1w = nib.load(self.inputs.t1w_file)
        corrected = n4_bias_correct(t1w, n_threads=threads)
        mask, transforms = brain_mask_from_template(
            corrected, load_template(self.inputs.template_resolution_mm), out_dir=runtime.cwd,
            n_threads=threads, random_seed=self.inputs.random_seed,
        )
        cwd = Path(runtime.cwd)
        self._results["t1w_preproc"] = save_like(corrected.get_fdata(), t1w, cwd / "t1w_preproc.nii.gz")
        self._results["brain_mask"] = save_like(
            np.asarray(mask.dataobj) > 0, t1w, cwd / "brain_mask.nii.gz", dtype=np.uint8
        )
        self._results["template_to_t1w"] = list(transforms.template_to_t1w)
        return runtime


class _SegmentInputSpec(BaseInterfaceInputSpec):
    t1w_preproc = File(exists=True, mandatory=True)
    brain_mask = File(exists=True, mandatory=True)
    num_threads = traits.Int(1, usedefault=True)


class _SegmentOutputSpec(TraitedSpec):
    gm_prob = File(exists=True)
    wm_prob = File(exists=True)
    csf_prob = File(exists=True)
    dseg = File(exists=True, desc="labels: 1 CSF, 2 GM, 3 WM")


class SegmentTissues(SimpleInterface):
    """Three-class tissue segmentation of the bias-corrected T1w, as partial-volume fractions.

    Atropos (k-means initialised, MRF-regularised) classifies the brain; its class medians
    seed a mixel-model fit of the intensity histogram (tspo_bids.anat.pve), whose pure-class
    means give every voxel's CSF/GM/WM fractions. ``probseg`` outputs are those fractions
    and ``dseg`` their argmax, so region thresholds (``p_GM >= 0.5``) mean tissue content.
    """

    input_spec = _SegmentInputSpec
    output_spec = _SegmentOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.anat.preprocess import segment_tissues
        from tspo_bids.anat.pve import TISSUES, fit_mixel_model, partial_volume_fractions

        t1w = nib.load(self.inputs.t1w_preproc)
        mask = np.asarray(nib.load(self.inputs.brain_mask).dataobj) > 0
        intensity = np.asarray(t1w.get_fdata(dtype=np.float32))
        atropos = np.asarray(segment_tissues(t1w, nib.load(self.inputs.brain_mask),
                                             n_threads=self.inputs.num_threads)["dseg"].dataobj)
        class_medians = tuple(float(np.median(intensity[mask & (atropos == label)]))
                              for label in (1, 2, 3))
        fractions = partial_volume_fractions(
            intensity, mask, fit_mixel_model(intensity[mask], initial_means=class_medians)
        )
        cwd = Path(runtime.cwd)
        for name in TISSUES:
            self._results[f"{name}_prob"] = save_like(fractions[name], t1w, cwd / f"{name}_prob.nii.gz")
        stack = np.stack([fractions[name] for name in TISSUES], axis=-1)
        dseg = np.where(mask, np.argmax(stack, axis=-1) + 1, 0)
        self._results["dseg"] = save_like(dseg, t1w, cwd / "dseg.nii.gz", dtype=np.uint8)
        return runtime


class _TemplateLabelsInputSpec(BaseInterfaceInputSpec):
    t1w_preproc = File(exists=True, mandatory=True)
    template_to_t1w = InputMultiObject(File(exists=True), mandatory=True)
    template_resolution_mm = traits.Int(2, usedefault=True)


class _TemplateLabelsOutputSpec(TraitedSpec):
    atlas_labels = File(exists=True, desc="AAL labels warped to T1w (int16)")


class TemplateLabelsToT1w(SimpleInterface):
    """Carry the template's atlas labels to the T1w through the template registration."""

    input_spec = _TemplateLabelsInputSpec
    output_spec = _TemplateLabelsOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.anat.preprocess import TemplateTransforms, warp_labels_to_t1w
        from tspo_bids.anat.template import load_template

        t1w = nib.load(self.inputs.t1w_preproc)
        transforms = TemplateTransforms(tuple(self.inputs.template_to_t1w), (), ())
        labels = warp_labels_to_t1w(load_template(self.inputs.template_resolution_mm).atlas, t1w, transforms)
        self._results["atlas_labels"] = save_like(
            np.asarray(labels.dataobj), t1w, Path(runtime.cwd) / "atlas_labels.nii.gz", dtype=np.int16
        )
        return runtime


class _DefineRegionsInputSpec(BaseInterfaceInputSpec):
    gm_prob = File(exists=True, mandatory=True)
    wm_prob = File(exists=True, mandatory=True)
    atlas_labels = File(exists=True, mandatory=True)
    brain_mask = File(exists=True, mandatory=True)
    lesion_labels = File(exists=True, desc="lesion labels (adds lesion, nawm and perilesional shells)")


class _DefineRegionsOutputSpec(TraitedSpec):
    mask_files = OutputMultiObject(File(exists=True))
    region_names = traits.List(traits.Str)
    reference_mask = File(exists=True)
    region_table = File(exists=True, desc="TSV of region volumes (mm^3)")


class DefineRegions(SimpleInterface):
    """Region masks from the shared definition table (tspo_bids.anat.regions)."""

    input_spec = _DefineRegionsInputSpec
    output_spec = _DefineRegionsOutputSpec

    def _run_interface(self, runtime):
        import pandas as pd

        from tspo_bids.anat.regions import REFERENCE_DEFINITION, REFERENCE_REGION, AtlasGroups, define_regions
        from tspo_bids.anat.template import atlas_group_mask

        gm = nib.load(self.inputs.gm_prob)
        labels = np.asarray(nib.load(self.inputs.atlas_labels).dataobj)
        groups = AtlasGroups(**{g: atlas_group_mask(labels, g) for g in AtlasGroups.__dataclass_fields__})
        gm_prob = gm.get_fdata()
        wm_prob = nib.load(self.inputs.wm_prob).get_fdata()
        brain = np.asarray(nib.load(self.inputs.brain_mask).dataobj) > 0
        regions = define_regions(gm_prob, wm_prob, groups, brain, voxel_size_mm=gm.header.get_zooms()[:3])
        if isdefined(self.inputs.lesion_labels):
            from tspo_bids.anat.ms_regions import define_ms_regions

            lesions = np.asarray(nib.load(self.inputs.lesion_labels).dataobj) > 0
            reference = regions.pop(REFERENCE_REGION)
            regions.update(define_ms_regions(wm_prob, gm_prob, lesions, gm.header.get_zooms()[:3],
                                             atlas=groups, brain_mask=brain))
            regions[REFERENCE_REGION] = reference  # the reference stays last
        cwd = Path(runtime.cwd)
        voxel_mm3 = float(np.prod(gm.header.get_zooms()[:3]))
        files, names, volumes = [], [], []
        for name, mask in regions.items():
            if not mask.any():
                LOGGER.info("region %s is empty: not written, not fitted", name)
                continue
            files.append(save_like(mask, gm, cwd / f"label-{name}_mask.nii.gz", dtype=np.uint8))
            names.append(name)
            volumes.append(float(mask.sum()) * voxel_mm3)
        if REFERENCE_REGION not in names:
            from tspo_bids.errors import InputError

            raise InputError(f"{self.inputs.gm_prob}: the reference region ({REFERENCE_REGION}: "
                             f"{REFERENCE_DEFINITION}) is empty; check the T1w's segmentation and its "
                             "registration to the template")
        table = cwd / "morph.tsv"
        pd.DataFrame({"region": names, "volume_mm3": volumes}).to_csv(table, sep="\t", index=False)
        self._results.update(
            mask_files=files,
            region_names=names,
            reference_mask=files[names.index(REFERENCE_REGION)],
            region_table=str(table),
        )
        return runtime
