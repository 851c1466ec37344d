"""Group table: every participant's kinpar rows, entity columns, participants.tsv joined."""

import pandas as pd

from tspo_bids.stats.collect import collect_kinpar, join_participants


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
