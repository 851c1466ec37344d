"""BIDS derivative file names and safe writers.

This module is the only place in tspo-bids that composes a derivative file name.

Entity order
------------
Names are ``sub-<l>[_ses-<l>][_trc-<l>][_rec-<l>][_run-<i>][_from-<l>][_to-<l>][_mode-<l>]
[_space-<l>][_seg-<l>][_label-<l>][_model-<l>][_meas-<l>][_desc-<l>]_<suffix><extension>``,
i.e. the raw-data entities in BIDS order, then the transform entities (as fMRIPrep/
sMRIPrep write ``from``/``to``/``mode``), then the common-derivative entities ``space``,
``seg``, ``label``, the BEP023 PET-model entities ``model`` and ``meas``, and ``desc``
last (as BIDS requires).

Writers
-------
Every writer puts the content in a temporary file in the destination directory and
renames it over the destination (``os.replace``, atomic on POSIX): a reader never sees a
half-written file, and several participant processes can share one output directory. A file
whose content would not change is not replaced (a re-run keeps its modification times).
``write_dataset_description`` also takes an ``fcntl`` lock so concurrent writers of the
one shared file agree.
"""

from __future__ import annotations

import contextlib
import fcntl
import filecmp
import json
import logging
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tspo_bids import __version__
from tspo_bids.bids.jsonio import read_json
from tspo_bids.config import CODE_URL, Settings
from tspo_bids.errors import InputError

LOGGER = logging.getLogger("tspo_bids.bids")

#: Entity order in derivative file names (see module docstring).
ENTITY_ORDER: tuple[str, ...] = (
    "sub", "ses", "trc", "rec", "run", "from", "to", "mode",
    "space", "pvc", "seg", "label", "model", "meas", "desc",
)
#: Sub-folders of ``sub-<l>[/ses-<l>]/`` that derivatives go into.
DATATYPES: tuple[str, ...] = ("anat", "pet", "figures")
#: BIDS version the derivative dataset follows (bids-validator-deno 3.0 schema).
BIDS_VERSION = "1.10.0"
#: Environment variable naming the container the run happens in, e.g.
#: ``docker://ghcr.io/org/tspo-bids:0.1.0`` (recorded in GeneratedBy[].Container).
CONTAINER_ENV = "TSPO_BIDS_CONTAINER"
DATASET_NAME = "tspo-bids: TSPO PET derivatives"
#: Outputs named after BIDS drafts (BEP023 PET derivatives: tacs, kinpar, mimap, petref; BEP014
#: transforms: xfm) or not covered by BIDS (morph tables, confound time series, reports,
#: group tables, logs). Written to OUTPUT_DIR/.bidsignore so the validator checks the rest.
BIDSIGNORE_PATTERNS: tuple[str, ...] = (
    "*_tacs.*", "*_kinpar.*", "*_mimap.*", "*_petref.*", "*_xfm.*", "*_morph.*", "*_timeseries.*",
    "figures", "group", "logs", "*.html",
)

_LABEL = re.compile(r"^[A-Za-z0-9]+$")
_EXTENSION = re.compile(r"^(\.[A-Za-z0-9]+)+$")


def derivative_path(
    entities: Mapping[str, str | int | None],
    suffix: str,
    extension: str,
    datatype: str | None,
) -> Path:
    """Relative path of a derivative file.

    Parameters
    ----------
    entities : mapping
        Entity name (``sub``, ``ses``, ..., see :data:`ENTITY_ORDER`; ``from_`` is accepted
        for ``from``) -> label. None values are left out. ``sub`` is required.
    suffix : str
        e.g. ``"pet"``, ``"mask"``, ``"tacs"``, ``"kinpar"``, ``"mimap"``, ``"xfm"``.
    extension : str
        With the leading dot: ``".nii.gz"``, ``".tsv"``, ``".json"``.
    datatype : str or None
        ``"anat"``, ``"pet"``, ``"figures"``, or None for the session/subject folder itself.

    Returns
    -------
    Path
        e.g. ``sub-01/ses-1/pet/sub-01_ses-1_model-SRTM_kinpar.tsv``.

    Raises
    ------
    ValueError
        For an unknown entity, a label that is not alphanumeric, a missing ``sub``,
        a bad suffix/extension or datatype (programming errors, not user input).
    """
    labels: dict[str, str] = {}
    for key, value in entities.items():
        name = "from" if key == "from_" else key
        if name not in ENTITY_ORDER:
            raise ValueError(f"unknown BIDS entity {key!r}; known: {', '.join(ENTITY_ORDER)}")
        if value is None:
            continue
        label = str(value)
        if not _LABEL.match(label):
            raise ValueError(f"entity {name}-{label!r}: labels must be alphanumeric")
        labels[name] = label
    if "sub" not in labels:
        raise ValueError("derivative_path needs the 'sub' entity")
    if not _LABEL.match(suffix):
        raise ValueError(f"suffix {suffix!r} must be alphanumeric")
    if not _EXTENSION.match(extension):
        raise ValueError(f"extension {extension!r} must look like '.nii.gz' or '.tsv'")
    if datatype is not None and datatype not in DATATYPES:
        raise ValueError(f"datatype {datatype!r}: choose one of {', '.join(DATATYPES)} or None")

    name = "_".join(f"{key}-{labels[key]}" for key in ENTITY_ORDER if key in labels)
    folder = Path(f"sub-{labels['sub']}")
    if "ses" in labels:
        folder /= f"ses-{labels['ses']}"
    if datatype is not None:
        folder /= datatype
    return folder / f"{name}_{suffix}{extension}"


