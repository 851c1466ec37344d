"""Nipype interfaces for MS lesions: user masks or automatic segmentation, filling, per-lesion statistics."""

from __future__ import annotations

import logging
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
    isdefined,
    traits,
)

from tspo_bids.interfaces._io import load_matrix, save_like
from tspo_bids.pet.phenotypes import RIM_WIDTH_MM

LOGGER = logging.getLogger("tspo_bids.interfaces")  # tspo-bids console: warnings reach the user


def _same_grid(a: nib.spatialimages.SpatialImage, b: nib.spatialimages.SpatialImage) -> bool:
    return a.shape[:3] == b.shape[:3] and np.allclose(a.affine, b.affine, atol=1e-3)


def _deep_grey(atlas_labels: np.ndarray) -> np.ndarray:
    from tspo_bids.anat.template import atlas_group_mask

    return atlas_group_mask(atlas_labels, "deepgm") | atlas_group_mask(atlas_labels, "thalamus")


def _voxel_size(img: nib.spatialimages.SpatialImage) -> np.ndarray:
    return np.asarray(img.header.get_zooms()[:3], float)


class _LesionMaskInputSpec(BaseInterfaceInputSpec):
    t1w_preproc = File(exists=True, mandatory=True)
    brain_mask = File(exists=True, mandatory=True)
    gm_prob = File(exists=True, mandatory=True, desc="GM fraction before lesion filling")
    wm_prob = File(exists=True, mandatory=True, desc="WM fraction before lesion filling")
    atlas_labels = File(exists=True, mandatory=True, desc="AAL labels in T1w (deep GM is not lesion)")
    flair_t1w = File(exists=True, desc="FLAIR resampled to T1w (automatic segmentation)")
    user_mask = File(exists=True, desc="user lesion mask (-d lesions=PATH)")
    user_mask_space = traits.Enum("T1w", "FLAIR", desc="space of the user mask")
    flair_file = File(exists=True, desc="raw FLAIR (the grid of a FLAIR-space mask)")
    flair_matrix = File(exists=True, desc="JSON world matrix T1w point -> FLAIR point")
    min_volume_mm3 = traits.Float(27.0, usedefault=True)


class _LesionMaskOutputSpec(TraitedSpec):
    lesion_labels = File(exists=True, desc="lesion labels in T1w space (0 = none), int32")
    source = traits.Str(desc="user, automatic or none")
    n_lesions = traits.Int()


#: Lesion probability at or above which a voxel of a probabilistic lesion map counts as lesion.
LESION_PROBABILITY_MIN = 0.5


def _lesion_voxels(values: np.ndarray, name: str) -> np.ndarray:
    """Lesion voxels of a user mask: non-zero in a binary or label image; ``>= 0.5`` in a probability map.

    A map with fractional values (e.g. a lesion probability map saved as the mask) would otherwise turn every
    voxel above zero, often the whole brain's faint tail, into lesion.
    """
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    if np.any(values != np.round(values)):
        LOGGER.warning("%s: lesion mask holds fractional values (max %.3g), as a probability map does; lesions are "
                       "its voxels >= %g", name, float(values.max()), LESION_PROBABILITY_MIN)
        return values >= LESION_PROBABILITY_MIN
    return values > 0


