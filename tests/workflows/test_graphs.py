"""Every workflow graph builds (without running) and carries the expected derivatives."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tspo_bids.bids.discovery import PetRun
from tspo_bids.config import Settings
from tspo_bids.workflows.anat import init_anat_wf
from tspo_bids.workflows.base import init_tspo_wf
from tspo_bids.workflows.modelling import init_modelling_wf
from tspo_bids.workflows.pet import init_pet_wf

METADATA = {
    "TracerName": "[11C]-(R)-PK11195", "TracerRadionuclide": "C11", "Units": "kBq/mL",
    "FrameTimesStart": [0, 60, 180], "FrameDuration": [60, 120, 300], "InjectionStart": 0,
    "TimeZero": "10:00:00", "ImageDecayCorrected": True, "ImageDecayCorrectionTime": 0,
}


def _flat_nodes(workflow):
    graph = workflow._create_flat_graph()
    return {node.fullname for node in graph.nodes()}


@pytest.mark.parametrize("has_flair", [True, False])
def test_anat_wf(has_flair):
    nodes = _flat_nodes(init_anat_wf(has_flair=has_flair))
    assert any(n.endswith("regions") for n in nodes)
    assert any(n.endswith("flair_reg") for n in nodes) == has_flair


def test_pet_and_modelling_wf():
    assert any(n.endswith("motion_correct") for n in _flat_nodes(init_pet_wf(METADATA)))
    nodes = _flat_nodes(init_modelling_wf(METADATA, "cerebellumgm", ["SRTM"], 20.0, (40.0, 60.0)))
    assert any(n.endswith("regional_models") for n in nodes)


def _runs(tmp_path: Path, sessions=("a", "b")) -> list[PetRun]:
    runs = []
    for ses in sessions:
        folder = tmp_path / "sub-01" / f"ses-{ses}"
        folder.mkdir(parents=True)
        files = {}
        for name, shape in (("pet", (4, 4, 4, 3)), ("T1w", (4, 4, 4)), ("FLAIR", (4, 4, 4))):
            path = folder / f"sub-01_ses-{ses}_{name}.nii.gz"
            nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), str(path))
            files[name] = path
        runs.append(PetRun("01", ses, None, None, None, files["pet"], folder / "pet.json", METADATA,
                           files["T1w"], files["FLAIR"] if ses == "a" else None))
    return runs


def test_full_participant_graph(tmp_path):
    settings = Settings(bids_dir=tmp_path, output_dir=tmp_path / "out", analysis_level="participant",
                        work_dir=tmp_path / "work")
    workflow = init_tspo_wf(_runs(tmp_path), settings)
    nodes = _flat_nodes(workflow)
    for ses in ("a", "b"):
        prefix = f"tspo_bids_wf.sub_01_ses_{ses}_wf"
        assert f"{prefix}.ds_modelling_kinpar_files" in nodes
        assert f"{prefix}.ds_anat_mask_files" in nodes
    # only the session with a FLAIR co-registers one
    assert "tspo_bids_wf.sub_01_ses_a_wf.ds_anat_flair_t1w" in nodes
    assert "tspo_bids_wf.sub_01_ses_b_wf.ds_anat_flair_t1w" not in nodes


@pytest.mark.parametrize("method", ["gtm", "rbv"])
def test_pvc_graph(tmp_path, method):
    settings = Settings(bids_dir=tmp_path, output_dir=tmp_path / "out", analysis_level="participant",
                        work_dir=tmp_path / "work", pvc=method, pvc_psf_mm=(5.0, 5.0, 5.0))
    nodes = _flat_nodes(init_tspo_wf(_runs(tmp_path, sessions=("a",)), settings))
    prefix = "tspo_bids_wf.sub_01_ses_a_wf"
    assert f"{prefix}.ds_pvc_kinpar_files" in nodes and f"{prefix}.ds_pvc_tacs_file" in nodes
    assert (f"{prefix}.ds_pvc_map_files" in nodes) == (method == "rbv")
    # per-lesion statistics of the corrected maps (the maps exist with rbv only)
    assert (f"{prefix}.ds_lesions_pvc_table" in nodes) == (method == "rbv")
    assert any(n.endswith("partial_volume_correct") for n in nodes)
