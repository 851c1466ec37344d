"""Helpers shared by tests/container, tests/slurm and tests/concurrency (loaded by path, see ``load``).

- :func:`require_tool`: a missing system tool fails the test under CI (``CI=true``) and skips it,
  with the reason and the README section to read, on a developer machine.
- :func:`reference_run`: the pip-installed participant + group run on data/test_bids, made with
  exactly the end-to-end test's command (tests/e2e/test_test_bids.py) in ``$TSPO_BIDS_E2E_DIR`` when
  that is set (.ci/run sets it, so the e2e fixture and these tests share one run), else in a
  temporary folder. Every other run (container, SLURM plugin, sbatch array) is compared with it.
- :func:`compare_derivatives`: every number of every kinpar/tacs TSV equal within a tolerance.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_BIDS = REPO / "data" / "test_bids"
SCRIPTS = REPO / "scripts"
#: Where .ci/run asks the e2e fixture (and us) to keep the pip-installed run.
E2E_DIR_ENV = "TSPO_BIDS_E2E_DIR"
#: Tolerance of the acceptance: container / Slurm runs equal the pip-installed run within this.
NUMBER_TOLERANCE = 1e-6
#: The derivative tables compared number by number.
COMPARED_PATTERNS = ("*_kinpar.tsv", "*_tacs.tsv")
README_SECTION = "README, section 'Containers and HPC'"
_MARKER = ".tspo-bids-reference-complete"


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where a missing tool is a failure, not a skip."""
    return os.environ.get("CI", "").lower() == "true"


def require_tool(name: str, why: str) -> str:
    """Path of the executable ``name``; fail (CI) or skip (elsewhere) when it is missing."""
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").is_file() else None)
    if found:
        return found
    message = f"{name} not found ({why}); .ci/run installs it with scripts/install-system-deps.sh ({README_SECTION})"
    if in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def missing(message: str) -> None:
    """Fail under CI, skip elsewhere, with ``message``."""
    if in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(f"{message} ({README_SECTION})")