class LesionMask(SimpleInterface):
    """Lesions in T1w space: the user's mask when usable, else automatic FLAIR segmentation.

    A user mask on a grid other than its declared space's, or an empty one, is reported in
    one log line naming the file; the run then continues with automatic segmentation (when a
    FLAIR is available) or without lesions.
    """

    input_spec = _LesionMaskInputSpec
    output_spec = _LesionMaskOutputSpec

    def _user_mask_in_t1w(self, t1w: nib.Nifti1Image) -> np.ndarray | None:
        from tspo_bids.registration.transforms import resample_to

        path = self.inputs.user_mask
        mask_img = nib.load(path)
        name = Path(path).name
        if self.inputs.user_mask_space == "T1w":
            if not _same_grid(mask_img, t1w):
                LOGGER.warning("%s: lesion mask is not on the T1w grid (shape %s vs %s, or another affine); ignoring "
                               "it (lesions come from the automatic segmentation when there is a FLAIR); resample it "
                               "to the T1w to use it", name, mask_img.shape[:3], t1w.shape[:3])
                return None
            return _lesion_voxels(np.asarray(mask_img.dataobj), name)
        if not (isdefined(self.inputs.flair_file) and isdefined(self.inputs.flair_matrix)):
            LOGGER.warning("%s: a FLAIR-space lesion mask needs the FLAIR image; ignoring it", name)
            return None
        if not _same_grid(mask_img, nib.load(self.inputs.flair_file)):
            LOGGER.warning("%s: lesion mask is not on the FLAIR grid; ignoring it (lesions come from the automatic "
                           "segmentation); resample it to the FLAIR to use it", name)
            return None
        binary = nib.Nifti1Image(_lesion_voxels(np.asarray(mask_img.dataobj), name).astype(np.float32),
                                 mask_img.affine)
        resampled = resample_to(binary, t1w, load_matrix(self.inputs.flair_matrix), order=1)
        return np.asarray(resampled.dataobj) >= 0.5

    def _run_interface(self, runtime):
        from tspo_bids.anat.lesions import label_lesions, segment_lesions

        t1w = nib.load(self.inputs.t1w_preproc)
        voxel = _voxel_size(t1w)
        labels = None
        source = "none"
        if isdefined(self.inputs.user_mask):
            mask = self._user_mask_in_t1w(t1w)
            if mask is not None:
                labels, _ = label_lesions(mask, voxel, self.inputs.min_volume_mm3)
                source = "user"
                if labels.max() == 0:
                    LOGGER.warning("%s: lesion mask holds no lesion of at least %g mm^3; "
                                   "NAWM is all WM and no lesion statistics are made",
                                   Path(self.inputs.user_mask).name, self.inputs.min_volume_mm3)
        if labels is None and isdefined(self.inputs.flair_t1w):
            labels = segment_lesions(
                nib.load(self.inputs.flair_t1w).get_fdata(dtype=np.float32),
                t1w.get_fdata(dtype=np.float32),
                nib.load(self.inputs.wm_prob).get_fdata(dtype=np.float32),
                nib.load(self.inputs.gm_prob).get_fdata(dtype=np.float32),
                np.asarray(nib.load(self.inputs.brain_mask).dataobj) > 0,
                voxel,
                # deep grey nuclei (basal ganglia and thalamus) are bright in FLAIR without being lesions
                deepgm_mask=_deep_grey(np.asarray(nib.load(self.inputs.atlas_labels).dataobj)),
                min_volume_mm3=self.inputs.min_volume_mm3,
            )
            source = "automatic"
        if labels is None:
            LOGGER.info("no FLAIR and no usable lesion mask: no lesion regions")
            labels = np.zeros(t1w.shape[:3], np.int32)
        out = Path(runtime.cwd) / "lesion_labels.nii.gz"
        self._results.update(
            lesion_labels=save_like(labels, t1w, out, dtype=np.int32), source=source, n_lesions=int(labels.max()),
        )
        return runtime


class _FillLesionsInputSpec(BaseInterfaceInputSpec):
    t1w_preproc = File(exists=True, mandatory=True)
    lesion_labels = File(exists=True, mandatory=True)
    wm_prob = File(exists=True, mandatory=True)


class _FillLesionsOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="T1w with lesions filled by local NAWM intensity")


class FillLesions(SimpleInterface):
    """Fill lesions in the T1w with NAWM intensity so tissue segmentation counts them as WM."""

    input_spec = _FillLesionsInputSpec
    output_spec = _FillLesionsOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.anat.lesions import fill_lesions

        t1w = nib.load(self.inputs.t1w_preproc)
        lesions = np.asarray(nib.load(self.inputs.lesion_labels).dataobj) > 0
        data = t1w.get_fdata(dtype=np.float32)
        if lesions.any():
            wm = nib.load(self.inputs.wm_prob).get_fdata(dtype=np.float32) >= 0.5
            data = fill_lesions(data, lesions, wm, _voxel_size(t1w))
        self._results["out_file"] = save_like(data, t1w, Path(runtime.cwd) / "t1w_filled.nii.gz")
        return runtime


class _LesionStatisticsInputSpec(BaseInterfaceInputSpec):
    lesion_labels = File(exists=True, mandatory=True)
    map_files = InputMultiObject(File(exists=True), mandatory=True, desc="T1w-space parametric maps")
    models = traits.List(traits.Str, mandatory=True)
    measures = traits.List(traits.Str, mandatory=True)
    model = traits.Str("SRTM2", usedefault=True, desc="model whose DVR map is summarised")
    wm_prob = File(exists=True, mandatory=True)
    rim_mm = traits.Float(RIM_WIDTH_MM, usedefault=True, desc="rim width, mm")


class _LesionStatisticsOutputSpec(TraitedSpec):
    table = File(exists=True, desc="per-lesion volume and DVR statistics (TSV)")


class LesionStatistics(SimpleInterface):
    """Per-lesion volume, core and rim DVR statistics (tspo_bids.pet.phenotypes)."""

    input_spec = _LesionStatisticsInputSpec
    output_spec = _LesionStatisticsOutputSpec

    def _run_interface(self, runtime):
        from tspo_bids.pet.phenotypes import lesion_statistics

        pairs = list(zip(self.inputs.models, self.inputs.measures))
        dvr_file = self.inputs.map_files[pairs.index((self.inputs.model, "DVR"))]
        labels_img = nib.load(self.inputs.lesion_labels)
        rows = lesion_statistics(
            np.asarray(labels_img.dataobj),
            nib.load(dvr_file).get_fdata(dtype=np.float32),
            _voxel_size(labels_img),
            rim_mm=self.inputs.rim_mm,
            wm_mask=nib.load(self.inputs.wm_prob).get_fdata(dtype=np.float32) >= 0.5,
        )
        columns = list(rows[0]) if rows else ["lesion_id", "volume_mm3"]
        out = Path(runtime.cwd) / "lesions.tsv"
        pd.DataFrame(rows, columns=columns).to_csv(out, sep="\t", index=False, float_format="%.6g", na_rep="n/a")
        self._results["table"] = str(out)
        return runtime
