"""Nipype interfaces for the supervised-cluster-analysis (SVCA4) reference region, and the class-table files.

Two steps (methods: README "SVCA reference region", numerics in :mod:`tspo_bids.pet.svca`):

* :class:`SvcaClassCurves` (every participant run): this session's four kinetic class curves on its own
  normalised voxel TACs (T1w space). The group level averages the healthy controls' curves into the
  class table (``tspo-bids BIDS OUT group --build-svca-classes``).
* :class:`SvcaReference` (``--ref-region svca``): the class table interpolated to this run's frames,
  every brain voxel's GM fraction, the reference voxels, and the region list with the ``svca`` mask
  appended so the regional TACs carry the reference column.

Class tables are TSV files: ``frame_start``, ``frame_end`` (seconds from injection) and one column per
class of :data:`tspo_bids.pet.svca.SVCA_CLASSES` (normalised, unitless).
"""

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
    traits,
)

from tspo_bids.errors import InputError
from tspo_bids.interfaces._io import save_like
from tspo_bids.pet.svca import SVCA_CLASSES, SVCA_REGION

#: Columns of a class table, in order.
CLASS_TABLE_COLUMNS: tuple[str, ...] = ("frame_start", "frame_end", *SVCA_CLASSES)


def frame_bounds_s(metadata: dict) -> tuple[np.ndarray, np.ndarray]:
    """Frame start and end times in seconds from injection, from a PET sidecar."""
    start = np.asarray(metadata["FrameTimesStart"], float) - float(metadata.get("InjectionStart", 0) or 0)
    return start, start + np.asarray(metadata["FrameDuration"], float)


def write_class_table(curves: np.ndarray, frame_start_s: np.ndarray, frame_end_s: np.ndarray, path: Path) -> Path:
    """Write class curves ``(n_frames, 4)`` with their frame bounds (s) as a class-table TSV."""
    table = pd.DataFrame({"frame_start": frame_start_s, "frame_end": frame_end_s,
                          **{name: curves[:, k] for k, name in enumerate(SVCA_CLASSES)}})
    table.to_csv(path, sep="\t", index=False, float_format="%.8g", na_rep="n/a")
    return Path(path)


