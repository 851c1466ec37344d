"""Discovery of PET runs, sidecar checks and participants.tsv on tiny generated datasets."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bids_factory import edit_json, make_bids, pet_sidecar

from tspo_bids.bids.discovery import (
    PetRun,
    discover_pet_runs,
    read_participants,
    read_sidecar_metadata,
    sidecar_problems,
    unmatched_lesion_masks,
)
from tspo_bids.errors import InputError

#: bids-examples whose FrameDuration holds frame end times (an error in those examples).
FRAME_END_TIMES_AS_DURATIONS = {"pet001", "pet003", "pet004"}
VALIDATION = Path(__file__).resolve().parents[3] / "shared" / "validation" / "bids-examples"


def test_runs_with_sessions_and_anatomy(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"], sessions=["baseline", "followup"])
    runs = discover_pet_runs(root)
    assert [r.label for r in runs] == ["sub-01_ses-baseline", "sub-01_ses-followup",
                                       "sub-02_ses-baseline", "sub-02_ses-followup"]
    run = runs[1]
    assert isinstance(run, PetRun)
    assert run.entities == {"sub": "01", "ses": "followup"}
    assert run.pet_file.name == "sub-01_ses-followup_pet.nii.gz"
    assert run.sidecar_file.name == "sub-01_ses-followup_pet.json"
    assert run.t1w_file.name == "sub-01_ses-followup_T1w.nii.gz"
    assert run.flair_file.name == "sub-01_ses-followup_FLAIR.nii.gz"
    assert run.metadata["FrameDuration"] == [60.0, 60.0, 60.0]
    assert run.tracer is None and run.reconstruction is None and run.run is None


def test_selection_by_labels_strips_prefixes(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02", "03"], sessions=["a", "b"])
    runs = discover_pet_runs(root, participant_label=["sub-02", "03"], session_label=["ses-b"])
    assert [r.label for r in runs] == ["sub-02_ses-b", "sub-03_ses-b"]


def test_tracer_entity_and_filter(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01"], tracer_entity="PK11195")
    runs = discover_pet_runs(root, tracer_label=["trc-PK11195"])
    assert runs[0].label == "sub-01_trc-PK11195" and runs[0].tracer == "PK11195"
    with pytest.raises(InputError, match=r"no PET images .* tracer\(s\) PBR28"):
        discover_pet_runs(root, tracer_label=["PBR28"])


def test_without_flair(tmp_path):
    root = make_bids(tmp_path / "ds", flair=False)
    assert discover_pet_runs(root)[0].flair_file is None


def test_subject_level_t1w_fallback(tmp_path, caplog):
    root = make_bids(tmp_path / "ds", sessions=["a", "b"])
    (root / "sub-01/ses-b/anat/sub-01_ses-b_T1w.nii.gz").unlink()
    caplog.set_level("INFO", logger="tspo_bids")
    # ses-a's T1w is the subject's only other one: it is used, with a log line
    runs = discover_pet_runs(root, session_label=["b"])
    assert runs[0].t1w_file.name == "sub-01_ses-a_T1w.nii.gz"
    assert "using the subject's only T1w" in caplog.text


def test_several_t1w_ask_for_a_filter_then_filter_works(tmp_path):
    root = make_bids(tmp_path / "ds")
    anat = root / "sub-01/anat"
    shutil.copy(anat / "sub-01_T1w.nii.gz", anat / "sub-01_acq-mprage_T1w.nii.gz")
    with pytest.raises(InputError, match="2 T1w images in sub-01/anat"):
        discover_pet_runs(root)
    runs = discover_pet_runs(root, bids_filter={"t1w": {"acquisition": "mprage"}})
    assert runs[0].t1w_file.name == "sub-01_acq-mprage_T1w.nii.gz"
    runs = discover_pet_runs(root, bids_filter={"t1w": {"acquisition": None}})
    assert runs[0].t1w_file.name == "sub-01_T1w.nii.gz"


def test_bad_filter_key(tmp_path):
    root = make_bids(tmp_path / "ds")
    with pytest.raises(InputError, match="unknown key.*bold"):
        discover_pet_runs(root, bids_filter={"bold": {}})


def test_output_inside_bids_dir_is_not_indexed(tmp_path):
    root = make_bids(tmp_path / "ds")
    out = root / "results"
    # a derivative PET that pybids would otherwise read as raw data
    shutil.copytree(root / "sub-01", out / "sub-01")
    assert len(discover_pet_runs(root, ignore=[out])) == 1


def test_sidecar_inheritance(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"])
    top = pet_sidecar(3)
    (root / "pet.json").write_text(json.dumps(top))  # dataset-level sidecar
    own = root / "sub-01/pet/sub-01_pet.json"
    own.write_text(json.dumps({"InjectedRadioactivity": 123.0}))
    sidecar, metadata, problems = read_sidecar_metadata(root / "sub-01/pet/sub-01_pet.nii.gz", root)
    assert problems == [] and sidecar == own
    assert metadata["InjectedRadioactivity"] == 123.0  # the most specific file wins
    assert metadata["FrameDuration"] == top["FrameDuration"]  # inherited
    runs = discover_pet_runs(root)
    assert runs[0].metadata["InjectedRadioactivity"] == 123.0


def test_all_problems_reported_together(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02", "03"])
    edit_json(root / "sub-01/pet/sub-01_pet.json", FrameDuration=None)
    edit_json(root / "sub-02/pet/sub-02_pet.json", FrameTimesStart=[0, 60], FrameDuration=[60, 60])
    (root / "sub-03/anat/sub-03_T1w.nii.gz").unlink()
    with pytest.raises(InputError) as caught:
        discover_pet_runs(root)
    message = str(caught.value)
    assert "\n" not in message
    parts = message.split("; ")
    assert any(p.startswith(str(root / "sub-01/pet/sub-01_pet.json")) and "FrameDuration" in p for p in parts)
    assert any(p.startswith(str(root / "sub-02/pet/sub-02_pet.json")) and "3 volumes" in p for p in parts)
    assert any(p.startswith(str(root / "sub-03/pet/sub-03_pet.nii.gz")) and "no T1w" in p for p in parts)


def test_unreadable_image_and_bad_json(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"])
    (root / "sub-01/pet/sub-01_pet.nii.gz").write_bytes(b"not a nifti")
    (root / "sub-02/pet/sub-02_pet.json").write_text("{oops")
    with pytest.raises(InputError) as caught:
        discover_pet_runs(root)
    message = str(caught.value)
    assert f"{root / 'sub-01/pet/sub-01_pet.nii.gz'}: cannot read the NIfTI header" in message
    assert f"{root / 'sub-02/pet/sub-02_pet.json'}: not valid JSON" in message


def test_missing_sidecar(tmp_path):
    root = make_bids(tmp_path / "ds")
    (root / "sub-01/pet/sub-01_pet.json").unlink()
    with pytest.raises(InputError, match="sub-01_pet.nii.gz: no _pet.json sidecar"):
        discover_pet_runs(root)


def test_3d_pet_counts_one_volume_and_is_refused_as_static(tmp_path):
    root = make_bids(tmp_path / "ds", n_frames=1)
    pet = root / "sub-01/pet/sub-01_pet.nii.gz"
    nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_filename(pet)
    with pytest.raises(InputError) as caught:
        discover_pet_runs(root)
    assert str(caught.value) == (f"{pet}: 1 frame(s); tspo-bids models dynamic PET and needs at least 3 (static "
                                 "SUVR-only scans are not supported)")
    edit_json(root / "sub-01/pet/sub-01_pet.json", FrameTimesStart=[0, 60], FrameDuration=[60, 60])
    with pytest.raises(InputError, match="1 volumes"):
        discover_pet_runs(root)


def test_sidecar_with_a_byte_order_mark_reads_and_a_broken_one_is_one_problem(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"])
    bom = root / "sub-01/pet/sub-01_pet.json"
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes())  # as Windows tools write UTF-8
    broken = root / "sub-02/pet/sub-02_pet.json"
    broken.write_text(broken.read_text()[:-5])
    with pytest.raises(InputError) as caught:
        discover_pet_runs(root)
    message = str(caught.value)
    assert str(bom) not in message
    assert message.startswith(f"{broken}: not valid JSON") and message.count(str(broken)) == 1, message
    broken.unlink()
    (root / "sub-02/pet/sub-02_pet.nii.gz").unlink()
    assert [run.subject for run in discover_pet_runs(root)] == ["01"]


def test_tracer_label_and_sidecar_disagreeing_is_logged(tmp_path, caplog):
    root = make_bids(tmp_path / "ds", tracer_entity="PK11195")
    for sidecar in root.rglob("*_pet.json"):
        edit_json(sidecar, TracerName="[11C]PBR28")
    with caplog.at_level(logging.WARNING, logger="tspo_bids"):
        discover_pet_runs(root)
    assert any("trc-PK11195 in the file name but TracerName '[11C]PBR28'" in r.getMessage() for r in caplog.records)


def test_sidecar_problems_errors_and_warnings():
    errors, warnings = sidecar_problems(pet_sidecar(3), 3)
    assert errors == [] and warnings == []
    errors, warnings = sidecar_problems(pet_sidecar(3, Units=None, TracerName=None, Manufacturer=None,
                                                    ReconMethodName=None), 3)
    assert errors == ["TracerName missing", "Units missing"]
    assert warnings == ["Manufacturer missing (required by BIDS)", "ReconMethodName missing (required by BIDS)"]
    errors, _ = sidecar_problems(pet_sidecar(3, TracerRadionuclide=None), 3)
    assert sum("TracerRadionuclide" in e for e in errors) == 1  # not reported twice


def test_warning_for_missing_recommended_field(tmp_path, caplog):
    root = make_bids(tmp_path / "ds")
    edit_json(root / "sub-01/pet/sub-01_pet.json", AttenuationCorrection=None)
    caplog.set_level("WARNING", logger="tspo_bids")
    assert len(discover_pet_runs(root)) == 1
    assert "sub-01_pet.json: AttenuationCorrection missing" in caplog.text


# ----------------------------------------------------------------------------- bids-examples


@pytest.mark.validation
@pytest.mark.skipif(not VALIDATION.is_dir(), reason="../shared/validation/bids-examples is absent")
@pytest.mark.parametrize("dataset", ["pet001", "pet002", "pet003", "pet004", "pet005", "pet006"])
def test_bids_examples_sidecars(dataset):
    root = VALIDATION / dataset
    pets = sorted(root.glob("sub-*/**/pet/*_pet.nii*"))
    assert pets
    for pet in pets:
        sidecar, metadata, problems = read_sidecar_metadata(pet, root)
        assert problems == [] and sidecar is not None
        assert sidecar.name == pet.name.split(".")[0] + ".json"
        n_frames = len(metadata["FrameDuration"])
        errors, _ = sidecar_problems(metadata, n_frames)
        if dataset in FRAME_END_TIMES_AS_DURATIONS:
            # these examples list frame END times under FrameDuration: every later frame overlaps the next
            assert errors and all(e.startswith("frames ") and e.endswith(" overlap") for e in errors), errors
            assert len(errors) == n_frames - 2  # frames 1-2 happen to fit (start 0, "duration" 10, next 10)
        else:
            assert errors == [], (pet, errors)
        bad, _ = sidecar_problems(metadata, n_frames + 1)
        assert any(f"image has {n_frames + 1} volumes" in e for e in bad)


@pytest.mark.validation
@pytest.mark.skipif(not VALIDATION.is_dir(), reason="../shared/validation/bids-examples is absent")
def test_bids_examples_discovery_reports_placeholder_images():
    root = VALIDATION / "pet002"
    with pytest.raises(InputError) as caught:
        discover_pet_runs(root)
    message = str(caught.value)
    # the four PET and four T1w images are empty placeholders: each is named once, nothing else is wrong
    assert message.count("cannot read the NIfTI header") == 8
    for session in ("baseline", "rescan"):
        for subject in ("01", "02"):
            assert f"sub-{subject}_ses-{session}_pet.nii.gz: cannot read the NIfTI header" in message
            assert f"sub-{subject}_ses-{session}_T1w.nii: cannot read the NIfTI header" in message


# ----------------------------------------------------------------------------- errors


def test_not_a_bids_dir(tmp_path):
    with pytest.raises(InputError, match="not a BIDS dataset"):
        discover_pet_runs(tmp_path)


def test_unknown_participant(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"])
    with pytest.raises(InputError, match=r"participant label\(s\) 07 not found \(available: 01, 02\)"):
        discover_pet_runs(root, participant_label=["01", "07"])


def test_no_pet(tmp_path):
    root = make_bids(tmp_path / "ds")
    shutil.rmtree(root / "sub-01/pet")
    with pytest.raises(InputError, match="no PET images"):
        discover_pet_runs(root)


# ----------------------------------------------------------------------------- participants.tsv


def _participants(tmp_path: Path, text: str) -> Path:
    root = make_bids(tmp_path / "ds", subjects=["01"])
    (root / "participants.tsv").write_text(text)
    return root


def test_participants_normalised(tmp_path, caplog):
    root = _participants(tmp_path, "participant_id\tgroup\tage\tedss\trs6971\tsite\n"
                                   "sub-01\tHC\t34\tn/a\tCC\tTurku\n02\tRRMS \t41\t2.5\tC/T\tNA\n"
                                   "sub-03\tSPMS\t55\t6\tTT\tTurku\n")
    caplog.set_level("INFO", logger="tspo_bids")
    table = read_participants(root)
    assert list(table["participant_id"]) == ["sub-01", "sub-02", "sub-03"]
    assert list(table["tspo_genotype"]) == ["HAB", "MAB", "LAB"]
    assert list(table["group"]) == ["HC", "RRMS", "SPMS"]
    assert list(table["site"]) == ["Turku", "NA", "Turku"]  # only n/a is missing
    assert table["age"].tolist() == [34, 41, 55]
    assert np.isnan(table["edss"][0]) and table["edss"][2] == 6.0
    assert "no sex column" in caplog.text and "no progressed column" in caplog.text


def test_participants_genotype_given_and_conflicts(tmp_path):
    root = _participants(tmp_path, "participant_id\ttspo_genotype\trs6971\nsub-01\tmab\tn/a\nsub-02\tn/a\tTT\n")
    assert list(read_participants(root)["tspo_genotype"]) == ["MAB", "LAB"]
    root = _participants(tmp_path / "b", "participant_id\ttspo_genotype\trs6971\nsub-01\tHAB\tTT\n")
    with pytest.raises(InputError, match="disagrees with rs6971 for sub-01"):
        read_participants(root)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("participant_id\tage\nsub-01\tforty\n", r"age must be numeric.*sub-01='forty'"),
        ("participant_id\trs6971\nsub-01\tCG\n", "rs6971 must be CC, CT or TT"),
        ("participant_id\ttspo_genotype\nsub-01\tHIGH\n", "tspo_genotype must be HAB, MAB or LAB"),
        ("subject\tage\n01\t3\n", "no participant_id column"),
        ("participant_id\nsub-01\n01\n", "participant_id repeated: sub-01"),
    ],
)
def test_participants_errors(tmp_path, text, match):
    with pytest.raises(InputError, match=match) as caught:
        read_participants(_participants(tmp_path, text))
    assert "participants.tsv" in str(caught.value)


def test_participants_missing_file(tmp_path, caplog):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"])
    (root / "participants.tsv").unlink()
    table = read_participants(root)
    assert list(table.columns) == ["participant_id"]
    assert list(table["participant_id"]) == ["sub-01", "sub-02"]
    assert "participants.tsv: not found" in caplog.text
    assert isinstance(table, pd.DataFrame)


# ----------------------------------------------------------------------------- lesion masks


def _mask(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)).to_filename(path)
    return path


def test_lesion_masks_from_derivatives(tmp_path, caplog):
    root = make_bids(tmp_path / "ds", subjects=["01", "02", "03"], sessions=["a", "b"])
    lesions = tmp_path / "lesions"
    own = _mask(lesions / "sub-01/ses-a/anat/sub-01_ses-a_space-FLAIR_label-lesion_mask.nii.gz")
    subject_level = _mask(lesions / "sub-02/anat/sub-02_space-T1w_label-lesion_mask.nii.gz")
    caplog.set_level("WARNING", logger="tspo_bids")
    runs = {r.label: r for r in discover_pet_runs(root, derivatives={"lesions": lesions, "freesurfer": tmp_path})}
    assert (runs["sub-01_ses-a"].lesion_mask_file, runs["sub-01_ses-a"].lesion_mask_space) == (own, "FLAIR")
    assert runs["sub-01_ses-b"].lesion_mask_file is None
    assert runs["sub-02_ses-b"].lesion_mask_file == subject_level  # subject-level mask serves each session
    assert runs["sub-02_ses-a"].lesion_mask_space == "T1w"
    assert runs["sub-03_ses-a"].lesion_mask_file is None
    assert "sub-03_ses-a_pet.nii.gz: no lesion mask" in caplog.text
    assert "-d freesurfer=" in caplog.text  # unknown derivative names are logged
    assert discover_pet_runs(root)[0].lesion_mask_file is None  # without -d lesions


def test_lesion_mask_problems(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"], flair=False)
    lesions = tmp_path / "lesions"
    _mask(lesions / "sub-01/anat/sub-01_space-T1w_label-lesion_mask.nii.gz")
    _mask(lesions / "sub-01/anat/sub-01_space-FLAIR_label-lesion_mask.nii.gz")
    flair_space = _mask(lesions / "sub-02/anat/sub-02_space-FLAIR_label-lesion_mask.nii.gz")
    with pytest.raises(InputError) as caught:
        discover_pet_runs(root, derivatives={"lesions": lesions})
    message = str(caught.value)
    assert "several lesion masks for sub-01" in message
    assert f"{flair_space}: a FLAIR-space lesion mask needs the session's FLAIR" in message



def test_mask_of_unknown_participant_is_reported_and_the_run_continues(tmp_path, caplog):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"], sessions=["a"])
    lesions = tmp_path / "lesions"
    own = _mask(lesions / "sub-01/ses-a/anat/sub-01_ses-a_space-T1w_label-lesion_mask.nii.gz")
    stranger = _mask(lesions / "sub-99/anat/sub-99_space-T1w_label-lesion_mask.nii.gz")
    caplog.set_level("WARNING", logger="tspo_bids")
    runs = discover_pet_runs(root, derivatives={"lesions": lesions})
    assert [r.label for r in runs] == ["sub-01_ses-a", "sub-02_ses-a"]
    assert runs[0].lesion_mask_file == own
    warnings = [r.getMessage() for r in caplog.records if str(stranger) in r.getMessage()]
    assert len(warnings) == 1, caplog.text  # once per file
    assert "\n" not in warnings[0]
    assert "sub-99" in warnings[0] and "no such participant" in warnings[0] and "ignored" in warnings[0]


def test_unmatched_lesion_masks_sessions_and_names(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"], sessions=["a"])
    lesions = tmp_path / "lesions"
    good = [_mask(lesions / "sub-01/ses-a/anat/sub-01_ses-a_space-FLAIR_label-lesion_mask.nii.gz"),
            _mask(lesions / "sub-02/anat/sub-02_space-T1w_label-lesion_mask.nii")]  # subject level, .nii
    no_session = _mask(lesions / "sub-01/ses-c/anat/sub-01_ses-c_space-T1w_label-lesion_mask.nii.gz")
    no_participant = _mask(lesions / "sub-99/ses-a/anat/sub-99_ses-a_space-T1w_label-lesion_mask.nii.gz")
    at_root = _mask(lesions / "sub-98_space-T1w_label-lesion_mask.nii.gz")
    misplaced = _mask(lesions / "sub-02/sub-02_space-T1w_label-lesion_mask.nii.gz")
    wrong_space = _mask(lesions / "sub-02/anat/sub-02_space-MNI152NLin2009cAsym_label-lesion_mask.nii.gz")
    wrong_session_name = _mask(lesions / "sub-01/ses-a/anat/sub-01_space-T1w_label-lesion_mask.nii.gz")
    (lesions / "sub-02/anat/sub-02_space-T1w_label-lesion_mask.json").write_text("{}")  # sidecars are fine
    messages = unmatched_lesion_masks(lesions, root)
    by_file = {m.split(": ", 1)[0]: m.split(": ", 1)[1] for m in messages}
    assert len(messages) == len(by_file) == 6, messages
    assert not any(str(path) in by_file for path in good)
    assert "sub-01 session ses-c" in by_file[str(no_session)] and "no such session" in by_file[str(no_session)]
    assert "no such participant" in by_file[str(no_participant)]
    assert "sub-98" in by_file[str(at_root)] and "no such participant" in by_file[str(at_root)]
    for path in (misplaced, wrong_space):
        assert "expected sub-02/anat/sub-02_space-<T1w|FLAIR>_label-lesion_mask.nii.gz" in by_file[str(path)]
    assert "expected sub-01/ses-a/anat/sub-01_ses-a_space-" in by_file[str(wrong_session_name)]
    assert all(m.endswith("; ignored") and "\n" not in m for m in messages)


def test_lesions_dataset_must_exist(tmp_path):
    root = make_bids(tmp_path / "ds")
    with pytest.raises(InputError, match=r"-d lesions=.*missing: not a directory"):
        discover_pet_runs(root, derivatives={"lesions": tmp_path / "missing"})

def test_filter_can_pick_one_session_t1w_for_all(tmp_path):
    root = make_bids(tmp_path / "ds", sessions=["a", "b"])
    runs = discover_pet_runs(root, bids_filter={"t1w": {"session": "a"}})
    assert [r.t1w_file.name for r in runs] == ["sub-01_ses-a_T1w.nii.gz", "sub-01_ses-a_T1w.nii.gz"]
    assert [r.flair_file.name for r in runs] == ["sub-01_ses-a_FLAIR.nii.gz", "sub-01_ses-b_FLAIR.nii.gz"]


def test_one_participant_ignores_problems_of_others(tmp_path):
    root = make_bids(tmp_path / "ds", subjects=["01", "02"])
    edit_json(root / "sub-02/pet/sub-02_pet.json", FrameDuration=None)
    assert [r.label for r in discover_pet_runs(root, participant_label=["01"])] == ["sub-01"]
