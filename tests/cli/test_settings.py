"""Settings and the tracer preset table (tspo_bids.config)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tspo_bids.config import TRACER_PRESETS, Settings, normalise_tracer_name, resolve_tracer, tracer_key_from_name
from tspo_bids.errors import InputError


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("[11C]PK11195", "pk11195"), ("PK11195", "pk11195"), ("[11C]-(R)-PK11195", "pk11195"),
        ("(R)-[11C]PK11195", "pk11195"), ("[11C](R)-PK-11195", "pk11195"), ("11C-PK11195", "pk11195"),
        ("[11C]PBR28", "pbr28"), ("[11C]-PBR28", "pbr28"), ("PBR28", "pbr28"),
        ("[18F]GE-180", "ge180"), ("[18F]GE180", "ge180"), ("[18F]flutriciclamide", "ge180"),
        ("[18F]PBR06", "pbr06"), ("[18F]FEPBR06", "pbr06"),
        ("[11C]raclopride", None), ("CIMBI-36", None), ("", None),
    ],
)
def test_tracer_names(name, key):
    assert tracer_key_from_name(name) == key


def test_normalise_keeps_letters_and_digits():
    assert normalise_tracer_name(" [18F] DPA-714 ") == "dpa714"


def test_presets_table():
    assert set(TRACER_PRESETS) == {"pk11195", "pbr28", "ge180", "pbr06"}
    assert TRACER_PRESETS["pk11195"].suvr_window_min == (40.0, 60.0)
    assert TRACER_PRESETS["pk11195"].t_star_min == 20.0
    assert not TRACER_PRESETS["pk11195"].needs_genotype
    for key in ("pbr28", "ge180", "pbr06"):
        assert TRACER_PRESETS[key].suvr_window_min == (60.0, 90.0) and TRACER_PRESETS[key].needs_genotype
    with pytest.raises(TypeError):
        TRACER_PRESETS["x"] = TRACER_PRESETS["pbr28"]  # read-only


def test_resolve_tracer():
    assert resolve_tracer("[11C]PBR28", None, source="a.json").key == "pbr28"
    assert resolve_tracer("[11C]raclopride", "pk11195", source="a.json").key == "pk11195"  # --tracer wins
    with pytest.raises(InputError, match=r"a.json: TracerName '\[11C\]raclopride' is not a known TSPO tracer"):
        resolve_tracer("[11C]raclopride", None, source="a.json")
    with pytest.raises(InputError, match="a.json: TracerName missing"):
        resolve_tracer(None, None, source="a.json")


def _settings(**changes) -> Settings:
    return Settings(bids_dir=Path("/b"), output_dir=Path("/o"), analysis_level="participant",
                    work_dir=Path("/w"), **changes)


def test_settings_frozen_and_defaults():
    settings = _settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.nprocs = 3  # type: ignore[misc]
    assert settings.models == ("SRTM",) and settings.plugin["plugin"] == "Linear"


def test_for_tracer_fills_from_preset_and_keeps_options():
    filled = _settings(models=("SRTM", "SUVR")).for_tracer("[11C]PBR28", source="x.json")
    assert (filled.tracer, filled.suvr_window_min, filled.t_star_min) == ("pbr28", (60.0, 90.0), 30.0)
    kept = _settings(t_star_min=15.0, suvr_window_min=(30.0, 50.0)).for_tracer("PK11195", source="x.json")
    assert (kept.tracer, kept.suvr_window_min, kept.t_star_min) == ("pk11195", (30.0, 50.0), 15.0)


def test_for_tracer_unknown():
    plain = _settings()
    assert plain.for_tracer("[11C]raclopride", source="x.json") is plain  # SRTM needs no preset
    with pytest.raises(InputError, match="x.json"):
        _settings(models=("Logan",)).for_tracer("[11C]raclopride", source="x.json")
    assert _settings(models=("Logan",), t_star_min=20.0).for_tracer("raclopride", source="x").t_star_min == 20.0
    with pytest.raises(InputError, match="--suvr-window|--tracer"):
        _settings(models=("SUVR",)).for_tracer(None, source="x.json")


def test_settings_pickle_and_deepcopy_and_stay_read_only(tmp_path):
    """Nipype pickles and deep-copies node inputs: Settings must survive both."""
    import copy
    import pickle

    from tspo_bids.cli.parser import parse_args
    from tspo_bids.cli.run import build_settings

    lesions = tmp_path / "lesions"
    lesions.mkdir()
    bids_filter = tmp_path / "f.json"
    bids_filter.write_text('{"t1w": {"acquisition": "mprage"}}')
    settings = build_settings(parse_args(["/b", "/o", "participant", "-d", f"lesions={lesions}",
                                          "--bids-filter-file", str(bids_filter), "--nprocs", "2"]))
    for clone in (pickle.loads(pickle.dumps(settings)), copy.deepcopy(settings)):
        assert clone == settings
        assert clone.derivatives == {"lesions": lesions}
        assert clone.bids_filter["t1w"] == {"acquisition": "mprage"}
    with pytest.raises(TypeError, match="read-only"):
        settings.plugin["plugin"] = "Linear"  # type: ignore[index]
    with pytest.raises(TypeError, match="read-only"):
        settings.bids_filter["t1w"]["acquisition"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError, match="read-only"):
        settings.plugin["plugin_args"].update(n_procs=9)
