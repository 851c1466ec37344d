"""The participant graph with and without --ref-region svca: which SVCA nodes and derivatives it carries."""

from pathlib import Path

import nibabel as nib
import numpy as np

from tspo_bids.bids.discovery import PetRun
from tspo_bids.config import Settings
from tspo_bids.workflows.base import init_tspo_wf
from tspo_bids.workflows.participant import init_participant_wf

METADATA = {
    "TracerName": "[11C]-(R)-PK11195", "TracerRadionuclide": "C11", "Units": "kBq/mL",
    "FrameTimesStart": [0, 60, 180], "FrameDuration": [60, 120, 300], "InjectionStart": 0,
    "TimeZero": "10:00:00", "ImageDecayCorrected": True, "ImageDecayCorrectionTime": 0,
}
PREFIX = "tspo_bids_wf.sub_01_ses_a_trc_PK11195_wf"


def _run(tmp_path: Path, metadata: dict = METADATA) -> PetRun:
    folder = tmp_path / "sub-01" / "ses-a"
    folder.mkdir(parents=True)
    files = {}
    for name, shape in (("trc-PK11195_pet", (4, 4, 4, 3)), ("T1w", (4, 4, 4))):
        path = folder / f"sub-01_ses-a_{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), str(path))
        files[name] = path
    return PetRun("01", "a", "PK11195", None, None, files["trc-PK11195_pet"], folder / "pet.json", metadata,
                  files["T1w"], None)


def _nodes(tmp_path: Path, metadata: dict = METADATA, **options) -> set[str]:
    settings = Settings(bids_dir=tmp_path, output_dir=tmp_path / "out", analysis_level="participant",
                        work_dir=tmp_path / "work", **options)
    graph = init_tspo_wf([_run(tmp_path, metadata)], settings)._create_flat_graph()
    return {node.fullname for node in graph.nodes()}


def test_cerebellum_run_writes_class_curves_only(tmp_path):
    nodes = _nodes(tmp_path)
    assert f"{PREFIX}.svca_wf.svca_class_curves" in nodes and f"{PREFIX}.ds_svca_class_table" in nodes
    assert f"{PREFIX}.svca_wf.svca_reference" not in nodes
    assert f"{PREFIX}.ds_svca_reference_mask" not in nodes and f"{PREFIX}.ds_anat_reference_mask" in nodes


def test_svca_run_uses_the_svca_reference(tmp_path):
    classes = tmp_path / "classes.tsv"
    nodes = _nodes(tmp_path, ref_region="svca", svca_classes=classes)
    assert f"{PREFIX}.svca_wf.svca_reference" in nodes
    assert f"{PREFIX}.ds_svca_reference_mask" in nodes and f"{PREFIX}.ds_svca_gm_fraction" in nodes
    assert f"{PREFIX}.ds_anat_reference_mask" not in nodes
    settings = Settings(bids_dir=tmp_path / "b", output_dir=tmp_path / "out", analysis_level="participant",
                        work_dir=tmp_path / "work", ref_region="svca", svca_classes=classes)
    workflow = init_participant_wf(_run(tmp_path / "b"), settings)
    svca_wf, modelling_wf = workflow.get_node("svca_wf"), workflow.get_node("modelling_wf")
    edges = workflow._graph.get_edge_data(svca_wf, modelling_wf)["connect"]
    assert ("outputnode.mask_files", "inputnode.mask_files") in edges
    assert ("outputnode.region_names", "inputnode.region_names") in edges
    assert workflow._graph.get_edge_data(workflow.get_node("anat_wf"), modelling_wf) is None
    assert modelling_wf.get_node("regional_models").inputs.reference_region == "svca"
    assert workflow.get_node("maps_wf").get_node("parametric_maps").inputs.reference_region == "svca"


def test_svca_run_with_pvc_corrects_the_svca_region(tmp_path):
    """--pvc with --ref-region svca: the GTM gets the regions with the svca mask and models against it."""
    classes = tmp_path / "classes.tsv"
    settings = Settings(bids_dir=tmp_path / "b", output_dir=tmp_path / "out", analysis_level="participant",
                        work_dir=tmp_path / "work", ref_region="svca", svca_classes=classes, pvc="rbv",
                        pvc_psf_mm=(5.0, 5.0, 5.0))
    workflow = init_participant_wf(_run(tmp_path / "b"), settings)
    svca_wf, pvc_wf = workflow.get_node("svca_wf"), workflow.get_node("pvc_wf")
    edges = workflow._graph.get_edge_data(svca_wf, pvc_wf)["connect"]
    assert ("outputnode.mask_files", "inputnode.mask_files") in edges
    assert ("outputnode.region_names", "inputnode.region_names") in edges
    anat_edges = workflow._graph.get_edge_data(workflow.get_node("anat_wf"), pvc_wf)["connect"]
    assert not any(target in ("inputnode.mask_files", "inputnode.region_names") for _, target in anat_edges)
    assert pvc_wf.get_node("pvc_regional_models").inputs.reference_region == "svca"
    assert pvc_wf.get_node("rbv_parametric_maps").inputs.reference_region == "svca"


def test_no_class_curves_without_an_early_frame(tmp_path, caplog):
    """A schedule whose first frame ends after 1.5 min cannot give the blood class: the session writes no class
    curves (was: the whole participant run failed on that node, SVCA asked for or not)."""
    late = {**METADATA, "FrameTimesStart": [0, 120, 300], "FrameDuration": [120, 180, 300]}
    with caplog.at_level("INFO", logger="tspo_bids"):
        nodes = _nodes(tmp_path, late)
    assert f"{PREFIX}.svca_wf.svca_class_curves" not in nodes and f"{PREFIX}.ds_svca_class_table" not in nodes
    assert "no frame ends by 1.5 min" in caplog.text
    assert f"{PREFIX}.ds_modelling_kinpar_files" in nodes and f"{PREFIX}.ds_anat_reference_mask" in nodes
