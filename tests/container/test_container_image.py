"""The container image: Dockerfile lint, build, labels, pins, and running as Singularity runs it.

The image is built from the Dockerfile by the ``image`` fixture (scripts/build-image.sh; CI points
``TSPO_BIDS_BASE_IMAGE`` at a local debootstrap image). Every run here uses
``--network=none --read-only --user 65534:65534 -e HOME=/tmp``. The participant + group run of the
image on data/test_bids and its comparison with the pip-installed run are in
tests/slurm/test_sbatch_array.py (the image runs there as the tasks of the sbatch array).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tspo_bids import __version__

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements" / "lock.txt"
REQUIRED_LABELS = ("title", "description", "version", "revision", "created", "source", "licenses")


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def _requirement_name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]).lower()


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(hadolint).is_file(), "hadolint missing: it is a test dependency (pip install -e '.[test]')"
    result = subprocess.run([hadolint, "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_takes_base_image_and_uses_the_lock():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert "requirements/lock.txt" in text and "--no-deps" in text
    assert re.search(r'^ENTRYPOINT \["tspo-bids"\]$', text, re.M)


def test_lock_pins_every_runtime_dependency():
    """Each dependency in pyproject.toml is pinned in requirements/lock.txt (scripts/update-lock.sh)."""
    pins = _pins(LOCK.read_text())
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    unpinned = [d for d in dependencies if _requirement_name(d) not in pins]
    assert not unpinned, f"not in requirements/lock.txt: {unpinned}; run scripts/update-lock.sh"
    assert "bids-validator-deno" in pins


def test_image_environment_is_exactly_the_lock(shared, image):
    result = shared.podman_run(image, "freeze", "--exclude", "tspo-bids", entrypoint="pip")
    assert result.returncode == 0, result.stderr
    installed, locked = _pins(result.stdout), _pins(LOCK.read_text())
    assert installed == locked, {k: (installed.get(k), locked.get(k))
                                 for k in set(installed) | set(locked) if installed.get(k) != locked.get(k)}


def test_image_labels_user_entrypoint(shared, image):
    result = subprocess.run(["podman", "image", "inspect", image], capture_output=True, text=True,
                            env=shared.podman_env())
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)[0]["Config"]
    labels = config.get("Labels") or {}
    for name in REQUIRED_LABELS:
        assert labels.get(f"org.opencontainers.image.{name}"), f"label org.opencontainers.image.{name} missing"
    assert labels["org.opencontainers.image.version"] == __version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO)
    if head.returncode == 0:
        assert labels["org.opencontainers.image.revision"] == head.stdout.strip()
    assert config["Entrypoint"] == ["tspo-bids"]
    user = config.get("User", "")
    assert user and user.split(":")[0] not in ("0", "root"), f"image runs as {user!r}"


def test_cli_runs_read_only_as_any_uid_offline(shared, image):
    version = shared.podman_run(image, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"tspo-bids {__version__}"
    usage = shared.podman_run(image, "/nonexistent", "/tmp/out", "participant")
    assert usage.returncode == 1 and usage.stderr.strip().startswith("tspo-bids: error:"), usage.stderr


def test_templates_and_caches_work_offline_under_read_only_root(shared, image):
    """Templates/atlases ship inside; matplotlib, Nipype and the BIDS validator need only /tmp."""
    script = (
        "from tspo_bids.anat.template import load_template\n"
        "t = load_template(2)\n"
        "masks = {g: int(t.atlas_group(g).sum()) for g in ('cerebellum', 'thalamus')}\n"
        "assert all(masks.values()), masks\n"
        "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
        "plt.plot([0, 1]); plt.savefig('/tmp/figure.png')\n"
        "import nipype, os; print('ok', os.getuid(), masks)\n"
    )
    result = shared.podman_run(image, "-c", script, entrypoint="python")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok 65534"), result.stdout
    test_bids = shared.TEST_BIDS
    validator = shared.podman_run(image, "--format", "json", "/data", mounts=(f"{test_bids}:/data:ro",),
                                  entrypoint="bids-validator-deno", timeout=600)
    report = json.loads(validator.stdout)
    errors = [i for i in report["issues"]["issues"] if i.get("severity") == "error"]
    assert not errors, errors[:3]


def test_boutiques_descriptor_names_this_image(shared):
    descriptor = json.loads((REPO / "tspo_bids" / "data" / "boutiques.json").read_text())
    assert descriptor["container-image"]["image"] == f"tspo-bids:{__version__}"
    assert descriptor["tool-version"] == __version__


@pytest.mark.parametrize("script", ["build-base-image.sh", "build-image.sh", "install-system-deps.sh",
                                    "start-slurm.sh", "stop-slurm.sh", "sbatch-array.sh", "update-lock.sh"])
def test_scripts_are_valid_bash(script):
    path = REPO / "scripts" / script
    assert path.is_file() and path.stat().st_mode & 0o111, f"{path} missing or not executable"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
