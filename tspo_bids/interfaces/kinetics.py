"""Nipype interfaces for modelling: regional TACs and reference-tissue model fits."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
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


class _ExtractTacsInputSpec(BaseInterfaceInputSpec):
    pet_file = File(exists=True, mandatory=True, desc="4D PET on the grid of the masks")
    mask_files = InputMultiObject(File(exists=True), mandatory=True)
    region_names = traits.List(traits.Str, mandatory=True)
    metadata = traits.Dict(mandatory=True, desc="PET JSON sidecar")


class _ExtractTacsOutputSpec(TraitedSpec):
    tacs_file = File(exists=True, desc="TSV: frame_start, frame_end (s), one column per region")


class ExtractTacs(SimpleInterface):
    """Regional time-activity curves (mean inside each mask, every frame)."""

    input_spec = _ExtractTacsInputSpec
    output_spec = _ExtractTacsOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.pet.tacs import regional_tacs

        if len(self.inputs.mask_files) != len(self.inputs.region_names):
            raise ValueError("one region name per mask file is needed")
        series = nib.load(self.inputs.pet_file).get_fdata(dtype=np.float32)
        masks = {
            name: np.asarray(nib.load(path).dataobj) > 0
            for name, path in zip(self.inputs.region_names, self.inputs.mask_files)
        }
        tacs = regional_tacs(series, masks)
        meta = self.inputs.metadata
        table = pd.DataFrame({
            "frame_start": np.asarray(meta["FrameTimesStart"], float),
            "frame_end": np.asarray(meta["FrameTimesStart"], float) + np.asarray(meta["FrameDuration"], float),
            **tacs,
        })
        out = Path(runtime.cwd) / "tacs.tsv"
        table.to_csv(out, sep="\t", index=False, float_format="%.8g", na_rep="n/a")
        self._results["tacs_file"] = str(out)
        return runtime


class _FitRegionalModelsInputSpec(BaseInterfaceInputSpec):
    tacs_file = File(exists=True, mandatory=True, desc="regional TACs (TSV from ExtractTacs)")
    metadata = traits.Dict(mandatory=True, desc="PET JSON sidecar")
    reference_region = traits.Str(mandatory=True, desc="column of the reference TAC")
    models = traits.List(traits.Str, ["SRTM"], usedefault=True)
    t_star_min = traits.Float(desc="Logan start of the linear phase (min from injection)")
    suvr_window_min = traits.Tuple(traits.Float, traits.Float, desc="SUVR window (min from injection)")
    weights_region = traits.Str("wholebrain", usedefault=True, desc="TAC used for the frame weights")


class _FitRegionalModelsOutputSpec(TraitedSpec):
    kinpar_files = OutputMultiObject(File(exists=True), desc="one TSV per model")
    model_names = traits.List(traits.Str)


class FitRegionalModels(SimpleInterface):
    """Fit each requested reference-tissue model to every target region's TAC."""

    input_spec = _FitRegionalModelsInputSpec
    output_spec = _FitRegionalModelsOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.kinetics import FrameTiming
        from tspo_bids.pet.models import fit_regions

        table = pd.read_csv(self.inputs.tacs_file, sep="\t", na_values="n/a")
        timing = FrameTiming.from_bids(self.inputs.metadata, n_volumes=len(table))
        tacs = {c: table[c].to_numpy(float) for c in table.columns if c not in ("frame_start", "frame_end")}
        window = tuple(self.inputs.suvr_window_min) if isdefined(self.inputs.suvr_window_min) else None
        t_star = self.inputs.t_star_min if isdefined(self.inputs.t_star_min) else None
        files, names = [], []
        for model in self.inputs.models:
            rows = fit_regions(
                model,
                tacs,
                reference=self.inputs.reference_region,
                timing=timing,
                weights_region=self.inputs.weights_region,
                t_star_min=t_star,
                suvr_window_min=window,
            )
            out = Path(runtime.cwd) / f"model-{model}_kinpar.tsv"
            pd.DataFrame(rows).to_csv(out, sep="\t", index=False, float_format="%.8g", na_rep="n/a")
            files.append(str(out))
            names.append(model)
        self._results.update(kinpar_files=files, model_names=names)
        return runtime


class _ParametricMapsInputSpec(BaseInterfaceInputSpec):
    pet_file = File(exists=True, mandatory=True, desc="4D PET, decay-corrected to injection (native grid)")
    brain_mask = File(exists=True, mandatory=True, desc="brain mask on the PET grid")
    tacs_file = File(exists=True, mandatory=True, desc="regional TACs holding the reference column")
    reference_region = traits.Str(mandatory=True)
    weights_region = traits.Str("wholebrain", usedefault=True)
    metadata = traits.Dict(mandatory=True, desc="PET JSON sidecar")
    t_star_min = traits.Float(desc="Logan t* (min); no Logan map when undefined")
    suvr_window_min = traits.Tuple(traits.Float, traits.Float, desc="SUVR window (min); no SUVR map when undefined")


class _ParametricMapsOutputSpec(TraitedSpec):
    map_files = OutputMultiObject(File(exists=True), desc="one 3D map per (model, meas)")
    models = traits.List(traits.Str)
    measures = traits.List(traits.Str)
    k2prime = traits.Float(desc="data-derived k2' (1/min) used by SRTM2 and Logan")


class ComputeParametricMaps(SimpleInterface):
    """Voxelwise SRTM, SRTM2, Logan and SUVR maps inside the brain mask (tspo_bids.pet.maps)."""

    input_spec = _ParametricMapsInputSpec
    output_spec = _ParametricMapsOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.kinetics import FrameTiming, frame_weights
        from tspo_bids.pet.maps import parametric_maps

        img = nib.load(self.inputs.pet_file)
        series = np.asarray(img.get_fdata(dtype=np.float32))
        mask = np.asarray(nib.load(self.inputs.brain_mask).dataobj) > 0
        if mask.shape != series.shape[:3]:
            raise ValueError("brain mask and PET grids differ")
        timing = FrameTiming.from_bids(self.inputs.metadata, n_volumes=series.shape[-1])
        table = pd.read_csv(self.inputs.tacs_file, sep="\t", na_values="n/a")
        reference = table[self.inputs.reference_region].to_numpy(float)
        weights = None
        if self.inputs.weights_region in table:
            weights = frame_weights(timing, table[self.inputs.weights_region].to_numpy(float))
        result = parametric_maps(
            series[mask].T, reference, timing.start_min, timing.end_min, weights,
            self.inputs.t_star_min if isdefined(self.inputs.t_star_min) else None,
            tuple(self.inputs.suvr_window_min) if isdefined(self.inputs.suvr_window_min) else None,
        )
        files, models, measures = [], [], []
        for (model, meas), values in result.maps.items():
            volume = np.full(mask.shape, np.nan, np.float32)
            volume[mask] = values
            path = Path(runtime.cwd) / f"model-{model}_meas-{meas}_mimap.nii.gz"
            out = nib.Nifti1Image(volume, img.affine)
            out.header.set_xyzt_units("mm")
            nib.save(out, str(path))
            files.append(str(path))
            models.append(model)
            measures.append(meas)
        self._results.update(map_files=files, models=models, measures=measures, k2prime=result.k2prime)
        return runtime
