"""Reading entities back from derivative filenames."""

from tspo_bids.bids.names import parse_entities


def test_parse_entities_in_order_with_suffix():
    ent = parse_entities("/x/sub-01_ses-baseline_trc-PK11195_model-SRTM_kinpar.tsv")
    assert ent == {"sub": "01", "ses": "baseline", "trc": "PK11195", "model": "SRTM", "suffix": "kinpar"}
    assert list(ent) == ["sub", "ses", "trc", "model", "suffix"]


def test_parse_entities_double_extension():
    assert parse_entities("sub-02_label-wm_mask.nii.gz") == {"sub": "02", "label": "wm", "suffix": "mask"}
