"""Gather participant-level tables into one group table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tspo_bids.bids.names import parse_entities

#: Entity key in filenames -> column in group tables.
ENTITY_COLUMNS = {"sub": "participant_id", "ses": "session_id", "trc": "tracer", "rec": "reconstruction",
                  "run": "run", "model": "model"}


def collect_kinpar(output_dir: Path, participant_label: list[str] | None = None) -> pd.DataFrame:
    """Every participant's ``*_kinpar.tsv`` as one long table.

    Parameters
    ----------
    output_dir : Path
        The tspo-bids derivatives folder.
    participant_label : list of str, optional
        Restrict to these participants (labels without ``sub-``).

    Returns
    -------
    DataFrame
        One row per participant x session x run x model x region: the entity columns
        (``participant_id`` as ``sub-<label>``, ``session_id``, ``tracer``, ``model``, ...)
        followed by the kinpar columns. Empty when no table is found.
    """
    frames = []
    for path in sorted(Path(output_dir).glob("sub-*/**/pet/*_kinpar.tsv")):
        entities = parse_entities(path)
        if entities.get("desc") == "lesions":  # per-lesion tables: lesion phenotypes, not regions
            continue
        if participant_label and entities.get("sub") not in participant_label:
            continue
        table = pd.read_csv(path, sep="\t", na_values="n/a")
        for key, column in reversed(ENTITY_COLUMNS.items()):
            if key in entities:
                value = f"sub-{entities[key]}" if key == "sub" else entities[key]
                table.insert(0, column, value)
        frames.append(table)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    leading = [c for c in ENTITY_COLUMNS.values() if c in table.columns]
    return table[leading + [c for c in table.columns if c not in leading]]


def join_participants(kinpar: pd.DataFrame, participants: pd.DataFrame) -> pd.DataFrame:
    """Left-join participant characteristics (group, age, EDSS, genotype ...) onto each row."""
    if kinpar.empty:
        return kinpar
    extra = participants.drop_duplicates("participant_id")
    return kinpar.merge(extra, on="participant_id", how="left", validate="many_to_one")
