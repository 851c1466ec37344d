"""Group level, lesion phenotypes: controls' active-voxel threshold, lesion classes, patient markers.

Reads the participant derivatives (T1w-space SRTM2 DVR maps, NAWM masks, lesion labels, WM
fractions) and writes ``group/lesion_phenotypes.tsv`` and ``group/participant_lesion_markers.tsv``.

When every participant has partial-volume corrected maps (``--pvc rbv``: each lesion's core and
2 mm rim are compartments of their own), the phenotypes use them, for controls (threshold) and
patients alike; otherwise the uncorrected maps. At 4-6 mm PET resolution a 2 mm rim is measured
at a fraction of its contrast, so rim-active lesions need the correction (README, validation).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from tspo_bids.bids.derivatives import write_json_atomic, write_tsv_atomic
from tspo_bids.bids.names import parse_entities
from tspo_bids.errors import InputError
from tspo_bids.pet.phenotypes import RIM_WIDTH_MM

LOGGER = logging.getLogger("tspo_bids.group")

#: Parametric map whose DVR the phenotypes use (the participant level summarises the same one).
PHENOTYPE_MODEL = "SRTM2"


def _session_key(path: Path) -> tuple[str, str | None]:
    entities = parse_entities(path)
    return f"sub-{entities['sub']}", entities.get("ses")


def _find(output_dir: Path, pattern: str) -> dict[tuple[str, str | None], Path]:
    return {_session_key(p): p for p in sorted(output_dir.glob(pattern))}


def phenotype_dvr_maps(output_dir: Path) -> tuple[dict[tuple[str, str | None], Path], str]:
    """The T1w-space DVR maps the phenotypes use, and which correction they carry ("RBV" or "none").

    RBV-corrected maps are used only when every session with an uncorrected map has one too (never
    a mix of corrected and uncorrected maps in one threshold/classification).
    """
    plain = _find(output_dir, f"sub-*/**/pet/*_space-T1w_model-{PHENOTYPE_MODEL}_meas-DVR_mimap.nii.gz")
    corrected = _find(output_dir, f"sub-*/**/pet/*_space-T1w_pvc-RBV_model-{PHENOTYPE_MODEL}_meas-DVR_mimap.nii.gz")
    if corrected and set(corrected) >= set(plain):
        return corrected, "RBV"
    if corrected:
        missing = sorted(f"{s}" + (f"_ses-{t}" if t else "") for s, t in set(plain) - set(corrected))
        LOGGER.warning("lesion phenotypes use uncorrected DVR maps: %s lack(s) --pvc rbv maps", ", ".join(missing))
    return plain, "none"


def _image_data(path: Path, dtype: type | None = None) -> np.ndarray:
    """A participant-level image's data; a damaged file is an InputError naming it (not a library traceback)."""
    try:
        image = nib.load(path)
        return image.get_fdata(dtype=dtype) if dtype is not None else np.asarray(image.dataobj)
    except Exception as error:  # nibabel, gzip and zlib raise several types for damaged files
        raise InputError(f"{path}: cannot be read ({type(error).__name__}: {' '.join(str(error).split())}); "
                         "re-run the participant level for this participant") from error


#: Group-level lesion tables (and their JSON sidecars), replaced or removed together by each group run.
PHENOTYPE_TABLES: tuple[str, ...] = ("lesion_phenotypes.tsv", "participant_lesion_markers.tsv")


def run_lesion_phenotypes(settings: Any, participants: pd.DataFrame) -> list[Path]:
    """Classify every patient lesion and summarise each patient (methods: README).

    Returns the tables written; none (with a log line saying why) when the dataset has no
    control with a DVR map, or no lesion; then lesion tables of an earlier group run are removed,
    so the group folder never mixes runs.
    """
    written = _lesion_phenotypes(settings, participants)
    if not written:
        group_dir = Path(settings.output_dir) / "group"
        for name in PHENOTYPE_TABLES:
            for stale in (group_dir / name, (group_dir / name).with_suffix(".json")):
                if stale.is_file():
                    stale.unlink()
                    LOGGER.info("removed %s of an earlier group run (this run makes no lesion tables)", stale)
    return written


