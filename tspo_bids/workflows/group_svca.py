"""Group level: SVCA kinetic classes from the healthy controls' participant results.

Every participant run writes its own class curves
(``sub-X[_ses-Y]_trc-Z_seg-svca_desc-normalised_tacs.tsv``, :class:`tspo_bids.interfaces.svca.SvcaClassCurves`).
``tspo-bids BIDS_DIR OUTPUT_DIR group --build-svca-classes`` averages those of the healthy controls
(participants.tsv ``group`` equal to ``--control-group``), one class table per tracer label, into
``OUTPUT_DIR/group/trc-<label>_desc-svca_classes.tsv`` (+ JSON), which ``--ref-region svca`` reads by default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tspo_bids.bids.derivatives import write_json_atomic
from tspo_bids.bids.names import parse_entities
from tspo_bids.errors import InputError
from tspo_bids.interfaces.svca import read_class_table, write_class_table
from tspo_bids.pet.svca import SVCA_CLASSES

LOGGER = logging.getLogger("tspo_bids.group")

#: Glob (under OUTPUT_DIR) of the per-session class curves.
SESSION_CURVES_GLOB = "sub-*/**/pet/*_seg-svca_desc-normalised_tacs.tsv"

#: Frame bounds of two controls' schedules differing by more than this (s) are a mismatch.
FRAME_TOLERANCE_S = 0.5

CLASS_TABLE_DESCRIPTION = {
    "Description": "SVCA4 kinetic classes (Turkheimer 2007; Boellaard 2008; Yaqub 2012): mean over the healthy "
                   "controls of each session's class curves on its per-frame z-scored brain voxel TACs.",
    "frame_start": {"Description": "Frame start, seconds from injection", "Units": "s"},
    "frame_end": {"Description": "Frame end, seconds from injection", "Units": "s"},
    "gm": {"Description": "Grey matter of the reference tissue assumed non-binding: voxels with p_GM > 0.9 in the "
                          "cerebellar grey-matter reference region (atlas cerebellar hemispheres, vermis excluded)",
           "Units": "unitless (z-score)"},
    "wm": {"Description": "White matter, p_WM > 0.9", "Units": "unitless (z-score)"},
    "highbinding": {"Description": "High binding: atlas thalamus", "Units": "unitless (z-score)"},
    "blood": {"Description": "Blood: mean of the 40 hottest brain voxels in the frames ending before 1.5 min",
              "Units": "unitless (z-score)"},
}


def default_classes_file(output_dir: Path, tracer_label: str | None) -> Path:
    """Class table the group level writes for a tracer label (``OUTPUT_DIR/group/trc-<label>_desc-svca_classes.tsv``)."""
    prefix = f"trc-{tracer_label}_" if tracer_label else ""
    return Path(output_dir) / "group" / f"{prefix}desc-svca_classes.tsv"


def classes_file_for(settings: Any, tracer_label: str | None) -> Path:
    """Class table of one run: ``--svca-classes`` if given, else the group level's for its tracer."""
    given = getattr(settings, "svca_classes", None)
    return Path(given) if given is not None else default_classes_file(settings.output_dir, tracer_label)


def check_classes_files(settings: Any, tracer_labels: list[str | None]) -> None:
    """Before any processing: every run of ``--ref-region svca`` has a readable class table.

    Raises
    ------
    InputError
        One line naming the missing file(s) and how to make them.
    """
    missing = sorted({str(classes_file_for(settings, label)) for label in tracer_labels
                      if not classes_file_for(settings, label).is_file()})
    if missing:
        raise InputError(
            f"--ref-region svca: no SVCA class table {', '.join(missing)}; run the participant level with "
            "--ref-region cerebellum, then 'tspo-bids BIDS_DIR OUTPUT_DIR group --build-svca-classes' (needs "
            "healthy controls), or pass --svca-classes FILE"
        )
    for label in dict.fromkeys(tracer_labels):
        read_class_table(classes_file_for(settings, label))


def _control_ids(participants: pd.DataFrame, control_group: str) -> set[str]:
    if "group" not in participants.columns:
        return set()
    groups = participants["group"].astype(str).str.strip()
    return set(participants.loc[groups == control_group.strip(), "participant_id"])


def build_group_classes(settings: Any, participants: pd.DataFrame) -> list[Path]:
    """Average the controls' class curves, one class table per tracer label.

    Parameters
    ----------
    settings : tspo_bids.config.Settings
        ``output_dir``, ``control_group`` and optionally ``participant_label``.
    participants : DataFrame
        participants.tsv (``participant_id`` with ``sub-``, ``group``).

    Returns
    -------
    list of Path
        The class tables written.

    Raises
    ------
    InputError
        No healthy control with class curves, or controls with different frame schedules.
    """
    output_dir = Path(settings.output_dir)
    controls = _control_ids(participants, settings.control_group)
    labels = set(getattr(settings, "participant_label", None) or [])
    by_tracer: dict[str | None, list[tuple[Path, pd.DataFrame]]] = {}
    for path in sorted(output_dir.glob(SESSION_CURVES_GLOB)):
        entities = parse_entities(path)
        if f"sub-{entities.get('sub')}" not in controls or (labels and entities.get("sub") not in labels):
            continue
        by_tracer.setdefault(entities.get("trc"), []).append((path, read_class_table(path)))
    if not by_tracer:
        raise InputError(
            f"--build-svca-classes: no healthy control (participants.tsv group '{settings.control_group}') with "
            f"SVCA class curves (*_seg-svca_desc-normalised_tacs.tsv) in {output_dir}; mark controls with "
            "--control-group or pass --svca-classes FILE to the participant level"
        )
    written = []
    for tracer, tables in sorted(by_tracer.items(), key=lambda item: str(item[0])):
        first_path, first = tables[0]
        for path, table in tables[1:]:
            same = len(table) == len(first) and np.allclose(
                table[["frame_start", "frame_end"]].to_numpy(float),
                first[["frame_start", "frame_end"]].to_numpy(float), rtol=0, atol=FRAME_TOLERANCE_S)
            if not same:
                raise InputError(f"--build-svca-classes: {path.name} has another frame schedule than "
                                 f"{first_path.name}; SVCA classes need controls scanned with one protocol")
        curves = np.mean([t[list(SVCA_CLASSES)].to_numpy(float) for _, t in tables], axis=0)
        out = default_classes_file(output_dir, tracer)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        write_class_table(curves, first["frame_start"].to_numpy(float), first["frame_end"].to_numpy(float), tmp)
        tmp.replace(out)
        sources = [f"bids::{p.relative_to(output_dir).as_posix()}" for p, _ in tables]
        write_json_atomic({**CLASS_TABLE_DESCRIPTION, "ControlGroup": settings.control_group,
                           "NumberOfControlSessions": len(tables), "Sources": sources},
                          out.with_suffix(".json"))
        LOGGER.info("SVCA classes from %d control session(s) -> %s", len(tables), out)
        written.append(out)
    return written
