"""Nipype interfaces for PET preprocessing: decay correction, motion correction, co-registration."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from tspo_bids.interfaces._io import load_matrix, save_like, save_matrix


def _timing(metadata: dict, pet_file: str, n_volumes: int):
    from tspo_bids.kinetics import FrameTiming

    return FrameTiming.from_bids(metadata, n_volumes=n_volumes, source=Path(pet_file).name)


def check_pet_values(series: np.ndarray, pet_file: str) -> None:
    """Refuse a PET series (X, Y, Z, frames) that registration and models cannot use, naming the file.

    Discovery finds the same problems from the file (:func:`tspo_bids.bids.images.image_problems`); this
    guards the workflow when it is built without discovery.

    Raises
    ------
    InputError
        Non-finite values (NaN/inf: listed by frame), or an image that is 0 everywhere.
    """
    from tspo_bids.bids.images import pet_value_problems
    from tspo_bids.errors import InputError

    non_finite = (~np.isfinite(series)).reshape(-1, series.shape[-1]).sum(axis=0)
    problems = pet_value_problems(pet_file, non_finite, bool(series.any()))
    if problems:
        raise InputError("; ".join(problems))


class _DecayCorrectInputSpec(BaseInterfaceInputSpec):
    pet_file = File(exists=True, mandatory=True, desc="raw 4D PET series")
    metadata = traits.Dict(mandatory=True, desc="PET JSON sidecar")


class _DecayCorrectOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="4D PET decay-corrected to injection, float32")


class DecayCorrect(SimpleInterface):
    """Decay-correct a PET series to injection time, whatever its sidecar says."""

    input_spec = _DecayCorrectInputSpec
    output_spec = _DecayCorrectOutputSpec

    def _run_interface(self, runtime):
        img = nib.load(self.inputs.pet_file)
        series = np.asarray(img.get_fdata(dtype=np.float32))
        if series.ndim == 3:
            series = series[..., None]
        check_pet_values(series, self.inputs.pet_file)
        timing = _timing(self.inputs.metadata, self.inputs.pet_file, series.shape[-1])
        corrected = timing.to_injection_decay_corrected(np.moveaxis(series, -1, 0), axis=0)
        out = Path(runtime.cwd) / "pet_decaycorrected.nii.gz"
        self._results["out_file"] = save_like(np.moveaxis(corrected, 0, -1), img, out)
        return runtime


class _MotionCorrectInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4D PET series")
    metadata = traits.Dict(mandatory=True, desc="PET JSON sidecar")
    min_frame_start_min = traits.Float(2.0, usedefault=True, desc="first frame start (min) to register")
    num_threads = traits.Int(1, usedefault=True)


class _MotionCorrectOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="motion-corrected 4D series")
    ref_file = File(exists=True, desc="PET reference image (3D)")
    confounds_file = File(exists=True, desc="per-frame displacement table (TSV)")


class MotionCorrect(SimpleInterface):
    """Frame-wise rigid motion correction (see tspo_bids.registration.motion)."""

    input_spec = _MotionCorrectInputSpec
    output_spec = _MotionCorrectOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.registration.motion import frame_displacement_mm, motion_correct

        img = nib.load(self.inputs.in_file)
        timing = _timing(self.inputs.metadata, self.inputs.in_file, img.shape[-1])
        corrected, matrices, reference = motion_correct(
            img,
            timing.mid_min,
            timing.duration_min,
            min_frame_start_min=self.inputs.min_frame_start_min,
            n_threads=self.inputs.num_threads,
        )
        cwd = Path(runtime.cwd)
        nib.save(corrected, str(cwd / "pet_mc.nii.gz"))
        nib.save(reference, str(cwd / "pet_ref.nii.gz"))
        displacement = frame_displacement_mm(matrices, reference)
        table = pd.DataFrame({
            "frame_start": timing.start_min * 60.0,
            "frame_end": timing.end_min * 60.0,
            "displacement_mm": np.asarray(displacement, float),
        })
        table.to_csv(cwd / "motion.tsv", sep="\t", index=False, float_format="%.6g")
        self._results.update(
            out_file=str(cwd / "pet_mc.nii.gz"),
            ref_file=str(cwd / "pet_ref.nii.gz"),
            confounds_file=str(cwd / "motion.tsv"),
        )
        return runtime


class _CoregisterInputSpec(BaseInterfaceInputSpec):
    fixed_file = File(exists=True, mandatory=True, desc="fixed image (T1w, preprocessed)")
    fixed_mask = File(exists=True, desc="brain mask of the fixed image")
    moving_file = File(exists=True, mandatory=True, desc="moving image (PET reference or FLAIR)")
    num_threads = traits.Int(1, usedefault=True)


class _CoregisterOutputSpec(TraitedSpec):
    matrix_file = File(exists=True, desc="JSON 4x4: fixed world point -> moving world point")
    itk_file = File(exists=True, desc="the same rigid transform as an ITK text file (for ANTs users)")


class RigidCoregister(SimpleInterface):
    """Rigid mutual-information registration of an image to the T1w."""

    input_spec = _CoregisterInputSpec
    output_spec = _CoregisterOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.registration.coregister import rigid_register
        from tspo_bids.registration.transforms import save_itk_transform

        fixed = nib.load(self.inputs.fixed_file)
        moving = nib.load(self.inputs.moving_file)
        mask = nib.load(self.inputs.fixed_mask) if self.inputs.fixed_mask else None
        matrix = rigid_register(fixed, moving, metric="mattes", fixed_mask=mask,
                                n_threads=self.inputs.num_threads)
        cwd = Path(runtime.cwd)
        self._results["matrix_file"] = save_matrix(
            matrix, cwd / "xfm.json", maps="fixed (T1w) world point -> moving world point, RAS mm"
        )
        itk = cwd / "xfm.txt"
        save_itk_transform(matrix, itk)
        self._results["itk_file"] = str(itk)
        return runtime


class _ResampleInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="3D or 4D image to resample")
    reference_file = File(exists=True, mandatory=True, desc="image defining the target grid")
    matrix_file = File(exists=True, mandatory=True, desc="JSON 4x4: target world point -> source world point")
    order = traits.Int(1, usedefault=True, desc="spline order (1 = trilinear)")
    invert = traits.Bool(False, usedefault=True, desc="use the inverse of the matrix (e.g. T1w image onto PET grid)")
    threshold = traits.Float(desc="binarise the result at this value (masks)")


class _ResampleOutputSpec(TraitedSpec):
    out_file = File(exists=True)


class ResampleToReference(SimpleInterface):
    """Resample an image (3D or 4D, frame by frame) onto a reference grid through a rigid matrix."""

    input_spec = _ResampleInputSpec
    output_spec = _ResampleOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.registration.transforms import resample_to

        moving = nib.load(self.inputs.in_file)
        reference = nib.load(self.inputs.reference_file)
        matrix = load_matrix(self.inputs.matrix_file)
        if self.inputs.invert:
            matrix = np.linalg.inv(matrix)
        resampled = resample_to(moving, reference, matrix, order=self.inputs.order)
        if isdefined(self.inputs.threshold):
            resampled = nib.Nifti1Image((np.asarray(resampled.dataobj) >= self.inputs.threshold).astype(np.uint8),
                                        resampled.affine)
        out = Path(runtime.cwd) / "resampled.nii.gz"
        nib.save(resampled, str(out))
        self._results["out_file"] = str(out)
        return runtime
