"""Group table: every participant's kinpar rows, entity columns, participants.tsv joined."""

import logging

import pandas as pd
import pytest

from tspo_bids.errors import InputError
from tspo_bids.stats.collect import collect_kinpar, join_participants
from tspo_bids.workflows.group import report_coverage


def _kinpar(path, bpnd):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"region": ["wm", "cortexgm"], "BPND": bpnd, "DVR": [b + 1 for b in bpnd]}).to_csv(
        path, sep="\t", index=False)


def test_collect_and_join(tmp_path):
    _kinpar(tmp_path / "sub-01/ses-a/pet/sub-01_ses-a_model-SRTM_kinpar.tsv", [0.2, 0.1])
    _kinpar(tmp_path / "sub-01/ses-b/pet/sub-01_ses-b_model-SRTM_kinpar.tsv", [0.3, 0.15])
    _kinpar(tmp_path / "sub-02/pet/sub-02_model-SRTM_kinpar.tsv", [0.25, 0.12])
    table = collect_kinpar(tmp_path)
    assert list(table.columns[:3]) == ["participant_id", "session_id", "model"]
    assert len(table) == 6
    assert table.loc[(table.participant_id == "sub-01") & (table.session_id == "b") & (table.region == "wm"),
                     "BPND"].item() == 0.3
    assert table.loc[table.participant_id == "sub-02", "session_id"].isna().all()

    participants = pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "group": ["RRMS", "HC"]})
    joined = join_participants(table, participants)
    assert (joined.loc[joined.participant_id == "sub-01", "group"] == "RRMS").all()
    assert len(joined) == 6

    only_two = collect_kinpar(tmp_path, participant_label=["02"])
    assert set(only_two.participant_id) == {"sub-02"}


def test_collect_empty(tmp_path):
    assert collect_kinpar(tmp_path).empty


def test_per_lesion_tables_are_not_regions(tmp_path):
    _kinpar(tmp_path / "sub-01/pet/sub-01_model-SRTM_kinpar.tsv", [0.2, 0.1])
    lesions = tmp_path / "sub-01/pet/sub-01_model-SRTM2_desc-lesions_kinpar.tsv"
    pd.DataFrame({"lesion_id": [1], "volume_mm3": [100.0]}).to_csv(lesions, sep="\t", index=False)
    table = collect_kinpar(tmp_path)
    assert len(table) == 2 and "lesion_id" not in table.columns


@pytest.mark.parametrize("damage, message", [
    (lambda text: "", "empty; re-run the participant level"),
    (lambda text: text[:-12], "ends mid-line, so it was cut short"),
    (lambda text: text.replace("region", "regoin"), "no 'region' column"),
    (lambda text: text + 'x\t"unclosed\n', "not a readable TSV"),
])
def test_damaged_kinpar_table_is_named(tmp_path, damage, message):
    """A table cut short by a failed copy would put half rows ("Fal" for False) into the group table."""
    path = tmp_path / "sub-01/pet/sub-01_model-SRTM_kinpar.tsv"
    _kinpar(path, [0.2, 0.1])
    path.write_text(damage(path.read_text()))
    with pytest.raises(InputError) as caught:
        collect_kinpar(tmp_path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_group_level_warns_about_left_out_and_unlisted_participants(tmp_path, caplog):
    bids = tmp_path / "bids"
    for subject in ("01", "02", "03"):
        pet = bids / f"sub-{subject}/pet/sub-{subject}_pet.nii.gz"
        pet.parent.mkdir(parents=True)
        pet.write_bytes(b"")
    kinpar = pd.DataFrame({"participant_id": ["sub-02", "sub-03"], "region": ["wm", "wm"]})
    participants = pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "group": ["HC", "RRMS"]})
    (bids / "participants.tsv").write_text("participant_id\tgroup\nsub-01\tHC\nsub-02\tRRMS\n")
    with caplog.at_level(logging.INFO, logger="tspo_bids"):
        report_coverage(kinpar, participants, bids, tmp_path / "out", None, "HC")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "1 participant(s) with PET" in warnings[0] and "left out of the group level: sub-01 (controls: sub-01)" \
        in warnings[0]
    assert "participants.tsv: no row for sub-03" in warnings[1]
    assert any("per group: RRMS 1, n/a 1" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tspo_bids"):  # only participant 02 asked for: nothing left out
        report_coverage(kinpar.iloc[:1], participants, bids, tmp_path / "out", ["02"], "HC")
    assert not caplog.records


def test_unknown_group_values_are_named(tmp_path, caplog):
    bids = tmp_path / "bids"
    bids.mkdir()
    kinpar = pd.DataFrame({"participant_id": ["sub-01", "sub-02", "sub-03"], "region": ["wm"] * 3})
    participants = pd.DataFrame({"participant_id": ["sub-01", "sub-02", "sub-03"], "group": ["HC", "MSX", "RRMS"]})
    with caplog.at_level(logging.WARNING, logger="tspo_bids"):
        report_coverage(kinpar, participants, bids, tmp_path / "out", None, "HC")
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "group value(s) MSX are none of HC, CIS, RRMS, SPMS, PPMS; kept as given" in warning
