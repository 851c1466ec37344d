#!/usr/bin/env python3
"""Write tspo_bids/data/boutiques.json, the Boutiques descriptor of ``tspo-bids``, from its parser.

The descriptor is generated from :func:`tspo_bids.cli.parser.build_parser`, so it lists exactly
the command-line options the app accepts; tests/container/test_boutiques.py checks that the
committed file is up to date and valid. Run after changing the parser::

    python scripts/make_boutiques.py            # rewrite the descriptor
    python scripts/make_boutiques.py --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DESCRIPTOR = REPO / "tspo_bids" / "data" / "boutiques.json"
#: Options that are not part of an invocation.
SKIPPED = {"help", "version"}
#: Options whose value is a path that must exist (Boutiques type File).
FILE_OPTIONS = {"bids_filter", "plugin", "config_file", "svca_classes"}
#: Integer-valued options (argparse type names differ: parse helpers).
INTEGER_OPTIONS = {"nprocs", "omp_nthreads", "random_seed"}
NUMBER_OPTIONS = {"mem_gb", "t_star_min", "suvr_window_min", "lesion_min_volume_mm3", "active_percentile",
                  "active_fraction", "rim_active_min", "inactive_max"}


def _value_key(dest: str) -> str:
    return f"[{dest.upper()}]"


def _input(action: argparse.Action) -> dict[str, Any]:
    """One Boutiques input from an argparse action."""
    dest = action.dest
    long_flags = [o for o in action.option_strings if o.startswith("--")]
    flag = long_flags[0] if long_flags else (action.option_strings[0] if action.option_strings else None)
    entry: dict[str, Any] = {
        "id": dest,
        "name": (flag or dest).lstrip("-").replace("-", " ").replace("_", " "),
        "description": re.sub(r"\s+", " ", action.help or "").strip(),
        "value-key": _value_key(dest),
        "optional": bool(action.option_strings) and not action.required,
    }
    if isinstance(action, (argparse._StoreTrueAction, argparse._CountAction)):
        entry["type"] = "Flag"
        entry["command-line-flag"] = flag
        return entry
    if dest in FILE_OPTIONS or dest == "bids_dir":
        entry["type"] = "File"
    elif dest in INTEGER_OPTIONS:
        entry["type"] = "Number"
        entry["integer"] = True
    elif dest in NUMBER_OPTIONS:
        entry["type"] = "Number"
        entry["integer"] = False
    else:
        entry["type"] = "String"
    if flag:
        entry["command-line-flag"] = flag
    if action.choices:
        entry["value-choices"] = sorted(action.choices)
    if action.nargs in ("+", "*"):
        entry["list"] = True
        entry["min-list-entries"] = 1
    elif isinstance(action.nargs, int) and action.nargs > 1:
        entry["list"] = True
        entry["min-list-entries"] = entry["max-list-entries"] = action.nargs
    default = action.default
    if default not in (None, False, argparse.SUPPRESS) and action.option_strings:
        if isinstance(default, (list, tuple)):
            entry["default-value"] = list(default)
        elif entry["type"] == "Number" or isinstance(default, str):
            entry["default-value"] = default
    return entry


def build_descriptor() -> dict[str, Any]:
    """The Boutiques descriptor (schema 0.5) of the current parser."""
    sys.path.insert(0, str(REPO))
    from tspo_bids import __version__
    from tspo_bids.cli.parser import build_parser

    parser = build_parser()
    inputs = [_input(a) for a in parser._actions if a.dest not in SKIPPED]  # no public listing of actions
    command = " ".join(["tspo-bids", *(i["value-key"] for i in inputs)])
    groups = []
    for group in parser._action_groups:
        members = [a.dest for a in group._group_actions if a.dest not in SKIPPED]
        if members:
            title = "required arguments" if group.title == "positional arguments" else group.title
            groups.append({"id": re.sub(r"\W+", "_", title).strip("_"), "name": title, "members": members})
    return {
        "name": "tspo-bids",
        "tool-version": __version__,
        "schema-version": "0.5",
        "author": "tspo-bids developers",
        "url": "https://github.com/tspo-bids/tspo-bids",
        "description": re.sub(r"\s+", " ", parser.description or "").strip(),
        "command-line": command,
        "container-image": {"type": "docker", "image": f"tspo-bids:{__version__}",
                            "entrypoint": True},
        "inputs": inputs,
        "groups": groups,
        "output-files": [{
            "id": "output_dir_files",
            "name": "BIDS derivatives",
            "description": "OUTPUT_DIR: a BIDS derivative dataset (participant folders, group/, logs/)",
            "path-template": "[OUTPUT_DIR]",
            "optional": False,
        }],
        "error-codes": [
            {"code": 1, "description": "a problem with the input (one line naming the file) or a failed workflow node"},
            {"code": 2, "description": "a command-line usage error"},
        ],
        "suggested-resources": {"cpu-cores": 2, "ram": 4, "walltime-estimate": 1800},
        "tags": {"domain": ["neuroinformatics", "pet", "bids", "bids-app", "multiple-sclerosis"]},
    }


def descriptor_text() -> str:
    """The descriptor as written to disk (2-space indent, trailing newline)."""
    return json.dumps(build_descriptor(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--check", action="store_true", help="exit 1 if the committed descriptor is out of date")
    args = options.parse_args(argv)
    text = descriptor_text()
    if args.check:
        current = DESCRIPTOR.read_text() if DESCRIPTOR.is_file() else ""
        if current != text:
            print(f"{DESCRIPTOR} is out of date: run python scripts/make_boutiques.py", file=sys.stderr)
            return 1
        return 0
    DESCRIPTOR.parent.mkdir(parents=True, exist_ok=True)
    DESCRIPTOR.write_text(text)
    print(f"wrote {DESCRIPTOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
