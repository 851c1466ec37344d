"""Group level: one table of every participant's regional parameters with participants.tsv."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from tspo_bids.bids.derivatives import write_json_atomic, write_tsv_atomic
from tspo_bids.bids.discovery import KNOWN_GROUPS, read_participants
from tspo_bids.errors import InputError
from tspo_bids.stats.collect import collect_kinpar, join_participants
from tspo_bids.workflows.group_lesions import run_lesion_phenotypes
from tspo_bids.workflows.group_svca import build_group_classes

LOGGER = logging.getLogger("tspo_bids.group")

GROUP_TABLE_DESCRIPTION = {
    "Description": "Regional kinetic parameters of every participant (one row per participant, session, "
                   "run, model and region) joined with the dataset's participants.tsv.",
    "participant_id": {"Description": "BIDS participant label"},
    "session_id": {"Description": "BIDS session label (absent for single-session datasets)"},
    "tracer": {"Description": "BIDS trc- entity of the PET run"},
    "model": {"Description": "Kinetic model (SRTM, MRTM, Logan, SUVR)"},
    "region": {"Description": "Region name (definitions in the README and tspo_bids.anat.regions)"},
    "BPND": {"Description": "Non-displaceable binding potential", "Units": "unitless"},
    "DVR": {"Description": "Distribution volume ratio", "Units": "unitless"},
    "R1": {"Description": "Relative delivery", "Units": "unitless"},
    "k2": {"Description": "Target efflux rate constant", "Units": "1/min"},
}


def run_group(settings: Any) -> Path:
    """Write ``OUTPUT_DIR/group/group_kinpar.tsv`` (+ JSON) from the participant outputs.

    Parameters
    ----------
    settings : tspo_bids.config.Settings
        Needs ``bids_dir``, ``output_dir`` and optionally ``participant_label``.

    Returns
    -------
    Path
        The group table.

    Raises
    ------
    InputError
        No participant results; or, with ``--build-svca-classes``, no healthy control to build the SVCA
        classes from (raised after the group table and lesion phenotypes are written).
    """
    output_dir = Path(settings.output_dir)
    labels = list(getattr(settings, "participant_label", None) or []) or None
    kinpar = collect_kinpar(output_dir, labels)
    if kinpar.empty:
        raise InputError(
            f"{output_dir}: no participant results (*_kinpar.tsv) found; run the participant level first"
        )
    participants = read_participants(Path(settings.bids_dir))
    report_coverage(kinpar, participants, Path(settings.bids_dir), output_dir, labels,
                    getattr(settings, "control_group", None))
    table = join_participants(kinpar, participants)
    # Lesion phenotypes read every control's and patient's maps before writing anything, and run before the
    # group table is written: a damaged map then stops the run with the group folder as the last run left it,
    # not with a new group table beside lesion tables of an older run.
    run_lesion_phenotypes(settings, participants)
    group_dir = output_dir / "group"
    group_dir.mkdir(parents=True, exist_ok=True)
    out = group_dir / "group_kinpar.tsv"
    write_tsv_atomic(table, out)
    write_json_atomic(GROUP_TABLE_DESCRIPTION, out.with_suffix(".json"))
    LOGGER.info("group table: %d rows, %d participants -> %s",
                len(table), table["participant_id"].nunique(), out)
    if getattr(settings, "build_svca_classes", False):
        build_group_classes(settings, participants)
    return out


def report_coverage(kinpar: Any, participants: Any, bids_dir: Path, output_dir: Path, labels: list[str] | None,
                    control_group: str | None) -> None:
    """Warn about participants the group level leaves out or cannot characterise (it still runs).

    * Participants with PET in ``bids_dir`` but no results in ``output_dir`` (a participant job that failed or
      never ran): they are missing from every group table, and a missing control also changes the
      controls-derived thresholds.
    * Participants with results but no row in participants.tsv: their group, EDSS and genotype are n/a.

    Also logs the group composition (participants with results per ``group`` value).
    """
    with_results = set(kinpar["participant_id"])
    with_pet = {path.relative_to(bids_dir).parts[0] for path in bids_dir.glob("sub-*/**/pet/*_pet.nii*")}
    if labels:
        with_pet = {p for p in with_pet if p.removeprefix("sub-") in labels}
    missing = sorted(with_pet - with_results)
    groups = (participants.dropna(subset=["group"]).set_index("participant_id")["group"].astype(str).to_dict()
              if "group" in participants.columns else {})
    if missing:
        controls = [p for p in missing if control_group and groups.get(p) == control_group]
        LOGGER.warning("%d participant(s) with PET in %s have no results in %s and are left out of the group "
                       "level: %s%s; run the participant level for them", len(missing), bids_dir, output_dir,
                       ", ".join(missing), f" (controls: {', '.join(controls)})" if controls else "")
    if (bids_dir / "participants.tsv").is_file():
        unlisted = sorted(with_results - set(participants["participant_id"]))
        if unlisted:
            LOGGER.warning("%s: no row for %s; their group, EDSS and genotype are n/a in the group tables",
                           bids_dir / "participants.tsv", ", ".join(unlisted))
    unknown = sorted({g for p, g in groups.items() if p in with_results and g not in KNOWN_GROUPS
                      and g != control_group})
    if unknown:
        LOGGER.warning("%s: group value(s) %s are none of %s%s; kept as given", bids_dir / "participants.tsv",
                       ", ".join(unknown), ", ".join(KNOWN_GROUPS),
                       f" or --control-group {control_group}" if control_group and control_group not in KNOWN_GROUPS else "")
    if groups:
        counts = Counter(groups.get(participant, "n/a") for participant in with_results)
        LOGGER.info("participants with results per group: %s",
                    ", ".join(f"{group} {count}" for group, count in sorted(counts.items())))