def read_class_table(path: str | Path) -> pd.DataFrame:
    """Read and check a class table (``--svca-classes`` or the group level's).

    Raises
    ------
    InputError
        Missing file or columns, non-numeric or non-finite values, fewer than two frames, or frames
        not in increasing order; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: SVCA class table not found; run 'tspo-bids BIDS_DIR OUTPUT_DIR group "
                         "--build-svca-classes' or pass --svca-classes FILE")
    try:
        table = pd.read_csv(path, sep="\t", na_values="n/a")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable TSV SVCA class table ({error})") from error
    missing = [c for c in CLASS_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: SVCA class table lacks column(s) {', '.join(missing)}; "
                         f"expected {', '.join(CLASS_TABLE_COLUMNS)}")
    values = table[list(CLASS_TABLE_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    if len(values) < 2 or not np.all(np.isfinite(values.to_numpy(float))):
        raise InputError(f"{path}: SVCA class table needs at least two frames of finite numbers")
    mid = (values["frame_start"] + values["frame_end"]).to_numpy(float) / 2
    if not np.all(np.diff(mid) > 0) or np.any(values["frame_end"] <= values["frame_start"]):
        raise InputError(f"{path}: SVCA class table frames must be increasing with frame_end > frame_start")
    return values


def _load_brain(pet_file: str, brain_mask: str) -> tuple[nib.Nifti1Image, np.ndarray, np.ndarray]:
    """PET image, brain mask (bool, T1w grid) and the raw brain voxel TACs ``(n_frames, n_voxels)``."""
    img = nib.load(pet_file)
    series = np.asarray(img.dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(brain_mask).dataobj) > 0
    if mask.shape != series.shape[:3]:
        raise ValueError(f"brain mask {mask.shape} and PET {series.shape[:3]} grids differ")
    raw = series[mask].T.astype(float)
    raw = np.where(np.isfinite(raw), raw, 0.0)
    return img, mask, raw


def _volume(path: str, mask: np.ndarray) -> np.ndarray:
    data = np.asarray(nib.load(path).dataobj)
    if data.shape != mask.shape:
        raise ValueError(f"{path}: grid {data.shape} differs from the brain mask {mask.shape}")
    return data[mask]


class _ClassCurvesInputSpec(BaseInterfaceInputSpec):
    pet_file = File(exists=True, mandatory=True, desc="4D PET in T1w space, decay-corrected (kBq/mL)")
    brain_mask = File(exists=True, mandatory=True, desc="T1w brain mask")
    gm_prob = File(exists=True, mandatory=True, desc="T1w GM probability")
    wm_prob = File(exists=True, mandatory=True, desc="T1w WM probability")
    gm_class_mask = File(exists=True, mandatory=True,
                         desc="where the GM class comes from: the reference tissue assumed non-binding "
                              "(cerebellar GM mask)")
    atlas_labels = File(exists=True, mandatory=True, desc="AAL labels in T1w space (thalamus = high binding)")
    metadata = traits.Dict(mandatory=True, desc="PET JSON sidecar")


class _ClassCurvesOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="class table TSV of this session")


class SvcaClassCurves(SimpleInterface):
    """This session's four SVCA kinetic class curves (normalised), as a class table.

    GM class: voxels of ``gm_class_mask`` with ``p_GM > 0.9``; WM: ``p_WM > 0.9``; high binding:
    atlas thalamus; blood: the 40 hottest voxels of the frames ending before 1.5 min
    (:func:`tspo_bids.pet.svca.build_svca_classes` on this one session).
    """

    input_spec = _ClassCurvesInputSpec
    output_spec = _ClassCurvesOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.anat.template import atlas_group_mask
        from tspo_bids.pet.svca import SvcaControl, build_svca_classes, normalise_tacs

        _, mask, raw = _load_brain(self.inputs.pet_file, self.inputs.brain_mask)
        gm = _volume(self.inputs.gm_prob, mask).astype(float)
        gm_class = _volume(self.inputs.gm_class_mask, mask) > 0
        thalamus = atlas_group_mask(_volume(self.inputs.atlas_labels, mask), "thalamus")
        start, end = frame_bounds_s(self.inputs.metadata)
        if start.size != raw.shape[0]:
            raise ValueError(f"sidecar has {start.size} frames, PET {raw.shape[0]}")
        control = SvcaControl(
            normalised_tacs=normalise_tacs(raw),
            gm_prob=np.where(gm_class, gm, 0.0),
            wm_prob=_volume(self.inputs.wm_prob, mask).astype(float),
            thalamus_mask=thalamus,
            frame_end_min=end / 60.0,
        )
        curves = build_svca_classes([control])
        out = write_class_table(curves, start, end, Path(runtime.cwd) / "svca_classes.tsv")
        self._results["out_file"] = str(out)
        return runtime


class _ReferenceInputSpec(BaseInterfaceInputSpec):
    pet_file = File(exists=True, mandatory=True, desc="4D PET in T1w space, decay-corrected (kBq/mL)")
    brain_mask = File(exists=True, mandatory=True, desc="T1w brain mask")
    gm_prob = File(exists=True, mandatory=True, desc="T1w GM probability")
    classes_file = File(mandatory=True, desc="class table TSV (controls' average)")
    metadata = traits.Dict(mandatory=True, desc="PET JSON sidecar")
    mask_files = InputMultiObject(File(exists=True), mandatory=True, desc="region masks (T1w)")
    region_names = traits.List(traits.Str, mandatory=True)
    gm_fraction_threshold = traits.Float(0.9, usedefault=True)
    gm_prob_threshold = traits.Float(0.9, usedefault=True)


class _ReferenceOutputSpec(TraitedSpec):
    gm_fraction = File(exists=True, desc="kinetic GM fraction of every brain voxel (T1w, 0-1)")
    reference_mask = File(exists=True, desc="SVCA reference voxels (T1w)")
    mask_files = OutputMultiObject(File(exists=True), desc="region masks with the svca mask appended")
    region_names = traits.List(traits.Str, desc="region names with 'svca' appended")
    n_voxels = traits.Int(desc="number of reference voxels")


class SvcaReference(SimpleInterface):
    """SVCA4 reference voxels of one run: sum-to-one NNLS with a background class, GMfrac > 0.9, p_GM > 0.9."""

    input_spec = _ReferenceInputSpec
    output_spec = _ReferenceOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.pet.svca import background_class, gm_fraction, interpolate_classes, normalise_tacs, svca_reference

        if SVCA_REGION in self.inputs.region_names:
            raise ValueError(f"region {SVCA_REGION!r} already defined")
        table = read_class_table(self.inputs.classes_file)
        img, mask, raw = _load_brain(self.inputs.pet_file, self.inputs.brain_mask)
        start, end = frame_bounds_s(self.inputs.metadata)
        if start.size != raw.shape[0]:
            raise ValueError(f"sidecar has {start.size} frames, PET {raw.shape[0]}")
        class_mid_min = (table["frame_start"] + table["frame_end"]).to_numpy(float) / 120.0
        classes = interpolate_classes(table[list(SVCA_CLASSES)].to_numpy(float), class_mid_min,
                                      (start + end) / 120.0)
        fraction = gm_fraction(normalise_tacs(raw), classes, background=background_class(raw))
        selected, _ = svca_reference(raw, fraction, _volume(self.inputs.gm_prob, mask).astype(float),
                                     gm_fraction_threshold=self.inputs.gm_fraction_threshold,
                                     gm_prob_threshold=self.inputs.gm_prob_threshold)
        shape = mask.shape
        fraction_volume = np.zeros(shape, np.float32)
        fraction_volume[mask] = fraction
        reference_volume = np.zeros(shape, np.uint8)
        reference_volume[mask] = selected
        cwd = Path(runtime.cwd)
        reference = nib.Nifti1Image(np.zeros(shape, np.uint8), img.affine)
        self._results["gm_fraction"] = save_like(fraction_volume, reference, cwd / "svca_gmfraction.nii.gz")
        ref_file = save_like(reference_volume, reference, cwd / "svca_reference_mask.nii.gz", dtype=np.uint8)
        self._results["reference_mask"] = ref_file
        self._results["mask_files"] = [*self.inputs.mask_files, ref_file]
        self._results["region_names"] = [*self.inputs.region_names, SVCA_REGION]
        self._results["n_voxels"] = int(selected.sum())
        return runtime
