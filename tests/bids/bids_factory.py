"""Tiny BIDS-PET datasets for discovery and command-line tests (4x4x4 voxels, a few frames)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np


def pet_sidecar(n_frames: int, **overrides: Any) -> dict[str, Any]:
    """A complete BIDS PET sidecar for ``n_frames`` 60-s frames (keys set to None are dropped)."""
    content: dict[str, Any] = {
        "Modality": "PET",
        "Manufacturer": "Siemens",
        "ManufacturersModelName": "Biograph mCT",
        "BodyPart": "Brain",
        "Units": "kBq/mL",
        "TracerName": "[11C]-(R)-PK11195",
        "TracerRadionuclide": "C11",
        "InjectedRadioactivity": 450.0,
        "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": 5.0,
        "InjectedMassUnits": "ug",
        "SpecificRadioactivity": 90.0,
        "SpecificRadioactivityUnits": "MBq/ug",
        "ModeOfAdministration": "bolus",
        "TimeZero": "10:00:00",
        "ScanStart": 0,
        "InjectionStart": 0,
        "FrameTimesStart": [60.0 * i for i in range(n_frames)],
        "FrameDuration": [60.0] * n_frames,
        "AcquisitionMode": "list mode",
        "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": 0,
        "ReconMethodName": "OSEM",
        "ReconMethodParameterLabels": ["subsets", "iterations"],
        "ReconMethodParameterUnits": ["none", "none"],
        "ReconMethodParameterValues": [21, 3],
        "ReconFilterType": "none",
        "ReconFilterSize": 0,
        "AttenuationCorrection": "CT-based",
    }
    content.update(overrides)
    return {key: value for key, value in content.items() if value is not None}


def _image(path: Path, shape: tuple[int, ...], seed: int) -> None:
    data = np.random.default_rng(seed).uniform(1.0, 2.0, size=shape).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])).to_filename(path)


def _json(path: Path, content: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2))


def make_bids(
    root: Path,
    subjects: Iterable[str] = ("01",),
    sessions: Iterable[str | None] = (None,),
    n_frames: int = 3,
    flair: bool = True,
    tracer_entity: str | None = None,
) -> Path:
    """Write a valid BIDS-PET dataset: per subject/session a T1w, optional FLAIR and a PET + sidecar."""
    root.mkdir(parents=True, exist_ok=True)
    _json(root / "dataset_description.json",
          {"Name": "tiny PET test", "BIDSVersion": "1.10.0", "DatasetType": "raw", "License": "CC0",
           "Authors": ["tspo-bids tests"]})
    (root / "README").write_text("Tiny generated BIDS-PET dataset for tspo-bids tests.\n")
    subjects = list(subjects)
    rows = ["participant_id\tage\tsex\tgroup"] + [f"sub-{s}\t{30 + i}\tF\tHC" for i, s in enumerate(subjects)]
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    seed = 0
    for subject in subjects:
        for session in sessions:
            folder = root / f"sub-{subject}" / (f"ses-{session}" if session else "")
            prefix = f"sub-{subject}" + (f"_ses-{session}" if session else "")
            seed += 1
            _image(folder / "anat" / f"{prefix}_T1w.nii.gz", (4, 4, 4), seed)
            if flair:
                _image(folder / "anat" / f"{prefix}_FLAIR.nii.gz", (4, 4, 4), seed + 100)
            pet = f"{prefix}" + (f"_trc-{tracer_entity}" if tracer_entity else "") + "_pet"
            _image(folder / "pet" / f"{pet}.nii.gz", (4, 4, 4, n_frames), seed + 200)
            _json(folder / "pet" / f"{pet}.json", pet_sidecar(n_frames))
    return root


def edit_json(path: Path, **changes: Any) -> None:
    """Change keys of a JSON file (a value of None removes the key)."""
    content = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            content.pop(key, None)
        else:
            content[key] = value
    path.write_text(json.dumps(content, indent=2))
