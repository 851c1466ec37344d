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


#: A 60-min scan: frames starting 0-55 min, ending at 60 min.
SCAN_60 = {"frame_start_min": [0.0, 10.0, 30.0, 55.0], "frame_end_min": [10.0, 30.0, 55.0, 60.0]}


def test_preset_values_outside_the_scan_are_dropped_when_not_asked_for():
    """PBR28's preset SUVR window (60-90 min) on a 60-min scan: no SUVR map, and the run goes on (was a failure
    at the end of the run)."""
    fitted = _settings().for_tracer("[11C]PBR28", source="x.json", **SCAN_60)
    assert (fitted.tracer, fitted.suvr_window_min, fitted.t_star_min) == ("pbr28", None, 30.0)
    inside = _settings().for_tracer("PK11195", source="x.json", **SCAN_60)  # 40-60 min and t* 20 fit
    assert (inside.suvr_window_min, inside.t_star_min) == ((40.0, 60.0), 20.0)
    short = {"frame_start_min": [0.0, 5.0, 15.0], "frame_end_min": [5.0, 15.0, 25.0]}
    assert _settings().for_tracer("PK11195", source="x.json", **short).t_star_min is None  # t* 20 > last start 15


@pytest.mark.parametrize("changes, message", [
    ({"suvr_window_min": (50.0, 70.0)}, "x.json: the SUVR window 50-70 min (--suvr-window) is not covered by the "
                                        "scan (0-60 min)"),
    ({"models": ("SRTM", "SUVR")}, "x.json: the SUVR window 60-90 min (the pbr28 preset) is not covered"),
    ({"t_star_min": 58.0}, "x.json: t* = 58 min (--t-star) is after the start of the last frame (55 min)"),
])
def test_asked_for_values_outside_the_scan_are_errors(changes, message):
    with pytest.raises(InputError) as caught:
        _settings(**changes).for_tracer("[11C]PBR28", source="x.json", **SCAN_60)
    assert str(caught.value).startswith(message)


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
