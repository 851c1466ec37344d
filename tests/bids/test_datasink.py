"""DerivativesDataSink (tspo_bids.interfaces.bids), run directly without a workflow."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tspo_bids.interfaces.bids import DerivativesDataSink

SOURCE = "sub-01_ses-baseline_trc-PK11195_rec-OSEM_run-1_pet.nii.gz"


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    path = tmp_path / "raw" / "sub-01" / "ses-baseline" / "pet" / SOURCE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"raw")
    return path


def _image(path: Path, value: float) -> Path:
    nib.Nifti1Image(np.full((3, 3, 3), value, np.float32), np.eye(4)).to_filename(path)
    return path


def test_table_with_sidecar(tmp_path, source, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = tmp_path / "fit.tsv"
    table.write_text("region\tBPND\nwm\t0.2\n")
    out_dir = tmp_path / "out"
    result = DerivativesDataSink(
        base_directory=str(out_dir), source_file=str(source), in_file=str(table), datatype="pet",
        suffix="kinpar", model="SRTM", meta_dict={"ReferenceRegion": "cerebellumgm", "k2": {"Units": "1/min"}},
    ).run()
    expected = out_dir / "sub-01/ses-baseline/pet/sub-01_ses-baseline_trc-PK11195_rec-OSEM_run-1_model-SRTM_kinpar.tsv"
    assert result.outputs.out_file == str(expected)
    assert expected.read_text() == "region\tBPND\nwm\t0.2\n"
    meta = expected.with_suffix(".json")
    assert result.outputs.out_meta == str(meta)
    assert json.loads(meta.read_text()) == {"ReferenceRegion": "cerebellumgm", "k2": {"Units": "1/min"}}


def test_transform_entities_and_anat(tmp_path, source, monkeypatch):
    monkeypatch.chdir(tmp_path)
    xfm = tmp_path / "transform.mat"
    xfm.write_bytes(b"\x01\x02")
    result = DerivativesDataSink(
        base_directory=str(tmp_path / "out"), source_file=str(source), in_file=str(xfm), datatype="pet",
        suffix="xfm", from_="pet", to="T1w", mode="image",
    ).run()
    assert Path(result.outputs.out_file).name == (
        "sub-01_ses-baseline_trc-PK11195_rec-OSEM_run-1_from-pet_to-T1w_mode-image_xfm.mat")
    assert Path(result.outputs.out_file).read_bytes() == b"\x01\x02"
    assert not Path(result.outputs.out_file).with_suffix(".json").exists()


def test_uncompressed_nifti_is_compressed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t1w = tmp_path / "sub-02_T1w.nii.gz"
    t1w.write_bytes(b"raw")
    mask = _image(tmp_path / "mask.nii", 1.0)
    result = DerivativesDataSink(
        base_directory=str(tmp_path / "out"), source_file=str(t1w), in_file=str(mask), datatype="anat",
        suffix="mask", label="wm", extension=".nii.gz", meta_dict={"Type": "ROI"},
    ).run()
    out = Path(result.outputs.out_file)
    assert out == tmp_path / "out/sub-02/anat/sub-02_label-wm_mask.nii.gz"
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), np.ones((3, 3, 3), np.float32))
    assert json.loads((tmp_path / "out/sub-02/anat/sub-02_label-wm_mask.json").read_text()) == {"Type": "ROI"}


def test_compressed_input_copied_byte_for_byte_and_overwritten(tmp_path, source, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = _image(tmp_path / "a.nii.gz", 1.0)
    second = _image(tmp_path / "b.nii.gz", 2.0)
    kwargs = dict(base_directory=str(tmp_path / "out"), source_file=str(source), datatype="pet",
                  suffix="mimap", space="T1w", model="SRTM", meas="BPND")
    out = Path(DerivativesDataSink(in_file=str(first), **kwargs).run().outputs.out_file)
    assert out.read_bytes() == first.read_bytes()
    DerivativesDataSink(in_file=str(second), **kwargs).run()
    assert out.read_bytes() == second.read_bytes()
    assert out.name.endswith("_space-T1w_model-SRTM_meas-BPND_mimap.nii.gz")
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def test_bad_label_is_refused(tmp_path, source, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = tmp_path / "t.tsv"
    table.write_text("a\n")
    sink = DerivativesDataSink(base_directory=str(tmp_path / "out"), source_file=str(source), in_file=str(table),
                               datatype="pet", suffix="tacs", desc="pre-proc")
    with pytest.raises(ValueError, match="alphanumeric"):
        sink.run()
    assert not (tmp_path / "out").exists()


def test_mapnode_over_labels(tmp_path, source):
    """The participant workflow maps the sink over region masks (iterfield in_file + label)."""
    from nipype.pipeline import engine as pe

    masks = [_image(tmp_path / f"m{i}.nii.gz", float(i)) for i in range(2)]
    sink = pe.MapNode(DerivativesDataSink(base_directory=str(tmp_path / "out"), source_file=str(source),
                                          datatype="anat", suffix="mask", meta_dict={"Type": "ROI"}),
                      iterfield=["in_file", "label"], name="ds_masks", base_dir=str(tmp_path / "work"))
    sink.inputs.in_file = [str(m) for m in masks]
    sink.inputs.label = ["wm", "thalamus"]
    result = sink.run()
    names = [Path(p).name for p in result.outputs.out_file]
    assert names == ["sub-01_ses-baseline_trc-PK11195_rec-OSEM_run-1_label-wm_mask.nii.gz",
                     "sub-01_ses-baseline_trc-PK11195_rec-OSEM_run-1_label-thalamus_mask.nii.gz"]
    assert Path(result.outputs.out_file[1]).read_bytes() == masks[1].read_bytes()
