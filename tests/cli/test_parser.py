"""The tspo-bids argument parser: every option, label stripping, config and plugin files, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tspo_bids import __version__
from tspo_bids.cli.parser import build_parser, parse_args
from tspo_bids.cli.run import build_settings, main
from tspo_bids.errors import InputError

BASE = ["/data/bids", "/data/out", "participant"]


def test_defaults():
    ns = parse_args(BASE)
    assert ns.bids_dir == Path("/data/bids") and ns.output_dir == Path("/data/out")
    assert ns.analysis_level == "participant"
    assert ns.participant_label is None and ns.session_label is None and ns.tracer_label is None
    assert ns.models == ["SRTM"] and ns.ref_region == "cerebellum" and ns.tracer is None
    assert ns.t_star_min is None and ns.suvr_window_min is None and ns.lesion_min_volume_mm3 == 27.0
    assert ns.verbose == 0 and not ns.skip_bids_validation
    assert ns.plugin is None and ns.work_dir is None and ns.nprocs is None


def test_every_option(tmp_path):
    lesions = tmp_path / "lesions"
    lesions.mkdir()
    filter_file = tmp_path / "filter.json"
    filter_file.write_text(json.dumps({"pet": {"reconstruction": "OSEM"}}))
    plugin_file = tmp_path / "plugin.yml"
    plugin_file.write_text("plugin: SLURM\nplugin_args:\n  sbatch_args: --time=1:00:00\n")
    ns = parse_args([
        *BASE, "--participant-label", "sub-01", "02", "--session-label", "ses-base", "--tracer-label", "trc-PK11195",
        "--bids-filter-file", str(filter_file), "-d", f"lesions={lesions}", "--skip-bids-validation",
        "--nprocs", "4", "--omp-nthreads", "2", "--mem-gb", "8.5", "--use-plugin", str(plugin_file),
        "-w", str(tmp_path / "work"), "--stop-on-first-crash", "--tracer", "pbr28", "--ref-region", "cerebellum",
        "--models", "srtm", "LOGAN", "--t-star", "30", "--suvr-window", "60", "90", "--lesion-min-volume", "10",
        "--random-seed", "42", "-vv",
    ])
    assert ns.participant_label == ["01", "02"]
    assert ns.session_label == ["base"] and ns.tracer_label == ["PK11195"]
    assert ns.bids_filter == {"pet": {"reconstruction": "OSEM"}}
    assert ns.derivatives == [("lesions", lesions.resolve())]
    assert ns.skip_bids_validation and ns.stop_on_first_crash
    assert (ns.nprocs, ns.omp_nthreads, ns.mem_gb) == (4, 2, 8.5)
    assert ns.plugin == {"plugin": "SLURM", "plugin_args": {"sbatch_args": "--time=1:00:00"}}
    assert ns.work_dir == tmp_path / "work"
    assert ns.tracer == "pbr28" and ns.ref_region == "cerebellum" and ns.models == ["SRTM", "Logan"]
    assert ns.t_star_min == 30.0 and ns.suvr_window_min == [60.0, 90.0] and ns.lesion_min_volume_mm3 == 10.0
    assert ns.random_seed == 42 and ns.verbose == 2


def test_bids_apps_underscore_spelling():
    assert parse_args([*BASE, "--participant_label", "01"]).participant_label == ["01"]


def test_group_level_accepts_selection():
    ns = parse_args(["/b", "/o", "group", "--participant-label", "sub-03"])
    assert ns.analysis_level == "group" and ns.participant_label == ["03"]


@pytest.mark.parametrize(
    "extra",
    [
        ["--participant-label", "0_1"],  # not alphanumeric
        ["--participant-label"],  # no value
        ["--session-label", "ses-a-b"],
        ["--nprocs", "0"],
        ["--omp-nthreads", "two"],
        ["--mem-gb", "-1"],
        ["--tracer", "fdg"],
        ["--ref-region", "pons"],
        ["--models", "2TCM"],
        ["--suvr-window", "60"],
        ["--t-star", "-5"],
        ["-d", "lesions"],  # not NAME=PATH
        ["-d", "lesions=/does/not/exist"],
        ["--bids-filter-file", "/does/not/exist.json"],
        ["--use-plugin", "/does/not/exist.yml"],
        ["--unknown-option"],
    ],
)
def test_usage_errors_exit_2(extra, capsys):
    assert main([*BASE, *extra]) == 2
    assert "usage: tspo-bids" in capsys.readouterr().err


def test_bad_level_exits_2(capsys):
    assert main(["/b", "/o", "subject"]) == 2
    assert "invalid choice: 'subject'" in capsys.readouterr().err


def test_filter_file_with_a_byte_order_mark(tmp_path):
    bids_filter = tmp_path / "filter.json"
    bids_filter.write_text(json.dumps({"pet": {"tracer": "PK11195"}}), encoding="utf-8-sig")
    assert parse_args([*BASE, "--bids-filter-file", str(bids_filter)]).bids_filter == {"pet": {"tracer": "PK11195"}}


def test_bad_plugin_and_filter_files(tmp_path, capsys):
    plugin = tmp_path / "p.yml"
    plugin.write_text("plugin_args: {}\n")
    assert main([*BASE, "--use-plugin", str(plugin)]) == 2
    assert "needs a 'plugin' name" in capsys.readouterr().err
    bids_filter = tmp_path / "f.json"
    bids_filter.write_text("[1, 2]")
    assert main([*BASE, "--bids-filter-file", str(bids_filter)]) == 2
    assert "must hold a JSON object" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ("plugin: Foo\n", "unknown Nipype plugin 'Foo' (known: "),
    ("plugin: MultiProc\nplugin_args: {n_procs: abc}\n", "plugin_args n_procs must be a positive number, got 'abc'"),
    ("plugin: MultiProc\nplugin_args: {n_procs: 0}\n", "plugin_args n_procs must be a positive number, got 0"),
    ("plugin: MultiProc\nplugin_args: {memory_gb: -2.5}\n", "plugin_args memory_gb must be a positive number"),
    ("plugin: [MultiProc\n", "not valid YAML"),
])
def test_plugin_file_checked_before_the_run(tmp_path, capsys, content, message):
    """A plugin Nipype does not know, or plugin arguments it would choke on, are usage errors in one line."""
    plugin = tmp_path / "p.yml"
    plugin.write_text(content)
    assert main([*BASE, "--use-plugin", str(plugin)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error and "Traceback" not in error


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tspo-bids {__version__}"


def test_help_mentions_every_conventions_option(capsys):
    assert main(["-h"]) == 0
    text = capsys.readouterr().out
    for option in ("--participant-label", "--session-label", "--tracer-label", "--bids-filter-file", "--derivatives",
                   "--skip-bids-validation", "--nprocs", "--omp-nthreads", "--mem-gb", "--use-plugin", "--work-dir",
                   "--stop-on-first-crash", "--config-file", "--tracer", "--ref-region", "--models", "--t-star",
                   "--suvr-window", "--lesion-min-volume", "--version", "--verbose",
                   "--random-seed", "BIDS_DIR", "OUTPUT_DIR", "{participant,group}"):
        assert option in text, option


# ----------------------------------------------------------------------------- config file


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_file_and_command_line_precedence(tmp_path, suffix):
    config = tmp_path / f"options{suffix}"
    if suffix == ".toml":
        config.write_text('nprocs = 3\nparticipant-label = ["sub-05", "06"]\nmodels = ["suvr"]\n'
                          'skip_bids_validation = true\nverbose = 1\nsuvr-window = [40, 60]\n')
    else:
        config.write_text("nprocs: 3\nparticipant-label: [sub-05, '06']\nmodels: [suvr]\n"
                          "skip_bids_validation: true\nverbose: 1\nsuvr-window: [40, 60]\n")
    ns = parse_args([*BASE, "--config-file", str(config)])
    assert ns.nprocs == 3 and ns.participant_label == ["05", "06"] and ns.models == ["SUVR"]
    assert ns.skip_bids_validation and ns.verbose == 1 and ns.suvr_window_min == [40.0, 60.0]
    ns = parse_args([*BASE, "--nprocs", "1", "--config-file", str(config), "--models", "srtm"])
    assert ns.nprocs == 1 and ns.models == ["SRTM"]  # the command line wins
    assert ns.participant_label == ["05", "06"]  # the file fills the rest


def test_config_file_derivatives_mapping(tmp_path):
    lesions = tmp_path / "lesions"
    lesions.mkdir()
    config = tmp_path / "c.toml"
    config.write_text(f'[derivatives]\nlesions = "{lesions}"\n')
    assert parse_args([*BASE, "--config-file", str(config)]).derivatives == [("lesions", lesions)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 'blue'\n", "unknown option 'colour'"),
        ("nprocs = 0\n", "must be >= 1"),
        ("skip-bids-validation = 'yes'\n", "must be true or false"),
        ("version = true\n", "unknown option 'version'"),
        ("bids_dir = '/x'\n", "unknown option 'bids_dir'"),
        ("[[a]]\nb = 1\nnot toml ::\n", "--config-file"),
    ],
)
def test_config_file_errors(tmp_path, capsys, text, message):
    config = tmp_path / "c.toml"
    config.write_text(text)
    assert main([*BASE, "--config-file", str(config)]) == 2
    assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------- settings


def test_settings_paths_plugin_and_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(tmp_path / "bids"), "out", "participant", "--nprocs", "2", "--mem-gb", "4",
            "--participant-label", "01", "01", "02"]
    settings = build_settings(parse_args(argv), argv)
    assert settings.output_dir == tmp_path / "out" and settings.output_dir.is_absolute()
    assert settings.work_dir == tmp_path / "work"  # fMRIPrep's default: ./work
    assert settings.participant_label == ("01", "02")  # de-duplicated, order kept
    assert settings.plugin == {"plugin": "MultiProc",
                               "plugin_args": {"n_procs": 2, "raise_insufficient": False, "memory_gb": 4.0}}
    assert settings.omp_nthreads == 1
    assert settings.command_line.startswith("tspo-bids ") and "--participant-label 01 01 02" in settings.command_line
    single = build_settings(parse_args([*BASE, "--nprocs", "1"]))
    assert single.plugin == {"plugin": "Linear", "plugin_args": {}}


def test_settings_plugin_file_keeps_its_arguments(tmp_path):
    plugin = tmp_path / "p.yml"
    plugin.write_text("plugin: MultiProc\nplugin_args: {n_procs: 7}\n")
    settings = build_settings(parse_args([*BASE, "--use-plugin", str(plugin), "--nprocs", "2"]))
    assert settings.plugin["plugin_args"]["n_procs"] == 7


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["/d/bids", "/d/bids/", "participant"], "OUTPUT_DIR is BIDS_DIR"),
        (["/d/bids", "/d/bids/derivatives", "participant"], "OUTPUT_DIR is BIDS_DIR/derivatives itself"),
        (["/d/bids", "/d/out", "participant", "-w", "/d/bids/work"], "work directory is inside BIDS_DIR"),
        (["/d/bids", "/d", "participant"], "OUTPUT_DIR contains BIDS_DIR"),
        (["/d/bids", "/d/out", "participant", "--nprocs", "2", "--omp-nthreads", "4"], "more threads"),
        (["/d/bids", "/d/out", "participant", "--suvr-window", "60", "40"], "END must be after START"),
    ],
)
def test_settings_errors(argv, match):
    with pytest.raises(InputError, match=match):
        build_settings(parse_args(argv), argv)


def test_build_parser_is_fresh():
    assert build_parser() is not build_parser()
