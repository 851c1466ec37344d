"""Tissue segmentation is reproducible: the same T1w gives the same maps, call after call.

Atropos initialises k-means from ITK's random generator; tspo-bids asks for its constant seed so
two runs of the pipeline (pip, container, Slurm jobs) give identical derivatives.
"""

import tempfile

import nibabel as nib
import numpy as np

from tspo_bids.anat.preprocess import segment_tissues
from tspo_bids.anat.template import load_template


def _template_crop() -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    template = load_template(2)
    t1 = nib.Nifti1Image(np.asarray(template.t1.dataobj, np.float32)[20:80, 20:100, 20:80],
                         template.t1.affine)
    mask = nib.Nifti1Image((np.asarray(template.brain_mask.dataobj)[20:80, 20:100, 20:80] > 0).astype(np.uint8),
                           template.t1.affine)
    return t1, mask


def test_segment_tissues_twice_gives_identical_maps():
    t1, mask = _template_crop()
    first, second = segment_tissues(t1, mask), segment_tissues(t1, mask)
    for name in ("gm", "wm", "csf", "dseg"):
        np.testing.assert_array_equal(np.asarray(first[name].dataobj), np.asarray(second[name].dataobj))


def test_segment_tissues_leaves_nothing_in_tmpdir(tmp_path, monkeypatch):
    # ants.atropos writes its probability images to tempfile.mktemp() names and never removes
    # them: one antsr*prob*.nii.gz per class per call, gigabytes over a cohort.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    t1, mask = _template_crop()
    segmentation = segment_tissues(t1, mask)
    assert np.asarray(segmentation["gm"].dataobj).max() > 0.5
    assert sorted(tmp_path.iterdir()) == []
    assert tempfile.gettempdir() == str(tmp_path)  # restored
