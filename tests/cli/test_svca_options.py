"""SVCA options: the class table path from participant to group level and back, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bids_factory import make_bids

from tspo_bids.cli.parser import parse_args
from tspo_bids.cli.run import build_settings, main
from tspo_bids.interfaces.svca import CLASS_TABLE_COLUMNS, read_class_table, write_class_table

FRAME_START = np.array([0.0, 60.0, 180.0])
FRAME_END = np.array([60.0, 180.0, 480.0])


@pytest.fixture()
def dataset(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_bids(tmp_path / "bids", subjects=["01", "02", "03"], sessions=["baseline"])


def _set_groups(dataset: Path, groups: dict[str, str]) -> None:
    rows = ["participant_id\tage\tsex\tgroup"] + [f"sub-{s}\t40\tF\t{g}" for s, g in groups.items()]
    (dataset / "participants.tsv").write_text("\n".join(rows) + "\n")


def _class_table(path: Path, curves: np.ndarray, start=FRAME_START, end=FRAME_END) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_class_table(curves, start, end, path)


def _participant_results(out: Path, subject: str, curves: np.ndarray, start=FRAME_START, end=FRAME_END) -> None:
    """What a participant run leaves for the group level: a kinpar table and the session's class curves."""
    pet = out / f"sub-{subject}" / "ses-baseline" / "pet"
    pet.mkdir(parents=True, exist_ok=True)
    prefix = f"sub-{subject}_ses-baseline_trc-PK11195"
    pd.DataFrame({"region": ["wholebrain"], "BPND": [0.1], "DVR": [1.1], "R1": [0.9], "k2": [0.06]}).to_csv(
        pet / f"{prefix}_model-SRTM_kinpar.tsv", sep="\t", index=False)
    _class_table(pet / f"{prefix}_seg-svca_desc-normalised_tacs.tsv", curves, start, end)
    (out / "dataset_description.json").write_text('{"Name": "tspo-bids", "BIDSVersion": "1.10.0", '
                                                 '"DatasetType": "derivative"}')


def _one_error_line(capsys) -> str:
    """The single error line (other levels may log warnings first, e.g. lesion phenotypes without controls)."""
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert errors[0].startswith("tspo-bids: error: ")
    return errors[0]


def test_svca_without_class_table_is_one_line(dataset, tmp_path, capsys):
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation", "--ref-region", "svca"])
    line = _one_error_line(capsys)
    assert code == 1
    assert "--ref-region svca: no SVCA class table" in line and "--build-svca-classes" in line
    # the test dataset has no trc- entity: the default table is OUTPUT_DIR/group/desc-svca_classes.tsv
    assert f"no SVCA class table {tmp_path / 'out' / 'group' / 'desc-svca_classes.tsv'};" in line
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("options, message", [
    (["--svca-classes", "classes.tsv"], "given without --ref-region svca"),
    (["--ref-region", "svca", "--svca-classes", "missing.tsv"], "missing.tsv: SVCA class table not found"),
    (["--build-svca-classes"], "--build-svca-classes: a group-level option"),
])
def test_bad_svca_options(dataset, tmp_path, capsys, options, message):
    _class_table(tmp_path / "classes.tsv", np.ones((3, 4)))
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation", *options])
    assert code == 1 and message in _one_error_line(capsys)
    assert not (tmp_path / "work").exists()


def test_malformed_class_table(dataset, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("frame_start\tframe_end\tgm\n0\t60\t1\n60\t120\t2\n")
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation", "--ref-region", "svca",
                 "--svca-classes", str(bad)])
    assert code == 1 and "lacks column(s) wm, highbinding, blood" in _one_error_line(capsys)


def test_class_table_round_trip_and_settings(dataset, tmp_path):
    curves = np.arange(12, dtype=float).reshape(3, 4) / 7.0
    path = _class_table(tmp_path / "classes.tsv", curves)
    table = read_class_table(path)
    assert list(table.columns) == list(CLASS_TABLE_COLUMNS)
    np.testing.assert_allclose(table[["gm", "wm", "highbinding", "blood"]].to_numpy(), curves, rtol=1e-7)
    settings = build_settings(parse_args([str(dataset), str(tmp_path / "out"), "participant", "--ref-region", "svca",
                                          "--svca-classes", str(path)]))
    assert settings.ref_region == "svca" and settings.svca_classes == path.resolve()


def test_group_builds_classes_from_controls_only(dataset, tmp_path):
    _set_groups(dataset, {"01": "HC", "02": "RRMS", "03": "HC"})
    out = tmp_path / "out"
    rng = np.random.default_rng(4)
    curves = {s: rng.normal(size=(3, 4)) for s in ("01", "02", "03")}
    for subject, values in curves.items():
        _participant_results(out, subject, values)
    assert main([str(dataset), str(out), "group", "--build-svca-classes"]) == 0
    built = read_class_table(out / "group" / "trc-PK11195_desc-svca_classes.tsv")
    expected = (curves["01"] + curves["03"]) / 2  # the patient's curves are not averaged in
    np.testing.assert_allclose(built[["gm", "wm", "highbinding", "blood"]].to_numpy(), expected, atol=1e-7)
    np.testing.assert_array_equal(built["frame_end"], FRAME_END)
    assert (out / "group" / "trc-PK11195_desc-svca_classes.json").is_file()


def test_group_without_controls_is_one_line_and_the_rest_runs(dataset, tmp_path, capsys):
    _set_groups(dataset, {"01": "RRMS", "02": "RRMS", "03": "SPMS"})
    out = tmp_path / "out"
    for subject in ("01", "02", "03"):
        _participant_results(out, subject, np.ones((3, 4)))
    code = main([str(dataset), str(out), "group", "--build-svca-classes"])
    line = _one_error_line(capsys)
    assert code == 1
    assert "--build-svca-classes: no healthy control (participants.tsv group 'HC')" in line
    assert (out / "group" / "group_kinpar.tsv").is_file()  # the group table is still written
    assert not list((out / "group").glob("*svca*"))


def test_group_controls_with_different_frames(dataset, tmp_path, capsys):
    _set_groups(dataset, {"01": "HC", "02": "HC", "03": "HC"})
    out = tmp_path / "out"
    _participant_results(out, "01", np.ones((3, 4)))
    _participant_results(out, "02", np.ones((3, 4)), end=FRAME_END + 30.0)
    code = main([str(dataset), str(out), "group", "--build-svca-classes"])
    assert code == 1 and "another frame schedule" in _one_error_line(capsys)


@pytest.mark.parametrize("existing, options", [
    ("cerebellumgm", ["--ref-region", "svca", "--svca-classes", "classes.tsv"]),
    ("svca", []),
])
def test_results_of_another_reference_region_are_not_overwritten(dataset, tmp_path, capsys, existing, options):
    """The documented SVCA path writes the svca run to its own OUTPUT_DIR; running it into one that holds
    results of another reference region (names do not carry it) is one line, before any processing."""
    _class_table(tmp_path / "classes.tsv", np.ones((3, 4)))
    pet = tmp_path / "out" / "sub-01" / "ses-baseline" / "pet"
    pet.mkdir(parents=True)
    sidecar = pet / "sub-01_ses-baseline_trc-PK11195_model-SRTM_kinpar.json"
    sidecar.write_text(f'{{"ReferenceRegion": "{existing}"}}')
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation", *options])
    line = _one_error_line(capsys)
    assert code == 1 and str(sidecar) in line and f"reference region {existing!r}" in line
    assert "another OUTPUT_DIR" in line
    assert not (tmp_path / "work").exists()
