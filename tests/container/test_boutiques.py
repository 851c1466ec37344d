"""The Boutiques descriptor (tspo_bids/data/boutiques.json) of the ``tspo-bids`` command line.

Checked three ways: it is valid against the Boutiques schema (``bosh validate``), it is what
scripts/make_boutiques.py makes from the current parser (so no option is missing or stale), and a
command line that Boutiques composes from an invocation is accepted by the real parser with the
values the invocation gave.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tspo_bids.cli.parser import build_parser, parse_args

REPO = Path(__file__).resolve().parents[2]
DESCRIPTOR = REPO / "tspo_bids" / "data" / "boutiques.json"


def _bosh() -> str:
    bosh = shutil.which("bosh") or str(Path(sys.executable).with_name("bosh"))
    assert Path(bosh).is_file(), "bosh missing: boutiques is a test dependency (pip install -e '.[test]')"
    return bosh


def test_descriptor_is_valid_boutiques():
    result = subprocess.run([_bosh(), "validate", str(DESCRIPTOR)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_descriptor_structure():
    descriptor = json.loads(DESCRIPTOR.read_text())
    for field in ("name", "description", "command-line", "inputs", "schema-version", "tool-version",
                  "container-image", "output-files"):
        assert field in descriptor, field
    ids = [i["id"] for i in descriptor["inputs"]]
    assert len(ids) == len(set(ids))
    for entry in descriptor["inputs"]:
        assert entry["value-key"] in descriptor["command-line"], entry["id"]
        assert entry["type"] in ("String", "File", "Flag", "Number")
    positional = [i["id"] for i in descriptor["inputs"] if not i["optional"]]
    assert positional == ["bids_dir", "output_dir", "analysis_level"]
    level = next(i for i in descriptor["inputs"] if i["id"] == "analysis_level")
    assert level["value-choices"] == ["group", "participant"]


def test_descriptor_matches_the_parser():
    """Regenerate with ``python scripts/make_boutiques.py`` after changing the command line."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "make_boutiques.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    described = {i.get("command-line-flag") for i in json.loads(DESCRIPTOR.read_text())["inputs"]} - {None}
    actions = [a for a in build_parser()._actions if a.option_strings and a.dest not in ("help", "version")]
    assert described <= {o for a in actions for o in a.option_strings}, "stale option in the descriptor"
    for action in actions:
        assert described & set(action.option_strings), f"{action.option_strings} not in the descriptor"


def test_boutiques_command_line_parses(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    invocation = {
        "bids_dir": str(bids),
        "output_dir": str(tmp_path / "out"),
        "analysis_level": "participant",
        "participant_label": ["01", "sub-02"],
        "nprocs": 2,
        "omp_nthreads": 1,
        "models": ["SRTM", "Logan"],
        "suvr_window_min": [40, 60],
        "skip_bids_validation": True,
        "work_dir": str(tmp_path / "work"),
    }
    (tmp_path / "invocation.json").write_text(json.dumps(invocation))
    result = subprocess.run([_bosh(), "exec", "simulate", str(DESCRIPTOR), "-i", str(tmp_path / "invocation.json")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("tspo-bids ")]
    assert len(lines) == 1, result.stdout
    tokens = lines[0].split()
    assert tokens[0] == "tspo-bids"
    namespace = parse_args(tokens[1:])
    assert namespace.participant_label == ["01", "02"]
    assert namespace.nprocs == 2 and namespace.omp_nthreads == 1
    assert namespace.models == ["SRTM", "Logan"]
    assert namespace.suvr_window_min == [40.0, 60.0]
    assert namespace.skip_bids_validation is True
    assert namespace.work_dir == tmp_path / "work"


@pytest.mark.parametrize("level", ["participant", "group"])
def test_boutiques_invocation_schema_accepts_minimal_invocation(tmp_path, level):
    invocation = tmp_path / "invocation.json"
    invocation.write_text(json.dumps({"bids_dir": str(tmp_path), "output_dir": str(tmp_path / "out"),
                                      "analysis_level": level}))
    result = subprocess.run([_bosh(), "invocation", str(DESCRIPTOR), "-i", str(invocation)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
