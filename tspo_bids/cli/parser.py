"""Command-line parser of ``tspo-bids`` (BIDS-Apps positional arguments, nipreps-style options).

Only parsing and per-option checks live here; ``cli/run.py`` turns the namespace into a
:class:`tspo_bids.config.Settings` and runs the pipeline.

Option values may also come from ``--config-file`` (TOML or YAML, keys are option names
with ``-`` or ``_``, e.g. ``nprocs = 2`` or ``participant-label = ["01", "02"]``); options
given on the command line win over the file.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tspo_bids import __version__
from tspo_bids.bids.jsonio import read_json
from tspo_bids.config import (
    PVC_CHOICES,
    DEFAULT_ACTIVE_FRACTION,
    DEFAULT_ACTIVE_PERCENTILE,
    DEFAULT_CONTROL_GROUP,
    DEFAULT_INACTIVE_MAX,
    DEFAULT_RIM_ACTIVE_MIN,
)
from tspo_bids.config import DEFAULT_LESION_MIN_VOLUME_MM3, DEFAULT_MODELS, REF_REGION_CHOICES, TRACER_PRESETS

_LABEL = re.compile(r"^[A-Za-z0-9]+$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
#: Options a config file may not set (they make no sense there).
_NOT_IN_CONFIG = {"help", "version", "config_file", "bids_dir", "output_dir", "analysis_level"}


def _model_names() -> dict[str, str]:
    """Lowercase model name -> canonical name, from the one model table."""
    from tspo_bids.pet.models import MODELS

    return {name.lower(): name for name in MODELS}


# ----------------------------------------------------------------------------- option types


def _label(prefix: str):
    def parse(value: str) -> str:
        label = value.removeprefix(prefix)
        if not _LABEL.match(label):
            raise argparse.ArgumentTypeError(
                f"{value!r}: a BIDS label has only letters and digits (a leading {prefix!r} is allowed)"
            )
        return label

    parse.__name__ = f"{prefix.rstrip('-')} label"
    return parse


def _existing_file(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value}: file not found")
    return path.resolve()


def _json_object_file(value: str) -> dict[str, Any]:
    path = _existing_file(value)
    try:
        content = read_json(path)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value}: not valid JSON ({error})") from error
    if not isinstance(content, dict):
        raise argparse.ArgumentTypeError(f"{value}: must hold a JSON object")
    return content


def _plugin_file(value: str) -> dict[str, Any]:
    path = _existing_file(value)
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"{value}: not valid YAML ({' '.join(str(error).split())})") from error
    if not isinstance(content, dict) or not isinstance(content.get("plugin"), str):
        raise argparse.ArgumentTypeError(f"{value}: needs a 'plugin' name (and optional 'plugin_args' mapping)")
    unknown = set(content) - {"plugin", "plugin_args"}
    if unknown:
        raise argparse.ArgumentTypeError(f"{value}: unknown key(s) {', '.join(sorted(unknown))}")
    args = content.get("plugin_args") or {}
    if not isinstance(args, dict):
        raise argparse.ArgumentTypeError(f"{value}: 'plugin_args' must be a mapping")
    from nipype.pipeline import plugins

    name = content["plugin"]
    if not hasattr(plugins, f"{name}Plugin"):
        known = sorted(attr.removesuffix("Plugin") for attr in dir(plugins) if attr.endswith("Plugin"))
        raise argparse.ArgumentTypeError(f"{value}: unknown Nipype plugin {name!r} (known: {', '.join(known)})")
    for key, kind in _PLUGIN_ARG_TYPES.items():
        if key in args and (isinstance(args[key], bool) or not isinstance(args[key], kind) or args[key] <= 0):
            raise argparse.ArgumentTypeError(f"{value}: plugin_args {key} must be a positive number, got {args[key]!r}")
    return {"plugin": name, "plugin_args": args}


#: Numeric plugin arguments of the local plugins, checked before the run starts.
_PLUGIN_ARG_TYPES: dict[str, type | tuple[type, ...]] = {"n_procs": int, "memory_gb": (int, float)}


def _derivative(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not _NAME.match(name) or not path:
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME=PATH, e.g. lesions=/data/lesion-masks")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r}: {path} is not a directory")
    return name, folder.resolve()


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from error
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 1")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from error
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be > 0")
    return number


def _fraction(value: str) -> float:
    number = _non_negative_float(value)
    if number > 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a fraction between 0 and 1")
    return number


def _percentile(value: str) -> float:
    number = _positive_float(value)
    if number >= 100:
        raise argparse.ArgumentTypeError(f"{value!r} must be a percentile below 100")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from error
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 0")
    return number


def _model(value: str) -> str:
    names = _model_names()
    if value.lower() not in names:
        raise argparse.ArgumentTypeError(f"{value!r}: choose from {', '.join(names.values())}")
    return names[value.lower()]


# ----------------------------------------------------------------------------- parser


class _HelpFormatter(argparse.HelpFormatter):
    """Show a default only where it says something and the help text does not already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        default = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
        return f"{text} (default: {default})"


