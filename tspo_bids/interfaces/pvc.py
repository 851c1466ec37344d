"""Nipype interface for partial-volume correction with tissue compartments (tspo_bids.pvc)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from tspo_bids.interfaces._io import load_matrix
from tspo_bids.pet.phenotypes import CoreRim

#: MS regions whose WM fraction forms a compartment of its own.
_MS_COMPARTMENT_REGIONS = ("lesion", "perilesion03", "perilesion36")


class _PartialVolumeCorrectInputSpec(BaseInterfaceInputSpec):
    pet_t1w = File(exists=True, mandatory=True, desc="4D PET resampled to T1w (decay-corrected)")
    pet_ref = File(exists=True, mandatory=True, desc="image on the native PET grid")
    matrix_file = File(exists=True, mandatory=True, desc="JSON world matrix T1w point -> PET point")
    gm_prob = File(exists=True, mandatory=True)
    wm_prob = File(exists=True, mandatory=True)
    csf_prob = File(exists=True, mandatory=True)
    brain_mask = File(exists=True, mandatory=True)
    atlas_labels = File(exists=True, mandatory=True)
    lesion_labels = File(exists=True, desc="lesion labels on the T1w grid (0 background, 1..N)")
    mask_files = InputMultiObject(File(exists=True), mandatory=True)
    region_names = traits.List(traits.Str, mandatory=True)
    metadata = traits.Dict(mandatory=True, desc="PET JSON sidecar")
    fwhm_mm = traits.Tuple(traits.Float, traits.Float, traits.Float, mandatory=True, desc="PSF FWHM x y z (mm)")
    method = traits.Enum("gtm", "rbv", mandatory=True)


class _PartialVolumeCorrectOutputSpec(TraitedSpec):
    tacs_file = File(exists=True, desc="GTM-corrected regional TACs (TSV, same columns as the uncorrected)")
    report_file = File(exists=True, desc="JSON: PSF, compartments, GTM matrix and its condition number")
    rbv_file = File(desc="RBV-corrected 4D PET on the T1w grid (method rbv)")


class PartialVolumeCorrect(SimpleInterface):
    """Tissue-compartment GTM of the T1w-space PET (and RBV images with ``method="rbv"``).

    The forward model is the PET acquisition as the pipeline sees it: PSF blur on the T1w grid,
    sampling at the PET voxel centres (through the estimated PET->T1w transform) and trilinear
    resampling back to the T1w grid.
    """

    input_spec = _PartialVolumeCorrectInputSpec
    output_spec = _PartialVolumeCorrectOutputSpec

    def _lesion_rims(self, wm_prob: np.ndarray) -> CoreRim | None:
        """Cores and 2 mm WM rims of the lesions (as the phenotype statistics define them), or None."""
        from nipype.interfaces.base import isdefined

        from tspo_bids.pet.phenotypes import RIM_WIDTH_MM, lesion_core_and_rim

        if not isdefined(self.inputs.lesion_labels):
            return None
        labels_img = nib.load(self.inputs.lesion_labels)
        labels = np.asarray(labels_img.dataobj)
        if not labels.any():
            return None
        return lesion_core_and_rim(labels, labels_img.header.get_zooms()[:3], rim_mm=RIM_WIDTH_MM,
                                   wm_mask=wm_prob >= 0.5)

    def _run_interface(self, runtime):
        from tspo_bids.anat.regions import AtlasGroups
        from tspo_bids.anat.template import atlas_group_mask
        from tspo_bids.pvc import PetGridModel
        from tspo_bids.pvc.compartments import (
            compartment_gtm,
            compartment_rbv,
            region_weights,
            tissue_compartments,
        )

        pet_img = nib.load(self.inputs.pet_t1w)
        series = np.asarray(pet_img.get_fdata(dtype=np.float32))
        pet_ref = nib.load(self.inputs.pet_ref)
        labels = np.asarray(nib.load(self.inputs.atlas_labels).dataobj)
        atlas = AtlasGroups(**{g: atlas_group_mask(labels, g) for g in AtlasGroups.__dataclass_fields__})
        brain = np.asarray(nib.load(self.inputs.brain_mask).dataobj) > 0
        masks = {name: np.asarray(nib.load(path).dataobj) > 0
                 for name, path in zip(self.inputs.region_names, self.inputs.mask_files)}
        fractions = [nib.load(getattr(self.inputs, f"{t}_prob")).get_fdata(dtype=np.float32)
                     for t in ("gm", "wm", "csf")]
        compartments = tissue_compartments(
            *fractions, brain, atlas, {k: masks[k] for k in _MS_COMPARTMENT_REGIONS if k in masks},
            lesion_rims=self._lesion_rims(fractions[1]),
        )
        model = PetGridModel(tuple(self.inputs.fwhm_mm), pet_img.shape[:3], pet_img.affine,
                             pet_ref.shape[:3], pet_ref.affine, load_matrix(self.inputs.matrix_file))
        # the model itself (not a lambda): its project_box forward-projects lesion compartments in their boxes
        gtm = compartment_gtm(series, compartments, brain, model)
        weights = region_weights(masks, compartments)

        meta = self.inputs.metadata
        start = np.asarray(meta["FrameTimesStart"], float)
        table = pd.DataFrame({"frame_start": start, "frame_end": start + np.asarray(meta["FrameDuration"], float)})
        for name in self.inputs.region_names:
            table[name] = weights[name] @ gtm.activities if weights[name].any() else np.nan
        cwd = Path(runtime.cwd)
        table.to_csv(cwd / "tacs_pvc.tsv", sep="\t", index=False, float_format="%.8g", na_rep="n/a")
        report = {
            "Method": self.inputs.method.upper(),
            "PointSpreadFunctionFWHM": {"Value": list(self.inputs.fwhm_mm), "Units": "mm"},
            "Compartments": list(compartments.names),
            "ConditionNumber": gtm.condition_number,
            "GeometricTransferMatrix": gtm.matrix.tolist(),
        }
        (cwd / "pvc.json").write_text(json.dumps(report, indent=1))
        self._results.update(tacs_file=str(cwd / "tacs_pvc.tsv"), report_file=str(cwd / "pvc.json"))
        if self.inputs.method == "rbv":
            corrected = compartment_rbv(series, compartments, gtm, brain)
            out = nib.Nifti1Image(corrected, pet_img.affine)
            out.header.set_xyzt_units("mm", "sec")
            nib.save(out, str(cwd / "pet_rbv.nii.gz"))
            self._results["rbv_file"] = str(cwd / "pet_rbv.nii.gz")
        return runtime