def _lesion_phenotypes(settings: Any, participants: pd.DataFrame) -> list[Path]:
    output_dir = Path(settings.output_dir)
    dvr_maps, correction = phenotype_dvr_maps(output_dir)
    nawm_masks = _find(output_dir, "sub-*/**/anat/*_label-nawm_mask.nii.gz")
    lesion_labels = _find(output_dir, "sub-*/**/anat/*_desc-lesions_dseg.nii.gz")
    wm_fractions = _find(output_dir, "sub-*/**/anat/*_label-WM_probseg.nii.gz")
    if "group" not in participants.columns:
        LOGGER.warning("participants.tsv has no 'group' column: lesion phenotypes need healthy controls; skipped")
        return []
    groups = participants.set_index("participant_id")["group"].astype(str).to_dict()
    controls = [key for key in dvr_maps if groups.get(key[0]) == settings.control_group and key in nawm_masks]
    if not controls:
        LOGGER.warning("no %s participant with a %s DVR map and a NAWM mask: the active-voxel threshold needs "
                       "healthy controls; lesion phenotypes skipped", settings.control_group, PHENOTYPE_MODEL)
        return []

    from tspo_bids.pet.phenotypes import active_threshold, classify_lesions, lesion_statistics, patient_marker

    control_values = []
    for key in controls:
        dvr = _image_data(dvr_maps[key], np.float32)
        nawm = _image_data(nawm_masks[key]) > 0
        values = dvr[nawm]
        control_values.append(values[np.isfinite(values)])
    threshold = active_threshold(control_values, percentile=settings.active_percentile)
    LOGGER.info("active-voxel DVR threshold %.4f (%g th percentile of NAWM voxels of %d controls; %s DVR maps)",
                threshold, settings.active_percentile, len(controls),
                "partial-volume corrected (RBV)" if correction == "RBV" else "uncorrected")

    lesion_rows, marker_rows = [], []
    for key, labels_path in lesion_labels.items():
        if key not in dvr_maps:
            continue
        labels = _image_data(labels_path)
        labels_img = nib.load(labels_path)
        if labels.max() == 0:
            continue
        wm = (_image_data(wm_fractions[key], np.float32) >= 0.5) if key in wm_fractions else None
        rows = lesion_statistics(labels, _image_data(dvr_maps[key], np.float32),
                                 labels_img.header.get_zooms()[:3], wm_mask=wm, threshold=threshold)
        phenotypes = classify_lesions(rows, threshold, active_fraction_cutoff=settings.active_fraction)
        for row, phenotype in zip(rows, phenotypes):
            lesion_rows.append({"participant_id": key[0], "session_id": key[1], **row, "phenotype": phenotype})
        marker = patient_marker(phenotypes, rim_fraction=settings.rim_active_min,
                                inactive_fraction=settings.inactive_max)
        marker_rows.append({"participant_id": key[0], "session_id": key[1], "group": groups.get(key[0]),
                            **asdict(marker)})
    if not lesion_rows:
        LOGGER.info("no lesions in the dataset: no lesion phenotype tables")
        return []

    group_dir = output_dir / "group"
    group_dir.mkdir(parents=True, exist_ok=True)
    options = {"ControlGroup": settings.control_group, "ActivePercentile": settings.active_percentile,
               "ActiveThresholdDVR": threshold, "ActiveFraction": settings.active_fraction,
               "RimWidth": {"Value": RIM_WIDTH_MM, "Units": "mm"}, "Model": PHENOTYPE_MODEL,
               "PartialVolumeCorrection": correction,
               "Controls": [f"{s}" + (f"_ses-{t}" if t else "") for s, t in controls]}
    lesions_tsv = group_dir / PHENOTYPE_TABLES[0]
    write_tsv_atomic(pd.DataFrame(lesion_rows), lesions_tsv)
    write_json_atomic({
        "Description": "Every lesion's core/rim DVR statistics and phenotype: rim-active (core not active, rim "
                       "active), overall-active (core active) or inactive (neither). A voxel is active when its "
                       "DVR exceeds the controls' NAWM percentile; a core or rim is active when more than "
                       "ActiveFraction of its voxels are.", **options,
        "volume_mm3": {"Units": "mm^3"}, "phenotype": {"Levels": ["rim-active", "overall-active", "inactive"]},
    }, lesions_tsv.with_suffix(".json"))
    markers_tsv = group_dir / PHENOTYPE_TABLES[1]
    write_tsv_atomic(pd.DataFrame(marker_rows), markers_tsv)
    write_json_atomic({
        "Description": "Per patient (and session): lesion count, phenotype proportions and the progression marker "
                       "of Polvinen et al. 2023 (rim-active proportion > RimActiveMin and inactive proportion <= "
                       "InactiveMax).", **options,
        "RimActiveMin": settings.rim_active_min, "InactiveMax": settings.inactive_max,
    }, markers_tsv.with_suffix(".json"))
    return [lesions_tsv, markers_tsv]