def load(name: str, path: Path):
    """Import the module at ``path`` once under ``name`` (test folders are not packages)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def e2e_participant_options() -> tuple[str, ...]:
    """The participant options of the end-to-end test (one command line for every compared run)."""
    e2e = load("tspo_bids_e2e_support", REPO / "tests" / "e2e" / "e2e_support.py")
    return tuple(e2e.PARTICIPANT_OPTIONS)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tspo_bids.cli.run", *args],
                          capture_output=True, text=True, timeout=3600)


def reference_run() -> Path:
    """OUTPUT_DIR of the pip-installed participant + group run on data/test_bids (made once).

    Same command lines as the e2e fixture: ``<root>/out`` and ``<root>/work`` with
    ``root = $TSPO_BIDS_E2E_DIR`` (or a temporary folder), so whichever of the e2e fixture and these
    tests comes first does the work and the other resumes from the same work directory.
    """
    configured = os.environ.get(E2E_DIR_ENV)
    root = Path(configured) if configured else Path(tempfile.gettempdir()) / f"tspo-bids-reference-{os.getpid()}"
    out, work = root / "out", root / "work"
    with _locked(root / ".reference.lock"):
        if not (root / _MARKER).is_file():
            participant = _run_cli(str(TEST_BIDS), str(out), "participant", "-w", str(work),
                                   *e2e_participant_options())
            assert participant.returncode == 0, participant.stderr[-4000:]
            group = _run_cli(str(TEST_BIDS), str(out), "group")
            assert group.returncode == 0, group.stderr[-4000:]
            (root / _MARKER).write_text("participant + group complete\n")
    return out


def session_prefixes(bids_dir: Path = TEST_BIDS, participant: str | None = None) -> list[str]:
    """``sub-<l>[_ses-<l>]`` of every PET run in ``bids_dir`` (optionally one participant's)."""
    found = set()
    for pet in bids_dir.glob("sub-*/**/pet/*_pet.nii.gz"):
        parts = pet.name.split("_")
        prefix = "_".join(p for p in parts if p.startswith(("sub-", "ses-")))
        if participant is None or prefix.split("_")[0] == f"sub-{participant}":
            found.add(prefix)
    return sorted(found)


def derivative_tables(out: Path, participant: str | None = None) -> dict[str, Path]:
    """Relative path -> path of every compared TSV under ``out`` (one participant's if given)."""
    root = out / f"sub-{participant}" if participant else out
    tables = {}
    for pattern in COMPARED_PATTERNS:
        for path in root.rglob(pattern):
            if "group" not in path.relative_to(out).parts:
                tables[str(path.relative_to(out))] = path
    return dict(sorted(tables.items()))


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", na_values="n/a", keep_default_na=False)


def compare_tables(expected: Path, found: Path, tolerance: float = NUMBER_TOLERANCE) -> list[str]:
    """Differences between two TSVs: same columns and rows, same text cells, NaN where the
    expected table has NaN, every number within ``tolerance`` (absolute). Empty when they agree.
    ``tolerance=math.inf`` checks structure only (per-lesion tables: columns only)."""
    name = expected.name
    if not found.is_file():
        return [f"{found}: missing"]
    a, b = _read(expected), _read(found)
    if list(a.columns) != list(b.columns):
        return [f"{name}: columns {list(a.columns)} != {list(b.columns)}"]
    if math.isinf(tolerance) and "desc-lesions" in name:
        return []  # structure only: how many lesions are found is itself a result
    if a.shape != b.shape:
        return [f"{name}: shape {a.shape} != {b.shape}"]
    problems = []
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            nan_mismatch = np.isnan(xv) != np.isnan(yv)
            diff = np.abs(np.where(np.isnan(xv) | np.isnan(yv), 0.0, xv - yv))
            if nan_mismatch.any() or (diff > tolerance).any():
                problems.append(f"{name}:{column}: max |difference| {diff.max():.3g} > {tolerance:g} "
                                f"or NaN pattern differs ({int(nan_mismatch.sum())} cells)")
        elif not x.astype(str).equals(y.astype(str)):
            problems.append(f"{name}:{column}: text cells differ")
    return problems


def compare_derivatives(reference: Path, candidate: Path, participant: str | None = None,
                        tolerance: float = NUMBER_TOLERANCE) -> list[str]:
    """Differences between two OUTPUT_DIRs' kinpar/tacs TSVs (empty when they agree).

    The same set of tables must exist (one participant's when ``participant`` is given), each
    compared with :func:`compare_tables`.
    """
    expected, found = derivative_tables(reference, participant), derivative_tables(candidate, participant)
    problems = []
    if not expected:
        problems.append(f"no kinpar/tacs tables in the reference {reference}")
    for name in sorted(set(expected) ^ set(found)):
        problems.append(f"{name}: only in {'reference' if name in expected else 'candidate'}")
    for name in sorted(set(expected) & set(found)):
        problems += [f"{name}: {p}" for p in compare_tables(expected[name], found[name], tolerance)]
    return problems


def count_numbers(out: Path, participant: str | None = None) -> int:
    """How many numeric cells the compared tables hold (so a comparison is never vacuous)."""
    total = 0
    for path in derivative_tables(out, participant).values():
        total += int(_read(path).select_dtypes("number").size)
    return total


def check_dataset_description(out: Path) -> dict:
    """Parse OUTPUT_DIR/dataset_description.json and check its required derivative fields."""
    description = json.loads((out / "dataset_description.json").read_text())
    for field in ("Name", "BIDSVersion", "DatasetType", "GeneratedBy", "SourceDatasets"):
        assert field in description, f"dataset_description.json lacks {field}"
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "tspo-bids"
    assert description["GeneratedBy"][0]["Version"]
    return description


def check_outputs_parse(out: Path, prefixes: list[str]) -> int:
    """Every participant output of ``prefixes`` exists and parses (TSV, JSON, NIfTI); returns files checked."""
    import nibabel as nib

    checked = 0
    for prefix in prefixes:
        subject = prefix.split("_")[0]
        files = [p for p in (out / subject).rglob(f"{prefix}_*") if p.is_file()]
        kinds = {p.name.rsplit("_", 1)[-1] for p in files}
        for needed in ("kinpar.tsv", "tacs.tsv", "T1w.nii.gz", "pet.nii.gz"):
            assert any(k.endswith(needed) for k in kinds), f"{prefix}: no *_{needed} in {out / subject}"
        for path in files:
            if path.name.endswith(".tsv"):
                table = _read(path)  # zero rows are legitimate (e.g. no lesion in a control)
                assert len(table.columns) > 0, f"{path}: no header"
            elif path.name.endswith(".json"):
                json.loads(path.read_text())
            elif path.name.endswith((".nii.gz", ".nii")):
                image = nib.load(path)
                assert np.isfinite(np.asarray(image.dataobj, dtype=float)).any(), f"{path}: no finite voxel"
            checked += 1
        leftovers = [p for p in (out / subject).rglob(".*") if p.is_file()]
        assert not leftovers, f"temporary files left behind: {leftovers[:5]}"
    return checked


# ----------------------------------------------------------------------------- containers

#: Image the tests build from the Dockerfile; base image overridable (CI: the local debootstrap one).
IMAGE_ENV, BASE_IMAGE_ENV = "TSPO_BIDS_IMAGE", "TSPO_BIDS_BASE_IMAGE"
DEFAULT_TEST_IMAGE = "localhost/tspo-bids:test"
#: How the container runs in every test: like Singularity (read-only image, any UID, no network).
RUN_AS_SINGULARITY = ("--network=none", "--read-only", "--user", "65534:65534", "-e", "HOME=/tmp")
_built: dict[str, str] = {}


def podman_env() -> dict[str, str]:
    """Environment for podman: our containers.conf (runc, cgroupfs, ulimits) unless one is set."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(SCRIPTS / "containers.conf"))
    return env


def build_image() -> str:
    """Build the image from the Dockerfile once per session (scripts/build-image.sh); return its tag."""
    require_tool("podman", "builds and runs the container image")
    tag = os.environ.get(IMAGE_ENV, DEFAULT_TEST_IMAGE)
    if tag in _built:
        return tag
    base = os.environ.get(BASE_IMAGE_ENV, "")
    if base:
        present = subprocess.run(["podman", "image", "exists", base], env=podman_env())
        if present.returncode != 0:
            missing(f"base image {base} (${BASE_IMAGE_ENV}) not in podman's store: make it with "
                    "scripts/build-base-image.sh")
    result = subprocess.run([str(SCRIPTS / "build-image.sh"), tag, base], capture_output=True, text=True,
                            env=podman_env(), timeout=1800)
    assert result.returncode == 0, f"image build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    _built[tag] = result.stdout.strip().splitlines()[-1]  # "built TAG in N s; image size M MB"
    print(_built[tag])
    return tag


def podman_run(image: str, *args: str, mounts: tuple[str, ...] = (), entrypoint: str | None = None,
               timeout: float = 3600) -> subprocess.CompletedProcess:
    """``podman run --rm`` of ``image`` run as Singularity runs it, with bind ``mounts`` (-v values)."""
    command = ["podman", "run", "--rm", *RUN_AS_SINGULARITY]
    for mount in mounts:
        command += ["-v", mount]
    if entrypoint:
        command += ["--entrypoint", entrypoint]
    return subprocess.run([*command, image, *args], capture_output=True, text=True, env=podman_env(),
                          timeout=timeout)


def container_command(image: str, *mounts: str) -> str:
    """The same ``podman run`` as one shell-free string (TSPO_BIDS_CMD of scripts/sbatch-array.sh)."""
    parts = ["podman", "run", "--rm", *RUN_AS_SINGULARITY]
    for mount in mounts:
        assert " " not in mount, f"{mount}: the sbatch script splits TSPO_BIDS_CMD on spaces"
        parts += ["-v", mount]
    return " ".join([*parts, image])


# ----------------------------------------------------------------------------- Slurm

def require_slurm() -> None:
    """A running Slurm (sbatch, squeue, an idle/mixed node); fail under CI, skip elsewhere."""
    for tool in ("sbatch", "squeue", "sinfo"):
        require_tool(tool, "the Slurm tests need a running Slurm")
    state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if state.returncode != 0 or not any(s.strip() in ("idle", "mix", "alloc") for s in state.stdout.split()):
        missing(f"no Slurm node up (sinfo: {(state.stdout + state.stderr).strip() or 'nothing'}); "
                "start one with scripts/start-slurm.sh")