def build_parser() -> argparse.ArgumentParser:
    """The ``tspo-bids`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="tspo-bids",
        description=(
            "tspo-bids: a BIDS App for TSPO PET in multiple sclerosis. The participant level "
            "co-registers PET and anatomy, defines tissue, MS and reference regions, extracts "
            "time-activity curves and fits reference-tissue models, writing BIDS derivatives to "
            "OUTPUT_DIR; the group level joins every participant's results with participants.tsv."
        ),
        epilog="Exit status: 0 on success; 1 for a problem with the input, a failed workflow node, a file-system "
               "error or an unexpected error (one line each); 2 for a command-line usage error; 143 when stopped "
               "by SIGTERM, 130 by Ctrl-C (run the same command again to resume).",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("bids_dir", metavar="BIDS_DIR", type=Path,
                        help="root of the input BIDS dataset (holds dataset_description.json)")
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", type=Path,
                        help="derivatives folder to write (e.g. BIDS_DIR/derivatives/tspo-bids); "
                             "must differ from BIDS_DIR")
    parser.add_argument("analysis_level", choices=["participant", "group"],
                        help="'participant' processes each PET run; 'group' collects the participant "
                             "results into OUTPUT_DIR/group/")
    parser.add_argument("--version", action="version", version=f"tspo-bids {__version__}")

    sel = parser.add_argument_group("selecting data")
    sel.add_argument("--participant-label", "--participant_label", nargs="+", type=_label("sub-"),
                     metavar="LABEL", help="participants to process (default: all); a leading 'sub-' is removed. "
                     "Also restricts the group level")
    sel.add_argument("--session-label", nargs="+", type=_label("ses-"), metavar="LABEL",
                     help="sessions to process (default: all); a leading 'ses-' is removed")
    sel.add_argument("--tracer-label", nargs="+", type=_label("trc-"), metavar="LABEL",
                     help="PET runs whose trc- entity is one of these (default: all); a leading 'trc-' is removed")
    sel.add_argument("--bids-filter-file", type=_json_object_file, metavar="FILE",
                     dest="bids_filter",
                     help='JSON of extra pybids filters per input kind, e.g. {"pet": {"reconstruction": '
                          '"OSEM"}, "t1w": {"acquisition": "mprage"}, "flair": {}} (null = entity absent)')
    sel.add_argument("-d", "--derivatives", nargs="+", type=_derivative, metavar="NAME=PATH",
                     help="derivative datasets to use, e.g. lesions=PATH holding "
                          "sub-<l>[/ses-<l>]/anat/sub-<l>[_ses-<l>]_space-<T1w|FLAIR>_label-lesion_mask.nii.gz")
    sel.add_argument("--skip-bids-validation", action="store_true",
                     help="do not run the BIDS validator on BIDS_DIR")

    eng = parser.add_argument_group("resources and execution")
    eng.add_argument("--nprocs", "--nthreads", type=_positive_int, metavar="N",
                     help="processes Nipype runs at once (default: CPUs available to this process)")
    eng.add_argument("--omp-nthreads", type=_positive_int, metavar="N",
                     help="threads per process for ANTs and numerical libraries (default: min(8, NPROCS - 1), "
                          "at least 1)")
    eng.add_argument("--mem-gb", "--mem", type=_positive_float, metavar="GB",
                     help="memory the workflow may use, in GB (default: no limit)")
    eng.add_argument("--use-plugin", type=_plugin_file, metavar="FILE", dest="plugin",
                     help="YAML with a Nipype 'plugin' (MultiProc, Linear, SLURM, SGE, ...) and its 'plugin_args'")
    eng.add_argument("-w", "--work-dir", type=Path, metavar="DIR",
                     help="Nipype work directory; re-running with the same one resumes (default: ./work in the "
                          "current directory, as fMRIPrep); not inside BIDS_DIR")
    eng.add_argument("--stop-on-first-crash", action="store_true",
                     help="stop at the first failed node instead of running every independent node")
    eng.add_argument("--config-file", type=_existing_file, metavar="FILE",
                     help="TOML or YAML file of option values (keys are option names); command-line options win")

    sci = parser.add_argument_group("modelling")
    sci.add_argument("--tracer", choices=sorted(TRACER_PRESETS),
                     help="tracer preset (SUVR window, Logan t*, genotype handling); default: from each "
                          "sidecar's TracerName")
    sci.add_argument("--ref-region", choices=REF_REGION_CHOICES, default="cerebellum",
                     help="reference region: atlas cerebellar grey matter, or svca (supervised cluster analysis, "
                          "SVCA4: kinetic classes from healthy controls; see README)")
    sci.add_argument("--svca-classes", type=Path, metavar="FILE",
                     help="SVCA kinetic class table (TSV) for --ref-region svca (default: "
                          "OUTPUT_DIR/group/trc-<label>_desc-svca_classes.tsv from 'group --build-svca-classes')")
    sci.add_argument("--models", nargs="+", type=_model, default=list(DEFAULT_MODELS), metavar="MODEL",
                     help=f"kinetic models to fit ({', '.join(_model_names().values())}; case-insensitive)")
    sci.add_argument("--t-star", type=_non_negative_float, metavar="MIN", dest="t_star_min",
                     help="Logan t* in minutes from injection (default: tracer preset)")
    sci.add_argument("--suvr-window", nargs=2, type=_non_negative_float, metavar=("START", "END"),
                     dest="suvr_window_min",
                     help="SUVR averaging window in minutes from injection (default: tracer preset)")
    sci.add_argument("--lesion-min-volume", type=_non_negative_float, metavar="MM3",
                     dest="lesion_min_volume_mm3", default=DEFAULT_LESION_MIN_VOLUME_MM3,
                     help="drop lesions smaller than this volume (mm^3)")

    pvc = parser.add_argument_group("partial-volume correction (methods: README)")
    pvc.add_argument("--pvc", choices=PVC_CHOICES, default="none",
                     help="gtm: regional TACs and models corrected by a tissue-compartment geometric transfer matrix "
                          "(Rousset 1998); rbv: also region-based voxelwise correction (Thomas 2011) and "
                          "parametric maps on the corrected images")
    pvc.add_argument("--pvc-psf", nargs="+", metavar="FWHM",
                     help="PET point-spread function, FWHM in mm: one value (isotropic) or three (x y z); "
                          "needed by --pvc")

    grp = parser.add_argument_group("SVCA classes (group level; methods: README)")
    grp.add_argument("--build-svca-classes", action="store_true",
                     help="average the healthy controls' (--control-group) SVCA class curves into "
                          "OUTPUT_DIR/group/trc-<label>_desc-svca_classes.tsv for --ref-region svca")

    les = parser.add_argument_group("lesion phenotypes (group level; methods: README)")
    les.add_argument("--control-group", default=DEFAULT_CONTROL_GROUP, metavar="LABEL",
                     help="participants.tsv 'group' value of the healthy controls whose NAWM voxel DVRs set the "
                          "active-voxel threshold (and whose class curves --build-svca-classes averages)")
    les.add_argument("--active-percentile", type=_percentile, default=DEFAULT_ACTIVE_PERCENTILE, metavar="P",
                     help="a voxel is active when its DVR exceeds this percentile of the controls' NAWM voxel DVRs")
    les.add_argument("--active-fraction", type=_fraction, default=DEFAULT_ACTIVE_FRACTION, metavar="F",
                     help="a lesion core or rim is active when more than this fraction of its voxels is active")
    les.add_argument("--rim-active-min", type=_fraction, default=DEFAULT_RIM_ACTIVE_MIN, metavar="F",
                     help="patient marker: proportion of rim-active lesions above this (Polvinen 2023)")
    les.add_argument("--inactive-max", type=_fraction, default=DEFAULT_INACTIVE_MAX, metavar="F",
                     help="patient marker: and proportion of inactive lesions at most this")

    beh = parser.add_argument_group("other options")
    beh.add_argument("--random-seed", type=int, metavar="SEED",
                     help="seed for stochastic steps (registration sampling), for reproducible runs")
    beh.add_argument("-v", "--verbose", action="count", default=0,
                     help="more log output (-v info, -vv debug)")
    return parser


# ----------------------------------------------------------------------------- config file


def _load_config(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        content = tomllib.loads(text)
    elif path.suffix.lower() in (".yml", ".yaml"):
        content = yaml.safe_load(text)
    else:
        try:
            content = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            content = yaml.safe_load(text)
    if not isinstance(content, dict):
        raise ValueError("must hold a mapping of option names to values")
    return content


def _config_tokens(config: dict[str, Any], parser: argparse.ArgumentParser, path: Path) -> list[str]:
    """Turn config-file values into command-line tokens, so every option check applies to them."""
    by_name: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse has no public listing of actions
        by_name[action.dest] = action
        for option in action.option_strings:
            by_name[option.lstrip("-").replace("-", "_")] = action
    tokens: list[str] = []
    for key, value in config.items():
        action = by_name.get(str(key).replace("-", "_"))
        if action is None or action.dest in _NOT_IN_CONFIG or not action.option_strings:
            parser.error(f"--config-file {path}: unknown option {key!r}")
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        flag = next((o for o in action.option_strings if o.startswith("--")), flag)
        if isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                parser.error(f"--config-file {path}: {key} must be true or false")
            if value:
                tokens.append(flag)
        elif isinstance(action, argparse._CountAction):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                parser.error(f"--config-file {path}: {key} must be a count (0, 1, 2)")
            tokens.extend([flag] * value)
        elif action.nargs in ("+", "*") or isinstance(action.nargs, int):
            if isinstance(value, dict):  # e.g. derivatives = {lesions = "/path"}
                values = [f"{k}={v}" for k, v in value.items()]
            elif isinstance(value, (list, tuple)):
                values = [str(v) for v in value]
            else:
                values = [str(value)]
            tokens.append(flag)
            tokens.extend(values)
        else:
            tokens.extend([flag, str(value)])
    return tokens


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (and ``--config-file``); argparse exits 2 on a usage error."""
    parser = build_parser()
    namespace = parser.parse_args(argv)
    if namespace.config_file is None:
        return namespace
    try:
        config = _load_config(namespace.config_file)
    except (OSError, ValueError, yaml.YAMLError) as error:
        parser.error(f"--config-file {namespace.config_file}: {error}")
    tokens = _config_tokens(config, parser, namespace.config_file)
    positionals = [str(namespace.bids_dir), str(namespace.output_dir), namespace.analysis_level]
    from_file = vars(build_parser().parse_args(positionals + tokens))
    explicit_parser = build_parser()
    for action in explicit_parser._actions:
        if action.option_strings:
            action.default = argparse.SUPPRESS
    explicit = vars(explicit_parser.parse_args(argv))
    return argparse.Namespace(**(from_file | explicit))