def sidecar_path(path: Path) -> Path:
    """The ``.json`` sidecar beside a data file (``x_pet.nii.gz`` -> ``x_pet.json``)."""
    name = path.name
    stem = name.split(".", 1)[0]
    return path.with_name(stem + ".json")


# ----------------------------------------------------------------------------- atomic writing


@contextlib.contextmanager
def _atomic_target(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    If ``path`` is already a regular file of ours holding exactly the new bytes (a re-run), it
    is kept with its modification time (its mode is reset as a new file's would be), so tools
    that compare times (rsync, make) see nothing changed.
    ``suffix`` lets callers keep an extension that a library reads (``.nii.gz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if _holds_same_bytes(path, tmp):
            tmp.unlink()
            _set_default_mode(path)  # changes the inode's ctime only, not its mtime
            return
        _set_default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _holds_same_bytes(path: Path, new: Path) -> bool:
    """True if ``path`` is a regular file (not a symlink) owned by this user with the bytes of ``new``.

    Anything unreadable or vanishing counts as different: the caller then replaces it, which
    needs only write access to the directory.
    """
    try:
        status = path.lstat()
        return (stat.S_ISREG(status.st_mode) and status.st_uid == os.geteuid()
                and filecmp.cmp(new, path, shallow=False))
    except OSError:
        return False


def _set_default_mode(path: Path) -> None:
    """Give a temp file (created 0600) the mode a normal ``open`` would (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_bytes_atomic(data: bytes, path: Path) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with _atomic_target(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def write_text_atomic(text: str, path: Path) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(text.encode("utf-8"), path)


def copy_atomic(source: Path, path: Path) -> Path:
    """Copy the file ``source`` to ``path`` atomically (content only, fresh mode); returns ``path``."""
    with _atomic_target(path) as tmp:
        shutil.copyfile(source, tmp)
        _fsync(tmp)
    return Path(path)


def save_nifti_atomic(image: Any, path: Path) -> Path:
    """Save a nibabel image to ``path`` atomically (compressed if ``path`` ends in .gz)."""
    suffix = "".join(Path(path).suffixes[-2:]) if str(path).endswith(".nii.gz") else Path(path).suffix
    with _atomic_target(path, suffix=suffix) as tmp:
        image.to_filename(str(tmp))
        _fsync(tmp)
    return Path(path)


def _json_ready(value: Any) -> Any:
    """Convert numpy scalars/arrays, Paths and non-finite floats to plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(content: Mapping[str, Any]) -> str:
    """Serialise a sidecar the way tspo-bids writes it (2-space indent, NaN -> null)."""
    return json.dumps(_json_ready(content), indent=2, allow_nan=False) + "\n"


def write_json_atomic(content: Mapping[str, Any], path: Path) -> Path:
    """Write a JSON object atomically (numpy values converted, NaN/inf written as null)."""
    return write_text_atomic(json_text(content), path)


def write_tsv_atomic(table: pd.DataFrame, path: Path) -> Path:
    """Write a DataFrame as a BIDS TSV atomically: tab-separated, header row, no index, ``n/a`` for missing."""
    return write_text_atomic(table.to_csv(sep="\t", na_rep="n/a", index=False, lineterminator="\n"), path)


# ----------------------------------------------------------------------------- dataset_description


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``lock_path`` (created if needed) for the block."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _container() -> dict[str, str] | None:
    value = os.environ.get(CONTAINER_ENV, "").strip()
    if not value:
        return None
    kind, sep, tag = value.partition("://")
    if not sep:
        return {"Type": "docker", "Tag": value}
    return {"Type": kind, "Tag": tag}


def dataset_description(bids_dir: Path, settings: Settings | None = None) -> dict[str, Any]:
    """The content of the derivative ``dataset_description.json`` (no I/O except reading the source's)."""
    generated_by: dict[str, Any] = {"Name": "tspo-bids", "Version": __version__, "CodeURL": CODE_URL}
    container = _container()
    if container is not None:
        generated_by["Container"] = container
    source: dict[str, Any] = {"URL": Path(bids_dir).resolve().as_uri()}
    try:
        raw = read_json(Path(bids_dir) / "dataset_description.json")
    except (OSError, ValueError):
        raw = {}
    if isinstance(raw, dict):
        if raw.get("DatasetDOI"):
            source["DOI"] = raw["DatasetDOI"]
        if raw.get("DatasetVersion"):
            source["Version"] = str(raw["DatasetVersion"])
    del settings  # reserved: the description does not depend on options today
    return {
        "Name": DATASET_NAME,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        "SourceDatasets": [source],
    }


def write_dataset_description(output_dir: Path, bids_dir: Path, settings: Settings | None = None) -> Path:
    """Write ``OUTPUT_DIR/dataset_description.json`` (and ``.bidsignore``), safe under concurrent jobs.

    Idempotent: files are left untouched when they already hold the same content.
    A description written by another tspo-bids version is replaced (with a warning).
    ``.bidsignore`` lists :data:`BIDSIGNORE_PATTERNS` (lines a user added are kept).

    Raises
    ------
    InputError
        If ``output_dir`` already holds a derivative dataset generated by another program.
    """
    output_dir = Path(output_dir)
    target = output_dir / "dataset_description.json"
    wanted = dataset_description(bids_dir, settings)
    # Lock file is a dot-file: the BIDS validator and pybids ignore it.
    with locked(output_dir / ".dataset_description.lock"):
        existing = _read_json_or_none(target)
        if existing is not None:
            generators = [g.get("Name") for g in existing.get("GeneratedBy", []) if isinstance(g, dict)]
            if generators and "tspo-bids" not in generators:
                raise InputError(
                    f"{target}: the output directory holds derivatives of {', '.join(map(str, generators))}; "
                    "choose another OUTPUT_DIR"
                )
        _update_bidsignore(output_dir / ".bidsignore")
        if existing == json.loads(json_text(wanted)):
            return target
        if existing is not None:
            old_versions = [g.get("Version") for g in existing.get("GeneratedBy", []) if isinstance(g, dict)]
            if old_versions and __version__ not in old_versions:
                LOGGER.warning("%s: written by tspo-bids %s, now %s: outputs of both versions may mix",
                               target, ", ".join(map(str, old_versions)), __version__)
        write_json_atomic(wanted, target)
    return target


def _update_bidsignore(path: Path) -> None:
    """Add the missing :data:`BIDSIGNORE_PATTERNS` to ``path`` (call with the lock held)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    missing = [pattern for pattern in BIDSIGNORE_PATTERNS if pattern not in lines]
    if missing:
        write_text_atomic("\n".join([*lines, *missing]) + "\n", path)


def _read_json_or_none(path: Path) -> dict[str, Any] | None:
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        LOGGER.warning("%s: unreadable, rewriting it", path)
        return None
    return content if isinstance(content, dict) else None


def check_output_reference(output_dir: Path, reference_region: str) -> None:
    """Refuse to write results of one reference region over those of another.

    Derivative names do not carry the reference region (every ``kinpar`` sidecar records it as
    ``ReferenceRegion``), so a participant run with ``--ref-region svca`` into an output directory
    of cerebellum results would overwrite some of them and leave a mixture for the group level.

    Raises
    ------
    InputError
        Naming the first sidecar made with another reference region.
    """
    for sidecar in sorted(Path(output_dir).glob("sub-*/**/pet/*_kinpar.json")):
        try:
            found = json.loads(sidecar.read_text()).get("ReferenceRegion")
        except (OSError, ValueError):
            continue  # unreadable sidecars are not this check's business
        if found and found != reference_region:
            raise InputError(
                f"{sidecar}: results made with reference region {found!r} are in this output directory, and this "
                f"run uses {reference_region!r}; write it to another OUTPUT_DIR (results of different reference "
                "regions must not mix)"
            )
